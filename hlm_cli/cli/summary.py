"""``hlm summary``: re-print a fit's parameter tables, optionally at another interval width."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def summary(
    run_dir: Annotated[Path, typer.Argument(help="run directory written by 'hlm fit --out', e.g. results/ko", show_default=False)],
    ci: Annotated[float | None, typer.Option("--ci", help="interval probability, e.g. --ci 0.95 (recomputed from posterior.nc when it differs from the fit's) [default: the fit's]", show_default=False)] = None,
) -> None:
    """Print a fit's parameter tables again (from summary.csv, or recomputed at another --ci).

    Example: hlm summary results/ko --ci 0.95
    """
    from hlm_cli.cli import render
    from hlm_cli.workflows.summary import run_summary

    render.summary_result(run_summary(run_dir, ci=ci))
