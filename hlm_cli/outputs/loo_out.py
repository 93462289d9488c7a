"""Files of ``hlm loo --out DIR``: loo.csv, compare.csv, pointwise.csv, loo.json and two plots.

The directory is written atomically (staged beside it, then renamed). An existing directory
is replaced only when it holds nothing but these files, so ``--out`` can be rerun but never
clobbers a run directory or anything else.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from hlm_cli.errors import OutputError

FILES = ("loo.csv", "compare.csv", "pointwise.csv", "loo.json", "pareto_k.png", "compare.png")


def check_out(out: Path) -> None:
    """Refuse an ``--out`` that exists and holds files other than ours (checked before any work)."""
    from hlm_cli.outputs import rundir

    out = Path(out)
    if out.exists() and out.is_dir():
        foreign = foreign_entries(out)
        if foreign:
            raise OutputError(
                f"--out {str(out)!r} exists and holds other files ({', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''})",
                hint="give a new directory, e.g. --out results/loo",
            )
        return
    rundir.check_out(out, force=False)


def foreign_entries(out: Path) -> list[str]:
    """Entries of ``out`` that ``hlm loo`` did not write (it replaces only its own files)."""
    return sorted(p.name for p in Path(out).iterdir() if p.name not in FILES or p.is_symlink() or not p.is_file())


def compare_foreign_entries(out: Path) -> list[str]:
    """What ``--force`` must not delete in the directory of ``hlm fit`` with several
    ``--formula``: anything but run directories ``m1``, ``m2``, ... and the comparison ``loo/``."""
    import re

    from hlm_cli.outputs import rundir

    foreign: list[str] = []
    for p in sorted(Path(out).iterdir(), key=lambda p: p.name):
        if p.is_symlink() or not p.is_dir():
            foreign.append(p.name)
        elif re.fullmatch(r"m\d+", p.name):
            foreign += [f"{p.name}/{e}" for e in rundir.foreign_entries(p)]
        elif p.name == "loo":
            foreign += [f"loo/{e}" for e in foreign_entries(p)]
        else:
            foreign.append(p.name + "/")
    return foreign


def loo_table(result) -> pd.DataFrame:
    """One row per model: the estimate, how it was obtained, and the Pareto k counts."""
    rows = []
    for m in result.models:
        kt = m.ktable
        rows.append({
            "model": m.name,
            "run_dir": str(m.run_dir),
            "formula": m.formula,
            "criterion": m.criterion,
            "method": m.method,
            "estimate": m.estimate,
            "n_refits": m.n_refits,
            "kfold": m.kfold,
            "group": m.group,
            "seconds": round(m.seconds, 2),
            "n_obs": m.n_obs,
            "n_samples": m.n_samples,
            "elpd": m.elpd,
            "elpd_se": m.se,
            "p": m.p,
            "p_se": m.p_se,
            "ic_name": m.ic_name,
            "ic": m.ic,
            "ic_se": m.ic_se,
            "good_k": kt.good_k if kt else None,
            "k_good": kt.counts["good"] if kt else None,
            "k_ok": kt.counts["ok"] if kt else None,
            "k_bad": kt.counts["bad"] if kt else None,
            "k_very_bad": kt.counts["very_bad"] if kt else None,
            "max_k": kt.max_k if kt else None,
        })
    return pd.DataFrame(rows)


def pointwise_table(result) -> pd.DataFrame:
    """One row per model and observation: elpd_i, p_i, the PSIS Pareto k, whether refitted
    (reloo), and the K-fold fold (0 when K-fold was not used)."""
    parts = []
    for m in result.models:
        n = m.n_obs
        refit = np.zeros(n, dtype=bool)
        refit[m.refit_obs] = True
        parts.append(pd.DataFrame({
            "model": m.name,
            "obs": np.arange(n),
            "elpd_i": m.elpd_i,
            "p_i": m.p_i,
            "pareto_k": m.pareto_k if m.pareto_k is not None else np.full(n, np.nan),
            "refit": refit,
            "fold": m.folds if m.folds is not None else np.zeros(n, dtype=int),
        }))
    return pd.concat(parts, ignore_index=True)


def compare_frame(result) -> pd.DataFrame | None:
    if result.table is None:
        return None
    return result.table.reset_index()


def write(result, out: Path) -> list[str]:
    """Write every file into ``out`` (atomically); return the names written."""
    from hlm_cli.outputs import rundir

    written: list[str] = []
    with rundir.staged(Path(out), force=True, foreign_of=foreign_entries) as stage:
        loo_table(result).to_csv(stage / "loo.csv", index=False)
        written.append("loo.csv")
        cmp = compare_frame(result)
        if cmp is not None:
            cmp.to_csv(stage / "compare.csv", index=False)
            written.append("compare.csv")
        pointwise_table(result).to_csv(stage / "pointwise.csv", index=False)
        written.append("pointwise.csv")
        (stage / "loo.json").write_text(json.dumps(result.to_json(), indent=2, allow_nan=False, default=str) + "\n")
        written.append("loo.json")
        if any(m.pareto_k is not None for m in result.models):
            pareto_k_plot(result, stage / "pareto_k.png")
            written.append("pareto_k.png")
        if result.table is not None:
            compare_plot(result, stage / "compare.png")
            written.append("compare.png")
    return written


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def pareto_k_plot(result, path: Path) -> None:
    """Pareto k against observation, one panel per model, with the thresholds drawn."""
    plt = _plt()
    models = [m for m in result.models if m.pareto_k is not None]
    fig, axes = plt.subplots(len(models), 1, figsize=(8, 2.6 * len(models)), squeeze=False, sharex=False)
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
    fig.savefig(path, dpi=110)
    plt.close(fig)


def compare_plot(result, path: Path) -> None:
    """ELPD with +-1 SE per model (filled) and the difference from the best with its SE (open)."""
    plt = _plt()
    t = result.table
    names = list(t.index)
    y = np.arange(len(names))[::-1].astype(float)
    fig, ax = plt.subplots(figsize=(7, 1.6 + 0.6 * len(names)))
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
    fig.savefig(path, dpi=110)
    plt.close(fig)
