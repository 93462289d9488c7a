"""``hlm predict``: parse the options, delegate to the workflow, render the first rows."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def predict(
    run_dir: Annotated[Path, typer.Argument(help="run directory written by 'hlm fit --out', e.g. results/mice", show_default=False)],
    new_data: Annotated[Path, typer.Argument(help="CSV of rows to predict, with the model's predictor and grouping columns, e.g. new_mice.csv", show_default=False)],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="CSV to write: the new rows + mean, sd, lower, upper [default: RUN_DIR/predict_NAME.csv]", show_default=False)] = None,
    kind: Annotated[str, typer.Option("--kind", help="'mean': the expected response (a probability, a rate); 'response': a new observation, with its noise")] = "mean",
    interval: Annotated[float, typer.Option("--ci", "--interval", help="probability of the equal-tailed interval, e.g. --ci 0.95 (brms's width)")] = 0.94,
    seed: Annotated[int, typer.Option(min=0, help="seed for new groups' effects and response draws")] = 0,
    data: Annotated[Path | None, typer.Option("--data", help="the fitted CSV, if it moved since the fit (its sha256 must match)", show_default=False)] = None,
) -> None:
    """Predict new rows from a fitted run, with intervals; groups not in the fit get effects drawn from the group-level distribution.

    Example: hlm predict results/mice new_mice.csv --out pred.csv --kind response
    """
    from hlm_cli.cli import render
    from hlm_cli.workflows.predict import run_predict

    result = run_predict(run_dir, new_data, out=out, kind=kind, interval=interval, seed=seed, data=data)
    render.predict_result(result)
