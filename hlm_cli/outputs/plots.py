"""Figures under ``OUT/plots/``, drawn directly with matplotlib's object API.

trace.png: per top-level parameter, the marginal density of each chain and its trace;
rank.png: rank histograms per chain (Vehtari et al. 2021: flat when chains agree);
ppc.png: posterior predictive density overlay against the data (bayesplot's
ppc_dens_overlay; bars for discrete responses); forest.png: group-level effects with 94%
HDIs (a sorted caterpillar for factors with many levels); identifiability.png: the intercept
against the mean group effect when the diagnostics find them confounded (seed thread 000).

They are drawn here rather than through arviz_plots because ``hlm fit`` writes them on every
run and start-up time matters (importing and laying out arviz_plots' figures cost seconds per
fit); the statistics behind them (HDIs) still come from arviz_stats.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DPI = 110
CHAIN_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h))
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path, formats) -> list[Path]:
    out = []
    for ext in formats:
        p = Path(path).with_suffix(f".{ext}")
        fig.savefig(p, dpi=DPI)
        out.append(p)
    return out


def _draws(tree, name):
    return np.asarray(tree["posterior"][name], dtype=float)  # (chain, draw, ...)


def _scalar_series(tree, var_names, limit: int = 12):
    """(label, (chain, draw) array) for each scalar of the given variables, at most ``limit``."""
    out = []
    for v in var_names:
        if v not in tree["posterior"]:
            continue
        arr = _draws(tree, v)
        if arr.ndim == 2:
            out.append((v, arr))
        else:
            da = tree["posterior"][v]
            dim = da.dims[2]
            for i, lev in enumerate(da[dim].values):
                out.append((f"{v}[{lev}]", arr[:, :, i]))
        if len(out) >= limit:
            break
    return out[:limit]


def kde_line(x: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Gaussian KDE on a grid by linear binning and convolution (Silverman's bandwidth)."""
    x = x[np.isfinite(x)]
    if len(x) < 2 or np.ptp(x) == 0:
        return np.zeros_like(grid)
    bw = 1.06 * min(np.std(x), (np.percentile(x, 75) - np.percentile(x, 25)) / 1.34 or np.std(x)) * len(x) ** -0.2
    bw = bw if bw > 0 else np.std(x) * 0.1 + 1e-12
    from scipy.ndimage import gaussian_filter1d

    step = grid[1] - grid[0]
    hist, _ = np.histogram(x, bins=len(grid), range=(grid[0] - step / 2, grid[-1] + step / 2))
    dens = gaussian_filter1d(hist.astype(float), bw / step, mode="constant", truncate=4.0)
    total = dens.sum() * step
    return dens / total if total > 0 else dens


def trace(tree, var_names, path: Path, formats=("png",)) -> list[Path]:
    series = _scalar_series(tree, var_names)
    fig = _figure(10, 1.7 * len(series) + 0.6)
    axes = fig.subplots(len(series), 2, squeeze=False, gridspec_kw={"width_ratios": [1, 2]})
    for (label, arr), (ax_d, ax_t) in zip(series, axes, strict=True):
        lo, hi = np.percentile(arr, [0.5, 99.5])
        grid = np.linspace(lo - 0.05 * (hi - lo + 1e-12), hi + 0.05 * (hi - lo + 1e-12), 200)
        for c in range(arr.shape[0]):
            col = CHAIN_COLORS[c % len(CHAIN_COLORS)]
            ax_d.plot(grid, kde_line(arr[c], grid), color=col, lw=1)
            ax_t.plot(arr[c], color=col, lw=0.4, alpha=0.7)
        ax_d.set_ylabel(label, fontsize=9)
        ax_d.set_yticks([])
        ax_t.set_xlim(0, arr.shape[1])
        for ax in (ax_d, ax_t):
            ax.tick_params(labelsize=8)
    axes[0][0].set_title("posterior density (per chain)", fontsize=9)
    axes[0][1].set_title("trace (per chain)", fontsize=9)
    axes[-1][1].set_xlabel("draw", fontsize=9)
    fig.tight_layout()
    return _save(fig, path, formats)


def rank(tree, var_names, path: Path, formats=("png",)) -> list[Path]:
    series = _scalar_series(tree, var_names)
    ncol = min(3, len(series))
    nrow = int(np.ceil(len(series) / ncol))
    fig = _figure(3.4 * ncol, 2.2 * nrow + 0.4)
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
    return _save(fig, path, formats)


def ppc(tree, path: Path, formats=("png",), *, group="posterior_predictive", discrete=False, num_samples=100, seed=0) -> list[Path]:
    grp = tree[group]
    name = next(iter(grp.data_vars))
    raw = np.asarray(grp[name])
    raw = raw.reshape(-1, raw.shape[-1])
    obs = np.asarray(tree["observed_data"][name], dtype=float) if "observed_data" in tree.children and name in tree["observed_data"] else None
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(raw.shape[0], size=min(num_samples, raw.shape[0]), replace=False))
    # only the drawn rows in float64: the full table of a large model is gigabytes (InstEval)
    sim = raw[pick].astype(float)
    fig = _figure(7, 4)
    ax = fig.subplots()
    what = "prior predictive" if group.startswith("prior") else "posterior predictive"
    if discrete:
        allv = np.concatenate([sim.ravel(), obs if obs is not None else []])
        hi = int(np.nanpercentile(allv, 99.5)) if len(allv) else 1
        edges = np.arange(-0.5, hi + 1.5)
        counts = np.stack([np.histogram(row, bins=edges)[0] for row in sim])
        mid = np.arange(0, hi + 1)
        lo_q, hi_q = np.percentile(counts, [5, 95], axis=0)
        ax.bar(mid, np.median(counts, axis=0), color="tab:blue", alpha=0.35, label=f"{what} (median, 90% band)")
        ax.errorbar(mid, np.median(counts, axis=0), yerr=[np.median(counts, axis=0) - lo_q, hi_q - np.median(counts, axis=0)], fmt="none", color="tab:blue", lw=1)
        if obs is not None:
            ax.plot(mid, np.histogram(obs, bins=edges)[0], "o", color="k", label="observed")
        ax.set_ylabel("count")
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
    return _save(fig, path, formats)


def _hdi(arr: np.ndarray, prob: float = 0.94) -> tuple[np.ndarray, np.ndarray]:
    """HDI per column of (S, K) draws (shortest interval), vectorised over columns."""
    s = np.sort(arr, axis=0)
    n = s.shape[0]
    k = int(np.floor(prob * n))
    widths = s[k:] - s[: n - k]
    i = np.argmin(widths, axis=0)
    cols = np.arange(s.shape[1])
    return s[i, cols], s[i + k, cols]


def forest(tree, built, path: Path, formats=("png",)) -> list[Path]:
    """Group-level effects per factor: labelled rows up to 40 levels, a caterpillar beyond."""
    panels = []
    for g in built.design.groups:
        for name in g.effect_names:
            if name in tree["posterior"]:
                arr = _draws(tree, name)
                panels.append((name, g.levels, arr.reshape(-1, arr.shape[-1])))
    heights = [max(1.6, 0.22 * min(len(lv), 40) + 0.8) for _, lv, _ in panels]
    fig = _figure(7, sum(heights) + 0.3)
    axes = fig.subplots(len(panels), 1, squeeze=False, gridspec_kw={"height_ratios": heights}).ravel()
    for ax, (name, levels, S) in zip(axes, panels, strict=True):
        mean = S.mean(axis=0)
        lo, hi = _hdi(S)
        order = np.argsort(mean)
        y = np.arange(len(order))
        ax.hlines(y, lo[order], hi[order], color="tab:blue", lw=1.2 if len(order) <= 40 else 0.3)
        ax.plot(mean[order], y, "o", color="tab:blue", ms=3 if len(order) <= 40 else 1)
        ax.axvline(0, color="k", lw=0.8, ls="--")
        if len(order) <= 40:
            ax.set_yticks(y, [str(levels[i]) for i in order], fontsize=7)
        else:
            ax.set_yticks([])
            ax.set_ylabel(f"{len(order)} levels, sorted", fontsize=8)
        ax.set_title(f"{name}: mean and 94% HDI", fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    return _save(fig, path, formats)


def identifiability(pairs, path: Path, formats=("png",)) -> list[Path]:
    """Scatter of each confounded pair's draws (as the answer in seed 000 plotted)."""
    n = len(pairs)
    fig = _figure(4.2 * n, 4)
    axes = np.atleast_1d(fig.subplots(1, n, squeeze=False)).ravel()
    for ax, (a, b, xa, xb, r) in zip(axes, pairs, strict=True):
        step = max(1, len(xa) // 2000)
        ax.scatter(xa[::step], xb[::step], s=4, alpha=0.4)
        ax.set_xlabel(a)
        ax.set_ylabel(b)
        ax.set_title(f"r = {r:.2f}", fontsize=10)
    fig.suptitle("posterior draws: confounded parameters trade off along a ridge", fontsize=10)
    fig.tight_layout()
    return _save(fig, path, formats)


def figure_jobs(tree, built, plot_dir: Path, *, formats=("png",), prior=False, svg=False, forest_plot=True, bad=None) -> list:
    """(name, job) for every standard figure; each job returns the paths it wrote. ``bad``:
    the confounded pairs of :func:`hlm_cli.diagnostics.ident_pairs`, when already known."""
    formats = tuple(formats) + (("svg",) if svg and "svg" not in formats else ())
    from hlm_cli.diagnostics import IDENT_CORR, ident_pairs

    plot_dir.mkdir(parents=True, exist_ok=True)
    p = built.params
    jobs = [
        ("trace", lambda: trace(tree, p.top_level, plot_dir / "trace.png", formats)),
        ("rank", lambda: rank(tree, p.top_level, plot_dir / "rank.png", formats)),
        ("ppc", lambda: ppc(tree, plot_dir / "ppc.png", formats, discrete=built.family.discrete)),
    ]
    if built.design.groups and forest_plot:
        jobs.append(("forest", lambda: forest(tree, built, plot_dir / "forest.png", formats)))
    if prior and "prior_predictive" in tree.children:
        jobs.append(("prior_ppc", lambda: ppc(tree, plot_dir / "prior_ppc.png", formats, group="prior_predictive", discrete=built.family.discrete)))
    if bad is None:
        bad = [x for x in ident_pairs(tree, built) if abs(x[4]) >= IDENT_CORR]
    if bad:
        jobs.append(("identifiability", lambda: identifiability(bad, plot_dir / "identifiability.png", formats)))
    return jobs


def write_all(tree, built, findings, plot_dir: Path, *, formats=("png",), prior=False, svg=False, forest_plot=True) -> dict[str, str]:
    """Draw every standard figure (on two processes, see :mod:`hlm_cli.outputs.parallel`);
    a figure that fails is reported, never fatal."""
    from hlm_cli.outputs import parallel

    named = figure_jobs(tree, built, plot_dir, formats=formats, prior=prior, svg=svg, forest_plot=forest_plot)
    results = parallel.run_jobs([job for _, job in named])
    made: dict[str, str] = {}
    for (name, _), res in zip(named, results, strict=True):
        made[name] = f"failed: {res}" if isinstance(res, parallel.JobError) else str(res[0].relative_to(plot_dir.parent))
    return made
