"""Issue 19 families end to end: one tiny fit per family (default suite), refusals of
impossible combinations, and recovery of the truth on simulated data (slow)."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, gammaln

from hlm_cli.cli.app import main

FAST = ["--draws", "150", "--tune", "150", "--chains", "2", "--seed", "1", "--quiet", "--no-plots"]


def _data(n=60, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    g = np.repeat([f"g{i}" for i in range(4)], n // 4)
    mined = rng.integers(0, 2, n)
    mu = np.exp(0.8 + 0.4 * x)
    return pd.DataFrame({
        "x": x, "g": g, "mined": np.where(mined == 1, "yes", "no"),
        "count": np.where(rng.random(n) < expit(-1 + 1.5 * mined), 0, rng.poisson(mu)),
        "succ": rng.binomial(8, expit(-0.5 + 0.5 * x)), "n": 8,
        "time": rng.weibull(1.5, n) * np.exp(0.5 + 0.3 * x),
    })


CASES = {  # family -> (formula, extra flags, a family parameter the summary must show)
    "zero_inflated_poisson": ("count ~ x + (1|g)", ["--zi-formula", "~ mined"], "zi_mined[yes]"),
    "zero_inflated_negbinomial": ("count ~ x", [], "zi"),
    "hurdle_poisson": ("count ~ x", [], "hu"),
    "hurdle_negbinomial": ("count ~ x", ["--hu-formula", "~ mined"], "hu_Intercept"),
    "beta_binomial": ("cbind(succ, n - succ) ~ x", [], "phi"),
    "weibull": ("time ~ x", [], "shape"),
    "exponential": ("time ~ x", ["--link", "softplus"], "x"),
}


@pytest.mark.parametrize("family", list(CASES))
def test_new_family_fits_end_to_end(tmp_path, family):
    formula, extra, param = CASES[family]
    data = tmp_path / "d.csv"
    _data().to_csv(data, index=False)
    out = tmp_path / family
    assert main(["fit", str(data), "-f", formula, "--family", family, "--out", str(out), *extra, *FAST]) == 0
    s = pd.read_csv(out / "summary.csv").set_index("parameter")
    assert param in s.index and np.isfinite(s.loc[param, "mean"])
    info = json.loads((out / "run.json").read_text())
    assert info["family"]["name"] == family
    assert info["family"]["link"] == ("softplus" if "--link" in extra else ("logit" if family == "beta_binomial" else "log"))
    if family == "zero_inflated_poisson":  # every later command on the zi-formula model
        new = tmp_path / "new.csv"
        pd.DataFrame({"x": [0.0, 1.0], "g": ["g1", "zz"], "mined": ["yes", "no"]}).to_csv(new, index=False)
        assert main(["predict", str(out), str(new), "--kind", "response", "--out", str(tmp_path / "p.csv")]) == 0
        pred = pd.read_csv(tmp_path / "p.csv")
        assert len(pred) == 2 and (pred.filter(like="mean").to_numpy() >= 0).all()
        assert main(["loo", str(out), "--fix", "none"]) == 0
        assert main(["hypothesis", str(out), "zi_mined[yes] > 0"]) == 0
        assert main(["report", str(out)]) == 0
        assert (out / "plots" / "ppc_rootogram.png").exists()


@pytest.mark.slow  # suite time budget; links are unit-tested against PyMC (tests/unit/test_families_more.py)
def test_probit_link_is_recorded_and_used(tmp_path):
    data = tmp_path / "d.csv"
    _data().to_csv(data, index=False)
    out = tmp_path / "probit"
    assert main(["fit", str(data), "-f", "cbind(succ, n - succ) ~ x", "--link", "probit", "--out", str(out), *FAST]) == 0
    info = json.loads((out / "run.json").read_text())
    assert info["family"] == {"name": "binomial", "link": "probit"} or info["family"]["link"] == "probit"
    assert info["config"]["link"] == "probit"
    s = pd.read_csv(out / "summary.csv").set_index("parameter")
    # the truth is logit slope 0.5, about 0.3 on the probit scale (logit ~ 1.6-1.7 probit)
    assert 0.1 < s.loc["x", "mean"] < 0.45


@pytest.mark.parametrize("args, message, hint", [
    (["--family", "poisson", "--link", "identity"], "the poisson family has no link 'identity'", "log, softplus"),
    (["--family", "poisson", "--zi-formula", "~ mined"], "which the poisson family does not have", "zero_inflated_poisson"),
    (["--family", "zero_inflated_poisson", "--hu-formula", "~ mined"], "which the zero_inflated_poisson family does not have", "--zi-formula"),
    (["--family", "zero_inflated_poisson", "--zi-formula", "~ (1|g)"], "--zi-formula takes population-level terms only", "~ mined"),
    (["--family", "beta_binomial"], "the beta_binomial family needs the number of trials", "cbind("),
])
def test_impossible_combinations_are_refused(tmp_path, capsys, args, message, hint):
    data = tmp_path / "d.csv"
    _data().to_csv(data, index=False)
    out = tmp_path / "o"
    code = main(["fit", str(data), "-f", "count ~ x", "--out", str(out), *args, *FAST])
    assert code in (1, 2)
    err = capsys.readouterr().err
    assert message in err and hint in err and not out.exists()


# --------------------------------------------------------------------------- recovery (slow)

SLOW_DRAWS = ["--draws", "500", "--tune", "500", "--chains", "2", "--seed", "3", "--quiet", "--no-plots"]


def _simulate(family, n=400, seed=11):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    m = rng.integers(0, 2, n)
    eta = 1.0 + 0.5 * x
    truth = {"Intercept": 1.0, "x": 0.5}
    mu = np.exp(eta)
    if family in ("zero_inflated_poisson", "zero_inflated_negbinomial"):
        zi = expit(-1.0 + 1.5 * m)
        base = rng.poisson(mu) if family.endswith("poisson") else rng.poisson(rng.gamma(3.0, mu / 3.0))
        y = np.where(rng.random(n) < zi, 0, base)
        truth.update({"zi_Intercept": -1.0, "zi_mined[yes]": 1.5})
    elif family in ("hurdle_poisson", "hurdle_negbinomial"):
        y = np.zeros(n)
        for i in range(n):
            while y[i] == 0:
                y[i] = rng.poisson(mu[i]) if family.endswith("poisson") else rng.poisson(rng.gamma(3.0, mu[i] / 3.0))
        y = np.where(rng.random(n) < 0.3, 0, y)
        truth["hu"] = 0.3
    elif family == "beta_binomial":
        p = rng.beta(expit(eta - 1.0) * 10, (1 - expit(eta - 1.0)) * 10)
        y = rng.binomial(20, p)
        truth = {"Intercept": 0.0, "x": 0.5, "phi": 10.0}
    elif family == "weibull":
        k = 2.0
        y = rng.weibull(k, n) * mu / np.exp(gammaln(1 + 1 / k))
        truth["shape"] = 2.0
    else:
        y = rng.exponential(mu)
    if family.endswith("negbinomial"):
        truth["alpha"] = 3.0
    return pd.DataFrame({"y": y, "x": x, "mined": np.where(m == 1, "yes", "no"), "n": 20}), truth


@pytest.mark.slow
@pytest.mark.parametrize("family", list(CASES))
def test_recovers_the_truth(tmp_path, family):
    # NB dispersion next to extra zeros is weakly identified: with 400 rows (seed 11) even
    # glmmTMB's ML interval for alpha (0.85-2.71) misses the true 3
    df, truth = _simulate(family, n=1200 if family.endswith("negbinomial") else 400)
    data = tmp_path / "d.csv"
    df.to_csv(data, index=False)
    out = tmp_path / "o"
    formula = "cbind(y, n - y) ~ x" if family == "beta_binomial" else "y ~ x"
    extra = ["--zi-formula", "~ mined"] if family.startswith("zero_inflated") else []
    assert main(["fit", str(data), "-f", formula, "--family", family, "--out", str(out), *extra, *SLOW_DRAWS]) == 0
    s = pd.read_csv(out / "summary.csv").set_index("parameter")
    for name, value in truth.items():
        lo, hi = s.loc[name, "hdi94_lb"], s.loc[name, "hdi94_ub"]
        width = hi - lo
        # inside the 94% interval, with a little slack for Monte Carlo error
        assert lo - 0.1 * width <= value <= hi + 0.1 * width, (name, value, lo, hi)


@pytest.mark.slow
def test_exact_refits_of_a_zi_formula_model(tmp_path, capsys):
    """reloo evaluates each held-out row with its own zi (it crashed reshaping the refit's
    per-row zi of n - 1 rows)."""
    data = tmp_path / "d.csv"
    _data().to_csv(data, index=False)
    out = tmp_path / "zip"
    assert main(["fit", str(data), "-f", "count ~ x", "--family", "zero_inflated_poisson", "--zi-formula", "~ mined",
                 "--out", str(out), *FAST]) == 0
    assert main(["loo", str(out), "--fix", "reloo", "--out", str(tmp_path / "loo")]) == 0
