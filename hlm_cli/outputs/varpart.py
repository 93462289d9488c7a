"""Variance fractions of a fitted model (STAND-IN written by the screens helper).

The "varpart" helper owns this module; this stand-in only implements the shared contract
(``fractions_from_run``, ``plot_violin``) so that ``hlm batch --by`` can be tested before the
merge. The lead keeps varpart's version.

Per posterior draw: the variance of the population-level linear predictor over the rows
(``fixed``), each grouping factor's variance (the sum of its columns' SD^2), and the residual
variance (``sigma^2``, gaussian/t families); fractions are each one over their sum.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


def _fixed_draws(run_dir: Path, info: dict, post) -> np.ndarray | None:
    from hlm_cli import data as data_mod
    from hlm_cli.formula import parse
    from hlm_cli.formula.design import _design

    cfg = info.get("config") or {}
    table = data_mod.load_table(Path((info.get("data") or {}).get("file") or cfg["data"]), sep=cfg.get("sep"))
    formula = parse(info["formula"], [str(c) for c in table.frame.columns])
    frame = table.frame.dropna(subset=[c for c in formula.columns if c in table.frame.columns]).reset_index(drop=True)
    common = _design(formula.fixed, frame, "population-level design")
    if common is None:
        return None
    X = np.asarray(common.design_matrix, dtype=float)
    eta = None
    for name, sl in common.slices.items():
        if name == "Intercept" or name not in post:
            continue
        b = np.asarray(post[name].stack(s=("chain", "draw")).transpose("s", ...)).reshape(-1, sl.stop - sl.start)
        part = b @ X[:, sl].T  # (S, n)
        eta = part if eta is None else eta + part
    return None if eta is None else eta.var(axis=1)


def fractions_from_run(run_dir: Path, ci: float = 0.95) -> pd.DataFrame:
    """``component, mean, lower, upper``: one row per grouping factor, ``fixed`` and ``residual``."""
    import xarray as xr

    run_dir = Path(run_dir)
    info = json.loads((run_dir / "run.json").read_text())
    params = info.get("parameters") or {}
    with xr.open_dataset(run_dir / "posterior.nc", group="posterior") as post:
        post = post.load()
    S = post.sizes["chain"] * post.sizes["draw"]
    comps: dict[str, np.ndarray] = {}
    fixed = _fixed_draws(run_dir, info, post)
    comps["fixed"] = np.zeros(S) if fixed is None else fixed
    for factor, sds in (params.get("group_sds") or {}).items():
        total = np.zeros(S)
        for v in sds:
            if v in post:
                total = total + (np.asarray(post[v]).reshape(S, -1) ** 2).sum(axis=1)
        comps[factor] = total
    if "sigma" in post and post["sigma"].ndim == 2:
        comps["residual"] = np.asarray(post["sigma"]).reshape(S) ** 2
    total = sum(comps.values())
    lo, hi = (1 - ci) / 2, 1 - (1 - ci) / 2
    rows = []
    for name, v in comps.items():
        f = v / np.where(total > 0, total, np.nan)
        rows.append({"component": name, "mean": float(np.nanmean(f)), "lower": float(np.nanquantile(f, lo)),
                     "upper": float(np.nanquantile(f, hi))})
    return pd.DataFrame(rows, columns=["component", "mean", "lower", "upper"])


def plot_violin(table: pd.DataFrame, path: Path) -> Path:
    """Violins of the per-feature mean fraction of each component (variancePartition's order:
    by median, largest first, residual last)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    med = table.groupby("component")["mean"].median().sort_values(ascending=False)
    order = [c for c in med.index if c != "residual"] + (["residual"] if "residual" in med.index else [])
    data = [table.loc[table["component"] == c, "mean"].to_numpy(dtype=float) for c in order]
    fig, ax = plt.subplots(figsize=(1.3 * len(order) + 2, 3.8))
    ax.violinplot(data, showmedians=True)
    ax.set_xticks(range(1, len(order) + 1), order)
    ax.set_ylabel("fraction of variance")
    ax.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
