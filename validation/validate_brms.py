"""Compare hlm's posteriors with brms's under the same priors (issue 9).

Usage (from the repository root)::

    .venv/bin/python validation/validate_brms.py            # 4 chains x 1000 draws (acceptance)
    .venv/bin/python validation/validate_brms.py --quick    # 2 chains x 300 draws (smoke test)

The reference is ``validation/reference/brms.json`` (``validation/r/brms_reference.R``:
brms 2.18 with its default priors, 4 chains x 1000 post-warm-up draws). hlm is run with
the priors brms used, translated from brms's ``prior_summary`` stored in that JSON, so the
two programs sample the same posterior and their summaries should agree up to Monte Carlo
error:

- ``student_t(nu, mu, s)`` on ``Intercept``      -> ``--prior "Intercept=StudentT(nu, mu, s)"``
- ``student_t(nu, 0, s)`` on ``sd`` / ``sigma``  -> ``--prior "sd=HalfStudentT(nu, s)"``
  (brms bounds SDs below at 0, so its student_t is a half-t)
- flat (empty) ``b``                             -> ``--prior "b=Flat()"``
- ``lkj_corr_cholesky(eta)``                     -> ``--prior "cor=LKJ(eta)"``

One difference cannot be expressed: brms puts its Intercept prior on the intercept of the
*centered* population design (Days - mean(Days) for sleepstudy), hlm on the intercept at
Days = 0. For eight schools (no predictors) the two are identical; for sleepstudy the prior
(scale 59.3) is weak next to the posterior sd (about 7), so the effect is negligible.

Acceptance (issue 9), eight schools ``y | se(sigma) ~ 1 + (1 | school)``: posterior mean of
the overall mean (``Intercept``) within 0.3 brms posterior sd of brms's; posterior mean of
the between-school SD (``1|school_sigma``) within 25% of brms's; 0 divergences. Second check,
sleepstudy ``Reaction ~ Days + (Days|Subject)``: the same rules for the fixed effects,
correlation (location) and the SDs (scale). Results: stdout,
``validation/runs/brms_report.md`` and ``validation/runs/brms_results.json``. Exit code 0
when every check passes, 1 otherwise.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

SEED = 20261124
LOC_TOL = 0.3  # |mean difference| in brms posterior sds
SCALE_TOL = 0.25  # relative difference of posterior means of SDs


def brms_priors_to_hlm(prior_summary: list[dict], has_slopes: bool) -> list[str]:
    """Translate brms's prior_summary rows into hlm ``--prior`` flags.

    Only class-level rows carry a prior (rows for a group or coefficient with an empty
    prior inherit it). Anything not understood raises, so a changed reference cannot
    silently be compared under different priors.
    """
    flags: list[str] = []
    for row in prior_summary:
        cls, prior, coef, group = row["class"], row["prior"].strip(), row["coef"], row["group"]
        if coef or group:
            if prior:
                raise ValueError(f"brms prior for {cls}/{group}/{coef} is not translated: {prior}")
            continue
        m = re.fullmatch(r"student_t\(\s*([-\d.eE]+)\s*,\s*([-\d.eE]+)\s*,\s*([-\d.eE]+)\s*\)", prior)
        if cls == "Intercept" and m:
            flags.append(f"Intercept=StudentT({m[1]}, {m[2]}, {m[3]})")
        elif cls in ("sd", "sigma") and m and float(m[2]) == 0:
            flags.append(f"{cls}=HalfStudentT({m[1]}, {m[3]})")
        elif cls == "b" and prior == "":
            if has_slopes:
                flags.append("b=Flat()")
        elif cls == "L" and (lkj := re.fullmatch(r"lkj_corr_cholesky\(\s*([\d.]+)\s*\)", prior)):
            flags.append(f"cor=LKJ({lkj[1]})")
        else:
            raise ValueError(f"brms prior not translated: class {cls!r}: {prior!r}")
    return flags


MODELS: dict[str, dict] = {
    "eight_schools": {
        "title": "eight schools, `y | se(sigma) ~ 1 + (1 | school)`",
        "data": "sample_data/eight_schools.csv",
        "formula": "y | se(sigma) ~ 1 + (1|school)",
        # the shipped config: target_accept 0.95 (its seed is overridden below)
        "extra": ["--config", "configs/eight_schools.toml"],
        "has_slopes": False,
        "location": {"b_Intercept": "Intercept"},
        "scale": {"sd_school__Intercept": "1|school_sigma"},
        "divergences_scored": True,
    },
    "sleepstudy_corr": {
        "title": "sleepstudy, `Reaction ~ Days + (Days|Subject)`",
        "data": "sample_data/sleepstudy.csv",
        "formula": "Reaction ~ Days + (Days|Subject)",
        "extra": [],
        "has_slopes": True,
        "location": {"b_Intercept": "Intercept", "b_Days": "Days", "cor_Subject__Intercept__Days": "cor(Intercept,Days|Subject)"},
        "scale": {"sd_Subject__Intercept": "1|Subject_sigma", "sd_Subject__Days": "Days|Subject_sigma", "sigma": "sigma"},
        "divergences_scored": False,
    },
}

# not acceptance runs: the same data with hlm's own default priors, to show what the priors do
INVESTIGATIONS = {
    "eight_schools_hlm_default_priors": {
        "model": "eight_schools",
        "why": "the same model with hlm's default priors instead of brms's (Intercept Normal(mean(y), 2.5 sd(y)), "
               "group SD HalfNormal(2.5 sd(y))): with 8 schools the between-school SD is driven by its prior",
    },
}


def compare(fit: C.Fit, ref: dict, spec: dict) -> list[C.Check]:
    post = ref["posterior"]
    checks = [C.check_location_vs_posterior(fit, hlm, post[b]["mean"], post[b]["sd"], LOC_TOL) for b, hlm in spec["location"].items()]
    checks += [C.check_scale_vs_posterior(fit, hlm, post[b]["mean"], post[b]["sd"], SCALE_TOL, kind="sigma" if b == "sigma" else "sd")
               for b, hlm in spec["scale"].items()]
    div = C.check_divergences(fit)
    if not spec["divergences_scored"]:
        div.passed, div.criterion = None, ""
    checks.append(div)
    return checks


def main(argv: list[str] | None = None) -> int:
    args = C.parse_args(__doc__, MODELS, "skip the default-prior refit", argv)

    sampler, suffix = args.sampler, args.suffix
    brms = C.reference("brms")
    env = C.machine()
    keys = args.only or list(MODELS)
    out_md = [
        f"hlm vs brms {brms['versions']['brms']} (rstan {brms['versions']['rstan']}; {brms['settings']['chains']} chains x "
        f"{brms['settings']['iter'] - brms['settings']['warmup']} draws, seed {brms['settings']['seed']}), hlm "
        f"{sampler['chains']} chains x {sampler['draws']} draws (+{sampler['tune']} warm-up) with brms's priors. "
        f"{env['date_utc']}, {env['nproc']} CPUs ({env['cpu']}), load average at start {env['loadavg_start']}.",
        "",
    ]
    payload = C.new_payload("brms", env, sampler, SEED)
    verdicts: dict[str, str] = {}
    for key in keys:
        spec = MODELS[key]
        ref = brms["models"][key]
        prior_flags = brms_priors_to_hlm(ref["prior_summary"], spec["has_slopes"])
        extra = [*spec["extra"], *[a for p in prior_flags for a in ("--prior", p)]]
        fit = C.hlm_fit(f"brms_{key}{suffix}", spec["data"], spec["formula"], *extra, sampler=sampler, seed=SEED)
        checks = compare(fit, ref, spec)
        verdicts[key] = C.verdict(checks)
        brms_diag = ref["diagnostics"]
        out_md += C.fit_section(
            f"{spec['title']}: {verdicts[key]}", fit, checks, "brms mean", "brms sd", diagnostics_prefix="hlm: ",
            before=["brms priors: " + "; ".join(f"{r['class']} `{r['prior']}`" for r in ref["prior_summary"]
                                                if r["prior"] and not r["coef"] and not r["group"]) + ".", ""],
            after=[
                f"brms: divergences {brms_diag['divergences']}, min bulk ESS {brms_diag['min_ess_bulk']:.0f} "
                f"(`{brms_diag['min_ess_bulk_variable']}`), max R-hat {brms_diag['max_rhat']:.3f}; compile {ref['timing']['compile_s']:.0f} s + "
                f"sampling {ref['timing']['sampling_s']:.0f} s under load {ref['timing']['loadavg_1_5_15min_before'][0]:.1f} "
                "(see validation/reference/README.md for the timing caveat).",
                "",
            ])
        payload["models"][key] = C.fit_record(fit, checks, hlm_priors=prior_flags, verdict=verdicts[key])

    if not args.no_investigate:
        for inv_key, inv in INVESTIGATIONS.items():
            if inv["model"] not in keys:
                continue
            spec = MODELS[inv["model"]]
            ref = brms["models"][inv["model"]]
            fit = C.hlm_fit(f"brms_{inv_key}{suffix}", spec["data"], spec["formula"], *spec["extra"], sampler=sampler, seed=SEED)
            checks = compare(fit, ref, spec)
            out_md += C.fit_section(
                f"Investigation `{inv_key}` (not an acceptance run): {C.verdict(checks)}", fit, checks, "brms mean", "brms sd",
                diagnostics_prefix="hlm: ",
                before=[inv["why"] + ". hlm priors used: " + "; ".join(f"`{k}` {v}" for k, v in fit.priors.items()) + ".", ""])
            payload["investigations"][inv_key] = C.fit_record(fit, checks, why=inv["why"], verdict=C.verdict(checks))

    return C.finish("brms", args, verdicts, {k: m["title"] for k, m in MODELS.items()}, payload, out_md)


if __name__ == "__main__":
    raise SystemExit(main())
