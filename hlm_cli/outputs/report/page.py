"""Writing the pages: read a run directory, draw its figures, render and write report.html.

:func:`write_report` works on a finished run directory or on the staging directory of
``hlm fit`` (before it is renamed onto ``--out``); :func:`write_batch_report` on an
``hlm batch --out`` directory.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from hlm_cli.errors import InputError, OutputError, closest_match
from hlm_cli.outputs.report import html as html_mod
from hlm_cli.outputs.report.plan import (
    HELPER_MAX_CSV_BYTES,
    HELPER_MAX_VALUES,
    Figure,
    draw_all,
    plan_figures,
)

REPORT_NAME = "report.html"
BATCH_REPORT_NAME = "batch_report.html"


def check_color_by(columns, color_by: str | None) -> None:
    """Refuse a ``--color-by`` column that the data do not have (call it before sampling)."""
    cols = [str(c) for c in columns]
    if color_by is not None and color_by not in cols:
        raise InputError(f"--color-by names column {color_by!r}, which is not in the data", hint=closest_match(color_by, cols))


def data_columns(run_dir: Path, data: Path | None = None) -> list[str] | None:
    """The data file's column names (its header only), or None if it cannot be read cheaply."""
    try:
        info = json.loads((Path(run_dir) / "run.json").read_text())
        path = Path(data) if data is not None else Path(info["data"]["file"])
        from hlm_cli import data as data_mod

        return data_mod.column_names(path, sep=info["data"].get("sep"))
    except Exception:  # loading the run will report the real problem
        return None


def write_report(run_dir: Path, *, tree, built, table, color_by: str | None = None, svg: bool = False,
                 parent_first=None, config: dict | None = None, helper=None) -> Path:
    """Draw the report's figures into ``run_dir/plots`` and write ``run_dir/report.html``.

    Parameters
    ----------
    run_dir : Path
        A finished ``hlm fit`` directory, or its staging directory, holding summary.csv,
        run.json, posterior.nc and plots/.
    tree : xarray.DataTree
        The posterior.
    built : BuiltModel
        The model.
    table : hlm_cli.data.Table
        The fitted rows (``Prepared.table``). The caller has these: ``hlm fit`` in memory,
        the later commands from :func:`hlm_cli.workflows.runs.load_run` (the report reads
        nothing back but run.json and summary.csv).
    color_by : str, optional
        Column that colours the predicted-against-observed points; default: the first
        population-level predictor, else the first grouping factor with at most 12 levels.
    svg : bool
        Also save every figure as SVG beside its PNG.
    parent_first : callable, optional
        Work for this process while a forked child starts on the figures (``hlm fit``
        writes summary.csv, posterior.nc and run.json there); see
        :mod:`hlm_cli.outputs.parallel`. run.json and summary.csv are then read after the
        figures, which see only ``config`` (run.json's ``config``) and compute the estimates
        they print from all draws, as summary.csv does.
    config : dict, optional
        With ``parent_first``: the run's resolved settings.
    helper : hlm_cli.outputs.parallel.Helper, optional
        A figure process started before sampling by :func:`start_helper` (``hlm fit``). With
        ``parent_first`` it also computes summary.csv's table: ``parent_first`` can take it
        from ``helper.early_result()``.

    Returns
    -------
    Path
        ``run_dir/report.html``. run.json's ``plots`` gains the new figures, ``report`` the
        page's name and ``timings.report`` the seconds it took.
    """
    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    # with parent_first, run.json and summary.csv are written meanwhile: read them afterwards
    ctx = context(run_dir, tree, built, table, read_info=parent_first is None)
    if parent_first is not None:
        ctx = dataclasses.replace(ctx, info={"config": dict(config or {})})
    frame = ctx.prepared.table.frame.reset_index(drop=True)
    check_color_by(frame.columns, color_by)
    summary = _read_summary(run_dir, ctx.info) if parent_first is None else None
    plot_dir = run_dir / "plots"
    plot_dir.mkdir(exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        figs = draw_all(ctx, frame, plot_dir, color_by=color_by, svg=svg, numbers=summary, parent_first=parent_first,
                        helper=helper, summarize=parent_first is not None)
    info = ctx.info if parent_first is None else _read_info(run_dir)
    if summary is None:
        summary = _read_summary(run_dir, info)
    page = html_mod.render_html(info, summary, figs, frame=frame, built=ctx.built,
                                extra=html_mod.section_sensitivity(_sensitivity_table(run_dir))
                                + html_mod.section_pooling(_pooling_tables(run_dir))
                                + html_mod.section_varpart(_varpart_table(ctx))
                                + html_mod.section_sbc(*_sbc_results(run_dir)))
    out = run_dir / REPORT_NAME
    _write_page(out, page)
    _record(run_dir, figs, time.perf_counter() - t0)
    return out


# --------------------------------------------------------------------------- the figure helper


def start_helper(data: Path | None = None, *, draws: int = 4000, color_by: str | None, svg: bool):
    """Fork the process that will draw this fit's figures, before the data are even read
    (:func:`hlm_cli.outputs.parallel.start_helper`): it imports the figure stack while this
    process loads, builds, compiles and samples. None where forking is not possible or the
    data file is too big for the posterior to go through a pipe afterwards."""
    from hlm_cli.outputs import parallel

    try:  # rows x draws (chains x draws per chain) of the posterior's pointwise groups, roughly
        if data is not None and (Path(data).stat().st_size > HELPER_MAX_CSV_BYTES
                                 or Path(data).read_bytes().count(b"\n") * draws > HELPER_MAX_VALUES):
            return None
    except OSError:
        pass  # a missing file is reported by the fit itself

    def plan(payload: dict):
        built, table = payload["built"], payload["table"]
        ctx = context(Path(payload["run_dir"]), payload["tree"], built, table, read_info=False)
        ctx = dataclasses.replace(ctx, info={"config": dict(payload.get("config") or {})})
        frame = ctx.prepared.table.frame.reset_index(drop=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, jobs, keys = plan_figures(ctx, frame, Path(payload["run_dir"]) / "plots", color_by=color_by, svg=svg,
                                         standard=payload["standard"])
        early = None
        if payload.get("summarize"):  # the tables that need arviz_stats, so that the parent never imports it
            from hlm_cli import diagnostics
            from hlm_cli.outputs import summary as summary_mod

            def early():
                ci = float(ctx.info.get("config", {}).get("ci", summary_mod.CI_PROB))
                return {"summary": summary_mod.summarize(ctx.tree, built.params, ci=ci),
                        "sensitivity": diagnostics.sensitivity(ctx.tree, built)}
        return keys, jobs, early

    return parallel.start_helper(plan, warm=_warm_helper)


def _warm_helper() -> None:
    """Everything a figure job imports, loaded while the parent is busy on one core."""
    import importlib

    from hlm_cli.outputs import parallel

    for name in ("pandas", "xarray", "hlm_cli.model.linpred", "hlm_cli.outputs.figures", "hlm_cli.diagnostics"):
        importlib.import_module(name)
    from hlm_cli.sampling import defer_duck_arrays

    defer_duck_arrays()  # this helper and its figure child build DataArrays, never dask or sparse arrays
    parallel.warm_figures()


# --------------------------------------------------------------------------- reading


def _read_info(run_dir: Path) -> dict:
    from hlm_cli.outputs import runinfo

    if not (run_dir / "run.json").exists():
        raise InputError(f"{str(run_dir)!r} is not an hlm run directory (no run.json)", hint="give the --out directory of an 'hlm fit' run")
    return runinfo.read(run_dir)


def context(run_dir: Path, tree, built, table, *, read_info: bool = True):
    """The run's RunContext from what the caller drew (posterior, model, fitted rows) and,
    with ``read_info``, run.json."""
    from hlm_cli.model.run import RunContext

    if tree is None or built is None or table is None:
        raise ValueError("write_report needs the run's tree, built model and table (see hlm_cli.workflows.runs.load_run)")
    info = _read_info(run_dir) if read_info else {}
    prepared = SimpleNamespace(table=table, formula=built.design.formula, family=built.family, built=built)
    return RunContext(run_dir, info, tree, prepared)


def _read_summary(run_dir: Path, info: dict | None = None) -> pd.DataFrame:
    """summary.csv as written by the fit (checked against run.json's checksum), indexed by parameter."""
    from hlm_cli.outputs import runinfo

    path = run_dir / "summary.csv"
    if not path.exists():
        raise InputError(f"{str(run_dir)!r} has no summary.csv", hint="give the --out directory of a finished 'hlm fit' run")
    runinfo.verify(run_dir, "summary.csv", info if info and "checksums" in info else runinfo.read(run_dir))
    return pd.read_csv(path, keep_default_na=False, na_values=[""]).set_index("parameter")


def _sensitivity_table(run_dir: Path) -> pd.DataFrame | None:
    """sensitivity.csv of the run (None for a run written before it existed, or unreadable)."""
    try:
        return pd.read_csv(Path(run_dir) / "sensitivity.csv", keep_default_na=False, na_values=[""])
    except (OSError, ValueError):
        return None


def _varpart_table(ctx) -> pd.DataFrame | None:
    """The variance partition of a model with grouping factors (hlm_cli.outputs.varpart), from
    the posterior already in memory; None for other models and families it does not handle."""
    if not ctx.built.design.groups:
        return None
    from hlm_cli.errors import HlmError
    from hlm_cli.outputs.summary import CI_PROB
    from hlm_cli.outputs.varpart import fractions

    try:
        return fractions(ctx.tree, ctx.built, CI_PROB)
    except HlmError:  # a family without a latent-scale residual variance: no section
        return None


def _sbc_results(run_dir: Path) -> tuple[dict | None, pd.DataFrame | None, Path | None]:
    """(sbc.json, sbc_summary.csv, sbc_ecdf.png) of ``hlm sbc RUN`` in RUN/sbc, or Nones when
    there is none (or it is unreadable)."""
    sbc_dir = Path(run_dir) / "sbc"
    try:
        state = json.loads((sbc_dir / "sbc.json").read_text())
        summary = pd.read_csv(sbc_dir / "sbc_summary.csv")
    except (OSError, ValueError):
        return None, None, None
    if not isinstance(state, dict) or "verdict" not in summary:
        return None, None, None
    plot = sbc_dir / "sbc_ecdf.png"
    return state, summary, plot if plot.is_file() else None


def _pooling_tables(run_dir: Path) -> list[tuple[str, pd.DataFrame, Path | None]]:
    """(factor, table, figure) of each pooling_<factor>.csv that ``hlm pooling`` wrote."""
    out = []
    for csv in sorted(Path(run_dir).glob("pooling_*.csv")):
        png = csv.with_suffix(".png")
        out.append((csv.stem.removeprefix("pooling_"), pd.read_csv(csv), png if png.exists() else None))
    return out


# --------------------------------------------------------------------------- writing


def _write_page(path: Path, text: str) -> None:
    from hlm_cli.outputs.rundir import write_atomic

    try:
        write_atomic(Path(path), lambda fh: fh.write(text))
    except OSError as err:
        raise OutputError(f"cannot write {str(path)!r}: {err.strerror}", hint="check the permissions of the run directory") from None


def _record(run_dir: Path, figs: list[Figure], seconds: float) -> None:
    """Record the new figures, the page and its build time in run.json (other keys untouched)."""
    from hlm_cli.outputs import runinfo

    info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    plots = dict(info.get("plots") or {})
    for f in figs:
        if f.path is not None:
            plots[f.key] = f"plots/{f.path.name}"
        elif f.key not in plots and f.key != "conditional_more":  # a note, not a figure
            plots[f.key] = f"failed: {f.error}"
    files = list(info.get("files") or [])
    if REPORT_NAME not in files:
        files.append(REPORT_NAME)
    try:
        runinfo.update(run_dir / "run.json", plots=plots, report=REPORT_NAME,
                       timings={**(info.get("timings") or {}), "report": round(seconds, 4)}, files=files)
    except OSError as err:
        raise OutputError(f"cannot write {str(run_dir / 'run.json')!r}: {err.strerror}", hint="check the permissions of the run directory") from None


# --------------------------------------------------------------------------- batch


def write_batch_report(batch_dir: Path) -> Path:
    """Write ``batch_dir/batch_report.html``: one sortable row per run, linking its report.

    Parameters
    ----------
    batch_dir : Path
        An ``hlm batch --out`` directory (:mod:`hlm_cli.outputs.batch_out`): ``batch_status.csv``
        (one row per input, or input x model: input, model, formula, run_dir, status, error,
        hint, findings, total_s, compare, ...) and ``batch_summary.csv`` (one row per run x
        parameter: run_dir, parameter, kind, mean, hdi94_lb, hdi94_ub, ...). Missing
        columns are tolerated; a run's directory defaults to ``batch_dir/<input stem>``.

    Returns
    -------
    Path
        ``batch_dir/batch_report.html``; links to each run's ``report.html`` are relative, so
        the batch directory can be moved or zipped whole.
    """
    batch_dir = Path(batch_dir)
    status_path = batch_dir / "batch_status.csv"
    if not status_path.exists():
        raise InputError(f"{str(batch_dir)!r} has no batch_status.csv", hint="give the --out directory of an 'hlm batch' run")
    status = pd.read_csv(status_path, dtype=str, keep_default_na=False)
    if "input" not in status.columns:
        status = status.rename(columns={status.columns[0]: "input"})
    key = "run_dir" if "run_dir" in status.columns else "input"
    texts = means = pd.DataFrame()
    summ_path = batch_dir / "batch_summary.csv"
    if summ_path.exists():
        summ = pd.read_csv(summ_path, keep_default_na=False, na_values=[""])
        if len(summ) and key in summ.columns and {"parameter", "mean"} <= set(summ.columns):
            texts, means = html_mod.batch_estimates(summ, key)
    out = batch_dir / BATCH_REPORT_NAME
    page = html_mod.render_batch(batch_dir, status, texts, means, key, REPORT_NAME)
    shared = batch_dir / "shared_priors.json"  # hlm batch --share (hlm_cli.workflows.share)
    if shared.exists():
        page = page.replace("<div class='tablewrap'>", html_mod.section_shared_priors(shared) + "<div class='tablewrap'>", 1)
    _write_page(out, page)
    return out
