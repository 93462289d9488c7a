"""Response terms cens(), trunc(), weights(): parsing, data checks, and the censored /
truncated / weighted log-likelihood in numpy against PyMC's (docs/response-terms.md)."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hlm_cli.errors import FormulaError, InputError
from hlm_cli.formula import parse
from hlm_cli.formula.design import build_design
from hlm_cli.formula.response_terms import ResponseTerms, cens_codes, evaluate
from hlm_cli.model import censoring, likelihood
from hlm_cli.model.build import build_model
from hlm_cli.model.families import get_family
from tests.helpers import tree_from_points

COLS = ["y", "c", "y2", "x", "w", "g", "n", "s", "up"]


# ------------------------------------------------------------------ parser


@pytest.mark.parametrize("text, fields", [
    ("y | cens(c) ~ x", {"cens": "c", "cens_y2": None}),
    ("y | cens(c, y2) ~ x", {"cens": "c", "cens_y2": "y2"}),
    ("y | cens(c, y2 = y2) ~ x", {"cens": "c", "cens_y2": "y2"}),
    ("y | trunc(lb = 0) ~ x", {"trunc_lb": "0", "trunc_ub": None}),
    ("y | trunc(lb = -1.5, ub = up) ~ x", {"trunc_lb": "-1.5", "trunc_ub": "up"}),
    ("y | weights(w) ~ x", {"weights": "w", "weights_type": "precision"}),
    ("y | weights(w, type = 'loglik') + cens(c) ~ x", {"weights": "w", "weights_type": "loglik", "cens": "c"}),
    ("y | trials(n) + weights(w, type = \"loglik\") ~ x", {"trials": "n", "kind": "binomial", "weights": "w"}),
])
def test_parser_reads_the_additions(text, fields):
    resp = parse(text, COLS).response
    for k, v in fields.items():
        assert getattr(resp, k) == v, k
    assert "x" in parse(text, COLS).predictor_columns
    assert not ({"c", "w", "up", "y2"} & parse(text, COLS).predictor_columns)


@pytest.mark.parametrize("text, fragment", [
    ('y | weights(w, type = "freq") ~ x', "no type 'freq'"),
    ("y | trunc(lb = 2, ub = 1) ~ x", "lb < ub"),
    ("y | trunc(0) ~ x", "lb = and/or ub ="),
    ("y | cens(1) ~ x", "cens() takes a column name"),
    ("y | cens(c) + cens(c) ~ x", "appears twice"),
    ("y | se(s) + weights(w) ~ x", "se() and weights() cannot be combined"),
    ("y ~ x + weights(w)", "belongs on the left-hand side"),
    ("y | cens(zz) ~ x", "column 'zz' is not in"),
    ("y | censor(c) ~ x", "cens(COL)"),
])
def test_parser_refuses(text, fragment):
    with pytest.raises(FormulaError) as e:
        parse(text, COLS)
    assert fragment in str(e.value) + str(e.value.hint)


# ------------------------------------------------------------------ data


def test_cens_codes_follow_brms():
    vals = ["left", "none", "right", "interval", "l", "R", "I", "n", True, False, -1, 0, 1, 2, "1", "-1"]
    assert cens_codes(vals, "c").tolist() == [-1, 0, 1, 2, -1, 1, 2, 0, 1, 0, -1, 0, 1, 2, 1, -1]


def test_cens_codes_name_the_bad_line():
    with pytest.raises(InputError) as e:
        cens_codes(["none", "sideways"], "c", lines=[2, 7])
    assert "'sideways' on CSV line 7" in str(e.value)
    assert "left" in e.value.hint


def _frame(**cols):
    n = len(next(iter(cols.values())))
    base = {"y": np.arange(1.0, n + 1), "x": np.linspace(0, 1, n)}
    return pd.DataFrame({**base, **cols})


def test_interval_needs_y2_above_y():
    df = _frame(c=["none", "interval", "none"], y2=[np.nan, 1.5, np.nan])
    with pytest.raises(InputError) as e:
        evaluate(parse("y | cens(c, y2) ~ x", list(df.columns)).response, df, df["y"].to_numpy())
    assert "needs y2 > y" in str(e.value) and "y = 2" in str(e.value)
    df2 = _frame(c=["none", "interval", "none"])
    with pytest.raises(InputError, match="names no upper end"):
        evaluate(parse("y | cens(c) ~ x", list(df2.columns)).response, df2, df2["y"].to_numpy())
    ok = evaluate(parse("y | cens(c, y2) ~ x", list(df.columns)).response, df.assign(y2=[np.nan, 3.0, np.nan]), df["y"].to_numpy())
    assert ok.cens.tolist() == [0, 2, 0] and ok.y2.tolist() == [2.0, 3.0, 4.0]  # y + 1 where not interval


def test_response_outside_truncation_is_refused():
    df = _frame(up=[5.0, 5.0, 2.5])
    with pytest.raises(InputError) as e:
        evaluate(parse("y | trunc(lb = 0, ub = up) ~ x", list(df.columns)).response, df, df["y"].to_numpy(), lines=[2, 3, 4])
    assert "CSV line 4" in str(e.value) and "not in [0, 2.5]" in str(e.value)


@pytest.mark.parametrize("kind, w, ok", [("precision", [1.0, 0.0, 2.0], False), ("loglik", [1.0, 0.0, 2.0], True),
                                         ("loglik", [1.0, -1.0, 2.0], False), ("precision", [1.0, np.nan, 2.0], False)])
def test_weights_values(kind, w, ok):
    df = _frame(w=w)
    resp = parse(f"y | weights(w, type = '{kind}') ~ x", list(df.columns)).response
    if ok:
        assert evaluate(resp, df, df["y"].to_numpy()).weights.tolist() == w
    else:
        with pytest.raises(InputError, match="weights column 'w'"):
            evaluate(resp, df, df["y"].to_numpy())


@pytest.mark.parametrize("text, family, fragment", [
    ("y | cens(c) ~ x", "bernoulli", "hlm has none for the bernoulli family"),
    ("y | trunc(lb = 0) ~ x", "binomial", "trunc() needs the family's CDF"),
    ("y | weights(w) ~ x", "poisson", 'type = "loglik"'),
])
def test_family_refusals(text, family, fragment):
    resp = parse(text, COLS).response
    with pytest.raises(InputError) as e:
        censoring.check_family(resp, get_family(family))
    assert fragment in str(e.value) + " " + e.value.hint


def test_family_accepts():
    for text, fam in [("y | cens(c) ~ x", "poisson"), ("y | weights(w) ~ x", "gaussian"),
                      ("y | weights(w, type = 'loglik') ~ x", "poisson"), ("y | trunc(ub = 3) ~ x", "negativebinomial")]:
        censoring.check_family(parse(text, COLS).response, get_family(fam))


# ------------------------------------------------------------------ numpy vs PyMC


def _case(family):
    rng = np.random.default_rng(3)
    n = 8
    eta = rng.normal(0.5, 0.4, n)
    if family in ("poisson", "negativebinomial"):
        y = rng.poisson(2.0, n).astype(float)
    elif family in ("gaussian", "t"):
        y = rng.normal(0.5, 1.0, n)
    else:
        y = rng.gamma(2.0, 1.0, n)
    aux = {"sigma": 0.8, "nu": 5.0, "alpha": 2.5, "shape": 1.7}
    return eta, y, aux


@pytest.mark.parametrize("family", sorted(censoring.CDFS))
def test_cdf_rows_match_pymc(family):
    """Each numpy log-CDF / log-survival row equals PyMC's logcdf / logccdf of the family's own
    distribution (so LOO and the fit use the same censored likelihood)."""
    import pymc as pm
    import pytensor.tensor as pt

    if not censoring.supports(family):
        pytest.skip(f"the {family} family is not in this branch's FAMILIES")
    fam = get_family(family)
    eta, y, aux = _case(family)
    par = {k: v for k, v in aux.items()} | {"trials": None}
    dist = fam.pymc(censoring._Unregistered(pm), pt, "_u", pt.as_tensor_variable(eta), par)
    row = censoring.CDFS[family]

    def a(name):
        return np.full((1, 1), aux[name])

    sigma = np.full((1, 1), aux["sigma"])
    np.testing.assert_allclose(row.logcdf(y[None], eta[None], sigma, a)[0], pm.logcdf(dist, y).eval(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(row.logsf(y[None], eta[None], sigma, a)[0], pm.logccdf(dist, y).eval(), rtol=1e-6, atol=1e-9)


def test_adjust_censoring_and_truncation_by_hand():
    """gaussian: right -> logsf, left -> logcdf, interval -> log(F(y2) - F(y)), trunc -> minus log(F(ub) - F(lb))."""
    from scipy import stats

    y = np.array([0.1, 0.5, -0.3, 0.2])
    eta = np.array([[0.0, 0.2, 0.1, -0.1]])
    sigma = np.full((1, 1), 0.7)
    terms = ResponseTerms(cens=np.array([0, 1, -1, 2]), y2=np.array([1.1, 1.5, 0.7, 0.9]),
                          lb=np.full(4, -1.0), ub=np.full(4, 2.0))
    base = stats.norm.logpdf(y, eta, 0.7)
    got = censoring.adjust(base, y[None], "gaussian", censoring.bounds(terms, y, "gaussian"), eta, sigma, lambda n: None)
    e = eta[0]
    want = np.array([
        stats.norm.logpdf(0.1, e[0], 0.7),
        stats.norm.logsf(0.5, e[1], 0.7),
        stats.norm.logcdf(-0.3, e[2], 0.7),
        np.log(stats.norm.cdf(0.9, e[3], 0.7) - stats.norm.cdf(0.2, e[3], 0.7)),
    ]) - np.log(stats.norm.cdf(2.0, e, 0.7) - stats.norm.cdf(-1.0, e, 0.7))
    np.testing.assert_allclose(got[0], want, rtol=1e-10)


def test_discrete_truncation_keeps_the_bounds():
    """trunc(lb = 1) for a Poisson: the normalizer is P(Y >= 1) (brms's lb - 1)."""
    from scipy import stats

    y = np.array([1.0, 3.0])
    eta = np.log(np.array([[2.0, 2.0]]))
    terms = ResponseTerms(lb=np.array([1.0, 1.0]), ub=np.array([np.inf, np.inf]))
    base = stats.poisson.logpmf(y, 2.0)[None]
    got = censoring.adjust(base, y[None], "poisson", censoring.bounds(terms, y, "poisson"), eta, None, lambda n: None)
    np.testing.assert_allclose(got[0], stats.poisson.logpmf(y, 2.0) - np.log(1 - stats.poisson.pmf(0, 2.0)))
    # a bound at the support's end truncates nothing
    none = censoring.bounds(ResponseTerms(lb=np.zeros(2), ub=np.full(2, np.inf)), y, "poisson")
    assert not none.active


def test_weights_in_the_numpy_loglik():
    from scipy import stats

    fam = get_family("gaussian")
    y = np.array([0.3, -0.2])
    eta = np.zeros((1, 2))
    w = np.array([4.0, 0.5])

    def aux(name):
        return np.full((1, 1), 1.5) if name == "sigma" else None

    prec = likelihood.logpdf(fam, y, eta, aux, terms=ResponseTerms(weights=w, weights_type="precision"))
    np.testing.assert_allclose(prec[0], stats.norm.logpdf(y, 0, 1.5 / np.sqrt(w)))
    ll = likelihood.logpdf(fam, y, eta, aux, terms=ResponseTerms(weights=w, weights_type="loglik"))
    np.testing.assert_allclose(ll[0], w * stats.norm.logpdf(y, 0, 1.5))


@pytest.mark.parametrize("family, formula", [
    ("lognormal", "y | cens(c, y2) + trunc(ub = 40) ~ x + (1|g)"),
    pytest.param("gaussian", "y | weights(w) + cens(c, y2) ~ x + (1|g)", marks=pytest.mark.slow),
    pytest.param("poisson", "n | cens(c) + trunc(lb = 1) + weights(w, type = 'loglik') ~ x + (1|g)", marks=pytest.mark.slow),
    pytest.param("binomial", "n | trials(n + 2) + weights(w, type = 'loglik') ~ x + (1|g)", marks=pytest.mark.slow),
    pytest.param("gaussian", "y | se(w) + cens(c, y2) + trunc(lb = 0) ~ x + (1|g)", marks=pytest.mark.slow),
])
def test_model_logp_matches_numpy_pointwise(family, formula):
    """The PyMC model's log-likelihood (observed variable + the response-terms potential)
    equals the sum of hlm's numpy pointwise log-likelihood (what LOO uses)."""
    rng = np.random.default_rng(5)
    n = 30
    y = np.round(rng.gamma(3.0, 2.0, n), 3)
    c = rng.choice(["none", "right", "left", "interval"] if "y2" in formula else ["none", "right", "left"], n)
    df = pd.DataFrame({"y": y, "y2": y + 1.5, "c": c, "x": rng.normal(size=n), "w": rng.uniform(0.5, 2, n),
                       "g": rng.choice(list("abcd"), n), "n": rng.poisson(3, n) + 1})
    d = build_design(parse(formula, list(df.columns)), df)
    built = build_model(d, get_family(family), parameterization="centered")
    model = built.model
    ip = model.initial_point()
    points = [{k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in ip.items()} for _ in range(2)]
    like = model.observed_RVs + list(model.potentials)
    assert [p.name for p in model.potentials] == ["_response_terms"]
    ref_fn = model.compile_fn(model.logp(vars=like, sum=True), inputs=model.value_vars, on_unused_input="ignore")
    ours = likelihood.pointwise(tree_from_points(model, points), built)
    np.testing.assert_allclose(ours.sum(axis=1), [ref_fn(p) for p in points], rtol=1e-6)


def test_structure_key_changes_with_the_terms():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"y": rng.gamma(2, 1, 12), "x": rng.normal(size=12), "c": ["none"] * 6 + ["right"] * 6})
    fam = get_family("lognormal")
    k1 = build_model(build_design(parse("y ~ x", list(df.columns)), df), fam).structure_key
    k2 = build_model(build_design(parse("y | cens(c) ~ x", list(df.columns)), df), fam).structure_key
    assert k1 != k2


def test_kaplan_meier_by_hand():
    from hlm_cli.outputs.figures.ppc import kaplan_meier

    at, s = kaplan_meier(np.array([1.0, 2.0, 2.0, 3.0, 4.0]), np.array([1, 0, 1, 1, 0], dtype=bool))
    # 5 at risk at t=1 (1 event), 4 at t=2 (1 event), 2 at t=3 (1 event)
    np.testing.assert_allclose(at, [1.0, 1.0, 2.0, 3.0])
    np.testing.assert_allclose(s, [1.0, 0.8, 0.6, 0.3])


@pytest.mark.parametrize("codes", [[0, 1, 0, 1, 0, 0], [0, -1, 2, 1, 0, 0]])
def test_censored_ppc_draws_a_figure(tmp_path, codes):
    """Right censoring only: Kaplan-Meier; left/interval: the marked ECDF. Either way a figure."""
    from hlm_cli.outputs.figures.ppc import ppc

    rng = np.random.default_rng(0)
    obs = rng.gamma(2.0, 1.0, 6)
    sim = rng.gamma(2.0, 1.0, (1, 20, 6))
    tree = xr.DataTree.from_dict({
        "posterior_predictive": xr.Dataset({"y": (("chain", "draw", "__obs__"), sim)}),
        "observed_data": xr.Dataset({"y": (("__obs__",), obs), "cens": (("__obs__",), np.array(codes, dtype=float))}),
    })
    paths = ppc(tree, tmp_path / "ppc.png")
    assert [p.name for p in paths] == ["ppc.png"] and (tmp_path / "ppc.png").stat().st_size > 1000


def test_weibull_and_exponential_rows_match_scipy():
    """The rows for the families branch's weibull (mean exp(eta), shape k) and exponential
    (mean exp(eta)), checked against scipy here; against PyMC once the families are merged."""
    from scipy import stats
    from scipy.special import gamma

    x = np.array([[0.3, 1.0, 2.5, 7.0]])
    eta = np.array([[0.1, 0.5, -0.2, 1.0]])
    k = 1.7
    scale = np.exp(eta) / gamma(1 + 1 / k)

    def aux(name):
        return np.full((1, 1), k) if name == "shape" else None

    w, e = censoring.CDFS["weibull"], censoring.CDFS["exponential"]
    np.testing.assert_allclose(w.logcdf(x, eta, None, aux), stats.weibull_min.logcdf(x, k, scale=scale), rtol=1e-10)
    np.testing.assert_allclose(w.logsf(x, eta, None, aux), stats.weibull_min.logsf(x, k, scale=scale), rtol=1e-10)
    np.testing.assert_allclose(e.logcdf(x, eta, None, aux), stats.expon.logcdf(x, scale=np.exp(eta)), rtol=1e-10)
    np.testing.assert_allclose(e.logsf(x, eta, None, aux), stats.expon.logsf(x, scale=np.exp(eta)), rtol=1e-10)
