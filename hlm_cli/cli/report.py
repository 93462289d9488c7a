"""``hlm report RUN_DIR``: (re)build a run's self-contained report.html from its saved files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report(
    run_dir: Annotated[Path, typer.Argument(help="run directory written by 'hlm fit', e.g. results/ko", show_default=False)],
    color_by: Annotated[str | None, typer.Option("--color-by", help="column that colours the predicted-vs-observed points, e.g. --color-by Treatment [default: the first predictor]", show_default=False)] = None,
    svg: Annotated[bool, typer.Option("--svg", help="also save every figure as SVG beside its PNG under plots/")] = False,
    data: Annotated[Path | None, typer.Option("--data", help="the data file, if it moved since the fit (its sha256 must match), e.g. --data new/place/ko.csv", show_default=False)] = None,
) -> None:
    """Draw the report figures into RUN_DIR/plots and write RUN_DIR/report.html (opens from disk, no network).

    Example: hlm report results/ko --color-by gene --svg
    """
    from hlm_cli.cli import render
    from hlm_cli.workflows.report import run_report

    render.info(f"Wrote {run_report(run_dir, color_by=color_by, svg=svg, data=data)}")
