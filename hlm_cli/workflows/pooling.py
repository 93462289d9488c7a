"""No pooling, complete pooling and partial pooling, side by side (the slides' "did we do
better than the MLE?", seed 001).

For each level of a grouping factor: the no-pooling estimate is the level's own mean
response (with known standard errors, the precision-weighted mean: the MLE ``y_i`` itself
when a level has one row); complete pooling is the overall (precision-weighted) mean; partial
pooling is the posterior mean of the model's linear predictor averaged over the level's rows.
With a truth file (simulated data) each gets its mean squared error against the truth.
Efron & Morris (1973) show why partial pooling wins on average: it shrinks noisy level
means towards the grand mean by the right amount.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hlm_cli.errors import InputError


@dataclass
class PoolingResult:
    factor: str
    table: pd.DataFrame  # level, n, no_pooling, complete_pooling, partial_pooling[, truth]
    mse: dict[str, float] | None
    csv: Path | None = None  # written by run_pooling
    png: Path | None = None
    report: Path | None = None  # the run's report.html, when run_pooling added the figure to it


def run_pooling(run_dir: Path, *, factor: str | None = None, truth: Path | None = None,
                out: Path | None = None) -> PoolingResult:
    """``hlm pooling``: compare the estimates, write the CSV and its figure, update the report.

    Parameters
    ----------
    run_dir : Path
        An ``hlm fit --out`` directory.
    factor : str, optional
        Grouping factor (default: the one with most levels).
    truth : Path, optional
        CSV ``parameter,value`` with rows like ``mu[S01],-6.7``: adds the MSE against it.
    out : Path, optional
        CSV to write; default ``RUN_DIR/pooling_FACTOR.csv``. The PNG goes beside it. Only
        with the default is the run's report.html (if it has one) rebuilt to include them.

    Returns
    -------
    PoolingResult
        With ``csv``, ``png`` and ``report`` (None when the report was not rebuilt) set.
    """
    from hlm_cli.workflows.runs import load_run

    run_dir = Path(run_dir)
    ctx = load_run(run_dir)
    result = compare(ctx, factor=factor, truth=read_truth(truth) if truth else None)
    csv = Path(out) if out is not None else run_dir / f"pooling_{result.factor.replace(':', '_')}.csv"
    result.table.to_csv(csv, index=False, float_format="%.6g")
    result.csv = csv
    from hlm_cli.outputs.figures import pooling_estimates

    result.png = pooling_estimates(result, csv.with_suffix(".png"))
    if (run_dir / "report.html").exists() and out is None:
        from hlm_cli.outputs.report import write_report

        write_report(run_dir, tree=ctx.tree, built=ctx.built, table=ctx.prepared.table)
        result.report = run_dir / "report.html"
    return result


def read_truth(path: Path) -> dict[str, float]:
    """``parameter,value`` rows such as ``mu[S01],-6.7`` -> {"S01": -6.7}."""
    frame = pd.read_csv(path)
    if not {"parameter", "value"} <= set(frame.columns):
        raise InputError(f"{Path(path).name} needs columns parameter,value", hint="e.g. mu[S01],-6.75")
    out = {}
    for p, v in zip(frame["parameter"], frame["value"], strict=True):
        m = re.search(r"\[([^\]]+)\]$", str(p))
        if m:
            out.setdefault(m.group(1), float(v))
    return out


def compare(ctx, *, factor: str | None = None, truth: dict[str, float] | None = None) -> PoolingResult:
    """Compare the three estimates per level of ``factor`` (default: the innermost factor)."""
    from hlm_cli.model.linpred import eta_draws

    built = ctx.built
    groups = built.design.groups
    if not groups:
        raise InputError("the model has no group-level terms, so there is nothing to pool", hint="pooling compares (1|group) estimates")
    names = [g.factor for g in groups]
    if factor is None:
        g = max(groups, key=lambda g: len(g.levels))
    else:
        match = [g for g in groups if g.factor == factor or g.factor.split(":")[-1] == factor]
        if not match:
            raise InputError(f"no grouping factor {factor!r} in this model", hint="factors: " + ", ".join(names))
        g = match[0]
    d = built.design
    y = np.asarray(d.y, dtype=float)
    w = 1.0 / np.asarray(d.se, dtype=float) ** 2 if d.se is not None else np.ones_like(y)
    L = len(g.levels)
    sw = np.bincount(g.index, weights=w, minlength=L)
    no_pool = np.bincount(g.index, weights=w * y, minlength=L) / sw
    complete = float(np.sum(w * y) / np.sum(w))
    from hlm_cli.model import scale

    if scale.stores_loglik(ctx.tree):
        eta = eta_draws(ctx.tree, built).mean(axis=0)
    else:  # a large run (docs/scale.md): the mean over draws in chunks of rows, never (draws, rows)
        eta = np.empty(d.n)
        step = max(1, 20_000_000 // scale.n_draws_of(ctx.tree))
        for start in range(0, d.n, step):
            rows = np.arange(start, min(d.n, start + step))
            eta[rows] = scale.eta_rows(ctx.tree, built, rows).mean(axis=0)
    partial = np.bincount(g.index, weights=eta, minlength=L) / np.bincount(g.index, minlength=L)
    table = pd.DataFrame({
        "level": g.levels,
        "n": np.bincount(g.index, minlength=L),
        "no_pooling": no_pool,
        "complete_pooling": complete,
        "partial_pooling": partial,
    })
    mse = None
    if truth:
        key = [lev if lev in truth else lev.split(":")[-1] for lev in g.levels]
        if not all(k in truth for k in key):
            missing = next(k for k in key if k not in truth)
            raise InputError(f"the truth file has no value for level {missing!r} of {g.factor}", hint="rows like mu[LEVEL],value")
        table["truth"] = [truth[k] for k in key]
        mse = {c: float(np.mean((table[c] - table["truth"]) ** 2)) for c in ("no_pooling", "complete_pooling", "partial_pooling")}
    return PoolingResult(g.factor, table, mse)
