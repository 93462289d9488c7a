"""Fit the issue-19 family validation models with hlm and compare with the R references.

Run from the repository root after ``Rscript validation/families/reference.R``:
``python validation/families/compare.py [NAME ...]``. Prints one row per parameter: hlm's
posterior mean, the reference estimate, the difference in reference SEs (population effects,
criterion |diff| <= 0.35) or the relative difference (SDs and family parameters, <= 35%),
and writes validation/families/results.csv.
"""

import subprocess
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).parent
FLAGS = ["--draws", "1000", "--tune", "1000", "--chains", "2", "--seed", "1", "--quiet", "--no-plots", "--force"]

MODELS = {  # name -> (data, formula, hlm flags, reference file, R term -> hlm parameter)
    "zip": ("data_salamanders.csv", "count ~ mined + (1|site)",
            ["--family", "zero_inflated_poisson", "--zi-formula", "~ mined", "--reference", "mined=yes"], "ref_zip.csv",
            {"(Intercept)": "Intercept", "minedno": "mined[no]", "zi_(Intercept)": "zi_Intercept",
             "zi_minedno": "zi_mined[no]", "sd(Intercept|site)": "sd(Intercept|site)"}),
    "zip0": ("data_salamanders.csv", "count ~ mined",
             ["--family", "zero_inflated_poisson", "--zi-formula", "~ mined", "--reference", "mined=yes"], "ref_zip0.csv",
             {"(Intercept)": "Intercept", "minedno": "mined[no]", "zi_(Intercept)": "zi_Intercept", "zi_minedno": "zi_mined[no]"}),
    "zinb": ("data_salamanders.csv", "count ~ mined + (1|site)",
             ["--family", "zero_inflated_negbinomial", "--zi-formula", "~ mined", "--reference", "mined=yes"], "ref_zinb.csv",
             {"(Intercept)": "Intercept", "minedno": "mined[no]", "zi_(Intercept)": "zi_Intercept",
              "zi_minedno": "zi_mined[no]", "sd(Intercept|site)": "sd(Intercept|site)", "alpha": "alpha"}),
    "owls_nb": ("data_owls.csv", "SiblingNegotiation ~ FoodTreatment * SexParent + offset(log(BroodSize)) + (1|Nest)",
                ["--family", "negativebinomial"], "ref_owls_nb.csv",
                {"(Intercept)": "Intercept", "FoodTreatmentSatiated": "FoodTreatment[Satiated]",
                 "SexParentMale": "SexParent[Male]", "FoodTreatmentSatiated:SexParentMale": "FoodTreatment[Satiated]:SexParent[Male]",
                 "sd(Intercept|Nest)": "sd(Intercept|Nest)", "alpha": "alpha"}),
    "cbpp_bb0": ("data_cbpp.csv", "cbind(incidence, size - incidence) ~ period", ["--family", "beta_binomial"], "ref_cbpp_bb0.csv",
                 {"(Intercept)": "Intercept", "periodp2": "period[p2]", "periodp3": "period[p3]", "periodp4": "period[p4]",
                  "phi": "phi"}),
    "cbpp_bb": ("data_cbpp.csv", "cbind(incidence, size - incidence) ~ period + (1|herd)", ["--family", "beta_binomial"],
                "ref_cbpp_bb.csv",
                {"(Intercept)": "Intercept", "periodp2": "period[p2]", "periodp3": "period[p3]", "periodp4": "period[p4]",
                 "sd(Intercept|herd)": "sd(Intercept|herd)", "phi": "phi"}),
    "lung_weibull": ("data_lung.csv", "time ~ age + sex", ["--family", "weibull"], "ref_lung_weibull.csv",
                     {"Intercept": "Intercept", "age": "age", "sex[male]": "sex[male]", "shape": "shape"}),
    "lung_exponential": ("data_lung.csv", "time ~ age + sex", ["--family", "exponential"], "ref_lung_exponential.csv",
                         {"Intercept": "Intercept", "age": "age", "sex[male]": "sex[male]"}),
}


def summary_name(p: str) -> str:
    return p.replace("sd(Intercept|", "1|").replace(")", "_sigma") if p.startswith("sd(") else p


def run(name: str) -> pd.DataFrame:
    data, formula, flags, ref_file, names = MODELS[name]
    out = Path("/tmp/hlm-validation-families") / name
    cmd = [sys.executable, "-m", "hlm_cli", "fit", str(HERE / data), "-f", formula, "--out", str(out), *flags, *FLAGS]
    subprocess.run(cmd, check=True)
    s = pd.read_csv(out / "summary.csv").set_index("parameter")
    ref = pd.read_csv(HERE / ref_file).set_index("term")
    rows = []
    for term, param in names.items():
        key = param if param in s.index else summary_name(param)
        est, se = ref.loc[term, "estimate"], ref.loc[term, "se"]
        mean = s.loc[key, "mean"]
        if pd.notna(se):
            diff, crit = (mean - est) / se, "ref SE"
            ok = abs(diff) <= 0.35
        else:
            diff, crit = (mean - est) / est if est != 0 else float("nan"), "relative"
            ok = abs(diff) <= 0.35
        rows.append({"model": name, "parameter": param, "hlm_mean": mean, "hlm_sd": s.loc[key, "sd"], "reference": est,
                     "ref_se": se, "difference": diff, "unit": crit, "pass": ok,
                     "r_hat": s.loc[key, "r_hat"] if "r_hat" in s.columns else float("nan")})
    return pd.DataFrame(rows)


if __name__ == "__main__":
    names = sys.argv[1:] or list(MODELS)
    results = pd.concat([run(n) for n in names], ignore_index=True)
    path = HERE / "results.csv"
    if path.exists() and sys.argv[1:]:
        old = pd.read_csv(path)
        results = pd.concat([old[~old["model"].isin(names)], results], ignore_index=True)
    results.to_csv(path, index=False)
    pd.set_option("display.width", 200)
    print(results.round(3).to_string(index=False))
