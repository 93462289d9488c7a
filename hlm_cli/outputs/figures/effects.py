"""Estimates: posterior densities, the forest of group-level effects, conditional effects.

posteriors.png
    densities of the population-level effects, group-level SDs and family parameters; each
    panel prints the parameter's mean and 94% HDI from summary.csv's numbers (all draws).
forest.png
    every group-level effect per grouping factor, sorted, with its mean and 94% interval
    from summary.csv (``eti94``) and a 50% interval.
conditional_<x>.png, conditional_<x>_x_<by>.png
    conditional effects of each population-level predictor and two-way interaction, as
    brms's ``conditional_effects``: other numeric predictors at their mean, factors at their
    reference level, group effects at 0.

The shapes (densities, lines) are drawn from a thinned posterior (:func:`._base.thin`);
every number printed or drawn as a parameter's estimate comes from the summary table (the
DataFrame written to summary.csv) or from :func:`estimates`, the same arviz_stats call on
all draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hlm_cli.outputs.figures._base import (
    BLUE,
    CI_PROB,
    GREY,
    INNER_PROB,
    KIND_COLORS,
    draws,
    figure,
    fmt_value,
    interval,
    legend,
    palette,
    save,
    slug,
)

MAX_LABELLED_LEVELS = 60  # forest panels beyond this become an unlabelled caterpillar
MAX_PANELS = 48  # density panels in posteriors.png (factor terms can have many columns)
NEW_LEVEL = "__hlm_new_level__"


def estimates(tree, names: list[str], *, ci_kind: str = "hdi") -> pd.DataFrame:
    """Mean and 94% interval of each scalar of ``names`` from all draws of ``tree``: summary.csv's
    numbers, for a figure drawn before summary.csv exists."""
    from hlm_cli.outputs import summary

    return summary.stats(tree, names, ci_kind=ci_kind)


# --------------------------------------------------------------------------- posteriors


def sd_label(name: str) -> str:
    """lme4/brms's name for a group-level SD: ``1|gene_sigma`` -> ``sd(Intercept|gene)``."""
    if name.startswith("sds("):  # a smooth's SD, as named
        return name
    return f"sd({name.removesuffix('_sigma').replace('1|', 'Intercept|', 1)})"


@dataclass
class Panel:
    name: str  # summary.csv's parameter (``genotype[wt]``, ``1|gene_sigma``)
    label: str  # as printed (``sd(Intercept|gene)``)
    kind: str  # population, group_sd, family
    draws: np.ndarray  # (S,)


def top_names(params) -> list[tuple[str, list[str]]]:
    """(kind, variables) of the posteriors figure, in summary order."""
    return [("population", list(params.population)), ("group_sd", [v for vs in params.group_sds.values() for v in vs]),
            ("family", list(params.family))]


def posterior_panels(tree, params) -> list[Panel]:
    """One panel per scalar population-level effect, group-level SD and family parameter."""
    panels: list[Panel] = []
    post = tree["posterior"]
    for kind, names in top_names(params):
        for v in names:
            if v not in post:
                continue
            x = draws(tree, v)
            if x.ndim == 1:
                panels.append(Panel(v, sd_label(v) if kind == "group_sd" else v, kind, x))
                continue
            extra = [d for d in post[v].dims if d not in ("chain", "draw")]
            coords = [str(c) for c in post[v].coords[extra[0]].values] if extra else []
            flat = x.reshape(x.shape[0], -1)
            for j in range(flat.shape[1]):
                lab = f"{v}[{coords[j] if j < len(coords) else j}]"
                panels.append(Panel(lab, lab, kind, flat[:, j]))
    return panels


def _interval_columns(numbers: pd.DataFrame) -> tuple[float, dict[str, str]]:
    """The width ``numbers`` carries (``--ci``; 94% by default) and its column names."""
    from hlm_cli.outputs.summary import ci_names, ci_of

    prob = ci_of(numbers) or CI_PROB
    return prob, ci_names(prob)


def panel_title(panel: Panel, numbers: pd.DataFrame) -> str:
    """The panel's title: its label, mean and HDI as summary.csv has them."""
    r = numbers.loc[panel.name]
    prob, c = _interval_columns(numbers)
    return f"{panel.label}\nmean {r['mean']:.3g}, {prob:.0%} HDI [{r[c['hdi_lb']]:.3g}, {r[c['hdi_ub']]:.3g}]"


def posteriors(tree, params, path: Path, *, numbers: pd.DataFrame, svg: bool = False) -> list[Path]:
    """Posterior densities (from ``tree``, thinned or not) with the 94% HDI shaded and the mean
    marked, both from ``numbers`` (summary.csv's table, or :func:`estimates` of all draws)."""
    import arviz_stats as azs

    panels = posterior_panels(tree, params)
    if not panels:
        return []
    dropped = max(0, len(panels) - MAX_PANELS)
    panels = panels[:MAX_PANELS]
    ncols = min(4, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    with figure(3.0 * ncols, 2.2 * nrows + 0.3) as fig:
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for ax, p in zip(axes.flat, panels, strict=False):
            color = KIND_COLORS[p.kind]
            x = p.draws[np.isfinite(p.draws)]
            grid, pdf, _ = azs.kde(x)
            grid, pdf = np.asarray(grid).ravel(), np.asarray(pdf).ravel()
            r = numbers.loc[p.name]
            _, c = _interval_columns(numbers)
            lo, hi, mean = float(r[c["hdi_lb"]]), float(r[c["hdi_ub"]]), float(r["mean"])
            ax.plot(grid, pdf, color=color, lw=1.6)
            inside = (grid >= lo) & (grid <= hi)
            ax.fill_between(grid[inside], pdf[inside], color=color, alpha=0.25, lw=0)
            ax.axvline(mean, color=color, lw=1, ls="-")
            if p.kind == "population" and grid.min() < 0 < grid.max():
                ax.axvline(0, color=GREY, lw=0.8, ls="--")
            ax.set_title(panel_title(p, numbers), fontsize=9.5)
            ax.set_yticks([])
            ax.spines["left"].set_visible(False)
            ax.set_ylim(0, float(pdf.max()) * 1.08)
        for ax in list(axes.flat)[len(panels):]:
            ax.set_visible(False)
        more = f" ({dropped} more in summary.csv)" if dropped else ""
        fig.supxlabel(f"parameter value{more}", fontsize=10)
        fig.supylabel("posterior density", fontsize=10)
        fig.tight_layout()
        return save(fig, path, svg=svg)


# --------------------------------------------------------------------------- forest


@dataclass
class ForestTerm:
    factor: str
    effect: str  # posterior variable, e.g. 1|gene
    table: pd.DataFrame  # level, mean, lo, hi (summary.csv's eti94), lo50, hi50; sorted by mean


def group_effect_names(tree, params) -> list[str]:
    post = tree["posterior"]
    return [e for es in params.group_effects.values() for e in es if e in post]


def forest_terms(tree, params, numbers: pd.DataFrame) -> list[ForestTerm]:
    """The forest's rows: mean and 94% ETI per level from ``numbers`` (summary.csv's table or
    :func:`estimates` with ``ci_kind="eti"``), the 50% interval from ``tree``'s draws."""
    post = tree["posterior"]
    out = []
    for factor, effects in params.group_effects.items():
        for eff in effects:
            if eff not in post:
                continue
            x = draws(tree, eff)
            x = x.reshape(x.shape[0], -1)
            levels = [str(c) for c in post[eff].coords[factor].values] if factor in post[eff].coords else [str(i) for i in range(x.shape[1])]
            rows = numbers.loc[[f"{eff}[{lev}]" for lev in levels]]
            lo50, hi50 = interval(x, INNER_PROB)
            _, c = _interval_columns(numbers)
            t = pd.DataFrame({"level": levels, "mean": rows["mean"].to_numpy(float), "lo": rows[c["eti_lb"]].to_numpy(float),
                              "hi": rows[c["eti_ub"]].to_numpy(float), "lo50": lo50, "hi50": hi50})
            out.append(ForestTerm(factor, eff, t.sort_values("mean", kind="stable").reset_index(drop=True)))
    return out


def forest(tree, params, path: Path, *, numbers: pd.DataFrame, svg: bool = False) -> list[Path]:
    """Group-level effects, one panel per term, levels sorted by their posterior mean."""
    terms = forest_terms(tree, params, numbers)
    if not terms:
        return []
    heights = [max(1.6, 0.2 * min(len(t.table), MAX_LABELLED_LEVELS) + 0.9) for t in terms]
    with figure(6.4, sum(heights) + 0.3) as fig:
        axes = fig.subplots(len(terms), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
        for ax, term in zip(axes, terms, strict=True):
            t = term.table
            y = np.arange(len(t))
            labelled = len(y) <= MAX_LABELLED_LEVELS
            ax.hlines(y, t["lo"], t["hi"], color=BLUE, lw=1)
            ax.hlines(y, t["lo50"], t["hi50"], color=BLUE, lw=3)
            ax.plot(t["mean"], y, "o", ms=4 if labelled else 2, mfc="white", mec=BLUE, mew=1.2)
            ax.axvline(0, color=GREY, lw=0.8, ls="--")
            if labelled:
                ax.set_yticks(y, list(t["level"]))
            else:
                ax.set_yticks([])
                ax.set_ylabel(f"{len(y)} levels, sorted")
            ax.set_ylim(-0.7, len(y) - 0.3)
            eff = term.effect
            coef = "intercept" if eff.startswith("1|") else eff.split("|")[0]
            ax.set_title(f"{eff} ({len(y)} levels)", loc="left")
            ax.set_xlabel(f"deviation from the population-level {coef}")
        fig.tight_layout()
        return save(fig, path, svg=svg)


# --------------------------------------------------------------------------- conditional effects


@dataclass
class Effect:
    """A conditional effect ready to draw."""

    name: str  # "Treatment" or "Treatment:Genotype"
    x: str
    by: str | None
    x_kind: str  # numeric | factor
    frame: pd.DataFrame  # columns x, by (if any), mean, lo, hi
    held: dict[str, object] = field(default_factory=dict)  # other predictors' values
    stem: str | None = None  # a smooth's own file name (conditional_smooth_<x>[_by_<f>])

    @property
    def file_stem(self) -> str:
        if self.stem:
            return self.stem
        return f"conditional_{slug(self.x)}" + (f"_x_{slug(self.by)}" if self.by else "")


def predictor_kinds(design, frame: pd.DataFrame) -> dict[str, str]:
    """Population-level predictor columns in formula order: 'numeric' or 'factor'."""
    kinds: dict[str, str] = {}
    for term in design.common.terms.values():
        if getattr(term, "kind", None) in (None, "intercept", "offset"):
            continue
        for comp in getattr(term, "components", []):
            cols = [v for v in sorted(getattr(comp, "var_names", set()) or set()) if v in frame.columns]
            for c in cols:
                col = frame[c]
                factor = getattr(comp, "kind", "") == "categoric" or not pd.api.types.is_numeric_dtype(col) or isinstance(col.dtype, pd.CategoricalDtype)
                if factor or c not in kinds:
                    kinds[c] = "factor" if factor else "numeric"
    return kinds


def effect_pairs(design, kinds: dict[str, str]) -> list[tuple[str, str | None]]:
    """Main effects of each predictor, then each two-variable interaction (numeric on x)."""
    out: list[tuple[str, str | None]] = [(v, None) for v in kinds]
    for term in design.common.terms.values():
        if getattr(term, "kind", None) != "interaction":
            continue
        vs = []
        for comp in getattr(term, "components", []):
            vs += [v for v in sorted(getattr(comp, "var_names", set()) or set()) if v in kinds and v not in vs]
        if len(vs) != 2:
            continue  # three-way interactions: hold all but two fixed is ambiguous; skipped
        a, b = vs
        if kinds[a] == "factor" and kinds[b] == "numeric":
            a, b = b, a
        if (a, b) not in out:
            out.append((a, b))
    return out


def _reference(col: pd.Series):
    """brms's defaults: the mean of a numeric column, the first level of a factor."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        return col.cat.categories[0]
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return float(col.mean())
    try:
        return sorted(col.dropna().unique())[0]
    except TypeError:
        return sorted(col.dropna().unique(), key=str)[0]


def _levels(col: pd.Series) -> list:
    if isinstance(col.dtype, pd.CategoricalDtype):
        return [c for c in col.cat.categories if (col == c).any()]
    try:
        return sorted(col.dropna().unique())
    except TypeError:
        return sorted(col.dropna().unique(), key=str)


def _reference_level(col: pd.Series, order: list[str] | None):
    """The level a factor is held at: the first of ``order`` (as the data spell it), else the first level."""
    levels = _levels(col)
    if order:
        for value in levels:
            if str(value) == str(order[0]):
                return value
    return levels[0]


def shown_as_levels(col: pd.Series, kind: str) -> bool:
    """Factors, and numeric 0/1-style indicators (a line between two codes means nothing)."""
    return kind == "factor" or col.nunique(dropna=True) <= 2


def _by_values(col: pd.Series, kind: str) -> list:
    """Values of the second variable of an interaction: its levels, or mean -1/0/+1 sd."""
    if kind == "factor":
        return _levels(col)
    uniq = np.sort(col.dropna().unique())
    if len(uniq) <= 5:  # coded predictors such as Genotype 0/1 or dose 0/3/10
        return [float(u) for u in uniq]
    m, s = float(col.mean()), float(col.std())
    return [float(f"{m - s:.3g}"), float(f"{m:.3g}"), float(f"{m + s:.3g}")]


def effect_grid(x: str, by: str | None, kinds: dict[str, str], frame: pd.DataFrame, model_columns: list[str],
                group_columns: list[str], n_grid: int = 100, orders: dict[str, list[str]] | None = None) -> tuple[pd.DataFrame, dict]:
    """New rows for one conditional effect, and the values the other columns were held at.

    A factor is held at its reference level: the one ``--reference``, ``relevel()`` or
    ``C(levels=)`` chose (``orders``, the design's level orders), else its first level.
    """
    held: dict[str, object] = {}
    base: dict[str, object] = {}
    for c in model_columns:
        if c in (x, by):
            continue
        if c in group_columns:
            # an unseen level with new_levels="zero": the population-level prediction
            base[c] = -987654321 if pd.api.types.is_numeric_dtype(frame[c]) and not isinstance(frame[c].dtype, pd.CategoricalDtype) else NEW_LEVEL
            continue
        base[c] = _reference_level(frame[c], (orders or {}).get(c)) if kinds.get(c) == "factor" else _reference(frame[c])
        if c in kinds:
            held[c] = base[c]
    xs = _levels(frame[x]) if shown_as_levels(frame[x], kinds[x]) else np.linspace(float(frame[x].min()), float(frame[x].max()), n_grid)
    bys = _by_values(frame[by], kinds[by]) if by else [None]
    rows = []
    for b in bys:
        for v in xs:
            r = dict(base)
            r[x] = v
            if by:
                r[by] = b
            rows.append(r)
    grid = pd.DataFrame(rows)
    for c in grid.columns:  # keep the fitted dtypes (formulae needs known factor levels)
        col = frame[c] if c in frame.columns else None
        if col is not None and isinstance(col.dtype, pd.CategoricalDtype) and c not in group_columns:
            grid[c] = pd.Categorical(grid[c], categories=col.cat.categories)
    return grid, held


def conditional_effects(ctx, *, n_grid: int = 100) -> list[Effect]:
    """Every main effect and two-way interaction of the population-level predictors.

    Parameters
    ----------
    ctx : hlm_cli.model.run.RunContext
        The run (a thinned posterior is enough).

    Returns
    -------
    list of Effect, on the response scale (the inverse link of the linear predictor).
    """
    from hlm_cli.model.linpred import inverse_link, linear_predictor

    built = ctx.built
    design = built.design
    frame = ctx.prepared.table.frame.reset_index(drop=True)
    kinds = predictor_kinds(design, frame)
    formula = ctx.prepared.formula
    resp = formula.response
    skip = {resp.expr, resp.se, resp.failures} - {None}
    model_columns = [c for c in frame.columns if c in formula.columns and c not in skip]
    group_columns = sorted({c for g in formula.groups for c in g.factor})
    effects = []
    pairs = [(x, by, None) for x, by in effect_pairs(design, kinds)]
    smooth_pairs: list[tuple[str, str | None, object]] = []
    for sm in formula.smooths:  # one curve per smooth (per level of its by factor), drawn first
        if (sm.x, sm.by) not in [(a, b) for a, b, _ in smooth_pairs]:
            smooth_pairs.append((sm.x, sm.by, sm))
            kinds[sm.x] = "numeric"
            if sm.by:
                kinds[sm.by] = "factor"
    covered = {(a, b) for a, b, _ in smooth_pairs}
    for x, by, sm in smooth_pairs + [p for p in pairs if (p[0], p[1]) not in covered]:
        grid, held = effect_grid(x, by, kinds, frame, model_columns, group_columns, n_grid, orders=design.levels)
        eta = linear_predictor(ctx, grid, new_levels="zero")
        mu = inverse_link(built.family, eta, ctx.tree)
        lo, hi = interval(mu)
        out = pd.DataFrame({"x": grid[x].to_numpy(), "mean": mu.mean(axis=0), "lo": lo, "hi": hi})
        if by:
            out.insert(1, "by", grid[by].to_numpy())
        x_kind = "factor" if shown_as_levels(frame[x], kinds[x]) else "numeric"
        name = sm.text if sm is not None else (f"{x}:{by}" if by else x)
        stem = None if sm is None else f"conditional_smooth_{slug(x)}" + (f"_by_{slug(by)}" if by else "")
        effects.append(Effect(name, x, by, x_kind, out, {k: v for k, v in held.items() if k not in (x, by)}, stem))
    return effects


def _scatter_points(ax, points: pd.DataFrame, px: np.ndarray, groups: list, colors: list) -> None:
    """The data behind a conditional effect, coloured like the lines when rows match a line."""
    if "by" in points and groups != [None]:
        rest = np.ones(len(points), dtype=bool)
        for g, col in zip(groups, colors, strict=True):
            m = (points["by"] == g).to_numpy()
            rest &= ~m
            ax.scatter(px[m], points["y"][m], s=10, color=col, alpha=0.45, edgecolors="none", zorder=1)
        if rest.any():  # rows between the drawn values of a continuous 'by'
            ax.scatter(px[rest], points["y"][rest], s=9, color=GREY, alpha=0.4, edgecolors="none", zorder=1)
        ax.scatter([], [], s=10, color=GREY, label="data")
        return
    ax.scatter(px, points["y"], s=9, color=GREY, alpha=0.5, edgecolors="none", label="data", zorder=1)


def conditional(effect: Effect, path: Path, *, response: str, ylabel: str, points: pd.DataFrame | None = None,
                svg: bool = False) -> list[Path]:
    """Draw one conditional effect: a line and band per group for numeric x, points+bars for factors."""
    f = effect.frame
    groups = list(dict.fromkeys(f["by"])) if effect.by else [None]
    colors = palette(len(groups)) if effect.by else [BLUE]
    with figure(6.4, 4.4) as fig:
        ax = fig.subplots()
        if effect.x_kind == "numeric":
            if points is not None and len(points):
                pc = points if len(points) <= 5000 else points.sample(5000, random_state=0)
                _scatter_points(ax, pc, pc["x"].to_numpy(dtype=float), groups, colors)
            for g, col in zip(groups, colors, strict=True):
                d = f if g is None else f[f["by"] == g]
                lab = "posterior mean" if g is None else f"{effect.by} = {fmt_value(g)}"
                if len(groups) <= 6:  # beyond that the bands hide each other: lines only
                    ax.fill_between(d["x"].astype(float), d["lo"], d["hi"], color=col, alpha=0.2, lw=0, zorder=2)
                ax.plot(d["x"].astype(float), d["mean"], color=col, lw=2, label=lab, zorder=3)
        else:
            levels = list(dict.fromkeys(f["x"]))
            pos = {lev: i for i, lev in enumerate(levels)}
            width = 0.6
            for k, (g, col) in enumerate(zip(groups, colors, strict=True)):
                d = f if g is None else f[f["by"] == g]
                shift = (k - (len(groups) - 1) / 2) * (width / max(len(groups), 1)) if len(groups) > 1 else 0.0
                xs = np.array([pos[v] for v in d["x"]]) + shift
                lab = f"posterior mean, {int(CI_PROB * 100)}% interval" if g is None else f"{effect.by} = {fmt_value(g)}"
                ax.errorbar(xs, d["mean"], yerr=[d["mean"] - d["lo"], d["hi"] - d["mean"]], fmt="o", color=col,
                            ms=6, capsize=3, lw=1.5, label=lab, zorder=3)
            if points is not None and len(points):
                rng = np.random.default_rng(0)
                px = np.array([pos.get(v, np.nan) for v in points["x"]], dtype=float)
                _scatter_points(ax, points, px + rng.uniform(-0.12, 0.12, len(px)), groups, colors)
            labels = [str(v) for v in levels]
            ax.set_xticks(range(len(levels)), labels)
            if len(levels) > 6 or max(len(t) for t in labels) > 10:  # keep long or many labels apart
                ax.tick_params(axis="x", labelrotation=40)
                for t in ax.get_xticklabels():
                    t.set_horizontalalignment("right")
            ax.set_xlim(-0.6, len(levels) - 0.4)
        ax.set_xlabel(effect.x)
        ax.set_ylabel(ylabel)
        held = ", ".join(f"{k} = {fmt_value(v)}" for k, v in effect.held.items())
        sub = f"others held at {held}; group effects at 0" if held else "group effects at 0"
        title = f"Conditional effect of {effect.x}" + (f" by {effect.by}" if effect.by else "")
        ax.set_title(f"{title}\n({sub})", fontsize=10)
        legend(ax, loc="best")
        fig.tight_layout()
        return save(fig, path, svg=svg)
