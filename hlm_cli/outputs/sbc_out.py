"""Files of ``hlm sbc``: the ECDF-difference figure and a small HTML page.

The tables (sbc_ranks.csv, sbc_summary.csv) are written by :mod:`hlm_cli.workflows.sbc`;
this module only draws what it computed.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np


def plot_ecdf(curves: dict, summary, path: Path) -> Path:
    """One panel per quantity: ECDF(u) - u of the fractional ranks, with the simultaneous band
    (from :func:`arviz_stats.ecdf_utils.ecdf_pit`) shaded; failing quantities in red."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    names = list(curves)
    n = len(names)
    cols = min(4, max(1, n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    verdicts = dict(zip(summary["parameter"], summary["verdict"], strict=True))
    level = float(summary["band_level"].iloc[0]) if len(summary) else 0.95
    for ax, name in zip(axes.ravel(), names, strict=False):
        c = curves[name]
        x = np.asarray(c["x"])
        ax.fill_between(x, np.asarray(c["lower"]) - x, np.asarray(c["upper"]) - x, step="post", color="0.85", lw=0)
        bad = verdicts.get(name) == "fail"
        ax.step(x, np.asarray(c["ecdf"]) - x, where="post", color="#c0392b" if bad else "#2c6fad", lw=1.4)
        ax.axhline(0, color="0.5", lw=0.6)
        ax.set_title(f"{name} ({verdicts.get(name, '')})", fontsize=9, color="#c0392b" if bad else "black")
        ax.set_xlim(0, 1)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.supxlabel("fractional rank u", fontsize=9)
    fig.supylabel("ECDF(u) - u", fontsize=9)
    fig.suptitle(f"SBC: ECDF difference of the ranks, simultaneous {level:.1%} bands (grey)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(path: Path, state: dict, summary) -> Path:
    """sbc_report.html: verdict, counts, the summary table and the figure."""
    e = html.escape
    verdict = state.get("verdict", "")
    rows = "".join(
        "<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in row) + "</tr>"
        for row in summary.itertuples(index=False)
    )
    head = "".join(f"<th>{e(c)}</th>" for c in summary.columns)
    fails = state.get("failures") or {}
    fail_list = "".join(f"<li>sim {e(k)}: {e(v)}</li>" for k, v in fails.items())
    sim_priors = state.get("simulate_priors") or {}
    mismatch = ("<p><b>The generator used other priors than the fit</b> (--simulate-prior): "
                + e(", ".join(f"{k}={v}" for k, v in sim_priors.items())) + ". A failure is expected.</p>") if sim_priors else ""
    img = f'<img src="{e(state["files"]["plot"])}" alt="ECDF difference plots" style="max-width:100%">' if "plot" in state.get("files", {}) else ""
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>hlm sbc: {e(state.get('formula', ''))}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px}}.pass{{color:#1e7b34}}.fail{{color:#c0392b}}</style></head>
<body>
<h1>Simulation-based calibration: <span class="{e(verdict)}">{e(verdict)}</span></h1>
<p><code>{e(state.get('formula', ''))}</code>, family {e(state.get('family', ''))}, data {e(state.get('data', ''))}</p>
<p>{state.get('sims')} simulations: {state.get('ok')} fitted, {state.get('failed')} failed,
{state.get('divergent_sims')} with divergent transitions (kept in the ranks, listed in sbc.json).</p>
{mismatch}
<table><tr>{head}</tr>{rows}</table>
<p>Each panel shows ECDF(u) - u of the fractional ranks of one quantity over the simulations. With a
calibrated model the curve stays inside the grey simultaneous band. A curve below zero means the true values
rank high (the posterior sits too low), above zero that they rank low (the posterior sits too high); above
then below means the posterior is too narrow, below then above that it is too wide. <code>log_lik</code> is the log-likelihood of the simulated data (Modrák et al. 2023).
The verdict is Bonferroni-corrected over the quantities (family-wise level {state.get('alpha')}).
See docs/sbc.md.</p>
{img}
{'<h2>Failed simulations</h2><ul>' + fail_list + '</ul>' if fail_list else ''}
<p style="color:#666">Command: <code>{e(state.get('command') or '')}</code></p>
</body></html>
"""
    Path(path).write_text(page, encoding="utf-8")
    return Path(path)
