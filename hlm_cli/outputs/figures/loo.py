"""``hlm loo``'s figures: Pareto k per observation and the model comparison."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hlm_cli.outputs.figures._base import DENSE, figure, save


def pareto_k(result, path: Path) -> list[Path]:
    """Pareto k against observation, one panel per model, with the thresholds drawn."""
    models = [m for m in result.models if m.pareto_k is not None]
    with figure(8, 2.6 * len(models), style=DENSE) as fig:
        axes = fig.subplots(len(models), 1, squeeze=False, sharex=False)
        for ax, m in zip(axes[:, 0], models, strict=True):
            k = m.pareto_k
            good_k = m.ktable.good_k
            colors = np.where(k > 1, "#b2182b", np.where(k > good_k, "#ef8a62", np.where(k > 0.5, "#999999", "#4d4d4d")))
            ax.scatter(np.arange(k.size), k, s=10, c=colors, linewidths=0)
            if m.refit_obs:
                ax.scatter(m.refit_obs, k[m.refit_obs], s=60, facecolors="none", edgecolors="#2166ac", label="refitted (reloo)")
                ax.legend(loc="upper right", fontsize=8, frameon=False)
            for y, style in ((min(0.5, good_k), ":"), (good_k, "--"), (1.0, "-")):
                ax.axhline(y, color="#b2182b", linestyle=style, linewidth=0.8)
            ax.set_ylabel("Pareto k")
            ax.set_title(f"{m.name}: {m.ktable.n_bad} above {good_k:.2f} (S = {m.n_samples} draws)", fontsize=10, loc="left")
        axes[-1, 0].set_xlabel("observation")
        fig.tight_layout()
        return save(fig, Path(path))


def loo_compare(result, path: Path) -> list[Path]:
    """ELPD with +-1 SE per model (filled) and the difference from the best with its SE (open)."""
    t = result.table
    names = list(t.index)
    y = np.arange(len(names))[::-1].astype(float)
    with figure(7, 1.6 + 0.6 * len(names), style=DENSE) as fig:
        ax = fig.subplots()
        ax.errorbar(t["elpd"], y, xerr=t["se"], fmt="o", color="#2166ac", label="elpd ± SE")
        best = float(t["elpd"].iloc[0])
        rest = slice(1, None)
        ax.errorbar(best + t["elpd_diff"].iloc[rest], y[rest] - 0.2, xerr=t["dse"].iloc[rest], fmt="^", color="#999999",
                    mfc="white", label="difference from best ± SE")
        ax.axvline(best, color="#999999", linestyle="--", linewidth=0.8)
        ax.set_yticks(y, names)
        ax.set_ylim(-0.7, len(names) - 0.4)
        ax.set_xlabel(result.models[0].elpd_name + " (higher is better)")
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=8, frameon=False)
        fig.tight_layout()
        return save(fig, Path(path))
