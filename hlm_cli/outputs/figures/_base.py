"""What every figure shares: the style, one way to make a figure and one way to save it.

Figures are matplotlib ``Figure`` objects on the Agg canvas (no pyplot, never a window),
made under :data:`STYLE` by :func:`figure` and written by :func:`save` through
:func:`hlm_cli.outputs.rundir.write_atomic` (a reader never sees half a PNG).
"""

from __future__ import annotations

import math
import re
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from hlm_cli.outputs.summary import CI_PROB

# CI_PROB: summary.csv's hdi94/eti94, every figure's interval width
INNER_PROB = 0.5
MAX_POINT_BARS = 600  # interval bars per point only up to this many points

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
#: The convergence and predictive-check figures: more panels, smaller type, plain layout.
DENSE = {**STYLE, "savefig.dpi": 110, "savefig.bbox": None, "axes.spines.top": True, "axes.spines.right": True}
BLUE, ORANGE, GREEN, GREY, DARK = "#1f77b4", "#d95f02", "#1b9e77", "#9a9a9a", "#222222"
KIND_COLORS = {"population": BLUE, "group_sd": ORANGE, "correlation": "#7570b3", "family": GREEN}
CHAIN_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def slug(name: str) -> str:
    """A file-name-safe version of a variable or factor name (``region:school`` -> ``region_school``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "x"


@contextmanager
def figure(w: float, h: float, *, style: dict = STYLE):
    """A matplotlib Figure (Agg canvas) under ``style``; save it with :func:`save` inside the block."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context(style):
        fig = Figure(figsize=(w, h))
        FigureCanvasAgg(fig)
        yield fig


def save(fig, path: Path, *, svg: bool = False, formats: tuple[str, ...] = ("png",)) -> list[Path]:
    """Write ``path`` in each of ``formats`` (plus SVG when ``svg``), each atomically; return
    the files written. Call it inside :func:`figure`'s block (the style applies to saving)."""
    from hlm_cli.outputs.rundir import write_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    exts = tuple(formats) + (("svg",) if svg and "svg" not in formats else ())
    out = []
    for ext in exts:
        p = path.with_suffix(f".{ext}")
        write_atomic(p, lambda fh, ext=ext: fig.savefig(fh, format=ext), binary=True)
        out.append(p)
    return out


def draws(tree, name: str, group: str = "posterior") -> np.ndarray:
    """Draws of a variable of any group as (S, ...) with S = chains * draws."""
    from hlm_cli.model.linpred import stacked

    return stacked({"posterior": tree[group]}, name)


def thin(tree, max_draws: int = 500):
    """A DataTree with at most ``max_draws`` evenly spaced draws (the shapes a figure draws
    need no more; numbers a figure prints come from all draws, see :mod:`.numbers`).

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
            own = step
            if g == "posterior_predictive" and "draw" in ds.dims and int(ds.sizes["draw"]) != int(post.sizes["draw"]):
                own = max(1, math.ceil(int(ds.sizes["chain"] * ds.sizes["draw"]) / max_draws))  # a large run's thinned predictive
            groups[g] = ds.isel(draw=slice(None, None, own)) if "draw" in ds.dims else ds
    for g in ("observed_data", "constant_data"):
        if g in tree.children:
            groups[g] = tree[g].to_dataset()
    return xr.DataTree.from_dict(groups)


def interval(x: np.ndarray, prob: float = CI_PROB, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed interval of draws along ``axis`` (for derived quantities that summary.csv lacks)."""
    lo = (1 - prob) / 2
    q = np.quantile(x, [lo, 1 - lo], axis=axis)
    return q[0], q[1]


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


def legend(ax, inside: int = 7, loc: str = "upper left", **kw) -> None:
    """Legend inside the axes (``loc``), or outside on the right when it is long."""
    handles, labels = ax.get_legend_handles_labels()
    if len(labels) <= inside:
        ax.legend(handles, labels, loc=loc, fontsize=8, **kw)
    else:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8,
                  ncols=1 if len(labels) <= 16 else 2, borderaxespad=0, **kw)


def palette(n: int):
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i) for i in range(n)]


def fmt_value(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)
