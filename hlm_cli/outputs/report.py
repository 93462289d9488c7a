"""``OUT/report.html``: one self-contained page per fit, and ``batch_report.html`` per batch.

The page needs nothing but a browser: figures are embedded as base64 PNG, styles are inline
and there is no script or network access (the batch page carries ~20 lines of inline
JavaScript to sort its table). It shows the model as written and as fitted (formula,
family, link, every prior actually used), the data (rows used and dropped, groups and their
sizes), the diagnostics with what each check means and the remedy, the brms-style summary
tables, and every figure with a one-sentence caption saying how to read it.

:func:`write_report` works on a finished run directory or on the staging directory of
``hlm fit`` (before it is renamed onto ``--out``); the new figures it draws come from
:mod:`hlm_cli.outputs.figures`.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from hlm_cli.errors import InputError, OutputError, closest_match

REPORT_NAME = "report.html"
BATCH_REPORT_NAME = "batch_report.html"
STANDARD = ("trace", "rank", "ppc")  # drawn by hlm_cli.outputs.plots during `hlm fit`
MAX_EFFECT_ROWS = 300  # group-level effect rows listed in the page (the CSV has them all)
DEFAULT_COLOR_LEVELS = 12
MAX_CONDITIONAL = 16  # conditional-effect figures per report
HELPER_MAX_VALUES = 5_000_000  # rows x draws above which the posterior is not piped to a helper (~80 MB)
HELPER_MAX_CSV_BYTES = 5_000_000  # a bigger data file will not fit that: no helper is started

CAPTIONS = {
    "posteriors": "Posterior density of each population-level effect (blue), group-level standard deviation (orange) and family parameter (green): the shaded band is the 94% highest-density interval, the solid line the mean and the dashed line zero.",
    "forest": "Each group's effect as a deviation from the population-level coefficient, with its 50% (thick) and 94% (thin) interval, sorted within each term: intervals clear of the dashed zero line mark groups that differ from the average.",
    "shrinkage": "Each point is one level of {factor}: its own sample mean (x) against the model's estimate for it (y, bar: 94% interval); estimates are pulled from the dashed no-pooling line towards the dotted population mean, and small or noisy groups are pulled the most.",
    "conditional": "The expected response as {x} varies (line or point: posterior mean; band or bar: 94% interval), with {held}; grey points are the data.",
    "pred_vs_obs": "Each point is one observation: its posterior predictive mean (y) against its observed value (x), with the 94% predictive interval as a grey bar; points should scatter around the dashed line and about 94% of the bars should cross it.",
    "ppc": "The density of the observed response (black) against the densities of data sets simulated from the posterior (blue): the black curve should look like one more blue curve.",
    "ppc_rootogram": "Hanging rootogram: the predicted frequency of each count (bars, square-root scale) hangs from the observed frequency; bars that end far from zero show counts the model over- or under-predicts.",
    "prior_ppc": "Data sets simulated from the priors alone (blue) against the observed density (black): the priors should allow data like the observed while ruling out impossible values.",
    "trace": "Left: each parameter's posterior density, one line per chain; right: the draws in sampling order: the chains should overlap and look like stationary noise, without trends or stuck stretches.",
    "rank": "Histogram of the ranks of each chain's draws among all draws: flat bars mean the chains explore the same distribution, while slopes or spikes show chains that disagree.",
    "identifiability": "Posterior draws of the intercept against the mean of a factor's group effects: a thin diagonal band means the data fix their sum but not each one, so report predictions or differences between groups instead.",
    "pairs": "Pairwise scatter of the draws of the parameters the identifiability check implicates, with their correlations above the diagonal (red: |r| >= 0.9): long narrow ridges are parameters that trade off against each other.",
}
TITLES = {
    "posteriors": "Posterior densities", "forest": "Group-level effects", "pred_vs_obs": "Predicted against observed",
    "ppc": "Posterior predictive check", "ppc_rootogram": "Posterior predictive rootogram",
    "prior_ppc": "Prior predictive check", "trace": "Trace plots", "rank": "Rank plots",
    "identifiability": "Intercept against mean group effect", "pairs": "Pair plot of the implicated parameters",
}
CHECKS = {
    "rhat": "R-hat compares the spread between chains with the spread within them (Vehtari et al. 2021); above 1.01 the chains have not settled on the same distribution.",
    "ess_bulk": "Bulk effective sample size: how many independent draws the estimate of the centre is worth; below 100 per chain, means and intervals are noisy.",
    "ess_tail": "Tail effective sample size: the same for the 5% and 95% quantiles; when it is low the ends of the intervals are unreliable.",
    "divergences": "A divergent transition is a place where the sampler met curvature it could not follow (often the funnel between a group SD and its effects); the posterior there may be missed.",
    "treedepth": "NUTS stopped at its maximum number of steps before the trajectory turned: the sampler is slow, usually because parameters are strongly correlated.",
    "bfmi": "E-BFMI measures how well the sampler moves between energy levels (Betancourt 2016); below 0.3 the tails of the posterior are explored poorly.",
    "identifiability": "The data determine the sum of two parameters but not how it is split between them, so each one alone is uncertain although predictions are precise (seed 000's two crossed intercepts).",
}
SECTIONS = (
    ("population", "Population-level effects"),
    ("group_sd", "Group-level effects: standard deviations"),
    ("correlation", "Group-level effects: correlations"),
    ("family", "Family-specific parameters"),
)


@dataclass
class Figure:
    key: str  # run.json "plots" key, e.g. shrinkage_gene
    path: Path | None  # PNG; None when drawing failed
    title: str
    caption: str
    error: str | None = None


# --------------------------------------------------------------------------- public API


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
    except Exception:  # load_run will report the real problem
        return None


def write_report(run_dir: Path, *, tree=None, built=None, table=None, color_by: str | None = None, svg: bool = False,
                 parent_first=None, config: dict | None = None, helper=None) -> Path:
    """Draw the report's figures into ``run_dir/plots`` and write ``run_dir/report.html``.

    Parameters
    ----------
    run_dir : Path
        A finished ``hlm fit`` directory, or its staging directory, holding summary.csv,
        run.json, posterior.nc and plots/.
    tree : xarray.DataTree, optional
        The posterior; read from posterior.nc when not given.
    built : BuiltModel, optional
        The model; rebuilt from run.json and the data file when not given (a few seconds).
    table : hlm_cli.data.Table, optional
        The fitted rows (``Prepared.table``); re-read from the data file when not given.
    color_by : str, optional
        Column that colours the predicted-against-observed points; default: the first
        population-level predictor, else the first grouping factor with at most 12 levels.
    svg : bool
        Also save every figure as SVG beside its PNG.
    parent_first : callable, optional
        Work for this process while a forked child starts on the figures (``hlm fit``
        writes posterior.nc there); see :mod:`hlm_cli.outputs.parallel`. run.json is then
        read after the figures, which see only ``config`` (run.json's ``config``).
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
    ctx = _context(run_dir, tree, built, table, read_info=parent_first is None)
    if parent_first is not None:
        ctx = dataclasses.replace(ctx, info={"config": dict(config or {})})
    frame = ctx.prepared.table.frame.reset_index(drop=True)
    check_color_by(frame.columns, color_by)
    plot_dir = run_dir / "plots"
    plot_dir.mkdir(exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        figs = _draw_all(ctx, frame, plot_dir, color_by=color_by, svg=svg, parent_first=parent_first, helper=helper,
                         summarize=parent_first is not None)
    info = ctx.info if parent_first is None else _read_info(run_dir)
    summary = _read_summary(run_dir)
    page = render_html(info, summary, figs, frame=frame, built=ctx.built, extra=_section_pooling(run_dir))
    out = run_dir / REPORT_NAME
    _write_atomic(out, page)
    seconds = time.perf_counter() - t0
    _update_runinfo(run_dir, figs, seconds)
    return out


# --------------------------------------------------------------------------- loading


def _read_info(run_dir: Path) -> dict:
    from hlm_cli.outputs import runinfo

    if not (run_dir / "run.json").exists():
        raise InputError(f"{str(run_dir)!r} is not an hlm run directory (no run.json)", hint="give the --out directory of an 'hlm fit' run")
    return runinfo.read(run_dir)


def _context(run_dir: Path, tree, built, table, *, read_info: bool = True):
    from hlm_cli.model.linpred import RunContext, load_run, open_tree

    if built is None:
        ctx = load_run(run_dir)
        if tree is not None:
            ctx = dataclasses.replace(ctx, tree=tree)
        return ctx
    if not read_info and (tree is None or table is None):
        raise ValueError("write_report(parent_first=...) needs the tree and the table")
    info = _read_info(run_dir) if read_info else {}
    if tree is None:
        tree = open_tree(run_dir)
    if table is None:
        table = _fitted_table(info, built)
    prepared = SimpleNamespace(table=table, formula=built.design.formula, family=built.family, built=built)
    return RunContext(run_dir, info, tree, prepared)


def _fitted_table(info: dict, built):
    """The fitted rows, re-read as ``prepare`` read them (missing values dropped, factors made)."""
    from hlm_cli import data as data_mod

    table = data_mod.read_csv(Path(info["data"]["file"]), sep=info["data"].get("sep"))
    f = built.design.formula
    needed = set(f.columns) | ({f.response.se} if f.response.se else set())
    table = data_mod.handle_missing(table, needed, dropna=info.get("config", {}).get("dropna", True))
    if cats := info.get("config", {}).get("categorical"):
        table = data_mod.make_categorical(table, cats)
    if len(table.frame) != built.design.n:
        raise InputError(f"{table.source.name} no longer matches the fitted model ({len(table.frame)} rows, fitted {built.design.n})",
                         hint="refit the model, or pass the fitted table to write_report")
    return table


def _read_summary(run_dir: Path) -> pd.DataFrame:
    path = run_dir / "summary.csv"
    if not path.exists():
        raise InputError(f"{str(run_dir)!r} has no summary.csv", hint="give the --out directory of a finished 'hlm fit' run")
    from hlm_cli.outputs import runinfo

    runinfo.verify(run_dir, "summary.csv", runinfo.read(run_dir))
    return pd.read_csv(path, keep_default_na=False, na_values=[""]).set_index("parameter")


# --------------------------------------------------------------------------- figures


def _plan_figures(ctx, frame: pd.DataFrame, plot_dir: Path, *, color_by: str | None, svg: bool, standard: bool):
    """The page's figures in order, the jobs that draw them and one key per job.

    A pure function of its arguments: a helper process (:func:`start_helper`) calls it with the
    same arguments to rebuild the same jobs. ``standard``: also draw the figures of
    :mod:`hlm_cli.outputs.plots` (trace, rank, ppc, ...).
    """
    from hlm_cli.diagnostics import IDENT_CORR, ident_pairs, identifiability
    from hlm_cli.outputs import figures as F

    built, tree = ctx.built, ctx.tree
    params = built.params
    # the identifiability figures follow the same check as run.json's findings (computed here
    # because run.json may still be being written, see write_report)
    pairs = ident_pairs(tree, built)
    findings = [f.to_json() for f in identifiability(tree, built, pairs)]
    bad = [x for x in pairs if abs(x[4]) >= IDENT_CORR]
    # draws kept for the figures: at most 500, fewer for big data (an (S, n) array of ~1e7 values)
    small = F.thin(tree, max_draws=int(np.clip(1e7 / max(built.design.n, 1), 100, 500)))
    sctx = dataclasses.replace(ctx, tree=small)
    response = built.design.formula.response.expr  # as written (log(y), incidence), for axis labels
    # the page in order: Figure (a note), ("job", index, key, title, caption) or ("existing", key)
    plan: list = []
    jobs: list = _standard_jobs(tree, built, bad, plot_dir, svg=svg, missing=standard)  # results unused
    keys: list[str] = [f"standard_{i}" for i in range(len(jobs))]

    def draw(key: str, job, title: str | None = None, caption: str | None = None) -> None:
        plan.append(("job", len(jobs), key, title or TITLES.get(key, key), caption or CAPTIONS.get(key, "")))
        jobs.append(job)
        keys.append(key)

    draw("posteriors", lambda: F.posteriors(small, params, plot_dir / "posteriors.png", svg=svg))
    if params.group_effects:
        draw("forest", lambda: F.forest(small, params, plot_dir / "forest.png", svg=svg))
        mu = mu_pop = failed = None
        try:
            mu, mu_pop = _fitted_means(sctx)
        except Exception as err:  # keep going: the shrinkage figures will say why they are missing
            failed = f"{type(err).__name__}: {err}"
        for g in _unique_factors(built.design.groups):
            key = f"shrinkage_{F.slug(g.factor)}"
            if failed:
                plan.append(Figure(key, None, f"Shrinkage: {g.factor}", "", failed))
                continue
            draw(key, lambda g=g, key=key: F.shrinkage(_shrinkage_for(g, built, frame, mu, mu_pop), plot_dir / f"{key}.png",
                                               response=response, svg=svg),
                 f"Shrinkage: {g.factor}", CAPTIONS["shrinkage"].format(factor=g.factor))
    try:
        effects = F.conditional_effects(sctx)
    except Exception as err:
        effects = []
        plan.append(Figure("conditional", None, "Conditional effects", "", f"{type(err).__name__}: {err}"))
    more = max(0, len(effects) - MAX_CONDITIONAL)  # each figure costs ~0.5 s; main effects come first
    for eff in effects[:MAX_CONDITIONAL]:
        held = ", ".join(f"{k} = {F._fmt_value(v)}" for k, v in eff.held.items())
        held_txt = (f"{held} and group effects at zero" if held else "group effects at zero")
        draw(eff.file_stem, lambda eff=eff: F.conditional(eff, plot_dir / f"{eff.file_stem}.png", response=response,
                                                          ylabel=_ylabel(built.family, response),
                                                          points=_points(built, frame, eff.x, eff.by), svg=svg),
             f"Conditional effect: {eff.name}", CAPTIONS["conditional"].format(x=eff.x, held=held_txt))
    if more:
        plan.append(Figure("conditional_more", None, "More conditional effects", "",
                           f"{more} more interaction(s) not drawn; see hlm_cli.outputs.figures.conditional_effects"))
    col = color_by or _default_color(built, frame)
    draw("pred_vs_obs", lambda: F.pred_vs_obs(F.predictions(small, built.response_name), plot_dir / "pred_vs_obs.png", response=response,
                                               color=frame[col] if col else None, color_label=col, svg=svg))
    plan.append(("existing", "ppc"))
    if built.family.discrete:
        draw("ppc_rootogram", lambda: F.rootogram(small, plot_dir / "ppc_rootogram.png", svg=svg))
    if (standard or (plot_dir / "prior_ppc.png").exists()) and "prior_predictive" in tree.children:
        plan.append(("existing", "prior_ppc"))
    if any(f.get("code") == "identifiability" for f in findings):
        plan.append(("existing", "identifiability"))
        div = None
        if "sample_stats" in small.children and "diverging" in small["sample_stats"]:
            div = F.stacked(small, "diverging", "sample_stats").astype(bool)
        draw("pairs", lambda: F.pairs(F.ident_series(small, params, findings), plot_dir / "pairs.png", divergent=div, svg=svg))
    plan.append(("existing", "trace"))
    plan.append(("existing", "rank"))
    return plan, jobs, keys


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
        ctx = _context(Path(payload["run_dir"]), payload["tree"], built, table, read_info=False)
        ctx = dataclasses.replace(ctx, info={"config": dict(payload.get("config") or {})})
        frame = ctx.prepared.table.frame.reset_index(drop=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, jobs, keys = _plan_figures(ctx, frame, Path(payload["run_dir"]) / "plots", color_by=color_by, svg=svg,
                                          standard=payload["standard"])
        early = None
        if payload.get("summarize"):  # the parameter table, so that the parent never imports arviz_stats
            from hlm_cli.outputs import summary as summary_mod

            early = lambda: summary_mod.summarize(ctx.tree, built.params)  # noqa: E731
        return keys, jobs, early

    return parallel.start_helper(plan, warm=_warm_helper)


def _warm_helper() -> None:
    """Everything a figure job imports, loaded while the parent is busy on one core."""
    import importlib

    from hlm_cli.outputs import parallel

    for name in ("pandas", "xarray", "hlm_cli.model.linpred", "hlm_cli.outputs.figures", "hlm_cli.diagnostics"):
        importlib.import_module(name)
    parallel.warm_figures()


def _helper_payload(ctx, plot_dir: Path, standard: bool, keys: list, summarize: bool) -> dict | None:
    """What the helper needs to rebuild the jobs; None for a posterior too big for a pipe."""
    built = ctx.built
    tree = ctx.tree
    post = tree["posterior"]
    if built.design.n * post.sizes.get("chain", 1) * post.sizes.get("draw", 1) > HELPER_MAX_VALUES:
        return None
    return {"run_dir": str(plot_dir.parent), "tree": tree, "config": ctx.info.get("config"), "standard": standard,
            "keys": keys, "built": dataclasses.replace(built, model=None), "table": ctx.prepared.table,
            "summarize": summarize}


def _draw_all(ctx, frame: pd.DataFrame, plot_dir: Path, *, color_by: str | None, svg: bool,
              parent_first=None, helper=None, summarize: bool = False) -> list[Figure]:
    """Every figure of the page, in page order. A figure that fails is reported, never fatal.

    The figures are planned here and drawn by :func:`hlm_cli.outputs.parallel.run_jobs` on
    two processes; ``parent_first`` (e.g. writing posterior.nc) runs meanwhile.
    """
    from hlm_cli.outputs import parallel

    standard = _standard_missing(plot_dir)
    plan, jobs, keys = _plan_figures(ctx, frame, plot_dir, color_by=color_by, svg=svg, standard=standard)
    payload = _helper_payload(ctx, plot_dir, standard, keys, summarize) if helper is not None else None
    results = parallel.run_jobs(jobs, parent_first=parent_first, helper=helper, payload=payload)
    figs: list[Figure] = []
    for item in plan:
        if isinstance(item, Figure):
            figs.append(item)
        elif item[0] == "existing":
            figs.append(_existing(plot_dir, item[1]))
        else:
            _, i, key, title, caption = item
            res = results[i]
            if isinstance(res, parallel.JobError):
                figs.append(Figure(key, None, title, caption, str(res)))
            else:
                path = res[0] if res else None
                figs.append(Figure(key, path, title, caption, None if path else "nothing to draw"))
    return figs


def _existing(plot_dir: Path, key: str) -> Figure:
    path = plot_dir / f"{key}.png"
    return Figure(key, path if path.exists() else None, TITLES[key], CAPTIONS[key], None if path.exists() else "not drawn (see run.json plots)")


def _standard_missing(plot_dir: Path) -> bool:
    return any(not (plot_dir / f"{k}.png").exists() for k in STANDARD)


def _standard_jobs(tree, built, bad: list, plot_dir: Path, *, svg: bool, missing: bool) -> list:
    """Jobs drawing the standard figures of hlm_cli.outputs.plots when they are ``missing``
    (during ``hlm fit``; not after a fit with plots), and their SVGs. ``bad``: the
    confounded pairs (hlm_cli.diagnostics.ident_pairs beyond IDENT_CORR)."""
    from hlm_cli.outputs import plots as plots_mod

    jobs = []
    if missing:
        return [job for _, job in plots_mod.figure_jobs(tree, built, plot_dir, prior="prior_predictive" in tree.children,
                                                        svg=svg, forest_plot=False, bad=bad)]
    if bad and not (plot_dir / "identifiability.png").exists():
        jobs.append(lambda: plots_mod.identifiability(bad, plot_dir / "identifiability.png"))
    if svg:
        p = built.params
        jobs += [
            lambda: plots_mod.trace(tree, p.top_level, plot_dir / "trace.png", ("svg",)),
            lambda: plots_mod.rank(tree, p.top_level, plot_dir / "rank.png", ("svg",)),
            lambda: plots_mod.ppc(tree, plot_dir / "ppc.png", ("svg",), discrete=built.family.discrete),
        ]
        if (plot_dir / "prior_ppc.png").exists() and "prior_predictive" in tree.children:
            jobs.append(lambda: plots_mod.ppc(tree, plot_dir / "prior_ppc.png", ("svg",), group="prior_predictive", discrete=built.family.discrete))
    return jobs


def _unique_factors(groups) -> list:
    seen, out = set(), []
    for g in groups:
        if g.factor not in seen:
            seen.add(g.factor)
            out.append(g)
    return out


def _fitted_means(ctx):
    """(mu, mu_pop): draws of each fitted row's expected response with and without the
    group-level effects; each (S, n)."""
    from hlm_cli.model.linpred import beta_draws, inverse_link, linear_predictor

    built = ctx.built
    design = built.design
    eta = linear_predictor(ctx)
    beta = beta_draws(ctx.tree, built)
    eta_pop = beta @ design.X.T if design.X.shape[1] else np.zeros_like(eta)
    if design.offset is not None:
        eta_pop = eta_pop + design.offset
    return inverse_link(built.family, eta), inverse_link(built.family, eta_pop)


def _shrinkage_for(g, built, frame: pd.DataFrame, mu, mu_pop):
    from hlm_cli.formula.design import level_labels
    from hlm_cli.outputs import figures as F

    design = built.design
    parent = None
    parent_labels = None
    # nested terms (1|region/school): colour each school by its region, the level it shrinks to
    factors = {tuple(h.term.factor): h.factor for h in design.groups}
    if len(g.term.factor) > 1 and tuple(g.term.factor[:-1]) in factors:
        parent = factors[tuple(g.term.factor[:-1])]
        labels = level_labels(frame, g.term.factor[:-1]).to_numpy()
        first = np.full(len(g.levels), -1)
        for i in range(len(g.index) - 1, -1, -1):
            first[g.index[i]] = i
        parent_labels = [str(labels[i]) for i in first]
    return F.shrinkage_data(g.factor, g.index, list(g.levels), np.asarray(design.y, dtype=float), mu, mu_pop,
                            trials=None if design.trials is None else np.asarray(design.trials, dtype=float),
                            family=built.family.name, parent_labels=parent_labels, parent=parent,
                            adjusted=_has_predictors(design))


def _has_predictors(design) -> bool:
    return design.offset is not None or any(k not in ("intercept",) for k in design.fixed_kinds.values())


def _ylabel(family, response: str) -> str:
    if family.name == "bernoulli":
        return f"P({response} = 1)"
    if family.name == "binomial":
        return f"{response}: probability of success"
    if family.name == "lognormal":
        return f"{response} (median)"
    return f"{response} (expected value)"


def _points(built, frame: pd.DataFrame, x: str, by: str | None = None) -> pd.DataFrame | None:
    """The data behind an effect: x (and by) against the observed response (binomial: a proportion)."""
    d = built.design
    if x not in frame.columns:
        return None
    y = np.asarray(d.y, dtype=float)
    if d.trials is not None:
        y = y / np.asarray(d.trials, dtype=float)
    out = pd.DataFrame({"x": frame[x].to_numpy(), "y": y})
    if by is not None and by in frame.columns:
        out["by"] = frame[by].to_numpy()
    return out


def _default_color(built, frame: pd.DataFrame) -> str | None:
    """The first population-level predictor, else the first small grouping factor (seed 002
    coloured by dose)."""
    from hlm_cli.outputs import figures as F

    kinds = F.predictor_kinds(built.design, frame)
    if kinds:
        return next(iter(kinds))
    for g in built.design.groups:
        if len(g.term.factor) == 1 and len(g.levels) <= DEFAULT_COLOR_LEVELS and g.term.factor[0] in frame.columns:
            return g.term.factor[0]
    return None


# --------------------------------------------------------------------------- HTML

CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#222;max-width:1100px;margin:0 auto;padding:1.2em 1.5em 4em;line-height:1.45}
h1{font-size:1.55em;margin-bottom:.2em}h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
h3{font-size:1.05em;margin:1.3em 0 .4em}code,.mono{font-family:"SFMono-Regular",Menlo,Consolas,monospace;font-size:.92em}
.sub{color:#555;margin-top:0}nav{background:#f6f7f9;border:1px solid #e3e5e8;border-radius:6px;padding:.5em .9em;font-size:.92em}
nav a{margin-right:1em;color:#1f5fa8;text-decoration:none}nav a:hover{text-decoration:underline}
table{border-collapse:collapse;margin:.4em 0 1em;font-size:.9em}th,td{padding:.25em .7em;text-align:right;border-bottom:1px solid #eee}
th{background:#f6f7f9;font-weight:600}td:first-child,th:first-child{text-align:left}td.l,th.l{text-align:left}
dl.kv{display:grid;grid-template-columns:max-content auto;gap:.2em 1.2em;margin:.4em 0}dl.kv dt{font-weight:600;color:#444}dl.kv dd{margin:0}
.bad{color:#b00020;font-weight:600}.ok{color:#1b7f3b;font-weight:600}
.finding{border-left:4px solid #e0a800;background:#fffaf0;padding:.5em .9em;margin:.6em 0;border-radius:0 4px 4px 0}
.finding.note{border-left-color:#5b8def;background:#f3f7ff}.finding p{margin:.25em 0}.why{color:#555;font-size:.92em}
figure{margin:1.2em 0 2em;text-align:center}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{text-align:left;font-size:.92em;color:#333;max-width:900px;margin:.4em auto 0}figcaption b{color:#111}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:0 1.2em}
.missing{color:#8a6d00;background:#fff8e1;padding:.4em .8em;border-radius:4px;font-size:.92em}
details summary{cursor:pointer;color:#1f5fa8;margin:.4em 0}footer{margin-top:3em;color:#666;font-size:.85em}
"""


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _fmt(v, digits: int = 3) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return _e(v)
    if not np.isfinite(v):
        return "nan" if v != v else _e(v)
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
        return f"{v:.2e}"
    return f"{v:.{digits}g}" if abs(v) < 1 else f"{v:.{max(digits, len(str(int(abs(v)))))}g}"


def _img(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(path.stem)}" data-file="plots/{_e(path.name)}">'


def _figure_html(f: Figure) -> str:
    if f.path is None:
        return f'<figure id="fig-{_e(f.key)}"><p class="missing">{_e(f.title)}: not drawn ({_e(f.error or "")}).</p></figure>'
    return (f'<figure id="fig-{_e(f.key)}">{_img(f.path)}<figcaption><b>{_e(f.title)}.</b> {_e(f.caption)} '
            f'<span class="mono">(plots/{_e(f.path.name)})</span></figcaption></figure>')


def _bar(label: str) -> str:
    """``1 + Days|Subject`` -> ``1 + Days | Subject`` (and ``||`` alike), as lme4 prints terms."""
    bar = "||" if "||" in label else "|"
    return label.replace(bar, f" {bar} ", 1)


def _section_model(info: dict, built) -> str:
    fam = info.get("family", {})
    cfg = info.get("config", {})
    params = info.get("parameters", {})
    rows = [
        ("Formula (as written)", f"<code>{_e(info.get('formula', ''))}</code>"),
        ("Command", f"<code>{_e(info.get('command', ''))}</code>"),
        ("Family", f"{_e(fam.get('name', ''))} (link: {_e(fam.get('link', ''))})" + (f" &mdash; {_e(built.family.description)}" if built is not None else "")),
        ("Response", f"<code>{_e(info.get('response', ''))}</code>"),
        ("Population-level terms", ", ".join(f"<code>{_e(p)}</code>" for p in params.get("population", [])) or "none"),
    ]
    terms = info.get("parameterization", {})
    if terms:
        rows.append(("Group-level terms", "<br>".join(
            f"<code>({_e(_bar(k))})</code> sampled <b>{_e(v.get('kind', ''))}</b>"
            f" <span class='why'>({_e(v.get('reason', ''))})</span>" for k, v in terms.items())))
    if built is not None and built.design.se is not None:
        rows.append(("Known standard errors", f"<code>se({_e(built.design.formula.response.se)})</code>"))
    sampler = info.get("sampler", {})
    if sampler:
        rows.append(("Sampler", f"{_e(sampler.get('sampler', ''))}: {_e(sampler.get('chains', ''))} chains &times; {_e(sampler.get('draws', ''))} draws after {_e(sampler.get('tune', ''))} warm-up; target_accept {_e(sampler.get('target_accept', ''))}; seed {_e(info.get('seed', cfg.get('sampler', {}).get('seed', '')))}"))
    kv = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    priors = info.get("priors", {})
    prow = "".join(
        f"<tr><td><code>{_e(name)}</code></td><td class='l'><code>{_e(p.get('text', p.get('dist', '')))}</code></td><td class='l'>{_e(p.get('source', ''))}</td></tr>"
        for name, p in priors.items())
    ptable = (f"<h3>Priors actually used</h3><table><tr><th>parameter</th><th class='l'>prior</th><th class='l'>source</th></tr>{prow}</table>"
              if prow else "")
    return f'<h2 id="model">Model</h2><dl class="kv">{kv}</dl>{ptable}'


def _section_data(info: dict, frame: pd.DataFrame | None, built) -> str:
    d = info.get("data", {})
    dropped = d.get("rows_dropped", 0)
    by_col = d.get("dropped_by_column") or {}
    drop_txt = f"{_e(dropped)}" + (" (missing values: " + ", ".join(f"{_e(k)}: {_e(v)}" for k, v in by_col.items()) + ")" if by_col else "")
    rows = [
        ("File", f"<code>{_e(d.get('file', ''))}</code>"),
        ("sha256", f"<span class='mono'>{_e(str(d.get('sha256', ''))[:16])}&hellip;</span>"),
        ("Rows read / used / dropped", f"{_e(d.get('rows_read', ''))} / {_e(d.get('rows_used', ''))} / {drop_txt}"),
    ]
    if d.get("categorical"):
        rows.append(("Treated as factors", ", ".join(f"<code>{_e(c)}</code>" for c in d["categorical"])))
    kv = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    groups = d.get("groups", {})
    gtable = ""
    if groups:
        body = ""
        for factor, g in groups.items():
            sizes = ""
            if built is not None:
                gd = next((x for x in built.design.groups if x.factor == factor), None)
                if gd is not None and len(gd.levels) <= 60:
                    counts = gd.n_obs_per_level
                    sizes = "<details><summary>rows per level</summary>" + ", ".join(
                        f"{_e(lev)}&nbsp;({int(c)})" for lev, c in zip(gd.levels, counts, strict=True)) + "</details>"
            body += (f"<tr><td><code>{_e(factor)}</code></td><td>{_e(g.get('levels', ''))}</td><td>{_e(g.get('min_per_level', ''))}</td>"
                     f"<td>{_e(g.get('max_per_level', ''))}</td><td class='l'>{sizes}</td></tr>")
        gtable = ("<h3>Grouping factors</h3><table><tr><th>factor</th><th>levels</th><th>min rows/level</th><th>max rows/level</th>"
                  f"<th class='l'></th></tr>{body}</table>")
    else:
        gtable = "<p>No group-level terms: the model is a plain (single-level) regression.</p>"
    return f'<h2 id="data">Data</h2><dl class="kv">{kv}</dl>{gtable}'


def _section_diagnostics(info: dict, figs: list[Figure]) -> str:
    diag = info.get("diagnostics", {})
    findings = diag.get("findings", [])
    if not findings:
        body = ("<p class='ok'>All checks passed</p><p class='why'>R-hat &le; 1.01, bulk and tail ESS &ge; 100 per chain, no divergent "
                "transitions, no tree-depth hits, E-BFMI &ge; 0.3, and no intercept/group-mean trade-off (|r| &lt; 0.9).</p>")
    else:
        items = []
        for f in findings:
            sev = f.get("severity", "warning")
            why = CHECKS.get(f.get("code", ""), "")
            items.append(
                f"<div class='finding {'note' if sev != 'warning' else ''}'><p><b>{_e(sev)} ({_e(f.get('code', ''))}):</b> {_e(f.get('message', ''))}</p>"
                f"<p><b>Remedy:</b> {_e(f.get('remedy', ''))}</p>" + (f"<p class='why'>What this check means: {_e(why)}</p>" if why else "") + "</div>")
        ok = diag.get("ok", False)
        head = "<p class='ok'>No failing checks (notes only)</p>" if ok else f"<p class='bad'>{sum(f.get('severity', 'warning') == 'warning' for f in findings)} check(s) failed</p>"
        body = head + "".join(items)
    extra = "".join(_figure_html(f) for f in figs if f.key in ("identifiability", "pairs"))
    return f'<h2 id="diagnostics">Diagnostics</h2>{body}{extra}'


def _summary_table(rows: pd.DataFrame, kind: str, chains: int) -> str:
    head = ("<tr><th></th><th>Estimate</th><th>Est.Error</th><th>l-94% HDI</th><th>u-94% HDI</th><th>l-94% ETI</th><th>u-94% ETI</th>"
            "<th>R-hat</th><th>Bulk ESS</th><th>Tail ESS</th></tr>")
    body = []
    ess_min = 100 * max(chains, 1)
    for name, r in rows.iterrows():
        label = name
        if kind == "group_sd":
            label = f"sd({name.removesuffix('_sigma').replace('1|', 'Intercept|', 1)})"
        rhat_cls = " class='bad'" if float(r.get("r_hat", 0) or 0) > 1.01 else ""
        eb_cls = " class='bad'" if float(r.get("ess_bulk", 1e9) or 0) < ess_min else ""
        et_cls = " class='bad'" if float(r.get("ess_tail", 1e9) or 0) < ess_min else ""
        body.append(
            f"<tr><td title='{_e(name)}'><code>{_e(label)}</code></td><td>{_fmt(r['mean'])}</td><td>{_fmt(r['sd'])}</td>"
            f"<td>{_fmt(r['hdi94_lb'])}</td><td>{_fmt(r['hdi94_ub'])}</td><td>{_fmt(r.get('eti94_lb'))}</td><td>{_fmt(r.get('eti94_ub'))}</td>"
            f"<td{rhat_cls}>{_fmt(r['r_hat'], 4)}</td><td{eb_cls}>{_fmt(round(float(r['ess_bulk'])), 6)}</td><td{et_cls}>{_fmt(round(float(r['ess_tail'])), 6)}</td></tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _section_summary(summary: pd.DataFrame, info: dict) -> str:
    chains = int(info.get("sampler", {}).get("chains", 4) or 4)
    parts = []
    for kind, heading in SECTIONS:
        rows = summary[summary["kind"] == kind]
        if len(rows):
            parts.append(f"<h3>{_e(heading)}</h3>{_summary_table(rows, kind, chains)}")
    eff = summary[summary["kind"] == "group_effect"]
    if len(eff):
        shown = eff.head(MAX_EFFECT_ROWS)
        more = f" (first {MAX_EFFECT_ROWS} of {len(eff)}; all are in summary.csv)" if len(eff) > MAX_EFFECT_ROWS else ""
        parts.append(f"<details><summary>Group-level effects, one row per level{_e(more)}</summary>{_summary_table(shown, 'group_effect', chains)}</details>")
    note = ("<p class='why'>Estimate: posterior mean; Est.Error: posterior SD; HDI: highest-density interval; ETI: equal-tailed "
            f"interval; red marks R-hat &gt; 1.01 or ESS below 100 per chain ({100 * chains}).</p>")
    return f'<h2 id="summary">Summary</h2>{note}{"".join(parts)}'


def _section_figures(figs: list[Figure]) -> str:
    groups = [
        ("Estimates", ["posteriors", "forest"]),
        ("Shrinkage", [f.key for f in figs if f.key.startswith("shrinkage_")]),
        ("Conditional effects", [f.key for f in figs if f.key.startswith("conditional")]),
        ("Fit to the data", ["pred_vs_obs", "ppc", "ppc_rootogram", "prior_ppc"]),
        ("Convergence", ["trace", "rank"]),
    ]
    by_key = {f.key: f for f in figs}
    out = ['<h2 id="figures">Figures</h2>']
    for title, keys in groups:
        items = [by_key[k] for k in keys if k in by_key]
        if not items:
            if title == "Conditional effects":
                out.append(f"<h3 id='fig-{_e(title.lower().replace(' ', '-'))}'>{_e(title)}</h3><p class='why'>No population-level predictors besides the intercept: nothing to condition on.</p>")
            continue
        inner = "".join(_figure_html(f) for f in items)
        wrap = f"<div class='grid'>{inner}</div>" if title in ("Conditional effects", "Shrinkage") and len(items) > 1 else inner
        out.append(f"<h3 id='fig-{_e(title.lower().replace(' ', '-'))}'>{_e(title)}</h3>{wrap}")
    return "".join(out)


def _section_pooling(run_dir: Path) -> str:
    """No/complete/partial pooling tables written by ``hlm pooling`` (seed 001's comparison)."""
    parts = []
    for csv in sorted(Path(run_dir).glob("pooling_*.csv")):
        t = pd.read_csv(csv)
        factor = csv.stem.removeprefix("pooling_")
        cols = ["no_pooling", "complete_pooling", "partial_pooling"]
        rows = ""
        if "truth" in t:
            mse = {c: float(((t[c] - t["truth"]) ** 2).mean()) for c in cols}
            best = min(mse, key=mse.get)
            rows = "".join(f"<tr><td>{_e(c.replace('_', ' '))}</td><td>{v:.4g}</td></tr>" for c, v in mse.items())
            rows = (f"<table><tr><th>estimate</th><th>MSE against the truth</th></tr>{rows}</table>"
                    f"<p class='why'>Lowest error: {_e(best.replace('_', ' '))}. Partial pooling shrinks each level's own estimate towards the grand mean by how noisy it is (Efron &amp; Morris 1973).</p>")
        img = csv.with_suffix(".png")
        fig = f"<figure><img src='{_img(img)}' alt='pooling {_e(factor)}'><figcaption>Each level's own mean (grey) moves to the model's partially pooled estimate (blue); the dashed line is complete pooling; crosses are the truth when known.</figcaption></figure>" if img.exists() else ""
        parts.append(f"<h3>{_e(factor)}</h3>{rows}{fig}")
    return f'<h2 id="pooling">Pooling: no, complete and partial</h2>{"".join(parts)}' if parts else ""


def render_html(info: dict, summary: pd.DataFrame, figs: list[Figure], *, frame: pd.DataFrame | None = None, built=None, extra: str = "") -> str:
    """The report page as one string (no external resources)."""
    versions = info.get("versions", {})
    timings = info.get("timings", {})
    title = f"hlm report: {info.get('formula', '')}"
    nav = "".join(f"<a href='#{a}'>{t}</a>" for a, t in (("model", "Model"), ("data", "Data"), ("diagnostics", "Diagnostics"), ("summary", "Summary"), ("figures", "Figures")))
    status = "<span class='ok'>diagnostics passed</span>" if info.get("diagnostics", {}).get("ok", False) else "<span class='bad'>diagnostics flagged problems</span>"
    d = info.get("data", {})
    sub = (f"{_e(Path(str(d.get('file', ''))).name)}: {_e(d.get('rows_used', ''))} rows; {_e(info.get('family', {}).get('name', ''))} family; "
           f"{status}")
    foot_t = ", ".join(f"{_e(k)} {float(v):.1f} s" for k, v in timings.items() if isinstance(v, (int, float)))
    foot_v = ", ".join(f"{_e(k)} {_e(v)}" for k, v in versions.items())
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1><p class='sub'>{sub}</p><nav>{nav}</nav>"
        f"{_section_model(info, built)}{_section_data(info, frame, built)}{_section_diagnostics(info, figs)}"
        f"{_section_summary(summary, info)}{_section_figures(figs)}{extra}"
        f"<footer><p>Timings: {foot_t or 'n/a'}.</p><p>Versions: {foot_v or 'n/a'}.</p>"
        "<p>Written by hlm; this file is self-contained (figures embedded) and can be moved or mailed on its own.</p></footer>"
        "</body></html>\n"
    )


# --------------------------------------------------------------------------- files


def _write_atomic(path: Path, text: str) -> None:
    from hlm_cli.outputs.rundir import write_atomic

    path = Path(path)
    try:
        write_atomic(path, lambda fh: fh.write(text))
    except OSError as err:
        raise OutputError(f"cannot write {str(path)!r}: {err.strerror}", hint="check the permissions of the run directory") from None


def _update_runinfo(run_dir: Path, figs: list[Figure], seconds: float) -> None:
    """Record the new figures, the page and its build time in run.json (other keys untouched)."""
    path = run_dir / "run.json"
    info = json.loads(path.read_text())
    plots = dict(info.get("plots") or {})
    for f in figs:
        if f.path is not None:
            plots[f.key] = f"plots/{f.path.name}"
        elif f.key not in plots and f.key != "conditional_more":  # a note, not a figure
            plots[f.key] = f"failed: {f.error}"
    info["plots"] = plots
    info["report"] = REPORT_NAME
    info.setdefault("timings", {})["report"] = round(seconds, 4)
    files = list(info.get("files") or [])
    if REPORT_NAME not in files:
        files.append(REPORT_NAME)
    info["files"] = files
    _write_atomic(path, json.dumps(info, indent=2) + "\n")


# --------------------------------------------------------------------------- batch

BATCH_JS = """
document.querySelectorAll('table.sortable th').forEach(function(th, i){
  th.addEventListener('click', function(){
    var table = th.closest('table'), body = table.tBodies[0];
    var asc = th.getAttribute('data-dir') !== 'asc';
    table.querySelectorAll('th').forEach(function(h){ h.removeAttribute('data-dir'); });
    th.setAttribute('data-dir', asc ? 'asc' : 'desc');
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function(a, b){
      var x = a.cells[i].getAttribute('data-v') || a.cells[i].textContent;
      var y = b.cells[i].getAttribute('data-v') || b.cells[i].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(function(r){ body.appendChild(r); });
  });
});
"""
BATCH_OK = ("ok", "success", "done", "fitted")
BATCH_BAD = ("failed", "error")


def _run_dir_of(batch_dir: Path, row: pd.Series) -> Path | None:
    """The run directory of a status row: its ``run_dir`` (relative to the batch), else the input's stem."""
    rel = str(row.get("run_dir", "") or "")
    if rel:
        p = Path(rel)
        return p if p.is_absolute() else batch_dir / p
    stem = Path(str(row.get("input", ""))).stem
    return batch_dir / stem if stem and (batch_dir / stem).is_dir() else None


def _batch_estimates(summary: pd.DataFrame, key: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Key estimates per run as text 'mean [hdi94_lb, hdi94_ub]', and the means (for sorting).

    Population-level effects, group-level SDs and family parameters; not the per-level group
    effects or correlations (those are in each run's own report).
    """
    s = summary
    if "kind" in s.columns:
        s = s[s["kind"].isin(["population", "group_sd", "family"])]
    else:
        s = s[~s["parameter"].astype(str).str.contains(r"\[", regex=True)]
    if s.empty:
        return pd.DataFrame(), pd.DataFrame()
    has_ci = {"hdi94_lb", "hdi94_ub"} <= set(s.columns)
    text = [(_fmt(r["mean"]) + (f" [{_fmt(r['hdi94_lb'])}, {_fmt(r['hdi94_ub'])}]" if has_ci else "")) for _, r in s.iterrows()]
    long = pd.DataFrame({"key": s[key].astype(str).to_numpy(), "parameter": s["parameter"].astype(str).to_numpy(),
                         "text": text, "mean": pd.to_numeric(s["mean"], errors="coerce").to_numpy()})
    order = list(dict.fromkeys(long["parameter"]))
    texts = long.pivot_table(index="key", columns="parameter", values="text", aggfunc="first").reindex(columns=order)
    means = long.pivot_table(index="key", columns="parameter", values="mean", aggfunc="first").reindex(columns=order)
    return texts, means


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
            texts, means = _batch_estimates(summ, key)
    show_model = "model" in status.columns and status["model"].nunique() > 1
    show_formula = "formula" in status.columns and status["formula"].nunique() > 1
    est_cols = list(texts.columns)
    cols = ["input"] + (["model"] if show_model else []) + (["formula"] if show_formula else []) + ["status", "report"]
    cols += est_cols + ["findings", "time (s)", "message"]
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    rows, counts = [], {}
    for _, r in status.iterrows():
        st = str(r.get("status", ""))
        counts[st] = counts.get(st, 0) + 1
        run = _run_dir_of(batch_dir, r)
        link = "&ndash;"
        if run is not None and (run / REPORT_NAME).exists():
            rel = Path(os.path.relpath(run / REPORT_NAME, batch_dir)).as_posix()
            link = f"<a href='{_e(rel)}'>report</a>"
        if str(r.get("compare", "")):
            cmp = Path(str(r["compare"]))
            cmp_rel = cmp if not cmp.is_absolute() else Path(os.path.relpath(cmp, batch_dir))
            link += f" &middot; <a href='{_e(cmp_rel.as_posix())}'>compare</a>"
        cls = "ok" if st.lower() in BATCH_OK else "bad" if st.lower() in BATCH_BAD else ""
        cells = [f"<td class='l'>{_e(r['input'])}</td>"]
        if show_model:
            cells.append(f"<td class='l'>{_e(r.get('model', ''))}</td>")
        if show_formula:
            cells.append(f"<td class='l'><code>{_e(r.get('formula', ''))}</code></td>")
        cells += [f"<td class='l {cls}'>{_e(st)}</td>", f"<td class='l'>{link}</td>"]
        k = str(r.get(key, ""))
        for c in est_cols:
            txt = texts.at[k, c] if k in texts.index else None
            m = means.at[k, c] if k in means.index else None
            dv = f" data-v='{float(m)!r}'" if m is not None and pd.notna(m) else ""
            cells.append(f"<td{dv}>{_e(txt) if isinstance(txt, str) else ''}</td>")
        t = str(r.get("total_s", "") or "")
        msg = " ".join(x for x in (str(r.get("error", "") or ""), f"(hint: {r['hint']})" if str(r.get("hint", "") or "") else "") if x)
        cells += [f"<td class='l'>{_e(str(r.get('findings', '') or '').replace(';', ', '))}</td>",
                  f"<td>{_fmt(t) if t else ''}</td>", f"<td class='l'>{_e(msg)}</td>"]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    tally = ", ".join(f"{n} {_e(k or 'unknown')}" for k, n in counts.items())
    page = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>hlm batch report</title>"
        f"<style>{CSS} body{{max-width:none}} th{{cursor:pointer;white-space:nowrap}} td{{white-space:nowrap}} td:last-child{{white-space:normal;min-width:20em}}"
        " th[data-dir=asc]::after{content:' \\25B2'} th[data-dir=desc]::after{content:' \\25BC'}</style></head><body>"
        f"<h1>hlm batch report</h1><p class='sub'>{_e(batch_dir.name)}: {len(status)} run(s): {tally}. "
        "Click a column header to sort. Estimates are posterior means with 94% HDIs; each run's own report has the details.</p>"
        f"<table class='sortable'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f"<script>{BATCH_JS}</script></body></html>\n"
    )
    out = batch_dir / BATCH_REPORT_NAME
    _write_atomic(out, page)
    return out


__all__ = ["CAPTIONS", "Figure", "check_color_by", "data_columns", "render_html", "write_batch_report", "write_report"]
