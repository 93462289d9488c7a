"""``hlm hypothesis``: brms-style tests of hypotheses about named parameters.

Each hypothesis ``LEFT OP RIGHT`` (parsed by :mod:`hlm_cli.formula.hypothesis`, never
``eval``'d) is turned into draws of ``LEFT - RIGHT`` and reported as brms's ``hypothesis()``
does (Bürkner 2017): the estimate (posterior mean), its sd, an HDI, and

- for ``>`` and ``<``: the posterior probability of the hypothesis and the evidence ratio
  (its posterior odds, ``p / (1 - p)``);
- for ``=``: the Savage-Dickey density ratio BF01, the posterior density of ``LEFT - RIGHT``
  at 0 over its prior density at 0 (Wagenmakers et al. 2010), computed with
  :func:`arviz_stats.bayes_factor` on the prior draws that ``hlm fit --prior-predictive``
  stores; the posterior probability is then ``BF01 / (1 + BF01)`` (even prior odds). Without
  prior draws only the interval is given, with a note.

References
----------
Bürkner P-C (2017). brms: an R package for Bayesian multilevel models using Stan.
J Stat Softw 80(1). ``hypothesis()``.
Wagenmakers E-J, Lodewyckx T, Kuriyal H, Grasman R (2010). Bayesian hypothesis testing for
psychologists: a tutorial on the Savage-Dickey method. Cogn Psychol 60, 158-189.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hlm_cli.errors import InputError
from hlm_cli.formula.hypothesis import Hypothesis, HypothesisError, canonical, difference, parse

COLUMNS = ["hypothesis", "estimate", "est_error", "lower", "upper", "ci_prob", "post_prob", "evid_ratio", "evidence", "note"]


@dataclass
class HypothesisResult:
    table: pd.DataFrame
    csv: Path
    prob: float
    has_prior: bool
    notes: list[str] = field(default_factory=list)


def parameter_labels(info: dict) -> list[str]:
    """Posterior variable names of a run, from run.json's ``parameters``, in the summary's order.

    Population-level terms, group SDs, correlations, family parameters (and any kind a later
    version adds), then group-level effects, which can number thousands, last.
    """
    params = info.get("parameters", {}) or {}
    order = ["population", "group_sds", "correlations", "family"]
    keys = order + [k for k in params if k not in order and k != "group_effects"] + ["group_effects"]
    names: list[str] = []

    def walk(x):
        if isinstance(x, str):
            names.append(x)
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)

    for k in keys:
        walk(params.get(k, []))
    return list(dict.fromkeys(names))


def label_draws(group, variables: list[str]) -> dict[str, np.ndarray]:
    """Draws (S,) of every scalar parameter, keyed by the summary's label.

    Parameters
    ----------
    group : xarray.DataTree or Dataset
        A ``posterior`` or ``prior`` group with ``chain`` and ``draw`` dimensions.
    variables : list of str
        Variable names to expand; those missing from ``group`` are skipped, and so are
        per-observation variables (an ``__obs__`` dimension).

    Returns
    -------
    dict
        ``"Intercept"``, ``"genotype[ko]"``, ``"1|mouse[m01]"`` ... -> draws.
    """
    out: dict[str, np.ndarray] = {}
    for var in variables:
        if var not in group:
            continue
        da = group[var]
        other = [d for d in da.dims if d not in ("chain", "draw")]
        if any(d.startswith("__obs__") for d in other):
            continue
        arr = np.asarray(da.transpose("chain", "draw", *other))
        arr = arr.reshape((arr.shape[0] * arr.shape[1],) + arr.shape[2:])
        if not other:
            out[var] = arr
            continue
        coords = [[str(c) for c in np.asarray(da[d])] for d in other]
        flat = arr.reshape(arr.shape[0], -1)
        for j, idx in enumerate(np.ndindex(*arr.shape[1:])):
            # arviz's labeller: var[a] and var[a, b]
            out[f"{var}[{', '.join(coords[k][i] for k, i in enumerate(idx))}]"] = flat[:, j]
    return out


def evaluate_one(h: Hypothesis, post: dict, prior: dict | None, prob: float) -> dict:
    """The brms-style row for one parsed hypothesis."""
    import arviz_stats as azs

    d = difference(h, post.__getitem__)
    if d.ndim == 0:
        raise HypothesisError(f"hypothesis {h.text!r} names no parameter", hint='compare a parameter with a value, e.g. "Treatment > 0"')
    if not np.all(np.isfinite(d)):
        bad = int((~np.isfinite(d)).sum())
        raise HypothesisError(f"hypothesis {h.text!r} is not finite in {bad} draw(s) (a division by a value near 0?)", hint="rewrite it without dividing by a parameter that can be 0")
    lo, hi = (float(v) for v in np.asarray(azs.hdi(d, prob=prob)).ravel()[:2])
    row = {"hypothesis": canonical(h), "estimate": float(d.mean()), "est_error": float(d.std(ddof=1)), "lower": lo, "upper": hi, "ci_prob": prob,
           "post_prob": np.nan, "evid_ratio": np.nan, "evidence": "", "note": ""}
    if h.op in (">", "<"):
        p = float(np.mean(d > 0)) if h.op == ">" else float(np.mean(d < 0))
        row["post_prob"] = p
        row["evid_ratio"] = p / (1 - p) if p < 1 else np.inf
        row["evidence"] = "posterior odds"
        if p in (0.0, 1.0):
            row["note"] = f"all {d.size} draws on one side: the probability is beyond what the draws resolve"
        return row
    inside = lo <= 0 <= hi
    where = "inside" if inside else "outside"
    if prior is None or not all(lab in prior for lab in h.labels):
        row["note"] = f"0 is {where} the {prob:.0%} HDI; refit with --prior-predictive for a Savage-Dickey Bayes factor"
        return row
    d_prior = difference(h, prior.__getitem__)
    if d_prior.ndim == 0 or not np.all(np.isfinite(d_prior)) or np.ptp(d_prior) == 0:
        row["note"] = f"0 is {where} the {prob:.0%} HDI; the prior draws of this expression are degenerate, so no Bayes factor"
        return row
    bf01 = savage_dickey(d, d_prior)
    row["evid_ratio"] = bf01
    row["post_prob"] = bf01 / (1 + bf01) if np.isfinite(bf01) else 1.0
    row["evidence"] = "Savage-Dickey BF01"
    lo_p, hi_p = np.quantile(d_prior, [0.005, 0.995])
    if not lo_p <= 0 <= hi_p:  # the prior KDE at 0 then rests on a handful of draws
        row["note"] = "0 is in the far tail of the prior draws: the Bayes factor is unreliable"
    return row


def savage_dickey(post: np.ndarray, prior: np.ndarray) -> float:
    """BF01 = p(0 | data) / p(0): posterior over prior density at 0, by KDE (arviz_stats)."""
    import warnings

    import arviz_stats as azs
    import xarray as xr

    tree = xr.DataTree.from_dict({
        "posterior": xr.Dataset({"h": (("chain", "draw"), post.reshape(1, -1))}),
        "prior": xr.Dataset({"h": (("chain", "draw"), prior.reshape(1, -1))}),
    })
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bf = azs.bayes_factor(tree, var_names=["h"], ref_vals=[0.0])
    return float(bf["h"].sel(bf_type="BF01"))


def run_hypothesis(run_dir: Path, hypotheses: list[str], *, prob: float = 0.94, out: Path | None = None) -> HypothesisResult:
    """Test each hypothesis against the run's posterior and write a CSV.

    Parameters
    ----------
    run_dir : Path
        An ``hlm fit --out`` directory.
    hypotheses : list of str
        e.g. ``["Treatment > 0", "genotype[ko] - genotype[wt] = 0"]``.
    prob : float
        HDI probability.
    out : Path, optional
        CSV to write; default ``RUN_DIR/hypothesis.csv``.

    Returns
    -------
    HypothesisResult
    """
    from hlm_cli.outputs import runinfo
    from hlm_cli.workflows.contrast import check_prob, check_writable, write_csv
    from hlm_cli.workflows.runs import open_tree

    check_prob(prob)
    if not hypotheses:
        raise InputError("no hypothesis given", hint='e.g. hlm hypothesis RUN_DIR "Treatment > 0"')
    if out is not None:
        check_writable(Path(out))
    tree = open_tree(run_dir)
    info = runinfo.read(run_dir)
    variables = parameter_labels(info) or [v for v in tree["posterior"].data_vars if not str(v).startswith("_")]
    post = label_draws(tree["posterior"], variables)
    has_prior = "prior" in tree.children
    prior = label_draws(tree["prior"], variables) if has_prior else None
    parsed = [parse(text, post.keys()) for text in hypotheses]  # all checked before any output
    rows = [evaluate_one(h, post, prior, prob) for h in parsed]
    table = pd.DataFrame(rows, columns=COLUMNS)
    csv = Path(out) if out is not None else Path(run_dir) / "hypothesis.csv"
    write_csv(table, csv)
    notes = []
    if any(h.op == "=" for h in parsed) and not has_prior:
        notes.append("point hypotheses (=) get a Bayes factor only when the run was fitted with --prior-predictive")
    if (info.get("family") or {}).get("name") == "cumulative":
        notes.append("a cumulative model's coefficients and thresholds Intercept[k] are on the latent (link) scale: "
                     "P(y <= k) = F(Intercept[k] - eta), so a positive coefficient moves rows towards higher categories")
    return HypothesisResult(table, csv, prob, has_prior, notes)


__all__ = ["HypothesisResult", "run_hypothesis", "label_draws", "parameter_labels", "evaluate_one", "savage_dickey"]
