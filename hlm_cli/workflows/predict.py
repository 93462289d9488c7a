"""``hlm predict``: predictions with intervals for new rows.

The new rows go through the fit's own column handling and design
(:func:`hlm_cli.model.linpred.linear_predictor`); a group level the fit never saw gets effects
drawn from the fitted group-level distribution, as brms's ``allow_new_levels = TRUE`` with
``sample_new_levels = "gaussian"``, so its interval includes the between-group spread and is
wider than a seen group's.

``--kind mean`` gives the posterior of the expected response (brms's ``posterior_epred``: a
probability for bernoulli/binomial, a rate for poisson); ``--kind response`` adds the
observation noise (``posterior_predict``). For a cumulative (ordinal) model ``mean`` is the
expected category with the categories coded 1..K, followed by one column ``p_LEVEL`` per
category (its posterior mean probability); ``response`` draws categories (codes 1..K). Intervals are equal-tailed (quantiles), as brms's
``predict()`` reports them: unlike an HDI they do not depend on the scale, so a mean interval
is the inverse link of the link-scale interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hlm_cli.errors import ConfigError, InputError, closest_match

KINDS = ("mean", "response")
OUT_COLUMNS = ("mean", "sd", "lower", "upper")
CHUNK_CELLS = 10_000_000  # draws x rows per chunk (~80 MB per array)


@dataclass
class PredictResult:
    table: pd.DataFrame  # the new rows' columns + mean, sd, lower, upper
    csv: Path
    kind: str
    interval: float
    new_levels: dict[str, list[str]] = field(default_factory=dict)  # factor -> unseen levels
    notes: list[str] = field(default_factory=list)



def check_new_rows(ctx, new: pd.DataFrame, source: str) -> None:
    """Refuse new rows the model cannot predict, naming the column, CSV line and value.

    Population-level factors (and group-term slopes) must use levels the fit saw; numeric
    predictors must be numbers; no model column may be empty. Grouping columns may hold new
    levels (those groups get drawn effects).
    """
    formula = ctx.prepared.formula
    fitted = ctx.prepared.table.frame
    resp = formula.response
    skip = {resp.expr, resp.se, resp.trials, resp.failures} if resp else set()
    used = set(formula.predictor_columns)  # includes backtick-quoted names (`cell line`)
    factors = {c for g in formula.groups for c in g.factor}
    needed = sorted((c for c in formula.columns if c not in skip and (c in used or c in factors)), key=str)
    for col in needed:
        if col not in new.columns:
            raise InputError(f"{source} has no column {col!r}, which the model needs", hint=closest_match(col, list(new.columns)))
    for col in needed:
        values = new[col]
        if values.isna().any():
            i = int(np.argmax(values.isna().to_numpy()))
            raise InputError(f"{source} has an empty {col!r} on CSV line {i + 2}", hint="every model column needs a value in every row")
        if col not in used:  # a grouping column only: any level goes
            continue
        ref = fitted[col]
        numeric = pd.api.types.is_numeric_dtype(ref) and not isinstance(ref.dtype, pd.CategoricalDtype) and not pd.api.types.is_bool_dtype(ref)
        if numeric:
            conv = pd.to_numeric(values, errors="coerce")
            bad = conv.isna().to_numpy()
            if bad.any():
                i = int(np.argmax(bad))
                raise InputError(f"{source}: {col!r} must be a number, but CSV line {i + 2} has {values.iloc[i]!r}", hint=f"{col} was numeric in the fitted data")
        else:
            known = {str(v) for v in ref.dropna().unique()}
            if isinstance(ref.dtype, pd.CategoricalDtype):
                known = {str(c) for c in ref.cat.categories}
            labels = values.astype(str).to_numpy()
            bad = ~np.isin(labels, sorted(known))
            if bad.any():
                i = int(np.argmax(bad))
                raise InputError(
                    f"{source}: {col!r} = {labels[i]!r} on CSV line {i + 2} is not a level the model was fitted with",
                    hint=closest_match(labels[i], sorted(known), what=f"levels of {col}") + "; population-level factors cannot take new levels",
                )


def unseen_levels(ctx, new: pd.DataFrame) -> dict[str, list[str]]:
    """Grouping factor -> levels in ``new`` that the fit did not see."""
    from hlm_cli.formula.design import level_labels

    out = {}
    for g in ctx.built.design.groups:
        labels = level_labels(new, g.term.factor).to_numpy()
        seen = set(g.levels)
        fresh = sorted({lab for lab in labels if lab not in seen})
        if fresh:
            out[g.factor] = fresh
    return out


def _trials(ctx, new: pd.DataFrame, kind: str, source: str) -> np.ndarray | None:
    resp = ctx.prepared.formula.response
    if not ctx.built.family.trials or kind != "response":
        return None
    if resp.trials is not None and resp.trials in new.columns:
        return pd.to_numeric(new[resp.trials], errors="coerce").to_numpy(dtype=float)
    if resp.failures is not None and resp.failures in new.columns and resp.expr in new.columns:
        return (pd.to_numeric(new[resp.expr], errors="coerce") + pd.to_numeric(new[resp.failures], errors="coerce")).to_numpy(dtype=float)
    what = resp.trials or f"{resp.expr} and {resp.failures}"
    raise InputError(f"--kind response for a binomial model needs the number of trials: {source} has no {what}", hint="add the column, or use --kind mean for the probability")


def _se(ctx, new: pd.DataFrame, kind: str, source: str) -> np.ndarray | None:
    resp = ctx.prepared.formula.response
    if resp.se is None or kind != "response":
        return None
    if resp.se not in new.columns:
        raise InputError(f"--kind response for a model with known standard errors needs column {resp.se!r} in {source}", hint="add each row's standard error, or use --kind mean")
    return pd.to_numeric(new[resp.se], errors="coerce").to_numpy(dtype=float)


def predict_draws(ctx, new: pd.DataFrame, *, kind: str = "mean", seed: int = 0, trials=None, se=None) -> np.ndarray:
    """Posterior draws (S, n) of the mean or of a new response for each new row."""
    from hlm_cli.model.linpred import inverse_link, linear_predictor, response_draws

    eta = linear_predictor(ctx, new, new_levels="sample", seed=seed)
    if kind == "mean":
        return inverse_link(ctx.built.family, eta, ctx.tree)
    return response_draws(ctx, eta, trials=trials, se=se, seed=seed + 1, frame=new)


def category_probs(ctx, new: pd.DataFrame, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An ordinal (cumulative) model's predictions for new rows: draws (S, n) of the expected
    category code E[y] (1..K), and (n, K) posterior mean probabilities of each category."""
    from hlm_cli.model.families import ordinal_probs
    from hlm_cli.model.linpred import aux_draws, linear_predictor

    eta = linear_predictor(ctx, new, new_levels="sample", seed=seed)
    p = ordinal_probs(ctx.built.family.link, eta, aux_draws(ctx.tree, "Intercept", eta.shape[0]))  # (S, n, K)
    return (p * np.arange(1, p.shape[2] + 1)).sum(axis=2), p.mean(axis=0)


def summarize(draws: np.ndarray, interval: float) -> pd.DataFrame:
    """mean, sd and the equal-tailed interval of each column of (S, n) draws."""
    import arviz_stats as azs

    lo_hi = np.asarray(azs.eti(draws, prob=interval, axis=0)).reshape(draws.shape[1], 2)
    return pd.DataFrame({"mean": draws.mean(axis=0), "sd": draws.std(axis=0, ddof=1), "lower": lo_hi[:, 0], "upper": lo_hi[:, 1]})


def run_predict(run_dir: Path, new_csv: Path, *, out: Path | None = None, kind: str = "mean", interval: float = 0.94, seed: int = 0, data: Path | None = None) -> PredictResult:
    """Predict the rows of ``new_csv`` from a fitted run and write a CSV.

    Parameters
    ----------
    run_dir : Path
        An ``hlm fit --out`` directory.
    new_csv : Path
        Rows to predict: the model's predictor and grouping columns (the response is not needed).
    out : Path, optional
        CSV to write; default ``RUN_DIR/predict_<name of new_csv>.csv``.
    kind : {"mean", "response"}
    interval : float
        Probability of the equal-tailed interval.
    seed : int
        For the effects of new groups and for response draws.
    data : Path, optional
        The fitted data file, if it moved since the fit.

    Returns
    -------
    PredictResult
    """
    from hlm_cli import data as data_mod
    from hlm_cli.workflows.contrast import check_prob, check_writable, write_csv
    from hlm_cli.workflows.runs import load_run, open_tree

    if kind not in KINDS:
        raise ConfigError(f"--kind must be 'mean' or 'response' (got {kind!r})", hint="mean: the expected response; response: a new observation")
    check_prob(interval, "--ci")
    if out is not None:
        check_writable(Path(out))
    table = data_mod.read_csv(new_csv)
    new = table.frame.reset_index(drop=True)
    source = Path(new_csv).name
    if clash := [c for c in OUT_COLUMNS if c in new.columns]:
        raise InputError(f"{source} already has a column {clash[0]!r}, which predict writes", hint="rename or drop that column")
    open_tree(run_dir)
    ctx = load_run(run_dir, data=data)
    check_new_rows(ctx, new, source)
    trials = _trials(ctx, new, kind, source)
    se = _se(ctx, new, kind, source)
    fresh = unseen_levels(ctx, new)
    S = int(ctx.tree["posterior"].sizes["chain"] * ctx.tree["posterior"].sizes["draw"])
    # chunks of rows bound memory; each row's marginal draws (all we report) do not depend
    # on which chunk it is in
    chunk = max(1, CHUNK_CELLS // S)
    ordinal = ctx.built.family.ordinal and kind == "mean"
    prob_cols = [f"p_{lab}" for lab in ctx.built.design.response_levels] if ordinal else []
    if clash := [c for c in prob_cols if c in new.columns]:
        raise InputError(f"{source} already has a column {clash[0]!r}, which predict writes", hint="rename or drop that column")
    parts = []
    for start in range(0, len(new), chunk):
        rows = slice(start, min(len(new), start + chunk))
        if ordinal:
            draws, probs = category_probs(ctx, new.iloc[rows].reset_index(drop=True), seed=seed)
            parts.append(pd.concat([summarize(draws, interval), pd.DataFrame(probs, columns=prob_cols)], axis=1))
            continue
        draws = predict_draws(ctx, new.iloc[rows].reset_index(drop=True), kind=kind, seed=seed,
                              trials=None if trials is None else trials[rows], se=None if se is None else se[rows])
        parts.append(summarize(draws, interval))
    stats = pd.concat(parts, ignore_index=True)
    result = pd.concat([new, stats], axis=1)
    csv = Path(out) if out is not None else Path(run_dir) / f"predict_{Path(new_csv).stem}.csv"
    write_csv(result, csv, float_format=None)  # the user's own columns keep their digits
    notes = []
    for factor, levels in fresh.items():
        shown = ", ".join(levels[:5]) + (" ..." if len(levels) > 5 else "")
        notes.append(f"{len(levels)} level(s) of {factor} not in the fitted data ({shown}): effects drawn from the group-level distribution")
    return PredictResult(result, csv, kind, interval, fresh, notes)


__all__ = ["PredictResult", "run_predict", "predict_draws", "check_new_rows", "unseen_levels", "summarize"]
