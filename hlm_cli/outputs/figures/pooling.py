"""Pooling: how far the model pulls each group towards the population.

shrinkage_<factor>.png
    each group's own sample mean (no pooling) against the model's estimate for that group
    (partial pooling), with the population-level mean (complete pooling), as in seed 001.
pooling_<factor>.png (``hlm pooling``)
    no-pooling and partial-pooling estimates per level, arrows showing the shrinkage, and
    the truth when known: :func:`pooling_estimates`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hlm_cli.outputs.figures._base import (
    BLUE,
    CI_PROB,
    DARK,
    DENSE,
    GREY,
    MAX_POINT_BARS,
    figure,
    interval,
    legend,
    palette,
    save,
)


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
    lo, hi = interval(draws)
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
    with figure(6.4, 5.4) as fig:
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
            colors = palette(len(parents)) if len(parents) <= 20 else None
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
        sizes_txt = f"{n_lo} row{'s' if n_lo != 1 else ''} each" if n_lo == n_hi else f"{n_lo} to {n_hi} rows per level; larger points = more rows"
        ax.set_title(f"Shrinkage of {data.factor}: {L} levels ({sizes_txt})", fontsize=10)
        legend(ax, markerscale=0.6)
        fig.tight_layout()
        return save(fig, path, svg=svg)


def pooling_estimates(result, path: Path) -> Path:
    """``hlm pooling``'s figure: estimates per level, no pooling against partial pooling
    (arrows show the shrinkage), complete pooling dashed, the truth as crosses when known.

    ``result``: :class:`hlm_cli.workflows.pooling.PoolingResult` (factor, table with level,
    no_pooling, complete_pooling, partial_pooling[, truth]; mse).
    """
    t = result.table.sort_values("no_pooling").reset_index(drop=True)
    with figure(7, max(3, 0.18 * len(t) + 1.5), style=DENSE) as fig:
        ax = fig.subplots()
        ypos = np.arange(len(t))
        ax.scatter(t["no_pooling"], ypos, label="no pooling (level mean)", color="tab:gray", zorder=3)
        ax.scatter(t["partial_pooling"], ypos, label="partial pooling (model)", color="tab:blue", zorder=3)
        for i, r in t.iterrows():
            ax.annotate("", xy=(r.partial_pooling, i), xytext=(r.no_pooling, i), arrowprops={"arrowstyle": "->", "color": "tab:blue", "alpha": 0.5})
        if "truth" in t:
            ax.scatter(t["truth"], ypos, marker="x", color="tab:red", label="truth", zorder=4)
        ax.axvline(t["complete_pooling"].iloc[0], color="k", ls="--", lw=1, label="complete pooling (grand mean)")
        ax.set_yticks(ypos, t["level"], fontsize=7)
        ax.set_xlabel("estimate")
        title = f"Shrinkage by {result.factor}"
        if result.mse:
            title += "\nMSE vs truth: " + ", ".join(f"{k.replace('_', ' ')} {v:.3g}" for k, v in result.mse.items())
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8, loc="best", frameon=True)
        fig.tight_layout()
        return save(fig, Path(path))[0]
