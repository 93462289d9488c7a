"""``hlm predict``: parse the options, delegate to the workflow, render the first rows."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

SHOWN_ROWS = 20


def predict(
    run_dir: Annotated[Path, typer.Argument(help="run directory written by 'hlm fit --out', e.g. results/mice", show_default=False)],
    new_data: Annotated[Path, typer.Argument(help="CSV of rows to predict, with the model's predictor and grouping columns, e.g. new_mice.csv", show_default=False)],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="CSV to write: the new rows + mean, sd, lower, upper [default: RUN_DIR/predict_NAME.csv]", show_default=False)] = None,
    kind: Annotated[str, typer.Option("--kind", help="'mean': the expected response (a probability, a rate); 'response': a new observation, with its noise")] = "mean",
    interval: Annotated[float, typer.Option("--interval", help="probability of the equal-tailed interval, e.g. 0.9")] = 0.94,
    seed: Annotated[int, typer.Option(min=0, help="seed for new groups' effects and response draws")] = 0,
    data: Annotated[Path | None, typer.Option("--data", help="the fitted CSV, if it moved since the fit (its sha256 must match)", show_default=False)] = None,
) -> None:
    """Predict new rows from a fitted run, with intervals; groups not in the fit get effects drawn from the group-level distribution.

    Example: hlm predict results/mice new_mice.csv --out pred.csv --kind response
    """
    from hlm_cli.workflows.predict import run_predict

    result = run_predict(run_dir, new_data, out=out, kind=kind, interval=interval, seed=seed, data=data)
    render_result(result)


def render_result(result) -> None:
    from rich.table import Table
    from rich.text import Text

    from hlm_cli.cli import render

    t = result.table
    pct = f"{result.interval:.0%}"
    table = Table(show_edge=False, pad_edge=False, title=f"Predictions ({result.kind}), {pct} intervals", title_justify="left", title_style="bold")
    names = {"lower": f"l-{pct}", "upper": f"u-{pct}"}
    for c in t.columns:
        table.add_column(Text(names.get(c, str(c))), justify="right" if c in ("mean", "sd", "lower", "upper") else "left")
    for row in t.head(SHOWN_ROWS).itertuples(index=False):
        table.add_row(*(render._fmt(v) if isinstance(v, float) else Text(str(v)) for v in row))
    render._out.print(table)
    if len(t) > SHOWN_ROWS:
        render._out.print(f"... {len(t) - SHOWN_ROWS} more rows in the CSV")
    for n in result.notes:
        render._out.print(f"note: {n}", markup=False)
    render._out.print(f"Wrote {result.csv}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("predict", no_args_is_help=True)(predict)
