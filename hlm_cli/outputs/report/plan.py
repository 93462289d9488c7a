"""Which figures a report shows, in which order, with which captions, and the jobs that draw them.

:func:`plan_figures` is a pure function of its arguments: the figure helper forked at the
start of ``hlm fit`` (:func:`hlm_cli.outputs.report.page.start_helper`) calls it with the
same arguments to rebuild the same jobs. :func:`draw_all` runs the jobs on two processes (:mod:`hlm_cli.outputs.parallel`)
and returns one :class:`Figure` per item of the page, a figure that failed included.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hlm_cli.diagnostics import IDENT_CORR
from hlm_cli.outputs.figures._base import CI_PROB, MAX_POINT_BARS, fmt_value

STANDARD = ("trace", "rank", "ppc")  # drawn during `hlm fit`; `hlm report` redraws them only when missing
DEFAULT_COLOR_LEVELS = 12
MAX_CONDITIONAL = 16  # conditional-effect figures per report
HELPER_MAX_VALUES = 5_000_000  # rows x draws above which the posterior is not piped to a helper (~80 MB)
HELPER_MAX_CSV_BYTES = 5_000_000  # a bigger data file will not fit that: no helper is started
_PCT = f"{CI_PROB:.0%}"

CAPTIONS = {
    "posteriors": f"Posterior density of each population-level effect (blue), group-level standard deviation (orange) and family parameter (green): the shaded band is the {_PCT} highest-density interval, the solid line the mean (both as in summary.csv) and the dashed line zero.",
    "forest": f"Each group's effect as a deviation from the population-level coefficient, with its 50% (thick) and {_PCT} (thin) interval, sorted within each term: intervals clear of the dashed zero line mark groups that differ from the average.",
    "shrinkage": f"Each point is one level of {{factor}}: its own sample mean (x) against the model's estimate for it (y; with up to {MAX_POINT_BARS} levels a grey bar shows its {_PCT} interval); estimates are pulled from the dashed no-pooling line towards the dotted population mean, and small or noisy groups are pulled the most.",
    "smooth": f"The fitted smooth {{name}}: the expected response as {{x}} varies (line: posterior mean; band: {_PCT} interval), with {{held}}; grey points are the data. Its wiggliness is set by sds({{label}}) in the summary (0: a straight line).",
    "conditional": f"The expected response as {{x}} varies (line or point: posterior mean; band or bar: {_PCT} interval), with {{held}}; grey points are the data.",
    "pred_vs_obs": f"Each point is one observation: its posterior predictive mean (y) against its observed value (x), with the {_PCT} predictive interval as a grey bar; points should scatter around the dashed line and about {_PCT} of the bars should cross it.",
    "ppc_ordinal": "How many rows fall in each category: observed (black dots) against the median and 94% band of data sets simulated from the posterior (bars); each dot should sit within its band.",
    "ppc": "The density of the observed response (black) against the densities of data sets simulated from the posterior (blue): the black curve should look like one more blue curve.",
    "ppc_censored": "The response is censored (docs/response-terms.md), so the check compares survival or distribution curves: with right censoring only, the Kaplan-Meier curve of the data (black; ticks mark censored times) against the survival curves of uncensored data sets simulated from the posterior (blue), both estimates of P(Y > t); with left or interval censoring, the ECDF of the recorded values with the censored ones marked, which is only a guide where values are bounds.",
    "ppc_rootogram": "Hanging rootogram: the predicted frequency of each count (bars, square-root scale) hangs from the observed frequency; bars that end far from zero show counts the model over- or under-predicts.",
    "prior_ppc": "Data sets simulated from the priors alone (blue) against the observed density (black): the priors should allow data like the observed while ruling out impossible values.",
    "trace": "Left: each parameter's posterior density, one line per chain; right: the draws in sampling order: the chains should overlap and look like stationary noise, without trends or stuck stretches.",
    "rank": "Histogram of the ranks of each chain's draws among all draws: flat bars mean the chains explore the same distribution, while slopes or spikes show chains that disagree.",
    "identifiability": "Posterior draws of the intercept against the mean of a factor's group effects: a thin diagonal band means the data fix their sum but not each one, so report predictions or differences between groups instead.",
    "pairs": f"Pairwise scatter of the draws of the parameters the identifiability check implicates, with their correlations above the diagonal (red: |r| >= {IDENT_CORR}): long narrow ridges are parameters that trade off against each other.",
}
TITLES = {
    "posteriors": "Posterior densities", "forest": "Group-level effects", "pred_vs_obs": "Predicted against observed",
    "ppc": "Posterior predictive check", "ppc_rootogram": "Posterior predictive rootogram",
    "prior_ppc": "Prior predictive check", "trace": "Trace plots", "rank": "Rank plots",
    "identifiability": "Intercept against mean group effect", "pairs": "Pair plot of the implicated parameters",
}


@dataclass
class Figure:
    key: str  # run.json "plots" key, e.g. shrinkage_gene
    path: Path | None  # PNG; None when drawing failed
    title: str
    caption: str
    error: str | None = None


def plan_figures(ctx, frame: pd.DataFrame, plot_dir: Path, *, color_by: str | None, svg: bool, standard: bool,
                 numbers: pd.DataFrame | None = None):
    """The page's figures in order, the jobs that draw them and one key per job.

    ``standard``: also draw trace, rank and the predictive checks (missing from ``plot_dir``).
    ``numbers``: summary.csv's table, for the estimates the figures print; without it (during
    ``hlm fit``, while summary.csv is being written) each figure computes them from all draws
    with the same arviz_stats call (:func:`hlm_cli.outputs.figures.effects.estimates`).
    """
    from hlm_cli.diagnostics import ident_pairs, identifiability
    from hlm_cli.outputs import figures as F
    from hlm_cli.outputs.figures import effects as E

    built, tree = ctx.built, ctx.tree
    params = built.params
    # the identifiability figures follow the same check as run.json's findings (computed here
    # because run.json may still be being written, see write_report)
    pairs = ident_pairs(tree, built)
    findings = [f.to_json() for f in identifiability(tree, built, pairs)]
    bad = [x for x in pairs if abs(x[4]) >= IDENT_CORR]
    # draws kept for the shapes: at most 500, fewer for big data (an (S, n) array of ~1e7 values)
    small = F.thin(tree, max_draws=int(np.clip(1e7 / max(built.design.n, 1), 100, 500)))
    sctx = dataclasses.replace(ctx, tree=small)
    response = built.design.formula.response.expr  # as written (log(y), incidence), for axis labels

    def estimates(names, ci_kind):
        return numbers if numbers is not None else E.estimates(tree, names, ci_kind=ci_kind)

    # the page in order: Figure (a note), ("job", index, key, title, caption) or ("existing", key)
    plan: list = []
    jobs: list = standard_jobs(tree, built, bad, plot_dir, svg=svg, missing=standard)  # results unused
    keys: list[str] = [f"standard_{i}" for i in range(len(jobs))]

    def draw(key: str, job, title: str | None = None, caption: str | None = None) -> None:
        plan.append(("job", len(jobs), key, title or TITLES.get(key, key), caption or CAPTIONS.get(key, "")))
        jobs.append(job)
        keys.append(key)

    top = [v for _, vs in E.top_names(params) for v in vs if v in tree["posterior"]]
    draw("posteriors", lambda: F.posteriors(small, params, plot_dir / "posteriors.png", numbers=estimates(top, "hdi"), svg=svg))
    if params.group_effects:
        effects = E.group_effect_names(tree, params)
        draw("forest", lambda: F.forest(small, params, plot_dir / "forest.png", numbers=estimates(effects, "eti"), svg=svg))
        mu = mu_pop = failed = None
        try:
            mu, mu_pop = _fitted_means(_means_context(ctx, sctx))
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
        conditional = F.conditional_effects(sctx)
    except Exception as err:
        conditional = []
        plan.append(Figure("conditional", None, "Conditional effects", "", f"{type(err).__name__}: {err}"))
    more = max(0, len(conditional) - MAX_CONDITIONAL)  # each figure costs ~0.5 s; main effects come first
    for eff in conditional[:MAX_CONDITIONAL]:
        held = ", ".join(f"{k} = {fmt_value(v)}" for k, v in eff.held.items())
        held_txt = (f"{held} and group effects at zero" if held else "group effects at zero")
        draw(eff.file_stem, lambda eff=eff: F.conditional(eff, plot_dir / f"{eff.file_stem}.png", response=response,
                                                          ylabel=_ylabel(built.family, response),
                                                          points=_points(built, frame, eff.x, eff.by), svg=svg),
             f"Smooth: {eff.name}" if eff.stem else f"Conditional effect: {eff.name}",
             CAPTIONS["smooth"].format(name=eff.name, x=eff.x, held=held_txt, label=eff.name.split(", by=")[0] + (")" if ", by=" in eff.name else ""))
             if eff.stem else CAPTIONS["conditional"].format(x=eff.x, held=held_txt))
    if more:
        plan.append(Figure("conditional_more", None, "More conditional effects", "",
                           f"{more} more interaction(s) not drawn; see hlm_cli.outputs.figures.conditional_effects"))
    col = color_by or _default_color(built, frame)
    draw("pred_vs_obs", lambda: F.pred_vs_obs(F.predictions(small, built.response_name), plot_dir / "pred_vs_obs.png", response=response,
                                               color=_stored_rows_of(frame[col], small) if col else None, color_label=col, svg=svg))
    terms = getattr(built.design, "terms", None)
    if built.family.ordinal:
        plan.append(("existing", "ppc", CAPTIONS["ppc_ordinal"]))
    elif terms is not None and terms.censored:
        plan.append(("existing", "ppc", CAPTIONS["ppc_censored"]))
    else:
        plan.append(("existing", "ppc"))
    if built.family.discrete and not built.family.ordinal:  # ordinal: ppc.png's bars per category
        draw("ppc_rootogram", lambda: F.rootogram(small, plot_dir / "ppc_rootogram.png", svg=svg))
    if (standard or (plot_dir / "prior_ppc.png").exists()) and "prior_predictive" in tree.children:
        plan.append(("existing", "prior_ppc"))
    if any(f.get("code") == "identifiability" for f in findings):
        plan.append(("existing", "identifiability"))
        div = None
        if "sample_stats" in small.children and "diverging" in small["sample_stats"]:
            div = F.draws(small, "diverging", "sample_stats").astype(bool)
        draw("pairs", lambda: F.pairs(F.ident_series(small, params, findings), plot_dir / "pairs.png", divergent=div, svg=svg))
    plan.append(("existing", "trace"))
    plan.append(("existing", "rank"))
    return plan, jobs, keys


def standard_jobs(tree, built, bad: list, plot_dir: Path, *, svg: bool, missing: bool) -> list:
    """Jobs drawing trace, rank, the predictive checks and identifiability.png when they are
    ``missing`` (during ``hlm fit``), else only their SVGs when asked (``hlm report --svg``)
    and identifiability.png when absent. ``bad``: the confounded pairs
    (:func:`hlm_cli.diagnostics.ident_pairs` beyond ``IDENT_CORR``)."""
    from hlm_cli.outputs import figures as F

    top, discrete = built.params.top_level, built.family.discrete
    prior = "prior_predictive" in tree.children
    if missing:
        jobs = [
            lambda: F.trace(tree, top, plot_dir / "trace.png", svg=svg),
            lambda: F.rank(tree, top, plot_dir / "rank.png", svg=svg),
            lambda: F.ppc(tree, plot_dir / "ppc.png", discrete=discrete, categories=built.design.response_levels, svg=svg),
        ]
        if prior:
            jobs.append(lambda: F.ppc(tree, plot_dir / "prior_ppc.png", group="prior_predictive", discrete=discrete, categories=built.design.response_levels, svg=svg))
        if bad:
            jobs.append(lambda: F.identifiability(bad, plot_dir / "identifiability.png", svg=svg))
        return jobs
    jobs = []
    if bad and not (plot_dir / "identifiability.png").exists():
        jobs.append(lambda: F.identifiability(bad, plot_dir / "identifiability.png"))
    if svg:
        jobs += [
            lambda: F.trace(tree, top, plot_dir / "trace.png", formats=("svg",)),
            lambda: F.rank(tree, top, plot_dir / "rank.png", formats=("svg",)),
            lambda: F.ppc(tree, plot_dir / "ppc.png", formats=("svg",), discrete=discrete, categories=built.design.response_levels),
        ]
        if (plot_dir / "prior_ppc.png").exists() and prior:
            jobs.append(lambda: F.ppc(tree, plot_dir / "prior_ppc.png", formats=("svg",), group="prior_predictive", discrete=discrete, categories=built.design.response_levels))
    return jobs


def standard_missing(plot_dir: Path) -> bool:
    return any(not (plot_dir / f"{k}.png").exists() for k in STANDARD)


def draw_all(ctx, frame: pd.DataFrame, plot_dir: Path, *, color_by: str | None, svg: bool, numbers: pd.DataFrame | None = None,
             parent_first=None, helper=None, summarize: bool = False) -> list[Figure]:
    """Every figure of the page, in page order. A figure that fails is reported, never fatal.

    The figures are planned here and drawn by :func:`hlm_cli.outputs.parallel.run_jobs` on
    two processes; ``parent_first`` (e.g. writing posterior.nc) runs meanwhile.
    """
    from hlm_cli.outputs import parallel

    standard = standard_missing(plot_dir)
    plan, jobs, keys = plan_figures(ctx, frame, plot_dir, color_by=color_by, svg=svg, standard=standard, numbers=numbers)
    payload = _helper_payload(ctx, plot_dir, standard, keys, summarize) if helper is not None else None
    results = parallel.run_jobs(jobs, parent_first=parent_first, helper=helper, payload=payload)
    figs: list[Figure] = []
    for item in plan:
        if isinstance(item, Figure):
            figs.append(item)
        elif item[0] == "existing":
            figs.append(_existing(plot_dir, *item[1:]))
        else:
            _, i, key, title, caption = item
            res = results[i]
            if isinstance(res, parallel.JobError):
                figs.append(Figure(key, None, title, caption, str(res)))
            else:
                path = res[0] if res else None
                figs.append(Figure(key, path, title, caption, None if path else "nothing to draw"))
    return figs


def _existing(plot_dir: Path, key: str, caption: str | None = None) -> Figure:
    path = plot_dir / f"{key}.png"
    return Figure(key, path if path.exists() else None, TITLES[key], caption or CAPTIONS[key],
                  None if path.exists() else "not drawn (see run.json plots)")


# --------------------------------------------------------------------------- the figure helper (see page.start_helper)


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


# --------------------------------------------------------------------------- what the figures need


def _unique_factors(groups) -> list:
    seen, out = set(), []
    for g in groups:
        if g.factor not in seen:
            seen.add(g.factor)
            out.append(g)
    return out


def _means_context(ctx, sctx):
    """The draws the shrinkage figures average: ``sctx``'s, or for a large run (no stored
    log-likelihood, docs/scale.md) few enough that each (draws, rows) array stays near 1e7
    values (at least 20 draws)."""
    from hlm_cli.model import scale
    from hlm_cli.outputs import figures as F

    if scale.stores_loglik(ctx.tree):
        return sctx
    small = F.thin(ctx.tree, max_draws=int(np.clip(1e7 / max(ctx.built.design.n, 1), 20, 500)))
    return dataclasses.replace(ctx, tree=small)


def _stored_rows_of(values: pd.Series, tree) -> pd.Series:
    """``values`` of the rows a large run's thinned predictive holds (all rows otherwise)."""
    from hlm_cli.model.scale import ppc_rows

    rows = ppc_rows(tree, len(values))
    return values if rows is None else values.iloc[rows].reset_index(drop=True)


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
    return inverse_link(built.family, eta, ctx.tree), inverse_link(built.family, eta_pop, ctx.tree)


def _shrinkage_for(g, built, frame: pd.DataFrame, mu, mu_pop):
    from hlm_cli.formula.design import level_labels
    from hlm_cli.outputs.figures import shrinkage_data

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
    return shrinkage_data(g.factor, g.index, list(g.levels), np.asarray(design.y, dtype=float), mu, mu_pop,
                          trials=None if design.trials is None else np.asarray(design.trials, dtype=float),
                          family=built.family.name, parent_labels=parent_labels, parent=parent,
                          adjusted=_has_predictors(design))


def _has_predictors(design) -> bool:
    return design.offset is not None or any(k not in ("intercept",) for k in design.fixed_kinds.values())


def _ylabel(family, response: str) -> str:
    if family.name == "bernoulli":
        return f"P({response} = 1)"
    if family.trials:
        return f"{response}: probability of success"
    if family.name == "lognormal":
        return f"{response} (median)"
    if family.ordinal:
        return f"{response}: expected category (1..K)"
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
    from hlm_cli.outputs.figures import predictor_kinds

    kinds = predictor_kinds(built.design, frame)
    if kinds:
        return next(iter(kinds))
    for g in built.design.groups:
        if len(g.term.factor) == 1 and len(g.levels) <= DEFAULT_COLOR_LEVELS and g.term.factor[0] in frame.columns:
            return g.term.factor[0]
    return None
