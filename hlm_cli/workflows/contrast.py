"""``hlm contrast``: the posterior of a difference between levels of a predictor.

An *average predictive comparison* (Gelman & Pardoe 2007; ``avg_comparisons`` in R's
marginaleffects, ``bambi.interpret.comparisons``): every fitted row is predicted twice, once
with the ``--term`` column set to the lower value and once to the upper value, everything
else as observed (other covariates, and each row's own group-level effects), and the
per-row differences are averaged. Per ``--by`` level only that level's rows are averaged,
so a group's contrast includes its own group-level slope. With ``--new-group`` one more row
gives the contrast for a group not in the data, its effects drawn from the fitted
group-level distribution (brms's ``allow_new_levels``): the answer to "will it work in the
next group?".

Why not ``bambi.interpret.comparisons`` itself: it needs a ``bambi.Model`` and calls
``Model.predict``, and hlm builds its PyMC model directly (correlated group terms, ``se()``,
zero-sum terms; see :mod:`hlm_cli.model.build`). The same computation is done here with
:func:`hlm_cli.model.linpred.linear_predictor`, which predicts from the saved draws.

Each contrast is reported on the response scale (the mean of the response: a probability for
bernoulli/binomial, a rate for poisson) and on the link scale, with the mean, the HDI, the
probability of direction (Makowski et al. 2019) and, given ``--rope``, the posterior
probability inside the region of practical equivalence (Kruschke 2018). For gaussian and t
families the BEST effect size (Kruschke 2013) is the difference over the residual scale
``sigma`` (per row when ``sigma`` varies by row).

References
----------
Gelman A, Pardoe I (2007). Average predictive comparisons for models with nonlinearity,
interactions, and variance components. Sociological Methodology 37, 23-51.
Kruschke JK (2013). Bayesian estimation supersedes the t test. J Exp Psychol Gen 142, 573-603.
Kruschke JK (2018). Rejecting or accepting parameter values in Bayesian estimation.
Adv Methods Pract Psychol Sci 1, 270-280.
Makowski D, Ben-Shachar MS, Chen SHA, Lüdecke D (2019). Indices of effect existence and
significance in the Bayesian framework. Front Psychol 10, 2767.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hlm_cli.errors import ConfigError, InputError, OutputError, closest_match

SHIFT = "+1"  # the default numeric contrast: each row's own value, and that value + 1
NEW_LEVEL = "<new>"  # a group label no fit can have seen (linpred draws its effects)
# rows x draws per chunk of fitted rows: keeps each (draws, rows) array near 80 MB
CHUNK_CELLS = 10_000_000
STAT_COLUMNS = [
    "term", "contrast", "by", "level", "scale", "mean", "sd", "lower", "upper", "ci_prob", "pd",
    "rope_lower", "rope_upper", "p_rope", "es_mean", "es_sd", "es_lower", "es_upper", "n_rows",
]
ES_FAMILIES = ("gaussian", "t")


def _has_es(fam) -> bool:
    """Effect sizes (difference / sigma) need sigma on the scale of the differences: the
    gaussian and t families with their identity link (not --link log)."""
    return fam.name in ES_FAMILIES and fam.link == "identity"


@dataclass(frozen=True)
class ContrastSpec:
    """What ``hlm contrast`` was asked; checked by :func:`check_spec` before any loading.

    ``contrast`` is ``(FROM, TO)``: the reported difference is TO - FROM.
    """

    run_dir: Path
    term: str
    by: str | None = None
    contrast: tuple[str, str] | None = None
    rope: tuple[float, float] | None = None
    rope_on: str = "difference"  # or "effect_size"
    prob: float = 0.94
    out: Path | None = None
    new_group: bool = False
    data: Path | None = None
    plot: bool = True
    seed: int = 0


@dataclass(frozen=True)
class Pair:
    """One comparison: ``hi`` minus ``lo``; for a numeric shift, ``lo`` is the observed value."""

    label: str
    lo: object
    hi: object


@dataclass
class ContrastResult:
    spec: ContrastSpec
    table: pd.DataFrame
    csv: Path
    plot: Path | None
    term_kind: str  # "factor" or "numeric"
    family: str
    link: str
    notes: list[str] = field(default_factory=list)


def parse_pair(text: str, what: str) -> tuple[str, str]:
    """``"A,B"`` -> ``("A", "B")``; a ConfigError naming the option otherwise."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"{what} needs two values separated by a comma (got {text!r})", hint=f"e.g. {what} placebo,drug")
    return parts[0], parts[1]


def parse_rope(text: str) -> tuple[float, float]:
    """``"-0.1,0.1"`` -> ``(-0.1, 0.1)``, refusing non-numbers and empty intervals."""
    lo, hi = parse_pair(text, "--rope")
    try:
        a, b = float(lo), float(hi)
    except ValueError:
        raise ConfigError(f"--rope needs two numbers (got {text!r})", hint="e.g. --rope=-0.1,0.1") from None
    if not (np.isfinite(a) and np.isfinite(b)) or a >= b:
        raise ConfigError(f"--rope needs LOW,HIGH with LOW < HIGH (got {text!r})", hint="e.g. --rope=-0.1,0.1")
    return a, b


def check_prob(prob: float, what: str = "--ci") -> float:
    if not 0 < prob < 1:
        raise ConfigError(f"{what} must be between 0 and 1 (got {prob})", hint=f"e.g. {what} 0.94")
    return float(prob)


def check_spec(spec: ContrastSpec) -> None:
    """Cheap checks before the run is loaded (the model is rebuilt by :func:`run_contrast`)."""
    check_prob(spec.prob)
    if spec.rope_on not in ("difference", "effect_size"):
        raise ConfigError(f"--rope-on must be 'difference' or 'effect-size' (got {spec.rope_on.replace('_', '-')!r})", hint="difference: the ROPE is in the units of the response; effect-size: in units of sigma")
    if spec.rope_on == "effect_size" and spec.rope is None:
        raise ConfigError("--rope-on effect-size needs --rope", hint="e.g. --rope=-0.1,0.1 --rope-on effect-size (Kruschke's negligible effect size)")
    if spec.by is not None and spec.by == spec.term:
        raise ConfigError(f"--by {spec.by} is the --term itself", hint="--by names another column, e.g. the grouping factor")
    if spec.out is not None:
        check_writable(Path(spec.out))


def check_writable(path: Path) -> None:
    """An output file's folder must exist (or be creatable) and be writable."""
    from hlm_cli.outputs.rundir import ensure_parent_writable

    if path.exists() and path.is_dir():
        raise OutputError(f"--out {str(path)!r} is a directory", hint="give a file name, e.g. --out results/contrast.csv")
    ensure_parent_writable(path)


def write_csv(df: pd.DataFrame, path: Path, *, float_format: str | None = "%.6g") -> None:
    """Write a CSV atomically: a temporary file beside ``path``, renamed onto it when complete."""
    from hlm_cli.outputs.rundir import write_atomic

    write_atomic(Path(path), lambda fh: df.to_csv(fh, index=False, float_format=float_format), newline="")


def safe_name(text: str) -> str:
    """A file-name-safe form of a column name (``Treatment:Genotype`` -> ``Treatment_Genotype``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "term"


# --------------------------------------------------------------------------------------------
# What to compare


def predictor_columns(ctx) -> list[str]:
    """Data columns the linear predictor depends on (not the response, se, trials or group factors)."""
    formula = ctx.prepared.formula
    resp = formula.response
    skip = {resp.expr, resp.se, resp.trials, resp.failures} if resp else set()
    # names inside the population-level part and the group terms' own designs (slopes);
    # a column used only to define groups (``unit`` in ``(1|unit)``) is not a predictor
    used = set(formula.predictor_columns)  # includes backtick-quoted names (`cell line`)
    return [c for c in ctx.prepared.table.frame.columns if c in formula.columns and c in used and c not in skip]



def is_numeric(ctx, column: str) -> bool:
    col = ctx.prepared.table.frame[column]
    return bool(pd.api.types.is_numeric_dtype(col)) and not isinstance(col.dtype, pd.CategoricalDtype) and not pd.api.types.is_bool_dtype(col)


def levels_of(series: pd.Series) -> list[str]:
    """Levels in the fit's order: a categorical's categories, else sorted (as formulae codes them)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return [str(c) for c in series.cat.categories]
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return [str(v) for v in sorted(series.dropna().unique())]  # 3 before 10
    return sorted({str(v) for v in series.dropna()})


def fitted_order(levels: list, order: list | None) -> list:
    """``levels`` in the order the fit used (``--reference``, ``relevel()``, ``C(levels=)``):
    reference first; levels the order does not name keep their place after it."""
    if not order:
        return levels
    rank = {str(v): i for i, v in enumerate(order)}
    return sorted(levels, key=lambda v: rank.get(str(v), len(rank)))


def pairs_for(ctx, term: str, contrast: tuple[str, str] | None) -> tuple[str, list[Pair]]:
    """The comparisons to make for ``term``: ("factor" | "numeric", pairs).

    Factor: each level against the reference (first) level, or ``contrast`` = (FROM, TO).
    Numeric: a column with two values (0/1) goes from the lower to the upper value; other
    columns get +1 unit from each row's own value; ``contrast`` = (FROM, TO) sets every row.
    """
    frame = ctx.prepared.table.frame
    if is_numeric(ctx, term):
        if contrast is not None:
            try:
                lo, hi = float(contrast[0]), float(contrast[1])
            except ValueError:
                raise InputError(f"--term {term} is numeric, so --contrast needs two numbers (got {','.join(contrast)!r})", hint=f"e.g. --contrast 0,1 (the change from {term} = 0 to {term} = 1)") from None
            return "numeric", [Pair(f"{_num(hi)} - {_num(lo)}", lo, hi)]
        values = np.unique(frame[term].to_numpy(dtype=float))
        if len(values) == 2:
            return "numeric", [Pair(f"{_num(values[1])} - {_num(values[0])}", float(values[0]), float(values[1]))]
        return "numeric", [Pair(SHIFT, None, SHIFT)]
    levels = fitted_order(levels_of(frame[term]), ctx.built.design.levels.get(term))
    if contrast is not None:
        for v in contrast:
            if v not in levels:
                raise InputError(f"--contrast names {v!r}, which is not a level of {term!r}", hint=closest_match(v, levels, what=f"levels of {term}"))
        if contrast[0] == contrast[1]:
            raise InputError(f"--contrast compares {contrast[0]!r} with itself", hint=f"give two different levels of {term}, e.g. --contrast {levels[0]},{levels[-1]}")
        return "factor", [Pair(f"{contrast[1]} - {contrast[0]}", contrast[0], contrast[1])]
    if len(levels) < 2:
        raise InputError(f"{term!r} has a single level in the fitted data", hint="a contrast needs two levels")
    ref = levels[0]
    return "factor", [Pair(f"{lev} - {ref}", ref, lev) for lev in levels[1:]]


def _num(x: float) -> str:
    return f"{x:g}"


def _set_column(frame: pd.DataFrame, column: str, value) -> pd.DataFrame:
    """``frame`` with ``column`` set to ``value`` for every row (or shifted by +1)."""
    out = frame.copy()
    col = frame[column]
    if value is None:
        return out
    if value == SHIFT:
        out[column] = col.astype(float) + 1.0
    elif isinstance(col.dtype, pd.CategoricalDtype):
        out[column] = pd.Categorical([value] * len(frame), categories=col.cat.categories)
    elif pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        out[column] = float(value)
    else:
        out[column] = pd.Series([value] * len(frame), index=frame.index, dtype=col.dtype if col.dtype != bool else object)
    return out


def _new_group_frame(ctx, frame: pd.DataFrame) -> pd.DataFrame:
    """The rows with every grouping column set to a level no fit has seen."""
    out = frame.copy()
    for g in ctx.prepared.formula.groups:
        for c in g.factor:
            out[c] = pd.Series([NEW_LEVEL] * len(out), index=out.index, dtype=object)
    return out


# --------------------------------------------------------------------------------------------
# Draws of the contrasts


def contrast_draws(ctx, term: str, pairs: list[Pair], *, by: str | None = None, new_group: bool = False, seed: int = 0) -> list[dict]:
    """Posterior draws of each average predictive comparison.

    Parameters
    ----------
    ctx : hlm_cli.model.run.RunContext
    term : str
        The data column to vary.
    pairs : list of Pair
        From :func:`pairs_for`.
    by : str, optional
        A data column: one more comparison per level, over that level's rows.
    new_group : bool
        Add a comparison for a new group (effects drawn from the group-level distribution).
    seed : int

    Returns
    -------
    list of dict
        One per (pair, level): ``contrast``, ``level``, ``n_rows`` and draws ``response``,
        ``link`` and ``es`` (the effect size, or None), each of shape (S,).
    """
    from hlm_cli.model.linpred import inverse_link, stacked

    frame = ctx.prepared.table.frame.reset_index(drop=True)
    fam = ctx.built.family
    n = len(frame)
    sigma = stacked(ctx.tree, "sigma") if _has_es(fam) and "sigma" in ctx.tree["posterior"] else None
    S = _n_draws(ctx.tree)
    if sigma is not None and sigma.ndim == 1:
        sigma = sigma[:, None]  # (S, 1): the same sigma for every row
    names, weights = _row_sets(frame, by)
    chunk = max(1, CHUNK_CELLS // max(S, 1))
    out: list[dict] = []
    variants = [("rows", frame)] + ([("new", _new_group_frame(ctx, frame))] if new_group else [])
    for pair in pairs:
        for variant, base in variants:
            lo_frame, hi_frame = _set_column(base, term, pair.lo), _set_column(base, term, pair.hi)
            sets = ["new group"] if variant == "new" else names
            W = np.ones((n, 1)) if variant == "new" else weights  # (n, G) row-set indicators
            sums = {k: np.zeros((S, W.shape[1])) for k in ("link", "response", "es")}
            for start in range(0, n, chunk):
                rows = slice(start, min(n, start + chunk))
                eta_lo = _eta(ctx, lo_frame.iloc[rows], seed)
                eta_hi = _eta(ctx, hi_frame.iloc[rows], seed)
                d_link = eta_hi - eta_lo  # (S, m)
                d_resp = inverse_link(fam, eta_hi, ctx.tree) - inverse_link(fam, eta_lo, ctx.tree)
                w = W[rows]
                sums["link"] += d_link @ w
                sums["response"] += d_resp @ w
                if sigma is not None:
                    s = sigma[:, rows] if sigma.shape[1] == n else sigma
                    sums["es"] += (d_link / s) @ w
            counts = W.sum(axis=0)
            for j, level in enumerate(sets):
                if counts[j] == 0:
                    continue
                out.append({
                    "contrast": pair.label,
                    "level": level,
                    "n_rows": int(counts[j]),
                    "link": sums["link"][:, j] / counts[j],
                    "response": sums["response"][:, j] / counts[j],
                    "es": sums["es"][:, j] / counts[j] if sigma is not None else None,
                })
    return out


def _eta(ctx, rows: pd.DataFrame, seed: int) -> np.ndarray:
    from hlm_cli.model.linpred import linear_predictor

    # the same seed for both arms: a new group gets the same drawn effects in both
    return linear_predictor(ctx, rows.reset_index(drop=True), new_levels="sample", seed=seed)


def _n_draws(tree) -> int:
    post = tree["posterior"]
    return int(post.sizes["chain"] * post.sizes["draw"])


def _row_sets(frame: pd.DataFrame, by: str | None) -> tuple[list[str], np.ndarray]:
    """Names and an (n, G) indicator matrix: all rows ('overall'), then one set per --by level."""
    names = ["overall"]
    cols = [np.ones(len(frame))]
    if by is not None:
        labels = frame[by].astype(str).to_numpy()
        for lev in levels_of(frame[by]):
            names.append(lev)
            cols.append((labels == lev).astype(float))
    return names, np.stack(cols, axis=1)


# --------------------------------------------------------------------------------------------
# Summaries


def describe(draws: np.ndarray, prob: float, rope: tuple[float, float] | None) -> dict:
    """Mean, sd, HDI, probability of direction and P(ROPE) of a vector of draws."""
    import arviz_stats as azs

    draws = np.asarray(draws, dtype=float)
    lo, hi = (float(v) for v in np.asarray(azs.hdi(draws, prob=prob)).ravel()[:2])
    pos, neg = float(np.mean(draws > 0)), float(np.mean(draws < 0))
    out = {"mean": float(draws.mean()), "sd": float(draws.std(ddof=1)), "lower": lo, "upper": hi, "pd": max(pos, neg)}
    out["p_rope"] = float(np.mean((draws >= rope[0]) & (draws <= rope[1]))) if rope is not None else np.nan
    return out


def summarize(items: list[dict], *, term: str, by: str | None, prob: float, rope, rope_on: str) -> pd.DataFrame:
    """One row per (contrast, level, scale) with the columns in :data:`STAT_COLUMNS`."""
    import arviz_stats as azs

    rows = []
    for it in items:
        es = it["es"]
        es_stats = {"es_mean": np.nan, "es_sd": np.nan, "es_lower": np.nan, "es_upper": np.nan}
        if es is not None:
            lo, hi = np.asarray(azs.hdi(es, prob=prob)).ravel()[:2]
            es_stats = {"es_mean": float(es.mean()), "es_sd": float(es.std(ddof=1)), "es_lower": float(lo), "es_upper": float(hi)}
        for scale in ("response", "link"):
            stats = describe(it[scale], prob, rope if rope_on == "difference" else None)
            if rope_on == "effect_size" and es is not None:
                stats["p_rope"] = float(np.mean((es >= rope[0]) & (es <= rope[1])))
            rows.append({
                "term": term, "contrast": it["contrast"], "by": by or "", "level": it["level"], "scale": scale,
                **stats, "ci_prob": prob,
                "rope_lower": rope[0] if rope else np.nan, "rope_upper": rope[1] if rope else np.nan,
                **es_stats, "n_rows": it["n_rows"],
            })
    return pd.DataFrame(rows, columns=STAT_COLUMNS)


# --------------------------------------------------------------------------------------------
# The command


def run_contrast(spec: ContrastSpec) -> ContrastResult:
    """Compute, write (CSV and PNG) and return the contrasts asked for in ``spec``.

    Parameters
    ----------
    spec : ContrastSpec

    Returns
    -------
    ContrastResult
    """
    from hlm_cli.workflows.runs import load_run, open_tree

    check_spec(spec)
    open_tree(spec.run_dir)  # "not a run directory" before the slower model rebuild
    ctx = load_run(spec.run_dir, data=spec.data)
    columns = predictor_columns(ctx)
    frame = ctx.prepared.table.frame
    if spec.term not in columns:
        where = "is not a column of the data" if spec.term not in frame.columns else "is not a predictor in the formula"
        raise InputError(f"--term {spec.term!r} {where}", hint=closest_match(spec.term, columns, what="predictors") + "; for a coefficient or an interaction use 'hlm hypothesis'")
    if spec.by is not None and spec.by not in frame.columns:
        raise InputError(f"--by {spec.by!r} is not a column of the data", hint=closest_match(spec.by, list(frame.columns)))
    fam = ctx.built.family
    if spec.rope_on == "effect_size" and not _has_es(fam):
        what = fam.name if fam.name not in ES_FAMILIES else f"{fam.name} with a {fam.link} link"
        raise ConfigError(f"effect sizes are defined for the gaussian and t families (identity link), not {what}", hint="use --rope-on difference")
    kind, pairs = pairs_for(ctx, spec.term, spec.contrast)
    notes = _notes(ctx, spec, kind, pairs)
    items = contrast_draws(ctx, spec.term, pairs, by=spec.by, new_group=spec.new_group, seed=spec.seed)
    table = summarize(items, term=spec.term, by=spec.by, prob=spec.prob, rope=spec.rope, rope_on=spec.rope_on)
    csv = Path(spec.out) if spec.out is not None else Path(spec.run_dir) / f"contrast_{safe_name(spec.term)}.csv"
    write_csv(table, csv)
    png = None
    if spec.plot:
        png = csv.with_suffix(".png")
        from hlm_cli.outputs.figures import contrast as contrast_figure

        contrast_figure(table, png, identity=_is_identity(fam), shade_rope=spec.rope_on == "difference")
    return ContrastResult(spec, table, csv, png, kind, fam.name, fam.link, notes)


def _is_identity(fam) -> bool:
    # lognormal has an identity link but a response scale exp(eta)
    return fam.link == "identity" and fam.name != "lognormal"


def _notes(ctx, spec: ContrastSpec, kind: str, pairs: list[Pair]) -> list[str]:
    notes = []
    if kind == "numeric" and pairs[0].hi == SHIFT:
        notes.append(f"{spec.term} is numeric: each contrast is the change from +1 {spec.term} at each row's own value (use --contrast A,B for two set values)")
    fam = ctx.built.family
    if _has_es(fam):
        notes.append("es = difference / sigma, the BEST standardized effect size (Kruschke 2013)" + (" with the t family's scale sigma" if fam.name == "t" else ""))
    if fam.ordinal:
        notes.append("cumulative model: 'link' is the difference on the latent scale (P(y <= k) = F(Intercept[k] - eta)); "
                     "'response' is the difference in the expected category, with the categories coded 1..K "
                     f"({', '.join(f'{k}={lab}' for k, lab in enumerate(ctx.built.design.response_levels, start=1))})")
    if _is_identity(fam):
        notes.append(f"the {fam.name} family has an identity link: the link and response scales are the same")
    if spec.new_group:
        notes.append("'new group': a group not in the data, its effects drawn from the fitted group-level distribution")
    return notes


__all__ = ["ContrastSpec", "ContrastResult", "Pair", "run_contrast", "pairs_for", "contrast_draws", "summarize", "describe", "parse_pair", "parse_rope", "write_csv", "check_writable"]
