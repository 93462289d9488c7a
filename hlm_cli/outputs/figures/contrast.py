"""``hlm contrast``'s figure: each contrast's mean and HDI per level, the ROPE shaded, 0 marked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hlm_cli.outputs.figures._base import CI_PROB, DENSE, figure, save


def contrast(table: pd.DataFrame, path: Path, *, identity: bool, shade_rope: bool = True) -> Path:
    """Forest plot of each contrast (``table``: :func:`hlm_cli.workflows.contrast.summarize`'s
    rows: term, contrast, level, scale, mean, lower, upper, ci_prob, rope_lower, rope_upper),
    one panel per scale (response, and link unless ``identity``); written atomically."""
    scales = ["response"] if identity else ["response", "link"]
    n = len(table[table["scale"] == "response"])
    with figure(5.5 * len(scales), 1.0 + 0.38 * n, style=DENSE) as fig:
        axes = fig.subplots(1, len(scales), squeeze=False)
        for ax, scale in zip(axes[0], scales, strict=True):
            sub = table[table["scale"] == scale].reset_index(drop=True)
            y = np.arange(len(sub))[::-1]
            labels = [f"{r.contrast} | {r.level}" if sub["contrast"].nunique() > 1 else str(r.level) for r in sub.itertuples()]
            if shade_rope and sub["rope_lower"].notna().any():
                ax.axvspan(float(sub["rope_lower"].iloc[0]), float(sub["rope_upper"].iloc[0]), color="0.85", zorder=0, label="ROPE")
            ax.axvline(0, color="0.4", lw=0.8, ls="--", zorder=1)
            ax.hlines(y, sub["lower"], sub["upper"], color="C0", lw=2, zorder=2)
            ax.plot(sub["mean"], y, "o", color="C0", zorder=3)
            ax.set_yticks(y, labels)
            prob = float(sub["ci_prob"].iloc[0]) if len(sub) else CI_PROB
            title = table["term"].iloc[0] + (f": {sub['contrast'].iloc[0]}" if sub["contrast"].nunique() == 1 else "")
            ax.set_title(f"{title} ({scale} scale)" if not identity else title, fontsize=10)
            ax.set_xlabel(f"difference (mean and {prob:.0%} HDI)")
        fig.tight_layout()
        return save(fig, Path(path))[0]
