"""hlm varpart against lme4: the variance fractions at lme4's (RE)ML estimates computed with
the same formulas (validation/varpart/reference_lme4.R -> reference_lme4.csv) next to hlm's
posterior-mean fractions and the fractions of hlm's posterior-mean variances.

Run (from the repository root; a few minutes on 2 cores):
    .venv/bin/python validation/varpart/validate_varpart.py [--draws 1000]
Prints a markdown table for validation/README.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
MODELS = {
    "cell_lines": ("sample_data/cell_lines.csv", "logfc ~ 1 + (1|gene) + (1|cell_line)", []),
    "sleep_int": ("sample_data/sleepstudy.csv", "Reaction ~ Days + (1|Subject)", []),
    "sleep_slope": ("sample_data/sleepstudy.csv", "Reaction ~ Days + (Days|Subject)", []),
    "cbpp": ("sample_data/cbpp.csv", "cbind(incidence, size - incidence) ~ period + (1|herd)", []),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=Path("/tmp/hlm_varpart_validation"))
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from hlm_cli.workflows.varpart import fractions_from_run

    ref = pd.read_csv(ROOT / "validation/varpart/reference_lme4.csv")
    hlm = [str(Path(sys.executable).parent / "hlm")]
    rows = []
    for name, (data, formula, extra) in MODELS.items():
        run = args.out / name
        if not (run / "run.json").exists():
            cmd = [*hlm, "fit", str(ROOT / data), "--formula", formula, "--out", str(run), "--draws", str(args.draws),
                   "--tune", str(args.draws), "--chains", "2", "--seed", "1", "--no-plots", "--quiet", "--force", *extra]
            subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        t = fractions_from_run(run, ci=0.9)
        plug = t["variance"] / t["variance"].sum()  # fractions of the posterior-mean variances
        for (_, r), p in zip(t.iterrows(), plug, strict=True):
            m = ref[(ref.model == name) & (ref.component == r.component)]
            rows.append((name, r.component, float(m.fraction.iloc[0]) if len(m) else float("nan"), r["mean"],
                         r["lower"], r["upper"], p))
    print("| model | component | lme4 fraction | hlm mean fraction [90% ETI] | hlm fraction of mean variances |")
    print("|---|---|---|---|---|")
    for name, comp, lme4, mean, lo, hi, plug in rows:
        print(f"| {name} | {comp} | {lme4:.3f} | {mean:.3f} [{lo:.3f}, {hi:.3f}] | {plug:.3f} |")


if __name__ == "__main__":
    main()
