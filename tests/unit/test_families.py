"""The families table: each row's fields agree with each other (no sampling, numpy only).

A new family is one row of :data:`hlm_cli.model.families.FAMILIES`; these checks hold for
every row, so a row whose simulator, log density, support check and default priors do not
fit together fails here before any model is built. (Agreement of each ``logpdf`` with
PyMC's own logp is tests/unit/test_likelihood.py.)
"""

import numpy as np
import pytest
import xarray as xr

from hlm_cli.errors import InputError
from hlm_cli.formula.families import NAMES
from hlm_cli.model import likelihood, linpred
from hlm_cli.model.families import FAMILIES, check_response, get_family
from hlm_cli.model.priors import DISTRIBUTIONS, Scale

AUX_VALUES = {"sigma": 0.7, "nu": 5.0, "alpha": 3.0, "kappa": 8.0, "zi": 0.3, "hu": 0.4, "phi": 6.0, "shape": 1.8,
              "Intercept": np.array([-1.0, 0.2, 1.5])}
ETA = {"identity": 0.4, "logit": -0.3, "log": 1.2}


def _tree(fam, S):
    data = {a: (("chain", "draw"), np.full((1, S), AUX_VALUES[a])) for a in fam.aux if np.ndim(AUX_VALUES[a]) == 0}
    # a cumulative row's thresholds: a vector per draw
    data.update({a: (("chain", "draw", f"{a}_dim"), np.broadcast_to(AUX_VALUES[a], (1, S, 3)).copy())
                 for a in fam.aux if np.ndim(AUX_VALUES[a]) == 1})
    data["_dummy"] = (("chain", "draw"), np.zeros((1, S)))
    return xr.DataTree.from_dict({"posterior": xr.Dataset(data)})


def test_every_name_has_one_row():
    assert tuple(FAMILIES) == NAMES
    assert all(FAMILIES[n].name == n for n in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_default_aux_priors_are_positive_only(name):
    fam = get_family(name)
    for scale in (Scale(0.0, 1.0, False), Scale(3.0, 2.5, False)):
        for a in fam.aux:
            prior = fam.default_prior(a, scale)
            if fam.ordinal and a == "Intercept":  # thresholds are real numbers (ordered)
                assert not DISTRIBUTIONS[prior.dist][1], (name, a, prior.dist)
                continue
            assert DISTRIBUTIONS[prior.dist][1], (name, a, prior.dist)
    sigma_scaled = [fam.default_prior("sigma", Scale(0.0, s, False)).kwargs["sigma"] for s in (1.0, 2.5)] if "sigma" in fam.aux else None
    if sigma_scaled is not None:  # sigma's default scales with sd(y)
        assert sigma_scaled == [1.0, 2.5]


@pytest.mark.parametrize("name", NAMES)
def test_simulated_responses_pass_the_support_check_and_have_finite_density(name):
    """simulate -> check_response -> logpdf: draws of a row lie in its support, and its log
    density is finite there, with a mean close to the row's inverse link."""
    fam = get_family(name)
    S, n = 400, 3
    eta = np.full((S, n), ETA[fam.link])
    trials = np.array([5.0, 7.0, 9.0]) if fam.trials else None
    tree = _tree(fam, S)
    y = linpred.simulate(fam, tree, eta, trials=trials, seed=1)
    assert y.shape == (S, n)
    checked = check_response(fam, y.ravel(), "y", trials=None if trials is None else np.tile(trials, S))
    np.testing.assert_array_equal(checked, y.ravel())
    aux = lambda a: linpred.aux_draws(tree, a, S)  # noqa: E731
    lp = likelihood.logpdf(fam, y[0], eta, aux, trials=trials)
    assert lp.shape == (S, n) and np.all(np.isfinite(lp))
    mean = fam.mean(eta[0, 0]) if fam.mean_aux is None else linpred.inverse_link(fam, eta, tree)[0, 0]
    sample_mean = (y / (trials if trials is not None else 1.0)).mean()
    if name == "lognormal":  # the row's "mean" is the median exp(eta)
        sample_mean = np.median(y)
    if name == "t":  # heavy tails: compare medians
        sample_mean = np.median(y)
    if fam.dpar == "zi":  # the row's "mean" is mu, the count component's mean
        mean = (1 - AUX_VALUES["zi"]) * mean
    if fam.dpar == "hu":
        p0 = np.exp(-mean) if name == "hurdle_poisson" else (AUX_VALUES["alpha"] / (AUX_VALUES["alpha"] + mean)) ** AUX_VALUES["alpha"]
        mean = (1 - AUX_VALUES["hu"]) * mean / (1 - p0)
    assert abs(sample_mean - mean) < 0.15 * max(1.0, abs(mean)), (name, sample_mean, mean)


@pytest.mark.parametrize("name", NAMES)
def test_support_check_refuses_a_value_outside(name):
    fam = get_family(name)
    outside = {"real": None, "positive": -1.0, "unit": 1.5, "binary": 2.0, "count": 1.5, "binomial": -1.0,
               "ordinal": 0.0}[fam.support]
    if outside is None:
        assert check_response(fam, np.array([-3.0, 0.0, 4.5]), "y")[0] == -3.0
        return
    with pytest.raises(InputError) as err:
        check_response(fam, np.array([0.5 if fam.support == "unit" else 1.0, outside]), "y")
    assert f"outside the {name} family's support ({fam.domain.need})" in str(err.value)
    assert "first on CSV line 3" in str(err.value) and err.value.hint == fam.domain.hint


def test_inverse_link_never_overflows():
    for name in NAMES:
        fam = get_family(name)
        with np.errstate(over="raise"):
            if fam.link != "identity":
                assert np.isfinite(fam.mean(np.array([800.0, -800.0]))).all(), name


@pytest.mark.parametrize("name", NAMES)
def test_a_family_row_pickles_by_name(name):
    """The figure helper and batch workers receive the built model through pickle: a row with
    lambdas used to make that fail, and the figures were silently redrawn in the parent."""
    import pickle

    fam = get_family(name)
    assert pickle.loads(pickle.dumps(fam)) is fam


def test_the_figure_helpers_payload_pickles(tmp_path, tiny_csv):
    """What hlm fit hands its figure helper (the built model without its PyMC graph, and the
    table) must pickle, or every figure is silently redrawn in the fitting process (+1 s)."""
    import dataclasses
    import pickle

    from hlm_cli.spec import load_fit_spec
    from hlm_cli.workflows.fit import prepare

    for family, formula in (("gaussian", "y ~ x + cond + (1|g)"), ("poisson", "count ~ x + (1|g)"), ("bernoulli", "flag ~ x + (1|g)")):
        spec = load_fit_spec(None, data=tiny_csv, formula=formula, out=tmp_path / "o", family=family)
        prep = prepare(spec)
        back = pickle.loads(pickle.dumps(dataclasses.replace(prep.built, model=None)))
        assert back.family is prep.built.family and back.design.x_labels == prep.built.design.x_labels
        pickle.dumps(prep.table)
