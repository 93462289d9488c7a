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
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from hlm_cli.model.linpred import load_run
    from hlm_cli.workflows import pooling as pool

    ctx = load_run(run_dir)
    result = pool.compare(ctx, factor=factor, truth=pool.read_truth(truth) if truth else None)
    safe = result.factor.replace(":", "_")
    csv = out or Path(run_dir) / f"pooling_{safe}.csv"
    result.table.to_csv(csv, index=False, float_format="%.6g")
    png = pool.plot(result, csv.with_suffix(".png"))
    con = Console(highlight=False, emoji=False)
    t = Table(title=f"Pooling by {escape(result.factor)}", title_justify="left")
    for c in result.table.columns:
        t.add_column(c, justify="left" if c == "level" else "right")
    for _, r in result.table.head(20).iterrows():
        t.add_row(*[escape(str(v)) if isinstance(v, str) else f"{v:.4g}" for v in r])
    con.print(t)
    if len(result.table) > 20:
        con.print(f"... {len(result.table) - 20} more levels in {csv}")
    if result.mse:
        best = min(result.mse, key=result.mse.get)
        con.print("MSE against the truth: " + ", ".join(f"{k.replace('_', ' ')} {v:.4g}" for k, v in result.mse.items()) + f" (best: {best.replace('_', ' ')})")
    if (Path(run_dir) / "report.html").exists() and out is None:
        from hlm_cli.outputs.report import write_report

        write_report(Path(run_dir), tree=ctx.tree, built=ctx.built, table=ctx.prepared.table)
        con.print(f"Wrote {csv} and {png}; added them to {Path(run_dir) / 'report.html'}")
    else:
        con.print(f"Wrote {csv} and {png}")


def register(app: typer.Typer) -> None:
    app.command("pooling", no_args_is_help=True)(pooling)
