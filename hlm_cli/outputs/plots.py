"""Figures under ``OUT/plots/``, drawn with arviz_plots (matplotlib backend).

trace.png: trace and marginal density of every top-level parameter; ppc.png: posterior
predictive density overlay against the data (bayesplot's ppc_dens_overlay); forest.png:
group-level effects with 94% intervals; identifiability.png: the intercept against the mean
group effect, drawn when the diagnostics find them confounded (seed thread 000).
"""

from __future__ import annotations

import warnings
from pathlib import Path


def _mpl():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(pc, path: Path, formats: tuple[str, ...]) -> list[Path]:
    out = []
    for ext in formats:
        p = path.with_suffix(f".{ext}")
        pc.savefig(p, dpi=110) if hasattr(pc, "savefig") else None
        out.append(p)
    return out


def trace(tree, var_names, path: Path, formats=("png",)) -> list[Path]:
    import arviz_plots as azp

    pc = azp.plot_trace_dist(tree, var_names=var_names, backend="matplotlib")
    return _save(pc, path, formats)


def rank(tree, var_names, path: Path, formats=("png",)) -> list[Path]:
    import arviz_plots as azp

    pc = azp.plot_rank(tree, var_names=var_names, backend="matplotlib")
    return _save(pc, path, formats)


def ppc(tree, path: Path, formats=("png",), *, group="posterior_predictive", discrete=False) -> list[Path]:
    import arviz_plots as azp

    kind = "hist" if discrete else "kde"
    pc = azp.plot_ppc_dist(tree, kind=kind, num_samples=100, group=group, backend="matplotlib")
    return _save(pc, path, formats)


def forest(tree, var_names, path: Path, formats=("png",)) -> list[Path]:
    import arviz_plots as azp

    pc = azp.plot_forest(tree, var_names=var_names, combined=True, backend="matplotlib")
    return _save(pc, path, formats)


def identifiability(pairs, path: Path, formats=("png",)) -> list[Path]:
    """Scatter of each confounded pair's draws (as the answer in seed 000 plotted)."""
    plt = _mpl()
    n = len(pairs)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4), squeeze=False)
    for ax, (a, b, xa, xb, r) in zip(axes[0], pairs, strict=True):
        step = max(1, len(xa) // 2000)
        ax.scatter(xa[::step], xb[::step], s=4, alpha=0.4)
        ax.set_xlabel(a)
        ax.set_ylabel(b)
        ax.set_title(f"r = {r:.2f}")
    fig.suptitle("Posterior draws: intercept vs mean group effect")
    fig.tight_layout()
    out = []
    for ext in formats:
        p = path.with_suffix(f".{ext}")
        fig.savefig(p, dpi=110)
        out.append(p)
    plt.close(fig)
    return out


def write_all(tree, built, findings, plot_dir: Path, *, formats=("png",), prior=False) -> dict[str, str]:
    """Draw every standard figure; a figure that fails is skipped, never fatal."""
    from hlm_cli.diagnostics import IDENT_CORR, ident_pairs

    plt = _mpl()
    plot_dir.mkdir(parents=True, exist_ok=True)
    made: dict[str, str] = {}
    p = built.params
    jobs = [
        ("trace", lambda: trace(tree, p.top_level, plot_dir / "trace.png", formats)),
        ("rank", lambda: rank(tree, p.top_level, plot_dir / "rank.png", formats)),
        ("ppc", lambda: ppc(tree, plot_dir / "ppc.png", formats, discrete=built.family.discrete)),
    ]
    effects = [v for vs in p.group_effects.values() for v in vs]
    if effects:
        jobs.append(("forest", lambda: forest(tree, effects, plot_dir / "forest.png", formats)))
    if prior and "prior_predictive" in tree.children:
        jobs.append(("prior_ppc", lambda: ppc(tree, plot_dir / "prior_ppc.png", formats, group="prior_predictive", discrete=built.family.discrete)))
    bad = [x for x in ident_pairs(tree, built) if abs(x[4]) >= IDENT_CORR]
    if bad:
        jobs.append(("identifiability", lambda: identifiability(bad, plot_dir / "identifiability.png", formats)))
    for name, job in jobs:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                paths = job()
            made[name] = str(paths[0].relative_to(plot_dir.parent))
        except Exception as err:  # a figure must never sink a fit
            made[name] = f"failed: {type(err).__name__}: {err}"
        finally:
            plt.close("all")
    return made
