"""hlm's s() against mgcv::gamm on gamSim(1) data (issue 19).

Fits ``y ~ s(x0) + s(x1) + s(x2) + s(x3)`` with hlm (4 chains x 1000 draws), predicts the
expected response on the grid of reference.R (one smooth varies, the other x at their means)
and compares with mgcv's gamm (bs = "cr", REML): z = (hlm mean - mgcv fit) / mgcv SE per grid
point. Passes when every |z| < 2 (and, when brms_reference.R has been run, against brms's
posterior mean and SD as well). Also reports the SD ratio (hlm posterior SD / mgcv SE) and
hlm's sigma against gamm's.

Run from the repository root (after ``Rscript validation/smooth/reference.R``)::

    python validation/smooth/validate.py [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
HLM = os.environ.get("HLM", str(ROOT / ".venv" / "bin" / "hlm"))


def main() -> int:
    quick = "--quick" in sys.argv
    n = ["--chains", "2", "--draws", "300", "--tune", "300"] if quick else ["--chains", "4", "--draws", "1000", "--tune", "1000"]
    run = ROOT / "validation" / "runs" / "smooth_gamsim"
    t0 = time.time()
    fit = [HLM, "fit", str(HERE / "gamsim.csv"), "--formula", "y ~ s(x0) + s(x1) + s(x2) + s(x3)", "--out", str(run),
           "--seed", "1", "--force", "--quiet", "--no-plots", *n]
    subprocess.run(fit, check=True)
    wall = time.time() - t0
    pred = HERE / "hlm_curves.csv"
    subprocess.run([HLM, "predict", str(run), str(HERE / "grid.csv"), "--out", str(pred)], check=True)
    ref = pd.read_csv(HERE / "mgcv_curves.csv")
    got = pd.read_csv(pred)
    z = (got["mean"].to_numpy() - ref["cr_fit"].to_numpy()) / ref["cr_se"].to_numpy()
    ratio = got["sd"].to_numpy() / ref["cr_se"].to_numpy()
    summary = pd.read_csv(run / "summary.csv").set_index("parameter")
    rows = {}
    for sm, idx in ref.groupby("smooth").groups.items():
        rows[sm] = {"max_abs_z": float(np.abs(z[idx]).max()), "mean_abs_z": float(np.abs(z[idx]).mean()),
                    "sd_ratio_median": float(np.median(ratio[idx])), "sds": float(summary.loc[f"sds(s({sm}))", "mean"]),
                    "r_hat_sds": float(summary.loc[f"sds(s({sm}))", "r_hat"])}
    brms = HERE / "brms_curves.csv"  # optional: Rscript validation/smooth/brms_reference.R
    if brms.exists():
        ref_b = pd.read_csv(brms)
        zb = (got["mean"].to_numpy() - ref_b["mean"].to_numpy()) / ref_b["sd"].to_numpy()
        sds_b = pd.read_csv(HERE / "brms_sds.csv").set_index("parameter")
        for sm, idx in ref.groupby("smooth").groups.items():
            rows[sm].update({"brms_max_abs_z": float(np.abs(zb[idx]).max()),
                             "brms_sd_ratio_median": float(np.median(got["sd"].to_numpy()[idx] / ref_b["sd"].to_numpy()[idx])),
                             "brms_sds": float(sds_b.loc[f"sds_s{sm}_1", "mean"])})
    result = {
        "command": " ".join(fit[1:]).replace(str(ROOT) + "/", ""),
        "reference": "mgcv 1.8-41 gamm(y ~ s(x0, bs='cr') + s(x1, bs='cr') + s(x2, bs='cr') + s(x3, bs='cr'), method='REML')",
        "sigma_hlm": float(summary.loc["sigma", "mean"]),
        "max_r_hat": float(summary["r_hat"].max()),
        "wall_s": round(wall, 1),
        "smooths": rows,
        "pass": bool(np.all(np.abs(z) < 2)) and all(r.get("brms_max_abs_z", 0) < 2 for r in rows.values()),
    }
    (HERE / ("results_quick.json" if quick else "results.json")).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
