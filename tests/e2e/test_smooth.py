"""Smooths s(x) end to end (issue 19): fit, run.json, report figure, predict at new x; the slow
test recovers a known curve."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hlm_cli.cli.app import main


def _curve(x):
    return np.sin(x) + 0.1 * x


def _write(tmp_path, n, seed=0, noise=0.3):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, n)
    g = rng.choice(list("abcde"), n)
    y = _curve(x) + rng.normal(0, noise, n)
    path = tmp_path / "smooth.csv"
    pd.DataFrame({"y": y, "x": x, "g": g}).to_csv(path, index=False)
    return path


def test_smooth_fit_report_and_predict(tmp_path, capsys):
    data = _write(tmp_path, 60)
    out = tmp_path / "fit"
    assert main(["fit", str(data), "--formula", "y ~ s(x, k = 6) + (1|g)", "--out", str(out),
                 "--draws", "150", "--tune", "150", "--chains", "2", "--seed", "3", "--quiet"]) == 0
    info = json.loads((out / "run.json").read_text())
    (sm,) = info["smooths"]
    assert sm["label"] == "s(x, k=6)" and sm["k"] == 6 and len(sm["knots"]) == 6 and np.shape(sm["random"]) == (6, 4)
    assert info["parameters"]["group_sds"]["s(x, k=6)"] == ["sds(s(x, k=6))"]
    assert info["plots"]["conditional_smooth_x"] == "plots/conditional_smooth_x.png"
    assert (out / "plots" / "conditional_smooth_x.png").stat().st_size > 1000
    assert "conditional_x" not in info["plots"]  # the smooth's figure replaces the plain one
    summary = pd.read_csv(out / "summary.csv").set_index("parameter")
    assert summary.loc["sds(s(x, k=6))", "kind"] == "group_sd" and summary.loc["s(x, k=6)_lin", "kind"] == "population"

    new = tmp_path / "new.csv"
    pd.DataFrame({"x": [1.5, 4.7, 8.0], "g": ["a", "a", "a"]}).to_csv(new, index=False)
    assert main(["predict", str(out), str(new), "--out", str(tmp_path / "pred.csv")]) == 0
    pred = pd.read_csv(tmp_path / "pred.csv")
    # sin peaks at 1.5 and 8, dips at 4.7: a straight line could not order them so
    assert pred["mean"][0] > pred["mean"][1] + 1 and pred["mean"][2] > pred["mean"][1] + 1


@pytest.mark.slow
def test_smooth_recovers_a_known_curve(tmp_path, capsys):
    data = _write(tmp_path, 300, seed=7, noise=0.3)
    out = tmp_path / "fit"
    assert main(["fit", str(data), "--formula", "y ~ s(x)", "--out", str(out), "--draws", "500", "--tune", "500",
                 "--chains", "2", "--seed", "1", "--quiet", "--no-plots"]) == 0
    grid = np.linspace(0.5, 9.5, 30)
    new = tmp_path / "grid.csv"
    pd.DataFrame({"x": grid}).to_csv(new, index=False)
    assert main(["predict", str(out), str(new), "--out", str(tmp_path / "pred.csv")]) == 0
    pred = pd.read_csv(tmp_path / "pred.csv")
    truth = _curve(grid)
    assert np.sqrt(np.mean((pred["mean"] - truth) ** 2)) < 0.12
    covered = (pred["lower"] <= truth) & (truth <= pred["upper"])
    assert covered.mean() >= 0.8
    s = pd.read_csv(out / "summary.csv").set_index("parameter")
    assert s.loc["sds(s(x))", "hdi94_lb"] > 0.05  # clearly wiggly: not shrunk to a line
    assert s.loc["sigma", "hdi94_lb"] < 0.3 < s.loc["sigma", "hdi94_ub"]
