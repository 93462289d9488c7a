"""Convergence and geometry checks after every fit, each with a concrete remedy.

Thresholds follow Vehtari et al. (2021, "Rank-normalization, folding, and localization"):
R-hat <= 1.01 and bulk/tail ESS >= 100 per chain; E-BFMI >= 0.3 (Betancourt 2016). The
statistics themselves come from arviz_stats (``summary``, ``bfmi``); this module only
decides what to tell the user. Findings are not errors: they are printed, saved in
``run.json`` and, under ``--strict``, make ``hlm fit`` exit with code 3.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

RHAT_MAX = 1.01
ESS_PER_CHAIN = 100
BFMI_MIN = 0.3
IDENT_CORR = 0.9
#: The thresholds above, by name: the one home of the numbers the report page and the CLI print.
THRESHOLDS = {"r_hat_max": RHAT_MAX, "ess_per_chain": ESS_PER_CHAIN, "bfmi_min": BFMI_MIN, "ident_corr": IDENT_CORR}
#: What "all checks passed" means, in one line (``hlm fit``'s message).
PASSED = f"R-hat <= {RHAT_MAX}, ESS >= {ESS_PER_CHAIN} per chain, no divergences, no tree-depth hits, E-BFMI >= {BFMI_MIN}"


@dataclass
class Finding:
    code: str  # rhat, ess_bulk, ess_tail, divergences, treedepth, bfmi, identifiability
    message: str
    remedy: str
    params: list[str] = field(default_factory=list)
    value: float | None = None
    severity: str = "warning"  # warning: fails --strict; note: informational

    def to_json(self) -> dict:
        return asdict(self)


#: How much each kind of warning says about the posterior, worst first: divergences mean the
#: posterior may be biased; R-hat and bulk ESS that it is not estimated yet; the rest are
#: efficiency or tail problems.
SEVERITY_ORDER = ("divergences", "rhat", "ess_bulk", "ess_target", "identifiability", "bfmi", "treedepth", "ess_tail")


def worst(findings) -> Finding | None:
    """The warning that matters most (:data:`SEVERITY_ORDER`), e.g. for a one-line status."""
    warnings = [f for f in findings if f.severity == "warning"]
    if not warnings:
        return None
    rank = {code: i for i, code in enumerate(SEVERITY_ORDER)}
    return min(warnings, key=lambda f: rank.get(f.code, len(rank)))


def _names(rows, limit: int = 6) -> str:
    rows = list(rows)
    return ", ".join(rows[:limit]) + (f" (+{len(rows) - limit} more)" if len(rows) > limit else "")


def _stat(tree, *names):
    ss = tree["sample_stats"]
    for n in names:
        if n in ss:
            return np.asarray(ss[n])
    return None


def check(tree, summary, built) -> list[Finding]:
    """Run every check.

    Parameters
    ----------
    tree : xarray.DataTree
        The posterior (with sample_stats).
    summary : pandas.DataFrame
        From :func:`hlm_cli.outputs.summary.summarize` (index: parameter names, columns
        r_hat, ess_bulk, ess_tail, kind).
    built : BuiltModel

    Returns
    -------
    list of Finding
    """
    out: list[Finding] = []
    chains = int(tree["posterior"].sizes["chain"])
    ess_min = ESS_PER_CHAIN * chains
    s = summary

    bad = s[s["r_hat"] > RHAT_MAX]
    if len(bad):
        out.append(Finding(
            "rhat",
            f"R-hat above {RHAT_MAX} for {len(bad)} parameter(s): {_names(bad.index)} (max {bad['r_hat'].max():.3f}); the chains disagree",
            "run longer (--tune 2000 --draws 2000); if it persists the model may be non-identified or multimodal",
            list(bad.index), float(bad["r_hat"].max()),
        ))
    for col, what in (("ess_bulk", "bulk"), ("ess_tail", "tail")):
        low = s[s[col] < ess_min]
        if len(low):
            out.append(Finding(
                col,
                f"{what} ESS below {ess_min} ({ESS_PER_CHAIN} per chain) for {len(low)} parameter(s): {_names(low.index)} (min {low[col].min():.0f})",
                "increase --draws; if ESS stays low, see the divergence/tree-depth findings or try --parameterization",
                list(low.index), float(low[col].min()),
            ))

    div = _stat(tree, "diverging")
    if div is not None and div.sum() > 0:
        n = int(div.sum())
        suspects = _divergence_suspects(tree, div, built)
        where = f"; they concentrate where {_names(suspects, 3)} is small (a funnel)" if suspects else ""
        terms = sorted({p.removesuffix("_sigma") for p in suspects if p.endswith("_sigma")})
        alt = ""
        if terms and built is not None:
            kinds = {n: built.parameterization[g.term.label].kind for g in built.design.groups for n in g.effect_names}
            flips = ["noncentered" if kinds.get(t) in ("centered", "zerosum") else "centered" for t in terms]
            alt = f", or --parameterization {flips[0]} for {terms[0]}"
        out.append(Finding(
            "divergences",
            f"{n} divergent transition(s) after warm-up ({100 * n / div.size:.1f}% of draws){where}",
            f"raise --target-accept to 0.95 or 0.99{alt}; divergences mean the posterior may be biased",
            suspects, float(n),
        ))

    depth = _stat(tree, "maxdepth_reached", "reached_max_treedepth")
    if depth is not None and depth.sum() > 0:
        n = int(depth.sum())
        out.append(Finding(
            "treedepth",
            f"{n} draw(s) hit the maximum tree depth ({100 * n / depth.size:.1f}%): the sampler is taking tiny steps along a long, narrow posterior",
            "often strong posterior correlation (see identifiability); try --parameterization auto/zerosum, or --max-treedepth 12",
            [], float(n),
        ))

    energy = _stat(tree, "energy")
    if energy is not None and energy.ndim == 2 and energy.shape[1] > 2:
        num = np.sum(np.diff(energy, axis=1) ** 2, axis=1) / energy.shape[1]
        den = np.var(energy, axis=1)
        bfmi = num / np.where(den > 0, den, np.inf)
        low = [i for i, v in enumerate(bfmi) if v < BFMI_MIN]
        if low:
            out.append(Finding(
                "bfmi",
                f"low E-BFMI in chain(s) {', '.join(map(str, low))} (min {bfmi.min():.2f} < {BFMI_MIN}): the sampler explores the tails poorly",
                "usually a funnel or heavy tails: try --parameterization noncentered, or tighter priors on the group SDs",
                [], float(bfmi.min()),
            ))
    out.extend(identifiability(tree, built))
    return out


def ess_target_finding(outcome) -> Finding | None:
    """How ``--ess N`` ended (:class:`hlm_cli.sampling.ess.EssOutcome`): a note when the target
    was reached, a warning (fails ``--strict``) when ``--draws`` ran out below it; None without --ess."""
    if outcome is None:
        return None
    if outcome.reached:
        return Finding("ess_target", outcome.line(), "nothing to do: the kept draws reach the target (leave out --ess to make all --draws)",
                       [outcome.parameter] if outcome.parameter else [], float(outcome.ess), severity="note")
    return Finding("ess_target", outcome.line(),
                   f"raise --draws (the most per chain, now {outcome.max_draws}), or see the ESS and divergence findings; "
                   "the draws made are kept and summarised",
                   [outcome.parameter] if outcome.parameter else [], float(outcome.ess), severity="warning")


def _divergence_suspects(tree, div: np.ndarray, built) -> list[str]:
    """SD parameters whose log value differs most between divergent and other draws."""
    if built is None:
        return []
    post = tree["posterior"]
    scores = []
    for factor_sds in built.params.group_sds.values():
        for name in factor_sds:
            if name not in post:
                continue
            x = np.log(np.asarray(post[name]) + 1e-300)
            d, nd = x[div], x[~div]
            if len(d) == 0 or len(nd) < 2:
                continue
            z = (np.mean(nd) - np.mean(d)) / (np.std(nd) + 1e-12)
            if z > 0.5:
                scores.append((z, name))
    return [n for _, n in sorted(scores, reverse=True)]


def ident_pairs(tree, built) -> list[tuple[str, str, np.ndarray, np.ndarray, float]]:
    """(a, b, draws_a, draws_b, correlation) for the intercept vs each factor's mean effect,
    and between crossed factors' mean effects."""
    if built is None:
        return []
    post = tree["posterior"]
    series: list[tuple[str, np.ndarray]] = []
    if "Intercept" in post:
        arr = np.asarray(post["Intercept"])  # a cumulative model's thresholds: their mean
        series.append(("Intercept", arr.reshape(arr.shape[0] * arr.shape[1], -1).mean(axis=1)))
    handled = {g.factor for g in built.design.groups if built.parameterization[g.term.label].identified}
    for factor, effects in built.params.group_effects.items():
        if factor in handled:  # sampled in an identified form; lme4-scale values are drawn afterwards
            continue
        eff = next((e for e in effects if e.startswith("1|")), None)
        if eff is None or eff not in post:
            continue
        arr = np.asarray(post[eff])
        series.append((f"mean({eff})", arr.reshape(arr.shape[0] * arr.shape[1], -1).mean(axis=1)))
    pairs = []
    for i in range(len(series)):
        for j in range(i + 1, len(series)):
            a, xa = series[i]
            b, xb = series[j]
            if np.std(xa) < 1e-12 or np.std(xb) < 1e-12:
                continue
            r = float(np.corrcoef(xa, xb)[0, 1])
            pairs.append((a, b, xa, xb, r))
    return pairs


def identifiability(tree, built, pairs=None) -> list[Finding]:
    """Findings for the confounded pairs among ``pairs`` (default: :func:`ident_pairs`)."""
    out = []
    for a, b, _, _, r in ident_pairs(tree, built) if pairs is None else pairs:
        if abs(r) >= IDENT_CORR:
            out.append(Finding(
                "identifiability",
                f"{a} and {b} are {'negatively' if r < 0 else 'positively'} correlated in the posterior (r = {r:.2f}): "
                "the data fix their sum, not each one, so the intercept and the group means trade off "
                "(an additive non-identifiability); individual values are uncertain even though predictions are precise",
                "compare predictions or differences between groups, not the raw effects; --parameterization zerosum "
                "samples group offsets that sum to zero around the intercept and removes the trade-off (see plots/identifiability.png)",
                [a, b], r,
            ))
    return out


# --------------------------------------------------------------------------- prior sensitivity

#: Power-scaling sensitivity above which a parameter's posterior counts as moved (priorsense's
#: and arviz_stats's threshold: the cumulative Jensen-Shannon distance per unit log(alpha)).
SENSITIVITY_THRESHOLD = 0.05
CONFLICT = "prior-data conflict"
WEAK = "strong prior / weak likelihood"
SENSITIVITY_COLUMNS = ["parameter", "prior", "likelihood", "diagnosis"]


def sensitivity(tree, built, threshold: float = SENSITIVITY_THRESHOLD):
    """Power-scaling prior and likelihood sensitivity of every top-level parameter.

    ``arviz_stats.psense_summary`` (Kallioinen et al. 2024) reweights the draws by
    ``p(theta)^(alpha-1)`` or ``p(y|theta)^(alpha-1)`` for alpha = 0.99, 1.01 (Pareto-smoothed
    importance weights, no refit) and measures how far each marginal posterior moves. The
    ``log_prior`` group comes from :func:`hlm_cli.model.log_prior.log_prior_dataset` when the
    tree lacks it (runs written before it existed). Returns a DataFrame with
    :data:`SENSITIVITY_COLUMNS` (the printed parameter names of summary.csv's table) and a
    diagnosis in words: ``prior-data conflict`` (both above the threshold: the prior and the
    data pull apart), ``strong prior / weak likelihood`` (the prior moves it, the data do
    not) or empty. Parameters without a proper prior (flat) get NaN.
    """
    import logging

    import pandas as pd

    from hlm_cli.formula.priors import sd_display_name
    from hlm_cli.model.log_prior import log_prior_dataset

    post = tree["posterior"]
    names = [v for v in built.params.top_level if v in post]
    if "log_prior" not in tree.children:
        tree["log_prior"] = log_prior_dataset(tree, built)
    empty = pd.DataFrame(columns=SENSITIVITY_COLUMNS)
    if not names or "log_likelihood" not in tree.children:
        return empty
    if not tree["log_prior"].data_vars:  # flat priors only: power-scaling them changes nothing
        table = pd.DataFrame({"prior": np.nan, "likelihood": np.nan}, index=names)
    else:
        from arviz_stats import psense_summary

        log = logging.getLogger("arviz_stats.psense")
        level = log.level
        log.setLevel(logging.ERROR)  # its "we detected potential issues" line: hlm says it in words
        try:
            table = psense_summary(tree, var_names=names, round_to=4)
        finally:
            log.setLevel(level)
    rows = []
    for label, r in table.iterrows():
        p, lk = float(r["prior"]), float(r["likelihood"])
        diagnosis = ""
        if p >= threshold and lk >= threshold:
            diagnosis = CONFLICT
        elif p > threshold > lk:
            diagnosis = WEAK
        name = str(label)
        rows.append({"parameter": sd_display_name(name) if name.endswith("_sigma") and "|" in name else name,
                     "prior": p, "likelihood": lk, "diagnosis": diagnosis})
    return pd.DataFrame(rows, columns=SENSITIVITY_COLUMNS)


def sensitivity_findings(table) -> list[Finding]:
    """One note per diagnosis kind found in a :func:`sensitivity` table (nothing when none)."""
    out = []
    remedies = {
        CONFLICT: "the prior and the data pull in different directions: check the prior's location and scale "
                  "against the data (hlm priors DATA --formula ...) and refit with a prior that allows what the data say",
        WEAK: "the data say little about it, so its posterior is mostly the prior: report it with its prior, refit "
              "with a wider or different --prior to see how much it moves, or collect more data (more groups for an SD)",
    }
    for diagnosis, remedy in remedies.items():
        rows = table[table["diagnosis"] == diagnosis] if len(table) else table
        if len(rows):
            out.append(Finding(
                "sensitivity",
                f"prior sensitivity ({diagnosis}): {_names(rows['parameter'])} (see sensitivity.csv)",
                remedy, list(rows["parameter"]), float(rows["prior"].max()), severity="note",
            ))
    return out
