"""Figures of the identifiability check (:func:`hlm_cli.diagnostics.identifiability`).

identifiability.png
    the intercept against the mean group effect of each confounded pair (seed thread 000).
pairs.png
    pair plot of the parameters implicated in an identifiability finding.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from hlm_cli.diagnostics import IDENT_CORR
from hlm_cli.outputs.figures._base import BLUE, DARK, DENSE, draws, figure, save


def identifiability(pairs, path: Path, *, svg: bool = False, formats: tuple[str, ...] = ("png",)) -> list[Path]:
    """Scatter of each confounded pair's draws (as the answer in seed 000 plotted)."""
    n = len(pairs)
    with figure(4.2 * n, 4, style=DENSE) as fig:
        axes = np.atleast_1d(fig.subplots(1, n, squeeze=False)).ravel()
        for ax, (a, b, xa, xb, r) in zip(axes, pairs, strict=True):
            step = max(1, len(xa) // 2000)
            ax.scatter(xa[::step], xb[::step], s=4, alpha=0.4)
            ax.set_xlabel(a)
            ax.set_ylabel(b)
            ax.set_title(f"r = {r:.2f}", fontsize=10)
        fig.suptitle("posterior draws: confounded parameters trade off along a ridge", fontsize=10)
        fig.tight_layout()
        return save(fig, path, svg=svg, formats=formats)


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
            x = draws(tree, m.group(1))
            series[name] = x.reshape(x.shape[0], -1).mean(axis=1)
        elif name in post and draws(tree, name).ndim == 1:
            series[name] = draws(tree, name)
    for name in list(series):
        m = re.fullmatch(r"mean\((.+)\)", name)
        sd = f"{m.group(1)}_sigma" if m else None
        if sd and sd in post and sd not in series:
            series[sd] = draws(tree, sd)
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
    with figure(side * k + 0.4, side * k + 0.3) as fig:
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
                            fontsize=12, color="#d62728" if abs(r) >= IDENT_CORR else DARK)
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
