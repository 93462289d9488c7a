"""``hlm sensitivity RUN``: power-scaling prior sensitivity of a fitted run, recomputed.

Every fit writes ``sensitivity.csv`` (:func:`hlm_cli.diagnostics.sensitivity`); this command
recomputes it from posterior.nc (after the run was copied, or for a run written before hlm
stored the ``log_prior`` group, whose log prior is then rebuilt from the run's model) and
writes it again, atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hlm_cli.errors import InputError


@dataclass
class SensitivityResult:
    run_dir: Path
    table: pd.DataFrame  # parameter, prior, likelihood, diagnosis
    findings: list  # diagnostics.Finding notes, one per diagnosis kind found
    written: Path | None  # sensitivity.csv, when written


@dataclass
class _Params:
    """What :func:`hlm_cli.diagnostics.sensitivity` needs of a model when the tree has its log prior."""

    params: object


def run_sensitivity(run_dir: Path, *, write: bool = True) -> SensitivityResult:
    """Recompute a run's prior sensitivity (and rewrite its sensitivity.csv with ``write``)."""
    from hlm_cli import diagnostics
    from hlm_cli.outputs import rundir, runinfo
    from hlm_cli.outputs.summary import write_sensitivity
    from hlm_cli.workflows.runs import open_tree
    from hlm_cli.workflows.summary import params_of

    run_dir = Path(run_dir)
    if not (run_dir / "run.json").exists():
        raise InputError(f"{str(run_dir)!r} is not an hlm run directory (no run.json)", hint="give the --out directory of an 'hlm fit' run")
    info = runinfo.read(run_dir)
    tree = open_tree(run_dir)
    if "log_prior" in tree.children:
        built = _Params(params_of(info))
    else:  # written before hlm stored the log prior: rebuild the model to evaluate it
        from hlm_cli.workflows.runs import load_run

        built = load_run(run_dir).built
    if "log_likelihood" not in tree.children and (info.get("storage") or {}).get("large"):
        from hlm_cli.model import scale
        from hlm_cli.workflows.runs import load_run

        ctx = load_run(run_dir)  # a large run (docs/scale.md): the total log-likelihood per draw, in chunks
        tree["log_likelihood"] = scale.total_loglik_dataset(ctx.tree, ctx.built)
    if "log_likelihood" not in tree.children:
        raise InputError(f"{str(run_dir / 'posterior.nc')!r} has no log_likelihood group", hint="refit with 'hlm fit ... --force'")
    table = diagnostics.sensitivity(tree, built)
    out = None
    if write:
        out = run_dir / "sensitivity.csv"
        with rundir.writing(out):
            rundir.write_atomic(out, lambda fh: write_sensitivity(table, fh))
    return SensitivityResult(run_dir, table, diagnostics.sensitivity_findings(table), out)


__all__ = ["SensitivityResult", "run_sensitivity"]
