"""The report's own figures, drawn with matplotlib under ``OUT/plots/``.

Each figure has two halves: a function that computes what is drawn from the posterior (plain
numpy/pandas, testable without matplotlib) and a function that draws it. The figures:

posteriors.png
    densities of the population-level effects, group-level SDs and family parameters.
forest.png
    every group-level effect per grouping factor, sorted, with 50% and 94% intervals
    (replaces the arviz forest of :mod:`hlm_cli.outputs.plots`: one panel per term).
ppc_rootogram.png
    hanging rootogram of the posterior predictive counts (discrete families only).
pred_vs_obs.png
    posterior predictive mean and 94% interval against each observation, with the mean
    squared error, coloured by a column (as in seed 002, Figure 11).
shrinkage_<factor>.png
    each group's own sample mean (no pooling) against the model's estimate for that group
    (partial pooling), with the population-level mean (complete pooling), as in seed 001.
pairs.png
    pair plot of the parameters implicated in an identifiability finding.
conditional_<x>.png, conditional_<x>_x_<by>.png
    conditional effects of each population-level predictor and two-way interaction, as
    brms's ``conditional_effects``: other numeric predictors at their mean, factors at their
    reference level, group effects at 0.
"""

from __future__ import annotations

import math
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

CI_PROB = 0.94  # the project's interval width (summary.csv: hdi94/eti94)
INNER_PROB = 0.5
MAX_LABELLED_LEVELS = 60  # forest panels beyond this become an unlabelled caterpillar
MAX_POINT_BARS = 600
MAX_PANELS = 48  # density panels in posteriors.png (factor terms can have many columns)  # interval bars per point only up to this many points
NEW_LEVEL = "__hlm_new_level__"
_LO, _HI = (1 - CI_PROB) / 2, 1 - (1 - CI_PROB) / 2

STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "figure.dpi": 100,
    "savefig.dpi": 130,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.08,
    "svg.fonttype": "none",  # text stays text in SVGs (editable in Inkscape/Illustrator)
}
BLUE, ORANGE, GREEN, GREY, DARK = "#1f77b4", "#d95f02", "#1b9e77", "#9a9a9a", "#222222"
KIND_COLORS = {"population": BLUE, "group_sd": ORANGE, "correlation": "#7570b3", "family": GREEN}


def slug(name: str) -> str:
    """A file-name-safe version of a variable or factor name (``region:school`` -> ``region_school``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "x"


@contextmanager
def _figure(*args, **kwargs):
    """A matplotlib figure under the report style (Agg backend, never a window)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    with plt.rc_context(STYLE):
        fig = plt.figure(*args, **kwargs)
        try:
            yield fig
        finally:
            plt.close(fig)


def save(fig, path: Path, *, svg: bool = False) -> list[Path]:
    """Write ``path`` as PNG (and SVG beside it when asked); return the files written."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = []
    with plt.rc_context(STYLE):
        for ext in ("png", "svg") if svg else ("png",):
            p = path.with_suffix(f".{ext}")
            fig.savefig(p, format=ext)
            out.append(p)
    return out


def stacked(tree, name: str, group: str = "posterior") -> np.ndarray:
    """Draws of a variable as (S, ...) with S = chains * draws."""
    arr = np.asarray(tree[group][name])
    return arr.reshape((arr.shape[0] * arr.shape[1],) + arr.shape[2:])


def thin(tree, max_draws: int = 500):
    """A DataTree with at most ``max_draws`` evenly spaced draws (figures need no more).

    Keeps the posterior, predictive and observed groups; thinning by a fixed stride keeps
    every chain's draws in order.
    """
    import xarray as xr

    post = tree["posterior"]
    total = int(post.sizes["chain"] * post.sizes["draw"])
    step = max(1, math.ceil(total / max_draws))
    groups = {}
    for g in ("posterior", "posterior_predictive", "prior_predictive", "prior", "sample_stats"):
        if g in tree.children:
            ds = tree[g].to_dataset()
            groups[g] = ds.isel(draw=slice(None, None, step)) if "draw" in ds.dims else ds
    for g in ("observed_data", "constant_data"):
        if g in tree.children:
            groups[g] = tree[g].to_dataset()
    return xr.DataTree.from_dict(groups)


def _interval(x: np.ndarray, prob: float = CI_PROB, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    lo = (1 - prob) / 2
    q = np.quantile(x, [lo, 1 - lo], axis=axis)
    return q[0], q[1]


# --------------------------------------------------------------------------- posteriors


def sd_label(name: str) -> str:
    """lme4/brms's name for a group-level SD: ``1|gene_sigma`` -> ``sd(Intercept|gene)``."""
    return f"sd({name.removesuffix('_sigma').replace('1|', 'Intercept|', 1)})"


@dataclass
class Panel:
    label: str
    kind: str  # population, group_sd, family
    draws: np.ndarray  # (S,)


def posterior_panels(tree, params) -> list[Panel]:
    """One panel per scalar population-level effect, group-level SD and family parameter."""
    panels: list[Panel] = []
    post = tree["posterior"]
    kinds = [("population", params.population), ("group_sd", [v for vs in params.group_sds.values() for v in vs]), ("family", params.family)]
    for kind, names in kinds:
        for v in names:
            if v not in post:
                continue
            x = stacked(tree, v)
            if x.ndim == 1:
                panels.append(Panel(sd_label(v) if kind == "group_sd" else v, kind, x))
                continue
            extra = [d for d in post[v].dims if d not in ("chain", "draw")]
            coords = [str(c) for c in post[v].coords[extra[0]].values] if extra else []
            flat = x.reshape(x.shape[0], -1)
            for j in range(flat.shape[1]):
                lab = coords[j] if j < len(coords) else str(j)
                panels.append(Panel(f"{v}[{lab}]", kind, flat[:, j]))
    return panels


def posteriors(tree, params, path: Path, *, svg: bool = False) -> list[Path]:
    """Posterior densities with the 94% HDI shaded and the mean marked."""
    import arviz_stats as azs

    panels = posterior_panels(tree, params)
    if not panels:
        return []
    dropped = max(0, len(panels) - MAX_PANELS)
    panels = panels[:MAX_PANELS]
    ncols = min(4, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    with _figure(figsize=(3.0 * ncols, 2.2 * nrows + 0.3)) as fig:
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for ax, p in zip(axes.flat, panels, strict=False):
            color = KIND_COLORS[p.kind]
            x = p.draws[np.isfinite(p.draws)]
            grid, pdf, _ = azs.kde(x)
            grid, pdf = np.asarray(grid).ravel(), np.asarray(pdf).ravel()
            lo, hi = (float(v) for v in np.asarray(azs.hdi(x, prob=CI_PROB)).ravel()[:2])
            ax.plot(grid, pdf, color=color, lw=1.6)
            inside = (grid >= lo) & (grid <= hi)
            ax.fill_between(grid[inside], pdf[inside], color=color, alpha=0.25, lw=0)
            ax.axvline(float(np.mean(x)), color=color, lw=1, ls="-")
            if p.kind == "population" and grid.min() < 0 < grid.max():
                ax.axvline(0, color=GREY, lw=0.8, ls="--")
            ax.set_title(f"{p.label}\nmean {np.mean(x):.3g}, 94% HDI [{lo:.3g}, {hi:.3g}]", fontsize=9.5)
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


def forest(tree, params, path: Path, *, svg: bool = False) -> list[Path]:
    """Group-level effects, one panel per term, levels sorted by their posterior mean."""
    post = tree["posterior"]
    terms = [(f, e) for f, es in params.group_effects.items() for e in es if e in post]
    if not terms:
        return []
    shown = [min(int(post[e].sizes[f]) if f in post[e].sizes else stacked(tree, e).shape[1], MAX_LABELLED_LEVELS) for f, e in terms]
    heights = [max(1.6, 0.2 * n + 0.9) for n in shown]
    with _figure(figsize=(6.4, sum(heights) + 0.3)) as fig:
        axes = fig.subplots(len(terms), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
        for ax, (factor, eff) in zip(axes, terms, strict=True):
            x = stacked(tree, eff).reshape(-1, stacked(tree, eff).shape[-1])
            levels = [str(c) for c in post[eff].coords[factor].values] if factor in post[eff].coords else [str(i) for i in range(x.shape[1])]
            mean = x.mean(axis=0)
            lo, hi = _interval(x)
            lo50, hi50 = _interval(x, INNER_PROB)
            order = np.argsort(mean)
            y = np.arange(len(order))
            ax.hlines(y, lo[order], hi[order], color=BLUE, lw=1)
            ax.hlines(y, lo50[order], hi50[order], color=BLUE, lw=3)
            ax.plot(mean[order], y, "o", ms=4 if len(y) <= MAX_LABELLED_LEVELS else 2, mfc="white", mec=BLUE, mew=1.2)
            ax.axvline(0, color=GREY, lw=0.8, ls="--")
            if len(y) <= MAX_LABELLED_LEVELS:
                ax.set_yticks(y, [levels[i] for i in order])
            else:
                ax.set_yticks([])
                ax.set_ylabel(f"{len(y)} levels, sorted")
            ax.set_ylim(-0.7, len(y) - 0.3)
            coef = "intercept" if eff.startswith("1|") else eff.split("|")[0]
            ax.set_title(f"{eff} ({len(y)} levels)", loc="left")
            ax.set_xlabel(f"deviation from the population-level {coef}")
        fig.tight_layout()
        return save(fig, path, svg=svg)


# --------------------------------------------------------------------------- ppc


def rootogram(tree, path: Path, *, svg: bool = False, group: str = "posterior_predictive") -> list[Path]:
    """Hanging rootogram of predicted against observed counts (arviz_plots)."""
    import arviz_plots as azp
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import xarray as xr

    # arviz_plots refuses float-typed counts (a sampler may store them as float)
    counts = {g: tree[g].to_dataset().map(lambda v: np.rint(v).astype(np.int64)) for g in (group, "observed_data")}
    with plt.rc_context(STYLE):
        pc = azp.plot_ppc_rootogram(xr.DataTree.from_dict(counts), group=group, backend="matplotlib")
        fig = pc.viz["chart"].item() if hasattr(pc, "viz") and "chart" in pc.viz else plt.gcf()
        try:
            return save(fig, path, svg=svg)
        finally:
            plt.close("all")


# --------------------------------------------------------------------------- predicted vs observed


@dataclass
class Predictions:
    """Observed values and the posterior predictive mean and 94% interval for each."""

    observed: np.ndarray
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    @property
    def mse(self) -> float:
        return float(np.mean((self.observed - self.mean) ** 2))

    @property
    def coverage(self) -> float:
        return float(np.mean((self.observed >= self.lo) & (self.observed <= self.hi)))


def predictions(tree, response: str) -> Predictions:
    """From the ``posterior_predictive`` and ``observed_data`` groups of a run."""
    draws = stacked(tree, response, "posterior_predictive")
    draws = draws.reshape(draws.shape[0], -1)
    y = np.asarray(tree["observed_data"][response]).ravel().astype(float)
    lo, hi = _interval(draws)
    return Predictions(y, draws.mean(axis=0), lo, hi)


def _color_spec(values: pd.Series | None):
    """('none'|'numeric'|'factor', array for colours, levels)."""
    if values is None:
        return "none", None, []
    s = pd.Series(values).reset_index(drop=True)
    uniq = pd.unique(s.dropna())
    if pd.api.types.is_numeric_dtype(s) and not isinstance(s.dtype, pd.CategoricalDtype) and len(uniq) > 8:
        return "numeric", s.to_numpy(dtype=float), []
    if len(uniq) > 20:
        return "none", None, []
    if isinstance(s.dtype, pd.CategoricalDtype):
        levels = [c for c in s.cat.categories if c in set(uniq)]
    else:
        try:
            levels = sorted(uniq)
        except TypeError:
            levels = sorted(uniq, key=str)
    return "factor", s.to_numpy(), levels


def _legend(ax, inside: int = 7, loc: str = "upper left", **kw) -> None:
    """Legend inside the axes (``loc``), or outside on the right when it is long."""
    handles, labels = ax.get_legend_handles_labels()
    if len(labels) <= inside:
        ax.legend(handles, labels, loc=loc, fontsize=8, **kw)
    else:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8,
                  ncols=1 if len(labels) <= 16 else 2, borderaxespad=0, **kw)


def _palette(n: int):
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i) for i in range(n)]


def pred_vs_obs(pred: Predictions, path: Path, *, response: str, color: pd.Series | None = None,
                color_label: str | None = None, svg: bool = False) -> list[Path]:
    """Posterior predictive mean (94% interval bars) against the observed response."""
    kind, cvals, levels = _color_spec(color)
    n = len(pred.observed)
    with _figure(figsize=(6.4, 5.2)) as fig:
        ax = fig.subplots()
        lo_all = float(np.nanmin([pred.observed.min(), pred.lo.min()]))
        hi_all = float(np.nanmax([pred.observed.max(), pred.hi.max()]))
        pad = 0.03 * (hi_all - lo_all or 1.0)
        lims = (lo_all - pad, hi_all + pad)
        ax.plot(lims, lims, ls="--", color=GREY, lw=1, label="predicted = observed", zorder=1)
        if n <= MAX_POINT_BARS:
            ax.vlines(pred.observed, pred.lo, pred.hi, color="#bbbbbb", lw=0.8, zorder=2,
                      label=f"{int(CI_PROB * 100)}% predictive interval")
        size = 22 if n <= 200 else 10 if n <= 2000 else 3
        if kind == "numeric":
            sc = ax.scatter(pred.observed, pred.mean, c=cvals, cmap="viridis", s=size, zorder=3, edgecolors="none")
            cb = fig.colorbar(sc, ax=ax, pad=0.02)
            cb.set_label(color_label or "")
        elif kind == "factor":
            for lev, col in zip(levels, _palette(len(levels)), strict=True):
                m = cvals == lev
                ax.scatter(pred.observed[m], pred.mean[m], color=col, s=size, zorder=3, edgecolors="none", label=f"{color_label} = {lev}")
        else:
            ax.scatter(pred.observed, pred.mean, color=BLUE, s=size, zorder=3, edgecolors="none", label="observation")
        ax.set_xlim(lims)
        ax.set_ylim(lims)
        ax.set_aspect("equal", adjustable="box")
        ax.set_xlabel(f"observed {response}")
        ax.set_ylabel(f"predicted {response} (posterior predictive mean)")
        ax.set_title(f"MSE = {pred.mse:.3g}; {pred.coverage:.0%} of observations inside their {int(CI_PROB * 100)}% interval", fontsize=10)
        _legend(ax)
        fig.tight_layout()
        return save(fig, path, svg=svg)


# --------------------------------------------------------------------------- shrinkage


def group_means(values: np.ndarray, index: np.ndarray, n_levels: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Mean of ``values`` over the rows of each level along the last axis (weighted if given).

    ``values`` is (n,) or (S, n); the result is (L,) or (S, L). A sparse (n, L) indicator
    keeps this linear in n even for thousands of levels (InstEval: 73k rows, 4k levels).
    """
    from scipy import sparse

    n = len(index)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    indicator = sparse.csr_matrix((w, (np.arange(n), np.asarray(index))), shape=(n, n_levels))
    totals = np.asarray(indicator.sum(axis=0)).ravel()
    v = np.asarray(values, dtype=float)
    sums = np.asarray(indicator.T @ v.T).T  # sparse @ dense: (L, n) @ (n, S) -> (L, S)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / np.where(totals > 0, totals, np.nan)


@dataclass
class Shrinkage:
    factor: str
    table: pd.DataFrame  # level, n, observed, estimate, lo, hi[, parent]
    grand_mean: float
    parent: str | None = None
    adjusted: bool = False  # no-pooling means adjusted for population-level predictors


def shrinkage_data(factor: str, index: np.ndarray, levels: list[str], y: np.ndarray, mu: np.ndarray,
                   mu_pop: np.ndarray, *, trials: np.ndarray | None = None, family: str = "gaussian",
                   parent_labels: list[str] | None = None, parent: str | None = None,
                   adjusted: bool = False) -> Shrinkage:
    """No-pooling group means against partially pooled estimates for one grouping factor.

    Parameters
    ----------
    index : (n,) int
        Level of each fitted row.
    y : (n,)
        The observed response (successes for binomial).
    mu, mu_pop : (S, n)
        Draws of each row's expected response with and without the group-level effects.
    trials : (n,), optional
        Binomial trials: group values are then pooled proportions, weighted by trials.
    family : str
        ``lognormal`` works with logs (its exp(eta) is a median, so geometric means).
    adjusted : bool
        The model has population-level predictors (recorded for the axis labels).

    Notes
    -----
    Both axes are the population mean plus a group deviation from the population-level
    prediction for the group's own rows (so that predictors such as a treatment do not count
    as group differences):

    * no pooling: ``grand + mean_i(y_i - E[mu_pop_i])``, for an intercept-only model simply
      the group's sample mean (seed 001's MLE ``y_i``);
    * partial pooling: per draw ``grand_s + mean_i(mu_si - mu_pop_si)``, for an
      intercept-only model exactly ``Intercept + group effect`` (seed 001's ``mu_i``);
    * complete pooling: ``grand``, the posterior mean of the population-level prediction
      averaged over all rows.
    """
    L = len(levels)
    w = None if trials is None else np.asarray(trials, dtype=float)
    if family == "lognormal":
        fwd, back = np.log, np.exp
    else:
        fwd, back = (lambda v: v), (lambda v: v)
    yy = fwd(y / w if w is not None else y)
    mt, pt = fwd(mu), fwd(mu_pop)
    pop_mean = pt.mean(axis=0)  # (n,)
    grand_draws = np.average(pt, axis=1, weights=w)  # (S,)
    grand = float(grand_draws.mean())
    observed = back(grand + group_means(yy - pop_mean, index, L, w))
    draws = back(grand_draws[:, None] + group_means(mt - pt, index, L, w))
    lo, hi = _interval(draws)
    table = pd.DataFrame({
        "level": levels,
        "n": np.bincount(index, minlength=L),
        "observed": observed,
        "estimate": draws.mean(axis=0),
        "lo": lo,
        "hi": hi,
    })
    if parent_labels is not None:
        table["parent"] = parent_labels
    return Shrinkage(factor, table, float(back(grand)), parent, adjusted)


def shrinkage(data: Shrinkage, path: Path, *, response: str, svg: bool = False) -> list[Path]:
    """Scatter of each group's own mean against the model's partially pooled estimate."""
    t = data.table.dropna(subset=["observed", "estimate"])
    L = len(t)
    with _figure(figsize=(6.4, 5.4)) as fig:
        ax = fig.subplots()
        lo_all = float(min(t["observed"].min(), t["lo"].min() if L <= MAX_POINT_BARS else t["estimate"].min()))
        hi_all = float(max(t["observed"].max(), t["hi"].max() if L <= MAX_POINT_BARS else t["estimate"].max()))
        pad = 0.05 * (hi_all - lo_all or 1.0)
        lims = (lo_all - pad, hi_all + pad)
        ax.plot(lims, lims, ls="--", color=GREY, lw=1, label="no pooling (estimate = own mean)", zorder=1)
        ax.axhline(data.grand_mean, color=DARK, lw=1, ls=":", label=f"complete pooling (population mean {data.grand_mean:.3g})", zorder=1)
        if L <= MAX_POINT_BARS:
            ax.vlines(t["observed"], t["lo"], t["hi"], color="#bbbbbb", lw=1, zorder=2, label=f"{int(CI_PROB * 100)}% interval")
        nmax = max(int(t["n"].max()), 1)
        sizes = 12 + 88 * np.sqrt(t["n"].to_numpy() / nmax) if L <= 2000 else np.full(L, 4.0)
        if data.parent and "parent" in t:
            parents = list(dict.fromkeys(t["parent"]))
            colors = _palette(len(parents)) if len(parents) <= 20 else None
            for i, par in enumerate(parents):
                m = (t["parent"] == par).to_numpy()
                ax.scatter(t["observed"][m], t["estimate"][m], s=sizes[m], zorder=3, alpha=0.9, edgecolors="white", linewidths=0.5,
                           color=colors[i] if colors else BLUE, label=f"{data.parent} = {par}" if colors else None)
        else:
            ax.scatter(t["observed"], t["estimate"], s=sizes, color=BLUE, zorder=3, alpha=0.9, edgecolors="white", linewidths=0.5,
                       label="group (point size: rows)")
        if L <= 12:
            for _, r in t.iterrows():
                ax.annotate(str(r["level"]), (r["observed"], r["estimate"]), xytext=(5, 4), textcoords="offset points", fontsize=8, color=DARK)
        ax.set_xlim(lims)
        ax.set_ylim(lims)
        ax.set_aspect("equal", adjustable="box")
        adj = ", adjusted for the predictors" if data.adjusted else ""
        ax.set_xlabel(f"{response}: group's own mean{adj} (no pooling)")
        ax.set_ylabel(f"{response}: model estimate for the group (partial pooling)")
        n_lo, n_hi = int(t["n"].min()), int(t["n"].max())
        sizes_txt = f"{n_lo} rows each" if n_lo == n_hi else f"{n_lo} to {n_hi} rows per level; larger points = more rows"
        ax.set_title(f"Shrinkage of {data.factor}: {L} levels ({sizes_txt})", fontsize=10)
        _legend(ax, markerscale=0.6)
        fig.tight_layout()
        return save(fig, path, svg=svg)


# --------------------------------------------------------------------------- identifiability pairs


def ident_series(tree, params, findings: list[dict]) -> dict[str, np.ndarray]:
    """Draws of the parameters named by identifiability findings, plus their factors' SDs.

    ``mean(1|gene)`` (the mean of a factor's intercept effects, as diagnostics names it) is
    computed from the draws.
    """
    post = tree["posterior"]
    names: list[str] = []
    for f in findings:
        if f.get("code") == "identifiability":
            names.extend(p for p in f.get("params", []) if p not in names)
    series: dict[str, np.ndarray] = {}
    for name in names:
        m = re.fullmatch(r"mean\((.+)\)", name)
        if m and m.group(1) in post:
            x = stacked(tree, m.group(1))
            series[name] = x.reshape(x.shape[0], -1).mean(axis=1)
        elif name in post and stacked(tree, name).ndim == 1:
            series[name] = stacked(tree, name)
    for name in list(series):
        m = re.fullmatch(r"mean\((.+)\)", name)
        sd = f"{m.group(1)}_sigma" if m else None
        if sd and sd in post and sd not in series:
            series[sd] = stacked(tree, sd)
    return series


def pairs(series: dict[str, np.ndarray], path: Path, *, divergent: np.ndarray | None = None, svg: bool = False) -> list[Path]:
    """Lower triangle: scatter of draws; diagonal: histograms; upper: the correlation."""
    names = list(series)
    k = len(names)
    if k < 2:
        return []
    S = len(series[names[0]])
    step = max(1, S // 2000)
    side = min(2.4, 8.5 / k)
    with _figure(figsize=(side * k + 0.4, side * k + 0.3)) as fig:
        axes = fig.subplots(k, k, squeeze=False)
        for i in range(k):
            for j in range(k):
                ax = axes[i, j]
                xi, xj = series[names[i]], series[names[j]]
                if i == j:
                    ax.hist(xi, bins=30, color=BLUE, alpha=0.6)
                    ax.set_yticks([])
                elif i > j:
                    ax.scatter(xj[::step], xi[::step], s=3, alpha=0.35, color=BLUE, edgecolors="none")
                    if divergent is not None and divergent.any():
                        ax.scatter(xj[divergent], xi[divergent], s=8, color="#d62728", edgecolors="none", label="divergent")
                else:
                    r = float(np.corrcoef(xi, xj)[0, 1])
                    ax.text(0.5, 0.5, f"r = {r:.2f}", ha="center", va="center", transform=ax.transAxes,
                            fontsize=12, color="#d62728" if abs(r) >= 0.9 else DARK)
                    ax.set_axis_off()
                    continue
                if i == k - 1:
                    ax.set_xlabel(names[j], fontsize=9)
                else:
                    ax.set_xticklabels([])
                if j == 0 and i > 0:
                    ax.set_ylabel(names[i], fontsize=9)
                elif j > 0 and i != j:
                    ax.set_yticklabels([])
        fig.suptitle("Posterior draws of the parameters the identifiability check implicates", fontsize=10)
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

    @property
    def file_stem(self) -> str:
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


def _shown_as_levels(col: pd.Series, kind: str) -> bool:
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
                group_columns: list[str], n_grid: int = 100) -> tuple[pd.DataFrame, dict]:
    """New rows for one conditional effect, and the values the other columns were held at."""
    held: dict[str, object] = {}
    base: dict[str, object] = {}
    for c in model_columns:
        if c in (x, by):
            continue
        if c in group_columns:
            # an unseen level with new_levels="zero": the population-level prediction
            base[c] = -987654321 if pd.api.types.is_numeric_dtype(frame[c]) and not isinstance(frame[c].dtype, pd.CategoricalDtype) else NEW_LEVEL
            continue
        base[c] = _levels(frame[c])[0] if kinds.get(c) == "factor" else _reference(frame[c])
        if c in kinds:
            held[c] = base[c]
    xs = _levels(frame[x]) if _shown_as_levels(frame[x], kinds[x]) else np.linspace(float(frame[x].min()), float(frame[x].max()), n_grid)
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
    ctx : hlm_cli.model.linpred.RunContext
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
    for x, by in effect_pairs(design, kinds):
        grid, held = effect_grid(x, by, kinds, frame, model_columns, group_columns, n_grid)
        eta = linear_predictor(ctx, grid, new_levels="zero")
        mu = inverse_link(built.family, eta)
        lo, hi = _interval(mu)
        out = pd.DataFrame({"x": grid[x].to_numpy(), "mean": mu.mean(axis=0), "lo": lo, "hi": hi})
        if by:
            out.insert(1, "by", grid[by].to_numpy())
        x_kind = "factor" if _shown_as_levels(frame[x], kinds[x]) else "numeric"
        effects.append(Effect(f"{x}:{by}" if by else x, x, by, x_kind, out, {k: v for k, v in held.items() if k not in (x, by)}))
    return effects


def _fmt_value(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


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
    colors = _palette(len(groups)) if effect.by else [BLUE]
    with _figure(figsize=(6.4, 4.4)) as fig:
        ax = fig.subplots()
        if effect.x_kind == "numeric":
            if points is not None and len(points):
                pc = points if len(points) <= 5000 else points.sample(5000, random_state=0)
                _scatter_points(ax, pc, pc["x"].to_numpy(dtype=float), groups, colors)
            for g, col in zip(groups, colors, strict=True):
                d = f if g is None else f[f["by"] == g]
                lab = "posterior mean" if g is None else f"{effect.by} = {_fmt_value(g)}"
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
                lab = "posterior mean, 94% interval" if g is None else f"{effect.by} = {_fmt_value(g)}"
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
        held = ", ".join(f"{k} = {_fmt_value(v)}" for k, v in effect.held.items())
        sub = f"others held at {held}; group effects at 0" if held else "group effects at 0"
        title = f"Conditional effect of {effect.x}" + (f" by {effect.by}" if effect.by else "")
        ax.set_title(f"{title}\n({sub})", fontsize=10)
        _legend(ax, loc="best")
        fig.tight_layout()
        return save(fig, path, svg=svg)


__all__ = [
    "CI_PROB", "Effect", "Panel", "Predictions", "Shrinkage", "conditional", "conditional_effects",
    "effect_grid", "effect_pairs", "forest", "group_means", "ident_series", "pairs", "posterior_panels",
    "posteriors", "pred_vs_obs", "predictions", "predictor_kinds", "rootogram", "save", "shrinkage",
    "shrinkage_data", "slug", "stacked", "thin",
]
