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
        if any(x.subsample for x in result.models):  # subsampled PSIS-LOO of a large run (docs/scale.md)
            rows[-1]["subsample_size"] = (m.subsample or {}).get("subsample_size")
            rows[-1]["subsampling_se"] = (m.subsample or {}).get("subsampling_se")
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
    from hlm_cli.outputs import figures, rundir

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
            figures.pareto_k(result, stage / "pareto_k.png")
            written.append("pareto_k.png")
        if result.table is not None:
            figures.loo_compare(result, stage / "compare.png")
            written.append("compare.png")
    return written
