"""``hlm pooling``: no, complete and partial pooling side by side for a fitted run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def pooling(
    run_dir: Annotated[Path, typer.Argument(help="an 'hlm fit' output directory, e.g. results/schools_se", show_default=False)],
    factor: Annotated[str | None, typer.Option(help="grouping factor, e.g. school [default: the one with most levels]", show_default=False)] = None,
    truth: Annotated[Path | None, typer.Option(help="CSV parameter,value with rows like mu[S01],-6.7 (simulated data): adds MSE against the truth", show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(help="CSV to write [default: RUN_DIR/pooling_FACTOR.csv, with a PNG beside it]", show_default=False)] = None,
) -> None:
    """Compare no-pooling, complete-pooling and partial-pooling estimates per group level.

    Example: hlm pooling results/schools_se --factor school --truth sample_data/schools_regions_truth.csv
    """
    from hlm_cli.cli import render
    from hlm_cli.workflows.pooling import run_pooling

    render.pooling_result(run_pooling(run_dir, factor=factor, truth=truth, out=out))
