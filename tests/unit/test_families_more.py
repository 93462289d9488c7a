"""Issue 19 families (zero-inflated, hurdle, beta-binomial, Weibull, exponential), --link and
--zi-formula / --hu-formula: numpy log densities against PyMC's logp, simulators, refusals.

PyMC's logp is compiled with PyTensor's Python linker (FAST_COMPILE): no C compilation, so
every family is checked in the default suite in a few seconds.
"""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hlm_cli.errors import ConfigError
from hlm_cli.formula import parse
from hlm_cli.formula.design import build_design, build_sigma_design
from hlm_cli.formula.families import LINKS, check_link
from hlm_cli.model import likelihood, linpred
from hlm_cli.model.build import build_model
from hlm_cli.model.families import FAMILIES, get_family
from tests.helpers import tree_from_points

NEW = ["zero_inflated_poisson", "zero_inflated_negbinomial", "hurdle_poisson", "hurdle_negbinomial",
       "beta_binomial", "weibull", "exponential"]


@pytest.fixture
def df():
    rng = np.random.default_rng(3)
    n = 40
    x = rng.normal(size=n)
    g = np.repeat([f"g{i}" for i in range(5)], 8)
    z = rng.integers(0, 2, n)
    count = np.where(rng.random(n) < 0.3, 0, rng.poisson(np.exp(0.8 + 0.4 * x)))
    return pd.DataFrame({"x": x, "g": g, "z": np.where(z == 1, "yes", "no"), "count": count,
                         "succ": rng.binomial(6, 0.4, n), "n": np.full(n, 6), "flag": (count > 0).astype(int),
                         "time": rng.weibull(1.5, n) * np.exp(0.3 * x) + 0.01})


def _pymc_vs_numpy(built):
    """Our pointwise log-likelihood equals PyMC's logp of the observed variable at 2 random points."""
    import pytensor

    model = built.model
    mode = pytensor.compile.mode.get_mode("FAST_COMPILE")
    rng = np.random.default_rng(0)
    ip = model.initial_point()
    points = [{k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in ip.items()} for _ in range(2)]
    obs = model.observed_RVs[0]
    ref_fn = model.compile_fn(model.logp(vars=[obs], sum=False)[0], inputs=model.value_vars, on_unused_input="ignore", mode=mode)
    tree = tree_from_points(model, points, mode=mode)
    ours = likelihood.pointwise(tree, built)
    ref = np.stack([ref_fn(p) for p in points])
    assert np.all(np.isfinite(ref))
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-8)
    return tree


def _built(df, family, formula, link=None, dpar=None):
    d = build_design(parse(formula, list(df.columns)), df)
    fam = get_family(family, link)
    if dpar is not None:
        d.dpar = build_sigma_design(parse(dpar, list(df.columns)).fixed, df, prefix=fam.dpar)
    return build_model(d, fam, parameterization="centered")


FORMULA = {"beta_binomial": "cbind(succ, n - succ) ~ x + (1|g)", "weibull": "time ~ x + (1|g)",
           "exponential": "time ~ x + (1|g)"}


@pytest.mark.parametrize("family", NEW)
def test_new_family_logpdf_matches_pymc(df, family):
    _pymc_vs_numpy(_built(df, family, FORMULA.get(family, "count ~ x + (1|g)")))


@pytest.mark.parametrize("family", ["zero_inflated_poisson", "hurdle_negbinomial"])
def test_dpar_formula_logpdf_matches_pymc_and_reports_coefficients(df, family):
    built = _built(df, family, "count ~ x + (1|g)", dpar="~ z + x")
    p = get_family(family).dpar
    assert f"{p}_Intercept" in built.params.family and f"{p}_z" in built.params.family
    assert f"{p}_z[yes]" in built.priors and built.priors[f"{p}_Intercept"].kwargs == {"mu": 0.0, "sigma": 1.5}
    assert p not in built.priors  # the single zi parameter is replaced by the regression
    tree = _pymc_vs_numpy(built)
    assert tree["posterior"][p].shape[-1] == len(df)  # per-row probabilities


@pytest.mark.parametrize("family, link, formula", [
    ("binomial", "probit", "cbind(succ, n - succ) ~ x + (1|g)"), ("bernoulli", "cloglog", "flag ~ x + (1|g)"),
    ("poisson", "softplus", "count ~ x + (1|g)"), ("beta_binomial", "cloglog", "cbind(succ, n - succ) ~ x"),
    ("gaussian", "log", "time ~ x + (1|g)"), ("weibull", "softplus", "time ~ x"),
])
def test_links_logpdf_matches_pymc(df, family, link, formula):
    built = _built(df, family, formula, link=link)
    assert built.family.link == link
    _pymc_vs_numpy(built)


def test_link_maps_are_the_inverse_links():
    from scipy import stats
    from scipy.special import expit

    eta = np.linspace(-6, 6, 25)
    np.testing.assert_allclose(get_family("bernoulli", "probit").mean(eta), stats.norm.cdf(eta), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(get_family("binomial", "cloglog").mean(eta), 1 - np.exp(-np.exp(eta)), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(get_family("poisson", "softplus").mean(eta), np.log1p(np.exp(eta)), rtol=1e-10)
    np.testing.assert_allclose(get_family("gaussian", "log").mean(eta), np.exp(eta), rtol=1e-12)
    # the default link is the row itself (bit-identical default behaviour)
    assert get_family("bernoulli") is FAMILIES["bernoulli"] and get_family("bernoulli", "logit") is FAMILIES["bernoulli"]
    np.testing.assert_array_equal(get_family("bernoulli").mean(eta), expit(eta))
    # extreme eta stays finite
    for fam in (get_family("bernoulli", "probit"), get_family("bernoulli", "cloglog"), get_family("poisson", "softplus")):
        lp = fam.logpdf(np.array([[0.0, 1.0]]), np.array([[-800.0, 800.0]]), None, lambda a: None, None)
        assert not np.any(np.isnan(lp)), fam.link


def test_unknown_link_is_refused_with_the_allowed_links():
    with pytest.raises(ConfigError, match="the poisson family has no link 'identity'") as err:
        check_link("poisson", "identity")
    assert err.value.hint == "--link for poisson: log, softplus (default log)"
    with pytest.raises(ConfigError, match="no link 'probit'"):
        get_family("gaussian", "probit")
    assert check_link("binomial", "PROBIT") == "probit" and check_link("weibull", None) == "log"
    assert set(LINKS) == set(FAMILIES)


def test_linked_family_pickles_with_its_link():
    import pickle

    fam = pickle.loads(pickle.dumps(get_family("binomial", "probit")))
    assert (fam.name, fam.link) == ("binomial", "probit")


AUX = {"zi": 0.3, "hu": 0.4, "alpha": 2.0, "phi": 5.0, "shape": 1.7}


def _tree(fam, S):
    data = {a: (("chain", "draw"), np.full((1, S), AUX[a])) for a in fam.aux}
    data["_d"] = (("chain", "draw"), np.zeros((1, S)))
    return xr.DataTree.from_dict({"posterior": xr.Dataset(data)})


@pytest.mark.parametrize("family", NEW)
def test_simulated_means_and_zero_fractions(family):
    from scipy.special import expit

    fam = get_family(family)
    S, eta0 = 20000, (0.7 if fam.link == "log" else -0.4)
    eta = np.full((S, 2), eta0)
    trials = np.array([6.0, 6.0]) if fam.trials else None
    y = linpred.simulate(fam, _tree(fam, S), eta, trials=trials, seed=2)
    assert y.shape == (S, 2)
    mu = np.exp(eta0) if fam.link == "log" else expit(eta0)
    if family.startswith("zero_inflated"):
        p0 = np.exp(-mu) if family.endswith("poisson") else (2 / (2 + mu)) ** 2
        expect_mean, expect_zero = (1 - AUX["zi"]) * mu, AUX["zi"] + (1 - AUX["zi"]) * p0
        assert abs((y == 0).mean() - expect_zero) < 0.015
    elif family.startswith("hurdle"):
        p0 = np.exp(-mu) if family.endswith("poisson") else (2 / (2 + mu)) ** 2
        expect_mean = (1 - AUX["hu"]) * mu / (1 - p0)
        assert abs((y == 0).mean() - AUX["hu"]) < 0.015
    elif family == "beta_binomial":
        expect_mean = 6 * mu
        var = 6 * mu * (1 - mu) * (AUX["phi"] + 6) / (AUX["phi"] + 1)  # overdispersed
        assert abs(y.var() / var - 1) < 0.05
    else:
        expect_mean = mu  # brms's weibull and exponential: exp(eta) is the mean
    assert abs(y.mean() / expect_mean - 1) < 0.03, (y.mean(), expect_mean)
    # and the log density sums to one over the support (discrete families)
    if fam.discrete:
        grid = np.arange(0, 400.0)
        lp = fam.logpdf(grid[None, :], np.full((1, grid.size), eta0), None, lambda a: np.full((1, 1), AUX[a]),
                        np.full(grid.size, 6.0) if fam.trials else None)
        total = np.exp(lp[:, :7]).sum() if fam.trials else np.exp(lp).sum()
        assert abs(total - 1) < 1e-9


def test_dpar_draws_for_new_rows(df):
    from scipy.special import expit

    built = _built(df, "zero_inflated_poisson", "count ~ x", dpar="~ x")
    S = 3
    post = xr.Dataset({"zi_Intercept": (("chain", "draw"), np.full((1, S), -1.0)),
                       "zi_x": (("chain", "draw"), np.full((1, S), 0.5))})
    tree = xr.DataTree.from_dict({"posterior": post})
    new = pd.DataFrame({"x": [0.0, 2.0]})
    got = linpred.dpar_draws(tree, built, new)
    np.testing.assert_allclose(got, np.tile(expit([-1.0, 0.0]), (S, 1)))


def test_default_priors_of_the_new_parameters(df):
    """zi/hu Beta(1, 1), phi and shape wide LogNormals (not brms's Gamma(0.01, 0.01)), and a
    time family's intercept centred on log(mean(y)), so a change of unit moves only the intercept."""
    zinb = _built(df, "zero_inflated_negbinomial", "count ~ x").priors
    assert str(zinb["zi"]) == str(_built(df, "hurdle_poisson", "count ~ x").priors["hu"]) == "Beta(alpha=1, beta=1)"
    assert zinb["alpha"].dist == "HalfCauchy"
    assert _built(df, "beta_binomial", "cbind(succ, n - succ) ~ x").priors["phi"].kwargs == {"mu": 2.3, "sigma": 1.5}
    days = _built(df, "weibull", "time ~ x").priors
    assert days["shape"].kwargs == {"mu": 0.0, "sigma": 1.5}
    assert days["Intercept"].kwargs["mu"] == pytest.approx(np.log(df["time"].mean()))
    seconds = _built(df.assign(time=df["time"] * 86400), "weibull", "time ~ x").priors
    assert seconds["Intercept"].kwargs["mu"] == pytest.approx(np.log(df["time"].mean() * 86400))
    assert seconds["x"].kwargs == days["x"].kwargs and seconds["shape"].kwargs == days["shape"].kwargs


def test_gaussian_log_link_priors_are_on_the_log_scale_and_sigma_on_ys(df):
    y = df["time"] * 100
    log = _built(df.assign(time=y), "gaussian", "time ~ x", link="log").priors
    ident = _built(df.assign(time=y), "gaussian", "time ~ x").priors
    assert log["Intercept"].kwargs == {"mu": pytest.approx(np.log(y.mean())), "sigma": 2.5}
    assert log["sigma"].kwargs["sigma"] == ident["sigma"].kwargs["sigma"] == pytest.approx(np.std(y))
    assert ident["Intercept"].kwargs["mu"] == pytest.approx(y.mean())  # the default link unchanged
