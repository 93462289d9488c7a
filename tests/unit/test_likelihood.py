"""hlm's numpy log-likelihood agrees with PyMC's logp for every family."""

import numpy as np
import pytest
import xarray as xr

from hlm_cli.formula import parse
from hlm_cli.formula.design import build_design
from hlm_cli.model import likelihood, linpred
from hlm_cli.model.build import build_model
from hlm_cli.model.families import get_family
from tests.helpers import tree_from_points

SLOW = pytest.mark.slow  # each case compiles a PyTensor C function (~8 s)


@pytest.mark.parametrize("family, formula", [
    ("gaussian", "y ~ x + (1|g)"), pytest.param("t", "y ~ x + (1 + x|g)", marks=SLOW),
    pytest.param("poisson", "count ~ x + (1|g)", marks=SLOW),
    ("negativebinomial", "count ~ x + (1|g)"), pytest.param("bernoulli", "flag ~ x + (1|g)", marks=SLOW),
    pytest.param("gamma", "exp(y) ~ x + (1|g)", marks=SLOW), pytest.param("lognormal", "exp(y) ~ x + (1|g)", marks=SLOW),
    pytest.param("binomial", "cbind(count, 3) ~ x + (1|g)", marks=SLOW),
    pytest.param("beta", "expit(y) ~ x + (1|g)", marks=SLOW),
])
def test_matches_pymc_logp(tiny_df, family, formula):
    import pymc as pm

    d = build_design(parse(formula, list(tiny_df.columns)), tiny_df)
    built = build_model(d, get_family(family), parameterization="centered")
    model = built.model
    rng = np.random.default_rng(0)
    # two random points in the unconstrained space, mapped to the constrained values
    ip = model.initial_point()
    points = [{k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in ip.items()} for _ in range(2)]
    obs = model.observed_RVs[0]
    ref_fn = model.compile_fn(model.logp(vars=[obs], sum=False)[0], inputs=model.value_vars, on_unused_input="ignore")
    tree = tree_from_points(model, points)
    ours = likelihood.pointwise(tree, built)
    ref = np.stack([ref_fn(p) for p in points])
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-8)
    assert pm is not None


def _aux(alpha):
    return lambda name: np.full((1, 1), alpha) if name == "alpha" else None


@pytest.mark.parametrize("family", ["poisson", "negativebinomial", "gamma"])
def test_log_scale_logpdf_matches_scipy_and_survives_huge_rates(family):
    """Log-link families are computed from eta on the log scale: equal to scipy where scipy
    is finite, and finite (very negative) for rates whose exp() overflows (eta = 800)."""
    from scipy import stats

    fam = get_family(family)
    y = np.array([0.0, 1.0, 3.0, 40.0]) if family != "gamma" else np.array([0.2, 1.0, 3.0, 40.0])
    alpha = 2.5
    for e in (-5.0, 0.0, 2.0, 50.0):
        eta = np.full((1, 4), e)
        ours = likelihood.logpdf(fam, y, eta, _aux(alpha))
        mu = np.exp(e)
        if family == "poisson":
            ref = stats.poisson.logpmf(y, mu)
        elif family == "negativebinomial":
            ref = stats.nbinom.logpmf(y, alpha, alpha / (alpha + mu))
        else:
            ref = stats.gamma.logpdf(y, alpha, scale=mu / alpha)
        np.testing.assert_allclose(ours[0], ref, rtol=1e-9)
    huge = likelihood.logpdf(fam, y, np.full((1, 4), 800.0), _aux(alpha))
    if family == "poisson":  # -exp(800): -inf, the honest value, never nan or an exception
        assert np.all(huge == -np.inf)
    else:
        assert np.all(np.isfinite(huge)) and np.all(huge < -100)


@pytest.mark.parametrize("family", ["poisson", "negativebinomial"])
def test_simulate_never_fails_on_a_huge_rate(family):
    """numpy's Poisson sampler raises 'lam value too large' above ~9e18 (eta ~ 43.7): an
    observation-level effect in its tail (lme4's grouseticks) crashed hlm fit with exit 70."""
    fam = get_family(family)
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset({"alpha": (("chain", "draw"), np.full((1, 3), 5.0))})})
    eta = np.array([[0.5, 50.0, 800.0, 20.0]] * 3)
    with np.errstate(all="raise"):
        y = linpred.simulate(fam, tree, eta, seed=0)
    assert y.shape == (3, 4) and np.all(np.isfinite(y)) and np.all(y >= 0) and np.all(y == np.round(y))
    # the normal approximation is centred on the rate: exp(50) to within a few SDs
    if family == "poisson":
        np.testing.assert_allclose(y[:, 1], np.exp(50.0), rtol=1e-6)
        assert np.all(y[:, 0] < 30)


def test_poisson_helper_exact_below_and_approximate_above_the_threshold():
    rng = np.random.default_rng(0)
    lam = np.array([3.0, linpred.NORMAL_APPROX_RATE * 10, np.inf, 0.0])
    draws = np.stack([linpred.poisson(rng, lam) for _ in range(2000)])
    assert abs(draws[:, 0].mean() - 3.0) < 0.15 and abs(draws[:, 0].var() - 3.0) < 0.4
    big = draws[:, 1]
    assert abs(big.mean() / lam[1] - 1) < 1e-4 and abs(big.std() / np.sqrt(lam[1]) - 1) < 0.1
    assert np.all(draws[:, 2] == np.inf) and np.all(draws[:, 3] == 0)
