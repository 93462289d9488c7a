"""``hlm varpart``: how much of the variance each grouping factor, the population-level terms
and the residual explain, per posterior draw."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def varpart(
    run_dir: Annotated[Path, typer.Argument(help="an 'hlm fit' output directory, e.g. results/ko", show_default=False)],
    ci: Annotated[float, typer.Option(min=0.01, max=0.99, help="width of each fraction's equal-tailed interval")] = 0.95,
    out: Annotated[Path | None, typer.Option(help="CSV to write [default: RUN_DIR/varpart.csv]", show_default=False)] = None,
) -> None:
    """Variance partition of a fitted model: the fraction of the latent-scale variance due to
    each grouping factor, the population-level terms (fixed) and the residual, with intervals.

    Example: hlm varpart results/ko --ci 0.9
    """
    from hlm_cli.cli import render
    from hlm_cli.workflows.varpart import run_varpart

    render.varpart_result(run_varpart(run_dir, ci=ci, out=out))
