"""relevel() in a real fit: the summary names the plain column's non-reference level, and
predict on new rows uses the fitted order (the reference level's prediction is the intercept)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import SAMPLE

FAST = ["--draws", "150", "--tune", "150", "--chains", "2", "--seed", "3", "--quiet", "--no-plots"]


@pytest.mark.slow  # relevel/C(levels=) are unit-tested (tests/unit/test_relevel.py); this real fit is ~10 s
def test_relevel_fit_and_predict(tmp_path):
    from hlm_cli.cli.app import main

    run = tmp_path / "drug"
    formula = 'value ~ relevel(treatment, ref = "drug") + (1|unit)'
    assert main(["fit", str(SAMPLE / "drug_knockout.csv"), "--formula", formula, "--out", str(run), *FAST]) in (0, 3)
    summary = pd.read_csv(run / "summary.csv")
    params = set(summary["parameter"])
    assert "treatment[placebo]" in params and "treatment[drug]" not in params
    new = tmp_path / "new.csv"
    pd.DataFrame({"treatment": ["drug", "placebo"], "unit": ["ko_A_drug_1", "ko_A_drug_1"]}).to_csv(new, index=False)
    out = tmp_path / "pred.csv"
    assert main(["predict", str(run), str(new), "--out", str(out), "--kind", "mean"]) == 0
    pred = pd.read_csv(out)
    post = summary.set_index("parameter")["mean"]
    # drug (the reference) minus placebo is minus the placebo coefficient
    diff = float(pred["mean"].iloc[0] - pred["mean"].iloc[1])
    assert np.isclose(diff, -post["treatment[placebo]"], atol=0.05 * abs(post["treatment[placebo]"]) + 0.05)
