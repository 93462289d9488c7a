"""Fit to the data: predictive density overlay, rootogram, predicted against observed.

ppc.png, prior_ppc.png
    posterior (prior) predictive density overlay against the data (bayesplot's
    ppc_dens_overlay; bars for discrete responses).
ppc_rootogram.png
    hanging rootogram of the posterior predictive counts (discrete families only; arviz_plots).
pred_vs_obs.png
    posterior predictive mean and 94% interval against each observation, with the mean
    squared error, coloured by a column (as in seed 002, Figure 11).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hlm_cli.outputs.figures._base import (
    BLUE,
    CI_PROB,
    DENSE,
    GREY,
    MAX_POINT_BARS,
    STYLE,
    figure,
    interval,
    kde_line,
    legend,
    palette,
    save,
)


def ppc(tree, path: Path, *, group: str = "posterior_predictive", discrete: bool = False, num_samples: int = 100,
        seed: int = 0, svg: bool = False, formats: tuple[str, ...] = ("png",), categories: list[str] | None = None) -> list[Path]:
    """Density (or count) overlay of ``num_samples`` simulated data sets against the data.

    ``categories``: an ordinal response's level labels (its values are the codes 1..K): one
    bar per category, labelled, including categories no row and no draw has."""
    grp = tree[group]
    name = next(iter(grp.data_vars))
    raw = np.asarray(grp[name])
    raw = raw.reshape(-1, raw.shape[-1])
    obs = np.asarray(tree["observed_data"][name], dtype=float) if "observed_data" in tree.children and name in tree["observed_data"] else None
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(raw.shape[0], size=min(num_samples, raw.shape[0]), replace=False))
    # only the drawn rows in float64: the full table of a large model is gigabytes (InstEval)
    sim = raw[pick].astype(float)
    what = "prior predictive" if group.startswith("prior") else "posterior predictive"
    obs_grp = tree["observed_data"] if "observed_data" in tree.children else None
    rows = _stored_rows(tree, obs, group)
    if rows is not None:  # a large run stores the predictive of a subset of rows (docs/scale.md)
        obs = obs[rows]
    if obs is not None and obs_grp is not None and "cens" in obs_grp and np.any(np.asarray(obs_grp["cens"]) != 0):
        cens = np.asarray(obs_grp["cens"], dtype=float)
        return censored_ppc(obs, cens if rows is None else cens[rows], sim, path, name=name, what=what, svg=svg, formats=formats)
    with figure(7, 4, style=DENSE) as fig:
        ax = fig.subplots()
        if discrete:
            allv = np.concatenate([sim.ravel(), obs if obs is not None else []])
            hi = int(np.nanpercentile(allv, 99.5)) if len(allv) else 1
            lo_v = 0
            if categories:
                lo_v, hi = 1, len(categories)
            edges = np.arange(lo_v - 0.5, hi + 1.5)
            counts = np.stack([np.histogram(row, bins=edges)[0] for row in sim])
            mid = np.arange(lo_v, hi + 1)
            med = np.median(counts, axis=0)
            tail = (1 - CI_PROB) / 2 * 100  # the same width as every other interval (94%)
            lo_q, hi_q = np.percentile(counts, [tail, 100 - tail], axis=0)
            ax.bar(mid, med, color="tab:blue", alpha=0.35, label=f"{what} (median, {CI_PROB:.0%} band)")
            ax.errorbar(mid, med, yerr=[med - lo_q, hi_q - med], fmt="none", color="tab:blue", lw=1)
            if obs is not None:
                ax.plot(mid, np.histogram(obs, bins=edges)[0], "o", color="k", label="observed")
            ax.set_ylabel("count")
            if categories:
                ax.set_xticks(mid, [str(c) for c in categories], rotation=30 if max(len(str(c)) for c in categories) > 6 else 0)
        else:
            ref = np.concatenate([sim.ravel()] + ([obs] if obs is not None else []))
            lo, hi = np.nanpercentile(ref, [0.5, 99.5])
            pad = 0.1 * (hi - lo + 1e-12)
            grid = np.linspace(lo - pad, hi + pad, 256)
            for j, row in enumerate(sim):
                ax.plot(grid, kde_line(row, grid), color="tab:blue", alpha=0.15, lw=0.8, label=f"{what} draws" if j == 0 else None)
            if obs is not None:
                ax.plot(grid, kde_line(obs, grid), color="k", lw=2, label="observed")
            ax.set_ylabel("density")
            ax.set_yticks([])
        ax.set_xlabel(name)
        ax.legend(fontsize=8, frameon=False)
        ax.set_title(f"{what} check: the data should look like a typical draw", fontsize=10)
        fig.tight_layout()
        return save(fig, path, svg=svg, formats=formats)


def kaplan_meier(time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier survival estimate: (times, S(t) just after each time), starting at (min, 1)."""
    order = np.argsort(time, kind="stable")
    t, e = np.asarray(time, dtype=float)[order], np.asarray(event, dtype=bool)[order]
    uniq = np.unique(t[e])
    s, at, surv = 1.0, [t[0] if len(t) else 0.0], [1.0]
    for u in uniq:
        n_risk = np.sum(t >= u)
        d = np.sum((t == u) & e)
        s *= 1.0 - d / n_risk
        at.append(u)
        surv.append(s)
    return np.asarray(at), np.asarray(surv)


def censored_ppc(obs: np.ndarray, cens: np.ndarray, sim: np.ndarray, path: Path, *, name: str, what: str,
                 svg: bool = False, formats: tuple[str, ...] = ("png",)) -> list[Path]:
    """PPC for a censored response. The draws are of the uncensored response. With right
    censoring only: the Kaplan-Meier curve of the data against the survival curves (1 - ECDF)
    of the draws, both estimates of P(Y > t). With left or interval censoring no such estimate
    is drawn: the ECDF of the recorded values, censored ones marked, against the draws' ECDFs,
    which the recorded values need not match where they are censored."""
    right_only = bool(np.all(np.isin(cens, (0, 1))))
    lo, hi = np.nanpercentile(np.concatenate([sim.ravel(), obs]), [0.5, 99.5])
    span = float(np.max(obs) - np.min(obs)) or 1.0
    # the data's range (and as much again): wide prior draws would squeeze the data to a line
    lo, hi = max(lo, float(np.min(obs)) - span), min(hi, float(np.max(obs)) + span)
    with figure(7, 4, style=DENSE) as fig:
        ax = fig.subplots()
        for j, row in enumerate(sim):
            x = np.sort(row)
            y = 1.0 - np.arange(1, len(x) + 1) / len(x) if right_only else np.arange(1, len(x) + 1) / len(x)
            ax.step(x, y, where="post", color="tab:blue", alpha=0.15, lw=0.8, label=f"{what} draws (uncensored)" if j == 0 else None)
        if right_only:
            at, surv = kaplan_meier(obs, cens == 0)
            ax.step(at, surv, where="post", color="k", lw=2, label="Kaplan-Meier estimate of the data")
            # censored times as ticks on the curve
            idx = np.searchsorted(at, obs[cens == 1], side="right") - 1
            ax.plot(obs[cens == 1], surv[np.clip(idx, 0, len(surv) - 1)], "|", color="k", ms=8, label="right-censored")
            ax.set_ylabel("P(Y > t)")
            title = f"{what} check for censored data: the Kaplan-Meier curve should look like a typical draw"
        else:
            x = np.sort(obs)
            ecdf = np.arange(1, len(x) + 1) / len(x)
            ax.step(x, ecdf, where="post", color="k", lw=2, label="recorded values (censored ones are bounds)")
            order = np.argsort(obs, kind="stable")
            for code, marker, label in ((-1, "<", "left-censored"), (1, ">", "right-censored"), (2, "|", "interval (lower end)")):
                m = cens[order] == code
                if m.any():
                    ax.plot(x[m], ecdf[m], marker, color="tab:red", ms=5, ls="none", label=label)
            ax.set_ylabel("ECDF")
            title = f"{what} check: ECDF; censored values are bounds, not values, so the black curve is only a guide there"
        ax.set_xlim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
        ax.set_xlabel(name)
        ax.legend(fontsize=8, frameon=False)
        ax.set_title(title, fontsize=9)
        fig.tight_layout()
        return save(fig, path, svg=svg, formats=formats)


def _stored_rows(tree, obs, group: str = "posterior_predictive"):
    """The observed rows a large run's thinned predictive holds (None: all of them)."""
    from hlm_cli.model.scale import ppc_rows

    return None if obs is None else ppc_rows(tree, len(obs), group)


def rootogram(tree, path: Path, *, svg: bool = False, group: str = "posterior_predictive") -> list[Path]:
    """Hanging rootogram of predicted against observed counts (arviz_plots)."""
    import arviz_plots as azp
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import xarray as xr

    # arviz_plots refuses float-typed counts (a sampler may store them as float)
    counts = {g: tree[g].to_dataset().map(lambda v: np.rint(v).astype(np.int64)) for g in (group, "observed_data")}
    rows = _stored_rows(tree, np.asarray(tree["observed_data"][next(iter(tree["observed_data"].data_vars))]), group)
    if rows is not None:  # a large run: the rows its predictive holds
        counts["observed_data"] = counts["observed_data"].isel(__obs__=rows)
    with matplotlib.rc_context(STYLE):
        pc = azp.plot_ppc_rootogram(xr.DataTree.from_dict(counts), group=group, backend="matplotlib")
        fig = pc.viz["chart"].item() if hasattr(pc, "viz") and "chart" in pc.viz else plt.gcf()
        try:
            return save(fig, path, svg=svg)
        finally:
            plt.close("all")


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
    sims = np.asarray(tree["posterior_predictive"][response])
    sims = sims.reshape(sims.shape[0] * sims.shape[1], -1)
    y = np.asarray(tree["observed_data"][response]).ravel().astype(float)
    rows = _stored_rows(tree, y)
    if rows is not None:  # a large run: the rows its predictive holds
        y = y[rows]
    lo, hi = interval(sims)
    return Predictions(y, sims.mean(axis=0), lo, hi)


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


def pred_vs_obs(pred: Predictions, path: Path, *, response: str, color: pd.Series | None = None,
                color_label: str | None = None, svg: bool = False) -> list[Path]:
    """Posterior predictive mean (94% interval bars) against the observed response."""
    kind, cvals, levels = _color_spec(color)
    n = len(pred.observed)
    with figure(6.4, 5.2) as fig:
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
            for lev, col in zip(levels, palette(len(levels)), strict=True):
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
        legend(ax)
        fig.tight_layout()
        return save(fig, path, svg=svg)
