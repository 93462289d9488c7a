"""``hlm sensitivity``: power-scaling prior sensitivity of a fitted run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def sensitivity(
    run_dir: Annotated[Path, typer.Argument(help="run directory written by 'hlm fit --out', e.g. results/ko", show_default=False)],
) -> None:
    """Recompute how much each parameter depends on its prior (power-scaling), rewrite RUN_DIR/sensitivity.csv.

    A parameter whose posterior moves when the prior is scaled but not when the likelihood is
    ('strong prior / weak likelihood') is mostly prior; both moving means prior-data conflict.

    Example: hlm sensitivity results/ko
    """
    from hlm_cli.cli import render
    from hlm_cli.workflows.sensitivity import run_sensitivity

    render.sensitivity_result(run_sensitivity(run_dir))
