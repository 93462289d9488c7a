"""The cumulative (ordinal) family: likelihood against PyMC, level order, thresholds, errors.

No sampling: PyMC graphs are evaluated with FAST_COMPILE (no C compilation).
"""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hlm_cli.errors import ConfigError, FormulaError, InputError
from hlm_cli.model import linpred
from hlm_cli.model.families import get_family, ordinal_logp, ordinal_probs
from hlm_cli.model.ordinal import response_codes
from hlm_cli.spec import load_fit_spec

CUT = np.array([[-1.2, 0.3, 2.0]])  # (S=1, K-1 = 3)
ETA = np.array([[-3.0, -0.5, 0.0, 0.7, 4.0, 1.1]])
Y = np.array([[1.0, 2.0, 3.0, 4.0, 4.0, 1.0]])


@pytest.mark.parametrize("link, dist", [("logit", "OrderedLogistic"), ("probit", "OrderedProbit")])
def test_logpdf_matches_pymc_ordered_distributions(link, dist):
    import pymc as pm

    rv = getattr(pm, dist).dist(eta=ETA[0], cutpoints=CUT[0])
    ref = pm.logp(rv, (Y[0] - 1).astype("int64")).eval(mode="FAST_COMPILE")
    np.testing.assert_allclose(ordinal_logp(link, Y, ETA, CUT)[0], ref, rtol=1e-6)


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_the_pymc_likelihood_equals_the_numpy_one_and_stays_finite_far_out(link):
    """The graph hlm samples (a CustomDist with hlm's own logp) gives the numpy log density,
    also where the probabilities underflow in PyMC's OrderedLogistic (eta 40 from a threshold)."""
    import pymc as pm

    from hlm_cli.model.families import _ordinal_pymc_logp

    eta = np.array([-3.0, -0.5, 0.0, 0.7, 4.0, 1.1, 40.0, -40.0])
    y = np.array([1.0, 2.0, 3.0, 4.0, 4.0, 1.0, 1.0, 4.0])
    ours = _ordinal_pymc_logp(link)(pm.math.constant(y), pm.math.constant(eta), pm.math.constant(CUT[0])).eval(mode="FAST_COMPILE")
    ref = ordinal_logp(link, y[None, :], eta[None, :], CUT)[0]
    assert np.all(np.isfinite(ref)) and ref[-1] < -30 and ref[-2] < -30
    np.testing.assert_allclose(ours, ref, rtol=1e-6)


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_probabilities_sum_to_one_and_the_simulator_follows_them(link):
    fam = get_family("cumulative", link)
    S, n = 4000, 2
    eta = np.tile(np.array([[-0.4, 1.3]]), (S, 1))
    cut = np.tile(CUT, (S, 1))
    p = ordinal_probs(link, eta, cut)
    np.testing.assert_allclose(p.sum(axis=2), 1.0)
    np.testing.assert_allclose(np.log(p[0, :, :]), [[ordinal_logp(link, np.array([[k, k]]), eta[:1], CUT)[0, j]
                                                       for k in (1, 2, 3, 4)] for j in range(n)], rtol=1e-9)
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset({"Intercept": (("chain", "draw", "Intercept_dim"), cut[None])})})
    y = linpred.simulate(fam, tree, eta, seed=3)
    assert set(np.unique(y)) <= {1.0, 2.0, 3.0, 4.0}
    for j in range(n):
        freq = np.array([(y[:, j] == k).mean() for k in (1, 2, 3, 4)])
        np.testing.assert_allclose(freq, p[0, j], atol=0.03)
    mean = linpred.inverse_link(fam, eta, tree)  # the expected category code
    np.testing.assert_allclose(mean[0], (p[0] * np.arange(1, 5)).sum(axis=1))
    with pytest.raises(ValueError, match="needs the posterior draws"):
        linpred.inverse_link(fam, eta)


def test_links_and_brms_spelling():
    assert get_family("cumulative").link == "logit"
    assert get_family("ordinal").name == "cumulative"
    assert get_family("cumulative(probit)").link == "probit"
    assert get_family("cumulative", "probit").link == "probit"
    import pickle  # the figure helper and batch workers get the row by (name, link)

    probit = get_family("cumulative", "probit")
    assert pickle.loads(pickle.dumps(probit)) is probit
    with pytest.raises(ConfigError, match="conflicts"):
        get_family("cumulative(probit)", "logit")
    with pytest.raises(ConfigError, match="no link 'cloglog'") as err:
        get_family("cumulative", "cloglog")
    assert err.value.hint == "--link for cumulative: logit, probit (default logit)"  # one wording for every family
    with pytest.raises(ConfigError, match="the gaussian family has no link 'probit'"):
        get_family("gaussian", "probit")


# ---------------------------------------------------------------------------- level order


def test_numbers_sort_numerically_and_gaps_are_dropped():
    codes, labels = response_codes(pd.Series([10, 2, 5, 2, 10]), "y")
    assert labels == ["2", "5", "10"]
    np.testing.assert_array_equal(codes, [3, 1, 2, 1, 3])


def test_text_needs_an_order():
    with pytest.raises(InputError, match="response 'y' holds text; the order of its levels is not known") as err:
        response_codes(pd.Series(["low", "high", "mid"]), "y")
    assert err.value.hint == "give it lowest first, e.g. --levels y=high,low,mid"


def test_levels_give_the_order_and_may_include_unobserved_categories():
    codes, labels = response_codes(pd.Series(["mid", "low", "mid"]), "y", ["low", "mid", "high"])
    assert labels == ["low", "mid", "high"]
    np.testing.assert_array_equal(codes, [2, 1, 2])
    codes, _ = response_codes(pd.Series([3, 1]), "y", ["3", "1"])  # numbers in the order given
    np.testing.assert_array_equal(codes, [1, 2])


def test_a_value_missing_from_levels_is_named_with_its_line():
    with pytest.raises(InputError, match=r"value 'top' on CSV line 4, which --levels y=\.\.\. does not list") as err:
        response_codes(pd.Series(["low", "mid", "top"]), "y", ["low", "mid"])
    assert err.value.hint == "list every level lowest first: --levels y=low,mid,top"


def test_duplicate_level_and_single_category_are_refused():
    with pytest.raises(InputError, match="level 'a' is listed twice"):
        response_codes(pd.Series(["a"]), "y", ["a", "b", "a"])
    with pytest.raises(InputError, match="has 1 category; an ordinal model needs at least 2"):
        response_codes(pd.Series([3, 3]), "y")


def test_an_ordered_categorical_keeps_its_order():
    values = pd.Series(pd.Categorical(["b", "c", "a"], categories=["c", "b", "a"], ordered=True))
    codes, labels = response_codes(values, "y")
    assert labels == ["c", "b", "a"]
    np.testing.assert_array_equal(codes, [2, 1, 3])


# ---------------------------------------------------------------------------- model and spec


@pytest.fixture
def ordinal_csv(tmp_path):
    rng = np.random.default_rng(0)
    n = 40
    df = pd.DataFrame({"x": rng.normal(size=n), "f": rng.choice(["a", "b"], n), "g": rng.choice(["g1", "g2", "g3"], n)})
    df["y"] = rng.choice([1, 2, 3], n)
    df["txt"] = np.array(["low", "mid", "high"])[df["y"] - 1]
    path = tmp_path / "ord.csv"
    df.to_csv(path, index=False)
    return path


def _prepare(tmp_path, csv, formula, **kw):
    from hlm_cli.workflows.fit import prepare

    return prepare(load_fit_spec(None, data=csv, formula=formula, out=tmp_path / "o", family=kw.pop("family", "cumulative"), **kw))


def test_thresholds_replace_the_intercept(tmp_path, ordinal_csv):
    prep = _prepare(tmp_path, ordinal_csv, "txt ~ x + f + (1|g)", levels=["txt=low,mid,high"])
    built = prep.built
    d = built.design
    assert d.x_labels == ["x", "f[b]"] and "Intercept" not in d.fixed_slices and d.X.shape[1] == 2
    assert d.response_levels == ["low", "mid", "high"] and set(np.unique(d.y)) == {1.0, 2.0, 3.0}
    assert built.params.population == ["x", "f"] and built.params.family == ["Intercept"]
    assert built.priors["Intercept"].dist == "StudentT" and built.priors["Intercept"].kwargs == {"nu": 3.0, "mu": 0.0, "sigma": 2.5}
    model = built.model
    assert list(model.coords["Intercept_dim"]) == ["1", "2"]
    assert "ordered" in type(model.rvs_to_transforms[model["Intercept"]]).__name__.lower()
    probit = _prepare(tmp_path, ordinal_csv, "txt ~ x + f + (1|g)", levels=["txt=low,mid,high"], link="probit").built
    assert probit.family.link == "probit" and probit.structure_key != built.structure_key


def test_a_user_prior_on_the_thresholds(tmp_path, ordinal_csv):
    built = _prepare(tmp_path, ordinal_csv, "y ~ x", priors=["Intercept=Normal(0, 4)"]).built
    assert built.priors["Intercept"].dist == "Normal"


def test_no_intercept_formula_is_refused(tmp_path, ordinal_csv):
    with pytest.raises(FormulaError, match="a cumulative model has no population intercept to remove"):
        _prepare(tmp_path, ordinal_csv, "y ~ 0 + x")


def test_levels_without_an_ordinal_family_is_refused(tmp_path, ordinal_csv):
    with pytest.raises(InputError, match=r"--levels y=\.\.\. orders the categories of an ordinal response") as err:
        _prepare(tmp_path, ordinal_csv, "y ~ x", family="gaussian", levels=["y=1,2,3"])
    assert "--family cumulative" in err.value.hint
    with pytest.raises(InputError, match="'x' is not one") as err:
        _prepare(tmp_path, ordinal_csv, "y ~ x", levels=["x=1,2"])
    assert err.value.hint == "name the response: --levels y=..."


def test_levels_setting_forms():
    from hlm_cli.spec import FitSpec

    a = FitSpec(data="d.csv", formula="y ~ x", out="o", levels=["y=low, mid,high"])
    b = FitSpec(data="d.csv", formula="y ~ x", out="o", levels={"y": ["low", "mid", "high"]})
    c = FitSpec(data="d.csv", formula="y ~ x", out="o", levels={"y": "low,mid,high"})
    assert a.levels == b.levels == c.levels == {"y": ["low", "mid", "high"]}
    with pytest.raises(ValueError, match="expected COLUMN=LEVEL,LEVEL"):
        FitSpec(data="d.csv", formula="y ~ x", out="o", levels=["y"])


def test_binomial_response_is_refused(tmp_path, ordinal_csv):
    with pytest.raises(FormulaError, match="one column of ordered categories"):
        _prepare(tmp_path, ordinal_csv, "cbind(y, y) ~ x")


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_loo_loglik_equals_the_sampled_models_logp(tmp_path, ordinal_csv, link):
    """likelihood.pointwise (numpy, for LOO) = the PyMC graph's observed logp at random points
    (the whole pipeline: codes in _y, thresholds through the ordered transform, group effects)."""
    from hlm_cli.model import likelihood

    built = _prepare(tmp_path, ordinal_csv, "txt ~ x + f + (1|g)", levels=["txt=low,mid,high"], link=link).built
    model = built.model
    rng = np.random.default_rng(1)
    ip = model.initial_point()
    points = [{k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in ip.items()} for _ in range(2)]
    obs = model.observed_RVs[0]
    ref_fn = model.compile_fn(model.logp(vars=[obs], sum=False)[0], inputs=model.value_vars, on_unused_input="ignore", mode="FAST_COMPILE")
    value_fn = model.compile_fn(list(model.unobserved_value_vars), inputs=model.value_vars, on_unused_input="ignore", mode="FAST_COMPILE")
    names = [v.name for v in model.unobserved_value_vars]
    post = {}
    for p in points:
        for n, v in zip(names, value_fn(p), strict=True):
            post.setdefault(n, []).append(np.asarray(v))
    data_vars = {n: (["chain", "draw"] + [f"{n}_d{i}" for i in range(np.ndim(vals[0]))], np.stack(vals)[None]) for n, vals in post.items()}
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset(data_vars)})
    assert np.all(np.diff(tree["posterior"]["Intercept"].values, axis=-1) > 0)
    ours = likelihood.pointwise(tree, built)
    ref = np.stack([ref_fn(p) for p in points])
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-8)
