"""Real fits of model features beyond the basics: known SEs and pooling, sigma formulas,
correlated effects, and the pooling command."""

import json

import numpy as np
import pandas as pd
import pytest

from hlm_cli.cli.app import main
from tests.conftest import SAMPLE


def test_schools_partial_pooling_beats_no_pooling(tmp_path, capsys):
    """Issue 9: with known SEs, partial pooling has lower MSE against the truth than no pooling."""
    out = tmp_path / "schools"
    assert main(["fit", str(SAMPLE / "schools_regions.csv"), "--formula", "y | se(se) ~ 1 + (1|region/school)", "--out", str(out),
                 "--draws", "400", "--tune", "400", "--chains", "2", "--seed", "1", "--quiet", "--no-plots"]) == 0
    info = json.loads((out / "run.json").read_text())
    assert "sigma" not in info["priors"]  # the residual SD is known, not estimated
    assert main(["pooling", str(out), "--factor", "school", "--truth", str(SAMPLE / "schools_regions_truth.csv")]) == 0
    table = pd.read_csv(out / "pooling_region_school.csv")
    assert len(table) == 40 and (out / "pooling_region_school.png").exists()
    mse = {c: np.mean((table[c] - table["truth"]) ** 2) for c in ("no_pooling", "partial_pooling", "complete_pooling")}
    assert mse["partial_pooling"] < mse["no_pooling"] < mse["complete_pooling"]


def test_se_column_must_be_positive(tmp_path, capsys):
    bad = tmp_path / "es.csv"
    bad.write_text("school,y,sigma\nA,28,15\nB,8,-10\nC,-3,16\n")
    assert main(["fit", str(bad), "--formula", "y | se(sigma) ~ 1 + (1|school)", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "CSV line 3 has -10" in err and not (tmp_path / "o").exists()


def test_se_option_equals_formula_syntax(tmp_path, capsys):
    out = tmp_path / "es"
    assert main(["fit", str(SAMPLE / "eight_schools.csv"), "--formula", "y ~ 1 + (1|school)", "--se", "sigma", "--out", str(out),
                 "--draws", "300", "--tune", "300", "--chains", "2", "--quiet", "--no-plots"]) == 0
    info = json.loads((out / "run.json").read_text())
    assert info["parameters"]["family"] == [] and info["config"]["se"] == "sigma"


def test_sigma_formula_gives_per_group_residual_sd(tmp_path, capsys):
    rng = np.random.default_rng(4)
    g = np.repeat(["a", "b"], 40)
    y = np.where(g == "a", rng.normal(0, 0.5, 80), rng.normal(1, 3.0, 80))
    data = tmp_path / "best.csv"
    pd.DataFrame({"y": y, "g": g}).to_csv(data, index=False)
    out = tmp_path / "best"
    assert main(["fit", str(data), "--formula", "y ~ g", "--sigma-formula", "~ g", "--family", "t", "--out", str(out),
                 "--draws", "300", "--tune", "300", "--chains", "2", "--quiet", "--no-plots"]) == 0
    s = pd.read_csv(out / "summary.csv").set_index("parameter")
    # log(3.0) - log(0.5) = 1.79: group b's residual SD is much larger
    assert s.loc["sigma_g[b]", "hdi94_lb"] > 1.0
    assert s.loc["sigma_Intercept", "hdi94_lb"] < np.log(0.5) < s.loc["sigma_Intercept", "hdi94_ub"]


def test_sigma_formula_refuses_group_terms(tmp_path, tiny_csv, capsys):
    assert main(["fit", str(tiny_csv), "--formula", "y ~ x", "--sigma-formula", "~ (1|g)", "--out", str(tmp_path / "o")]) == 1
    assert "population-level terms only" in capsys.readouterr().err


@pytest.mark.slow
def test_sleepstudy_matches_lme4(tmp_path, capsys):
    """Issue 3: fixed effects within 0.25 lme4 SE, SDs within 25%, lme4's correlation inside the 94% HDI."""
    out = tmp_path / "sleep"
    assert main(["fit", str(SAMPLE / "sleepstudy.csv"), "--formula", "Reaction ~ Days + (Days|Subject)", "--out", str(out), "--quiet", "--no-plots"]) == 0
    s = pd.read_csv(out / "summary.csv").set_index("parameter")
    # lme4 1.1 REML estimates (validation/reference/lme4.json)
    assert abs(s.loc["Intercept", "mean"] - 251.405) < 0.25 * 6.825
    assert abs(s.loc["Days", "mean"] - 10.467) < 0.25 * 1.546
    assert abs(s.loc["1|Subject_sigma", "mean"] / 24.741 - 1) < 0.25
    assert abs(s.loc["Days|Subject_sigma", "mean"] / 5.922 - 1) < 0.25
    r = s.loc["cor(Intercept,Days|Subject)"]
    assert r.hdi94_lb < 0.066 < r.hdi94_ub
