"""Issue 19, response terms: hlm against survreg, brms, lme4 and glmmTMB.

Run from the repository root after ``Rscript reference.R`` (and ``reference_brms.R``) in this
folder::

    python validation/response/validate.py [--quick] [--only CASE]

Each case is an ordinary ``hlm fit`` (``python -m hlm_cli``) into validation/runs/response_*;
the table (markdown) goes to stdout and ``results.json``. Criteria of issue 19: population
effects within 0.35 reference SE, SDs and family parameters within 35%.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RUNS = ROOT / "validation" / "runs"

CASES = [
    # name, data, formula, family, reference csv, what the reference is
    ("kidney_survreg", "kidney.csv", "time | cens(censored) ~ age + sex", "lognormal", "kidney_survreg",
     "survival::survreg(Surv(time, 1 - censored) ~ age + sex, dist = 'lognormal') (ML)"),
    ("kidney_brms", "kidney.csv", "time | cens(censored) ~ age + sex + (1|patient)", "lognormal", "kidney_brms",
     "brms 2.18 brm(time | cens(censored) ~ age + sex + (1 | patient), family = lognormal()), 4 x 1000"),
    ("ztpois_brms", "ztpois.csv", "y | trunc(lb = 1) ~ x + (1|g)", "poisson", "ztpois_brms",
     "brms 2.18 brm(y | trunc(lb = 1) ~ x + (1 | g), family = poisson()), 4 x 1000; simulated (reference_brms_sim.R)"),
    ("detection_brms", "detection.csv", "conc | cens(cens, upper) ~ x + (1|g)", "lognormal", "detection_brms",
     "brms 2.18 brm(conc | cens(cens, upper) ~ x + (1 | g), family = lognormal()), 4 x 1000; simulated, left- and "
     "interval-censored (reference_brms_sim.R)"),
    ("sleepstudy_precision", "sleepstudy_w.csv", "Reaction | weights(w) ~ Days + (1|Subject)", "gaussian",
     "sleepstudy_lmer_weights", "lme4 lmer(Reaction ~ Days + (1 | Subject), weights = w) (REML)"),
    ("sleepstudy_loglik", "sleepstudy_w.csv", "Reaction | weights(w, type = 'loglik') ~ Days + (1|Subject)", "gaussian",
     "sleepstudy_glmmtmb_weights", "glmmTMB(Reaction ~ Days + (1 | Subject), weights = w, REML = TRUE)"),
]


def fit(name: str, data: str, formula: str, family: str, sampler: dict) -> tuple[Path, float]:
    out = RUNS / f"response_{name}"
    cmd = [sys.executable, "-m", "hlm_cli", "fit", str(HERE / data), "--formula", formula, "--family", family,
           "--out", str(out), "--force", "--quiet", "--no-plots", "--seed", "1",
           *(x for k, v in sampler.items() for x in (f"--{k}", str(v)))]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    return out, time.perf_counter() - t


def compare(run: Path, ref: pd.DataFrame) -> list[dict]:
    s = pd.read_csv(run / "summary.csv").set_index("parameter")
    rows = []
    for _, r in ref.iterrows():
        if r.term not in s.index:
            rows.append({"term": r.term, "reference": r.estimate, "hlm": None, "check": "missing"})
            continue
        est, sd = float(s.loc[r.term, "mean"]), float(s.loc[r.term, "sd"])
        row = {"term": r.term, "reference": float(r.estimate), "ref_se": None if pd.isna(r.se) else float(r.se),
               "hlm": est, "hlm_sd": sd}
        if r.term.endswith("_sigma") or r.term == "sigma":
            row["ratio"] = est / float(r.estimate)
            row["pass"] = abs(row["ratio"] - 1) <= 0.35
        else:
            row["z"] = (est - float(r.estimate)) / float(r.se)
            row["pass"] = abs(row["z"]) <= 0.35
        rows.append(row)
    return rows


def main() -> int:
    quick = "--quick" in sys.argv
    sampler = {"chains": 2, "draws": 300, "tune": 300} if quick else {"chains": 4, "draws": 1000, "tune": 1000}
    lines = ["| case | term | reference | hlm (mean ± sd) | z or ratio | pass |", "|---|---|---|---|---|---|"]
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
    out_json = HERE / ("results_quick.json" if quick else "results.json")
    results = json.loads(out_json.read_text()) if only and out_json.exists() else {}
    for name, data, formula, family, refname, what in CASES:
        if only and name != only:
            continue
        ref_path = HERE / f"reference_{refname}.csv"
        if not ref_path.exists():
            print(f"skip {name}: {ref_path.name} missing (run the R script)", file=sys.stderr)
            continue
        run, wall = fit(name, data, formula, family, sampler)
        rows = compare(run, pd.read_csv(ref_path))
        results[name] = {"formula": formula, "family": family, "reference": what, "wall_s": round(wall, 1), "rows": rows}
        for r in rows:
            stat = f"z = {r['z']:+.2f}" if "z" in r else (f"ratio {r['ratio']:.3f}" if "ratio" in r else "-")
            lines.append(f"| {name} | `{r['term']}` | {r['reference']:.4g}"
                         + (f" (SE {r['ref_se']:.3g})" if r.get("ref_se") else "")
                         + f" | {r['hlm']:.4g} ± {r['hlm_sd']:.3g} | {stat} | {'PASS' if r.get('pass') else '**FAIL**'} |")
    out_json.write_text(json.dumps(results, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
