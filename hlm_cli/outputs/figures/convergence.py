"""Convergence: trace.png and rank.png of the top-level parameters.

trace.png: per parameter, the marginal density of each chain and its trace; rank.png: rank
histograms per chain (Vehtari et al. 2021: flat when chains agree). Drawn by hand rather
than with arviz_plots' ``plot_trace_dist``/``plot_rank``: on the cell-line posterior (4
parameters, 4 x 1000 draws) the pair took 2.1-2.5 s here against 3.2-3.6 s with
arviz_plots, and one colour per chain reads better than arviz_plots' one colour per
variable with a line style per chain (docs/report.md has the measurement).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hlm_cli.outputs.figures._base import CHAIN_COLORS, DENSE, figure, kde_line, save


def scalar_series(tree, var_names, limit: int = 12) -> list[tuple[str, np.ndarray]]:
    """(label, (chain, draw) array) for each scalar of the given variables, at most ``limit``."""
    out = []
    post = tree["posterior"]
    for v in var_names:
        if v not in post:
            continue
        arr = np.asarray(post[v], dtype=float)
        if arr.ndim == 2:
            out.append((v, arr))
        else:
            dim = post[v].dims[2]
            for i, lev in enumerate(post[v][dim].values):
                out.append((f"{v}[{lev}]", arr[:, :, i]))
        if len(out) >= limit:
            break
    return out[:limit]


def wrap_label(label: str, width: int = 16) -> str:
    """A long parameter name on two lines at its '|' (``cor(Intercept,Days`` / ``|Subject)``),
    so that a y-axis label is not cut off at the figure's edge."""
    if len(label) <= width or "|" not in label:
        return label
    head, tail = label.split("|", 1)
    return f"{head}\n|{tail}"


def trace(tree, var_names, path: Path, *, svg: bool = False, formats: tuple[str, ...] = ("png",)) -> list[Path]:
    series = scalar_series(tree, var_names)
    with figure(10, 1.7 * len(series) + 0.6, style=DENSE) as fig:
        axes = fig.subplots(len(series), 2, squeeze=False, gridspec_kw={"width_ratios": [1, 2]})
        for (label, arr), (ax_d, ax_t) in zip(series, axes, strict=True):
            lo, hi = np.percentile(arr, [0.5, 99.5])
            grid = np.linspace(lo - 0.05 * (hi - lo + 1e-12), hi + 0.05 * (hi - lo + 1e-12), 200)
            for c in range(arr.shape[0]):
                col = CHAIN_COLORS[c % len(CHAIN_COLORS)]
                ax_d.plot(grid, kde_line(arr[c], grid), color=col, lw=1)
                ax_t.plot(arr[c], color=col, lw=0.4, alpha=0.7)
            ax_d.set_ylabel(wrap_label(label), fontsize=9)
            ax_d.set_yticks([])
            ax_t.set_xlim(0, arr.shape[1])
            for ax in (ax_d, ax_t):
                ax.tick_params(labelsize=8)
        axes[0][0].set_title("posterior density (per chain)", fontsize=9)
        axes[0][1].set_title("trace (per chain)", fontsize=9)
        axes[-1][1].set_xlabel("draw", fontsize=9)
        fig.tight_layout()
        return save(fig, path, svg=svg, formats=formats)


def rank(tree, var_names, path: Path, *, svg: bool = False, formats: tuple[str, ...] = ("png",)) -> list[Path]:
    series = scalar_series(tree, var_names)
    ncol = min(3, len(series))
    nrow = int(np.ceil(len(series) / ncol))
    with figure(3.4 * ncol, 2.2 * nrow + 0.4, style=DENSE) as fig:
        axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
        for ax, (label, arr) in zip(axes, series, strict=False):
            C, D = arr.shape
            ranks = np.argsort(np.argsort(arr.ravel())).reshape(C, D)
            bins = np.linspace(0, C * D, 21)
            for c in range(C):
                h, _ = np.histogram(ranks[c], bins=bins)
                ax.step(bins[:-1], h, where="post", color=CHAIN_COLORS[c % len(CHAIN_COLORS)], lw=1)
            ax.axhline(D / 20, color="k", ls="--", lw=0.8)
            ax.set_title(label, fontsize=9)
            ax.set_yticks([])
            ax.tick_params(labelsize=7)
        for ax in axes[len(series):]:
            ax.set_visible(False)
        fig.suptitle("rank plots: flat, overlapping histograms mean the chains agree", fontsize=9)
        fig.tight_layout()
        return save(fig, path, svg=svg, formats=formats)


__all__ = ["rank", "scalar_series", "trace"]
