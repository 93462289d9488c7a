"""``hlm varpart RUN``: the variance partition of one fitted run, written to ``RUN/varpart.csv``.

The numbers are :func:`hlm_cli.outputs.varpart.fractions` (per-draw fractions of the
latent-scale variance, see that module for the formulas); this workflow opens the run, writes
the CSV atomically and returns what the CLI prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass
class VarpartResult:
    run_dir: Path
    table: pd.DataFrame  # component, mean, lower, upper, variance
    ci: float
    family: str
    csv: Path


def fractions_from_run(run_dir: Path, ci: float = 0.95) -> pd.DataFrame:
    """Variance fractions of a run directory written by ``hlm fit`` (columns ``component, mean,
    lower, upper, variance``): :func:`hlm_cli.outputs.varpart.fractions` of the reopened run."""
    from hlm_cli.outputs.varpart import fractions
    from hlm_cli.workflows.runs import load_run

    ctx = load_run(Path(run_dir))
    return fractions(ctx.tree, ctx.built, ci)


def run_varpart(run_dir: Path, *, ci: float = 0.95, out: Path | None = None) -> VarpartResult:
    """Compute the variance fractions of a run and write them.

    Parameters
    ----------
    run_dir : Path
        An ``hlm fit --out`` directory.
    ci : float
        Width of the equal-tailed interval of each fraction.
    out : Path, optional
        CSV to write; default ``RUN_DIR/varpart.csv``.
    """
    from hlm_cli.errors import InputError
    from hlm_cli.outputs.rundir import ensure_parent_writable, write_atomic
    from hlm_cli.outputs.varpart import fractions
    from hlm_cli.workflows.runs import load_run

    if not 0 < ci < 1:
        raise InputError(f"--ci must be between 0 and 1, got {ci}", hint="e.g. --ci 0.9")
    run_dir = Path(run_dir)
    csv = Path(out) if out is not None else run_dir / "varpart.csv"
    ctx = load_run(run_dir)
    table = fractions(ctx.tree, ctx.built, ci)
    ensure_parent_writable(csv)
    write_atomic(csv, lambda fh: table.to_csv(fh, index=False, float_format="%.6g"), newline="")
    return VarpartResult(run_dir, table, ci, ctx.built.family.name, csv)
