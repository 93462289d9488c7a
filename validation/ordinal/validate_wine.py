"""Issue 19 (ordinal): hlm's cumulative family against ordinal::clmm on ordinal::wine.

    Rscript validation/ordinal/wine_clmm.R          # wine.csv + wine_clmm.json (the reference)
    python validation/ordinal/validate_wine.py      # fits hlm (logit, probit), writes results.json

Criteria (issue 19): population effects within 0.35 reference SE of clmm's estimates, SD(judge)
within 35%; the thresholds Intercept[k] (clmm's k|k+1) are reported with the same yardstick.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NAMES = {"temp[warm]": "tempwarm", "contact[yes]": "contactyes", "Intercept[1]": "1|2", "Intercept[2]": "2|3",
         "Intercept[3]": "3|4", "Intercept[4]": "4|5"}


def sd_median(out: Path) -> float:
    import numpy as np
    import xarray as xr

    with xr.open_datatree(out / "posterior.nc", engine="h5netcdf") as tree:
        return float(np.median(tree["posterior"]["1|judge_sigma"].values))


def fit(link: str, out: Path, draws: int = 1000, chains: int = 4) -> pd.DataFrame:
    cmd = [sys.executable, "-m", "hlm_cli", "fit", str(HERE / "wine.csv"), "-f", "rating ~ temp + contact + (1|judge)",
           "--family", "cumulative", "--link", link, "--draws", str(draws), "--tune", str(draws), "--chains", str(chains),
           "--seed", "1", "--out", str(out), "--force", "--no-plots", "-q"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(cmd, check=False, env=env)
    return pd.read_csv(out / "summary.csv").set_index("parameter")


def main() -> int:
    ref = json.loads((HERE / "wine_clmm.json").read_text())
    results, ok = {}, True
    for link in ("logit", "probit"):
        r = ref[link]
        out = Path(os.environ.get("TMPDIR", "/tmp")) / f"hlm_wine_{link}"
        s = fit(link, out)
        rows = []
        for ours, theirs in NAMES.items():
            z = (s.loc[ours, "mean"] - r["estimate"][theirs]) / r["se"][theirs]
            passed = bool(abs(z) <= 0.35) if not ours.startswith("Intercept") else None
            rows.append({"parameter": ours, "hlm_mean": s.loc[ours, "mean"], "hlm_sd": s.loc[ours, "sd"],
                         "clmm": r["estimate"][theirs], "clmm_se": r["se"][theirs], "z": z, "pass": passed,
                         "r_hat": s.loc[ours, "r_hat"]})
        sd = s.loc["sd(Intercept|judge)", "mean"] if "sd(Intercept|judge)" in s.index else s.loc["1|judge_sigma", "mean"]
        ratio = sd / r["sd_judge"]
        rows.append({"parameter": "sd(judge)", "hlm_mean": sd, "clmm": r["sd_judge"], "ratio": ratio, "pass": bool(abs(ratio - 1) <= 0.35),
                     "hlm_median": sd_median(out), "median_ratio": sd_median(out) / r["sd_judge"]})
        ok &= all(x["pass"] is not False for x in rows)
        results[link] = {"call": r["call"], "rows": rows, "max_r_hat": float(s["r_hat"].max())}
        print(f"--- {link}  (max R-hat {s['r_hat'].max():.3f})")
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    (HERE / "results.json").write_text(json.dumps(results, indent=2, default=float))
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
