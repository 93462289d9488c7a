"""hlm against the glmmTMB/nlme references of reference.R (validation/README.md, issue 19).

    PYTHONPATH=. .venv/bin/python validation/covar/compare.py [OUTDIR]

Fits the three models of reference.R on panel.csv (make_data.R) with 4 chains x 1000 draws
and prints hlm's posterior means and SDs beside the references (reference.txt)."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from hlm_cli.cli.app import main

HERE = Path(__file__).parent
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/hlm_covar_validation")

# name, formula, family, {hlm parameter: (reference estimate, reference SE or None)}
CASES = [
    ("gaussian_ar1", "y ~ x + ar1(t | id)", "gaussian",
     {"Intercept": (2.0820, 0.1135), "x": (0.5488, 0.0411), "sigma": (1.1538, None), "cor(ar1(t)|id)": (0.6313, None)}),
    ("gaussian_ar", "y ~ x + ar(time = t, gr = id)", "gaussian",
     {"Intercept": (2.0820, 0.1139), "x": (0.5488, 0.0412), "sigma": (1.1538, None), "ar[1]": (0.6313, None)}),
    ("poisson_ar1", "count ~ x + ar1(t | id)", "poisson",
     {"Intercept": (1.0168, 0.0801), "x": (0.2788, 0.0430), "ar1(t)|id_sigma": (0.7172, None), "cor(ar1(t)|id)": (0.6059, None)}),
    ("gaussian_cs", "z ~ x + cs(0 + visit | id)", "gaussian",
     {"Intercept": (0.8645, 0.1002), "x": (-0.4669, 0.0347), "visit[v1]|id_sigma": (0.5572, None),
      "visit[v2]|id_sigma": (0.9070, None), "visit[v3]|id_sigma": (1.0257, None), "visit[v4]|id_sigma": (1.3950, None),
      "cor(cs|id)": (0.6726, None), "sigma": (0.4883, None)}),
]

rows = []
for name, formula, family, ref in CASES:
    out = OUT / name
    if not (out / "summary.csv").exists():
        code = main(["fit", str(HERE / "panel.csv"), "--formula", formula, "--family", family, "--out", str(out),
                     "--draws", "1000", "--tune", "1000", "--chains", "4", "--seed", "1", "--quiet", "--no-plots"])
        assert code == 0, name
    s = pd.read_csv(out / "summary.csv").set_index("parameter")
    for par, (est, se) in ref.items():
        m, sd = float(s.loc[par, "mean"]), float(s.loc[par, "sd"])
        rel = (m - est) / se if se else (m - est) / abs(est)
        rows.append(dict(model=name, parameter=par, hlm=round(m, 4), hlm_sd=round(sd, 4), reference=est, ref_se=se,
                         diff=f"{rel:+.2f} SE" if se else f"{100 * rel:+.1f}%",
                         ok=abs(rel) <= (0.35 if se else 0.35), rhat=float(s.loc[par, "r_hat"])))
table = pd.DataFrame(rows)
print(table.to_string(index=False))
print("all within tolerance:", bool(table.ok.all()))
