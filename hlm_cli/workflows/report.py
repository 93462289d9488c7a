"""``hlm report RUN_DIR``: (re)build a run's report.html from its saved files."""

from __future__ import annotations

from pathlib import Path


def run_report(run_dir: Path, *, color_by: str | None = None, svg: bool = False, data: Path | None = None) -> Path:
    """Draw the report figures into RUN_DIR/plots and write RUN_DIR/report.html.

    Parameters
    ----------
    run_dir : Path
        An ``hlm fit --out`` directory.
    color_by : str, optional
        Column colouring the predicted-vs-observed points [default: the first predictor].
        Checked against the data's header before the model is rebuilt, so a typo costs
        milliseconds.
    svg : bool
        Also save every figure as SVG beside its PNG.
    data : Path, optional
        The data file, if it moved since the fit (its sha256 must match).

    Returns
    -------
    Path
        The report written.
    """
    from hlm_cli.outputs.report import check_color_by, data_columns, write_report
    from hlm_cli.workflows.runs import load_run

    if color_by is not None and (columns := data_columns(run_dir, data)) is not None:
        check_color_by(columns, color_by)
    ctx = load_run(run_dir, data=data)
    check_color_by(ctx.prepared.table.frame.columns, color_by)
    return write_report(run_dir, tree=ctx.tree, built=ctx.built, table=ctx.prepared.table, color_by=color_by, svg=svg)
