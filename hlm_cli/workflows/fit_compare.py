"""``hlm fit`` with several ``--formula``: each model into OUT/m1, OUT/m2, ..., then their
PSIS-LOO comparison into OUT/loo (as ``hlm loo``).

The command fits the models one by one with :func:`hlm_cli.workflows.fit.run_fit` (so it can
show each result as it lands); this module owns the run-directory side: checking and making
OUT, the per-model specs, and the comparison.
"""

from __future__ import annotations

from pathlib import Path

from hlm_cli.spec import FitSpec


def model_dir(spec: FitSpec, i: int) -> Path:
    """OUT/m{i}: the run directory of the i-th formula (from 1)."""
    return spec.out / f"m{i}"


def loo_dir(spec: FitSpec) -> Path:
    """OUT/loo: where the comparison is written."""
    return spec.out / "loo"


def prepare_models(spec: FitSpec, formulas: list[str]) -> list[FitSpec]:
    """Check OUT (``--force`` replaces only m1, m2, ... and loo/), create it, and return one
    spec per formula, each writing into :func:`model_dir`."""
    from hlm_cli.outputs import loo_out, rundir

    protect = tuple(p for p in (spec.data, spec.config_file) if p is not None)
    rundir.check_out(spec.out, force=spec.force, protect=protect, foreign_of=loo_out.compare_foreign_entries)
    spec.out.mkdir(parents=True, exist_ok=True)
    return [spec.model_copy(update={"formula": f, "out": model_dir(spec, i), "force": True})
            for i, f in enumerate(formulas, start=1)]


def compare_models(spec: FitSpec, n: int):
    """Compare the fitted OUT/m1 .. OUT/m{n} by PSIS-LOO and write the tables to OUT/loo.

    Returns
    -------
    (comparison, written)
        What :func:`hlm_cli.workflows.loo.compare_runs` and
        :func:`hlm_cli.outputs.loo_out.write` return.
    """
    from hlm_cli.outputs import loo_out
    from hlm_cli.workflows.loo import compare_runs

    comparison = compare_runs([model_dir(spec, i) for i in range(1, n + 1)], seed=spec.sampler.seed)
    return comparison, loo_out.write(comparison, loo_dir(spec))
