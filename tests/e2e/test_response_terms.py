"""One small end-to-end fit per response term (cens(), trunc(), weights()), the refusals, and
(slow) recovery of the truth on simulated data. docs/response-terms.md."""

import json

import numpy as np
import pandas as pd
import pytest

from hlm_cli.cli.app import main

FAST = ["--draws", "150", "--tune", "150", "--chains", "2", "--seed", "3", "--quiet"]


def _survival(path, n=40, seed=0, censor_scale=5.0):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 5, n)
    x = rng.normal(size=n)
    t = np.exp(1.0 + 0.5 * x + rng.normal(0, 0.4, 5)[g] + rng.normal(0, 0.6, n))
    c = rng.exponential(censor_scale, n)
    pd.DataFrame({"time": np.round(np.minimum(t, c), 4), "censored": np.where(t > c, "right", "none"),
                  "x": np.round(x, 4), "g": [f"p{i}" for i in g]}).to_csv(path, index=False)
    return path


def test_cens_fit_loo_predict(tmp_path, capsys):
    data = _survival(tmp_path / "surv.csv")
    out = tmp_path / "cens"
    assert main(["fit", str(data), "--formula", "time | cens(censored) ~ x + (1|g)", "--family", "lognormal",
                 "--out", str(out), *FAST]) == 0
    info = json.loads((out / "run.json").read_text())
    rows = info["response_terms"]["cens"]["rows"]
    frame = pd.read_csv(data)
    assert rows["right"] == int((frame.censored == "right").sum()) > 0 and rows["left"] == 0
    assert (out / "plots" / "ppc.png").exists()
    page = (out / "report.html").read_text()
    assert "Response terms" in page and "Kaplan-Meier curve of the data" in page
    import xarray as xr

    tree = xr.open_datatree(out / "posterior.nc")
    assert np.asarray(tree["observed_data"]["cens"]).tolist() == [1.0 if c == "right" else 0.0 for c in frame.censored]
    assert main(["loo", str(out)]) == 0
    new = tmp_path / "new.csv"
    frame[["x", "g"]].head(3).to_csv(new, index=False)  # no censoring column: not needed to predict
    assert main(["predict", str(out), str(new), "--kind", "response", "--out", str(tmp_path / "p.csv")]) == 0
    pred = pd.read_csv(tmp_path / "p.csv")
    assert len(pred) == 3 and (pred["lower"] > 0).all()


def test_trunc_draws_stay_inside_the_bounds(tmp_path, capsys):
    rng = np.random.default_rng(2)
    x = rng.normal(size=40)
    y = 1.0 + 0.8 * x + rng.normal(0, 1.0, 40)
    keep = y > 0  # only positive values were recorded
    data = tmp_path / "tr.csv"
    pd.DataFrame({"y": np.round(y[keep], 4), "x": np.round(x[keep], 4)}).to_csv(data, index=False)
    out = tmp_path / "tr"
    assert main(["fit", str(data), "--formula", "y | trunc(lb = 0) ~ x", "--out", str(out), *FAST, "--no-plots"]) == 0
    info = json.loads((out / "run.json").read_text())
    assert info["response_terms"] == {"trunc": {"lb": "0", "ub": None}}
    import xarray as xr

    ppc = np.asarray(xr.open_datatree(out / "posterior.nc")["posterior_predictive"]["y"])
    assert ppc.min() >= 0.0


def test_precision_weights(tmp_path, capsys):
    rng = np.random.default_rng(4)
    n = 40
    w = rng.choice([0.25, 4.0], n)
    x = rng.normal(size=n)
    y = 2.0 + x + rng.normal(0, 1.0, n) / np.sqrt(w)
    data = tmp_path / "w.csv"
    pd.DataFrame({"y": np.round(y, 4), "x": np.round(x, 4), "w": w}).to_csv(data, index=False)
    out = tmp_path / "w"
    assert main(["fit", str(data), "--formula", "y | weights(w) ~ x", "--out", str(out), *FAST, "--no-plots"]) == 0
    info = json.loads((out / "run.json").read_text())
    assert info["response_terms"]["weights"]["type"] == "precision"
    s = pd.read_csv(out / "summary.csv").set_index("parameter")
    assert 0.5 < s.loc["sigma", "mean"] < 1.6  # sigma is the SD at weight 1, not a mix of 2 and 0.5


@pytest.mark.parametrize("formula, family, fragment", [
    ("y | weights(w) ~ x", "poisson", 'weights(w, type = "loglik")'),
    ("y | cens(c) ~ x", "bernoulli", "has none for the bernoulli family"),
])
def test_refusals(tmp_path, capsys, formula, family, fragment):
    data = tmp_path / "d.csv"
    pd.DataFrame({"y": [0, 1, 1, 0, 1, 0], "x": np.arange(6.0), "w": [1.0] * 6, "c": ["none"] * 6}).to_csv(data, index=False)
    assert main(["fit", str(data), "--formula", formula, "--family", family, "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err and not (tmp_path / "o").exists()


def test_bad_censoring_code_names_the_line(tmp_path, capsys):
    data = tmp_path / "d.csv"
    data.write_text("t,c,x\n1.0,none,0\n2.0,sideways,1\n3.0,right,2\n")
    assert main(["fit", str(data), "--formula", "t | cens(c) ~ x", "--family", "lognormal", "--out", str(tmp_path / "o")]) == 1
    assert "'sideways' on CSV line 3" in capsys.readouterr().err


# ---------------------------------------------------------------- recovery (slow)


@pytest.mark.slow
def test_censored_lognormal_recovers_the_truth(tmp_path, capsys):
    """Half the rows right-censored: the censored fit recovers the slope and sigma; treating the
    censoring times as events would not (the intercept is biased low)."""
    data = _survival(tmp_path / "surv.csv", n=300, seed=11, censor_scale=3.0)
    out = tmp_path / "cens"
    assert main(["fit", str(data), "--formula", "time | cens(censored) ~ x + (1|g)", "--family", "lognormal",
                 "--out", str(out), "--draws", "500", "--tune", "500", "--chains", "2", "--quiet", "--no-plots"]) == 0
    s = pd.read_csv(out / "summary.csv").set_index("parameter")
    for name, truth in (("x", 0.5), ("sigma", 0.6)):
        assert s.loc[name, "hdi94_lb"] < truth < s.loc[name, "hdi94_ub"], name


@pytest.mark.slow
def test_interval_censored_poisson_recovers_the_truth(tmp_path, capsys):
    rng = np.random.default_rng(8)
    n = 300
    x = rng.normal(size=n)
    y = rng.poisson(np.exp(1.2 + 0.4 * x))
    kind = rng.choice(["none", "interval", "left", "right"], n, p=[0.55, 0.25, 0.1, 0.1])
    lo = np.where(kind == "interval", np.maximum(y - 2, 0), y)  # interval: P(lo < Y <= lo + 3)
    lo = np.where(kind == "interval", np.maximum(y - rng.integers(1, 3, n), 0), lo)
    hi = np.where(kind == "interval", lo + 3, np.nan)
    kind = np.where((kind == "interval") & (y <= lo), "none", kind)
    lo = np.where(kind == "none", y, lo)
    data = tmp_path / "ic.csv"
    pd.DataFrame({"y": lo, "y2": hi, "c": kind, "x": np.round(x, 4)}).to_csv(data, index=False)
    out = tmp_path / "ic"
    assert main(["fit", str(data), "--formula", "y | cens(c, y2) ~ x", "--family", "poisson",
                 "--out", str(out), "--draws", "500", "--tune", "500", "--chains", "2", "--quiet", "--no-plots"]) == 0
    s = pd.read_csv(out / "summary.csv").set_index("parameter")
    assert s.loc["x", "hdi94_lb"] < 0.4 < s.loc["x", "hdi94_ub"]
    assert s.loc["Intercept", "hdi94_lb"] < 1.2 < s.loc["Intercept", "hdi94_ub"]


@pytest.mark.slow
def test_truncated_poisson_recovers_the_truth(tmp_path, capsys):
    rng = np.random.default_rng(9)
    x = rng.normal(size=600)
    y = rng.poisson(np.exp(0.3 + 0.5 * x))
    keep = y >= 1  # zero-truncated counts
    data = tmp_path / "zt.csv"
    pd.DataFrame({"y": y[keep], "x": np.round(x[keep], 4)}).to_csv(data, index=False)
    out = tmp_path / "zt"
    assert main(["fit", str(data), "--formula", "y | trunc(lb = 1) ~ x", "--family", "poisson",
                 "--out", str(out), "--draws", "500", "--tune", "500", "--chains", "2", "--quiet", "--no-plots"]) == 0
    s = pd.read_csv(out / "summary.csv").set_index("parameter")
    assert s.loc["x", "hdi94_lb"] < 0.5 < s.loc["x", "hdi94_ub"]
    assert s.loc["Intercept", "hdi94_lb"] < 0.3 < s.loc["Intercept", "hdi94_ub"]
