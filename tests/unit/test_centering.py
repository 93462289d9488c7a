"""The centered population design: same model, user-scale Intercept, data (not constants).

No sampling: models are built and their log densities (and gradients) evaluated at chosen
points; the transform algebra of the reported intercept is checked on synthetic draws.
"""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hlm_cli.formula import parse
from hlm_cli.formula.design import build_design
from hlm_cli.model import likelihood, linpred
from hlm_cli.model.build import (
    CENTERED_INTERCEPT,
    CENTERED_SIGMA_INTERCEPT,
    QR_SLOPES,
    build_model,
    column_means,
    qr_rotation,
)
from hlm_cli.model.families import get_family
from hlm_cli.model.priors import parse_priors
from hlm_cli.model.reparam import to_user_scale
from tests.helpers import tree_from_points


def far_df(seed=3, n=60, center=200.0):
    """A predictor far from 0 (like temperatures 175-225), a factor, groups."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(center - 25, center + 25, n)
    cond = np.tile(["a", "b", "c"], n // 3)
    g = np.repeat([f"g{i}" for i in range(6)], n // 6)
    y = 5.0 + 0.15 * x + 1.2 * (cond == "b") + rng.normal(0, 0.7, 6)[np.repeat(np.arange(6), n // 6)] + rng.normal(0, 1.0, n)
    return pd.DataFrame({"y": y, "x": x, "cond": cond, "g": g, "s": np.repeat(["u", "v"], n // 2)})


def build(df, formula, family="gaussian", priors=None, **kw):
    design = build_design(parse(formula, list(df.columns)), df)
    return build_model(design, get_family(family), parse_priors(priors or []), **kw)


def point_fn(built, names):
    """Constrained values (and deterministics) of ``names`` at a point of the value variables."""
    m = built.model
    by_name = {v.name: v for v in m.unobserved_value_vars}
    return m.compile_fn([by_name[n] for n in names], inputs=m.value_vars, on_unused_input="ignore")


def test_population_coefficients_are_sampled_on_the_centered_design():
    df = far_df()
    built = build(df, "y ~ x + cond + (1|g)")
    free = [v.name for v in built.model.free_RVs]
    assert CENTERED_INTERCEPT in free and "Intercept" not in free
    assert "Intercept" in [v.name for v in built.model.deterministics]
    assert built.params.population[0] == "Intercept"
    means = column_means(built.design.X, built.design.x_labels)
    X = built.data_vars["_X"]
    np.testing.assert_allclose(X[:, 1:].mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(X[:, 0], 1.0)
    assert means[1] == pytest.approx(df.x.mean())
    # the means are data (in the _priors vector), not graph constants
    assert np.any(np.isclose(built.data_vars["_priors"], df.x.mean()))


def test_reported_intercept_is_on_the_users_scale():
    df = far_df()
    built = build(df, "y ~ x + cond + (1|g)", parameterization="noncentered")
    m = built.model
    rng = np.random.default_rng(0)
    ip = {k: v + rng.normal(0, 0.5, np.shape(v)) for k, v in m.initial_point().items()}
    ic, intercept, x, cond = point_fn(built, [CENTERED_INTERCEPT, "Intercept", "x", "cond"])(ip)
    means = column_means(built.design.X, built.design.x_labels)
    b = np.concatenate([[0.0], np.atleast_1d(x), np.atleast_1d(cond)])
    assert intercept == pytest.approx(ic - means @ b)
    assert abs(intercept - ic) > 0.1  # the predictor's mean (~200) makes the two differ


def _loglik_fn(built):
    m = built.model
    obs = m.observed_RVs[0]
    return m.compile_fn(m.logp(vars=[obs]), inputs=m.value_vars, on_unused_input="ignore")


def test_log_likelihood_is_that_of_the_uncentered_model():
    """At any point, the likelihood of the centered model equals y ~ N(Intercept + X b, sigma)
    with the reported user-scale Intercept and coefficients (same model, new coordinates)."""
    df = far_df()
    built = build(df, "y ~ x * cond", parameterization="noncentered")
    m = built.model
    rng = np.random.default_rng(1)
    names = ["Intercept", "x", "cond", "x:cond", "sigma"]
    get = point_fn(built, names)
    ll = _loglik_fn(built)
    X = built.design.X
    for _ in range(3):
        p = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in m.initial_point().items()}
        intercept, x, cond, inter, sigma = get(p)
        beta = np.concatenate([[intercept], np.atleast_1d(x), np.atleast_1d(cond), np.atleast_1d(inter)])
        z = (df.y.to_numpy() - X @ beta) / sigma
        ref = np.sum(-0.5 * z**2 - np.log(sigma) - 0.5 * np.log(2 * np.pi))
        assert float(ll(p)) == pytest.approx(ref, rel=1e-9)


def test_least_squares_is_the_flat_prior_mode_with_user_scale_intercept():
    """With flat priors on the population level the posterior mode of (Intercept, b) is least
    squares for any sigma: the gradient of the log density there is 0 in the centered
    coordinates, and the reported Intercept is the least-squares intercept."""
    df = far_df()
    built = build(df, "y ~ x + cond", priors=["Intercept=Flat()", "b=Flat()"])
    m = built.model
    X, y = built.design.X, df.y.to_numpy()
    ls, *_ = np.linalg.lstsq(X, y, rcond=None)
    means = column_means(X, built.design.x_labels)
    p = m.initial_point()
    p[CENTERED_INTERCEPT] = np.asarray(ls[0] + means @ ls)
    p["x"] = np.asarray(ls[1])
    p["cond"] = ls[2:4].copy()
    grad = m.compile_dlogp(vars=[m[n] for n in (CENTERED_INTERCEPT, "x", "cond")])
    g = grad(p)
    np.testing.assert_allclose(g, 0.0, atol=1e-8)
    assert float(point_fn(built, ["Intercept"])(p)[0]) == pytest.approx(ls[0], rel=1e-10)
    # moving the intercept off the solution makes its gradient non-zero (the check can fail),
    # while the slopes' stays 0: in centered coordinates the intercept is orthogonal to them
    p[CENTERED_INTERCEPT] = p[CENTERED_INTERCEPT] + 0.1
    g = grad(p)
    assert abs(g[0]) > 0.5
    np.testing.assert_allclose(g[1:], 0.0, atol=1e-8)


def test_prior_on_intercept_applies_to_the_centered_intercept():
    df = far_df()
    built = build(df, "y ~ x", priors=["Intercept=Normal(40, 2)"])
    m = built.model
    p = m.initial_point()
    p[CENTERED_INTERCEPT] = np.asarray(41.0)
    lp = m.compile_fn(m.logp(vars=[m[CENTERED_INTERCEPT]]), inputs=m.value_vars, on_unused_input="ignore")
    from scipy import stats

    assert float(lp(p)) == pytest.approx(stats.norm.logpdf(41.0, 40, 2))


def test_default_intercept_prior_is_not_widened_for_uncentered_predictors():
    df = far_df()
    built = build(df, "y ~ x + cond")
    pr = built.priors["Intercept"]
    assert pr.kwargs["mu"] == pytest.approx(df.y.mean())
    assert pr.kwargs["sigma"] == pytest.approx(2.5 * df.y.std(ddof=0))


def test_no_intercept_or_intercept_only_is_not_centered():
    df = far_df()
    for formula in ("y ~ 0 + x + cond", "y ~ 1 + (1|g)"):
        built = build(df, formula)
        assert CENTERED_INTERCEPT not in [v.name for v in built.model.free_RVs]
    assert "Intercept" in [v.name for v in build(df, "y ~ 1 + (1|g)").model.free_RVs]


def test_same_structure_other_data_swaps_in_the_means():
    """One compiled model serves every dataset of the same structure: the key is the same,
    and the first model with the second's data_vars has the second model's log density."""
    a, b = far_df(seed=3), far_df(seed=4, center=500.0)
    ma = build(a, "y ~ x + cond + (1|g)", parameterization="noncentered")
    mb = build(b, "y ~ x + cond + (1|g)", parameterization="noncentered")
    assert ma.structure_key == mb.structure_key
    assert not np.allclose(ma.data_vars["_priors"], mb.data_vars["_priors"])
    p = mb.model.initial_point()
    p = {k: v + 0.1 for k, v in p.items()}
    want = mb.model.compile_logp()(p)
    names = ["Intercept"]
    want_intercept = point_fn(mb, names)(p)[0]
    for name, value in mb.data_vars.items():
        ma.model.set_data(name, value)
    assert ma.model.compile_logp()(p) == pytest.approx(want, rel=1e-10)
    assert point_fn(ma, names)(p)[0] == pytest.approx(want_intercept, rel=1e-10)


def test_structure_key_separates_centered_from_uncentered():
    df = far_df()
    k1 = build(df, "y ~ x + (1|g)", parameterization="noncentered").structure_key
    k0 = build(df, "y ~ 0 + x + (1|g)", parameterization="noncentered").structure_key
    assert k1 != k0


@pytest.mark.parametrize("family, formula, sigma", [
    ("gaussian", "y ~ x * cond + (1 + x|g)", None),
    ("gaussian", "y ~ x + cond + (1|g)", "~ x + s"),
    ("poisson", "count ~ x + cond + (1|g)", None),
])
def test_predictions_from_user_scale_draws_match_the_graph(family, formula, sigma):
    """eta from the reported (user-scale) draws, as predict/loo compute it, gives the graph's
    own log-likelihood: predictions are unchanged by the centering."""
    df = far_df().assign(count=lambda d: np.random.default_rng(0).poisson(np.exp((d.y - d.y.mean()) / 10 + 1)))
    design = build_design(parse(formula, list(df.columns)), df)
    if sigma:
        from hlm_cli.formula.design import build_sigma_design

        design.sigma = build_sigma_design(sigma.lstrip("~ "), df)
    built = build_model(design, get_family(family), parameterization="noncentered")
    names = [v.name for v in built.model.free_RVs]
    if sigma:
        assert CENTERED_SIGMA_INTERCEPT in names and "sigma_Intercept" in [v.name for v in built.model.deterministics]
    m = built.model
    rng = np.random.default_rng(2)
    points = [{k: v + rng.normal(0, 0.2, np.shape(v)) for k, v in m.initial_point().items()} for _ in range(2)]
    tree = tree_from_points(built.model, points)
    ours = likelihood.pointwise(tree, built)
    obs = m.observed_RVs[0]
    ref_fn = m.compile_fn(m.logp(vars=[obs], sum=False)[0], inputs=m.value_vars, on_unused_input="ignore")
    np.testing.assert_allclose(ours, np.stack([ref_fn(p) for p in points]), rtol=1e-6, atol=1e-8)
    if sigma:  # the per-row SDs from the user-scale sigma_Intercept and slopes
        np.testing.assert_allclose(linpred.sigma_draws(tree, built), np.asarray(tree["posterior"]["sigma"]).reshape(2, -1), rtol=1e-10)


def test_zero_sum_correction_shifts_both_intercepts_alike():
    """With zero-sum group intercepts, to_user_scale draws the group mean t from the
    conditional of the centered intercept (the one with the prior) and subtracts it from both
    the centered and the user-scale intercept: Intercept = _Intercept_c - b . mean(X) still."""
    df = far_df()
    built = build(df, "y ~ x + (1|g)", parameterization="zerosum")
    assert built.parameterization["1|g"].sums_to_zero
    means = column_means(built.design.X, built.design.x_labels)
    rng = np.random.default_rng(0)
    C, D, L = 2, 50, len(built.design.groups[0].levels)
    ic = rng.normal(35, 0.2, (C, D))
    b = rng.normal(0.15, 0.01, (C, D))
    d = rng.normal(0, 1, (C, D, L))
    d -= d.mean(axis=-1, keepdims=True)
    post = xr.Dataset({
        CENTERED_INTERCEPT: (("chain", "draw"), ic),
        "Intercept": (("chain", "draw"), ic - b * means[1]),
        "x": (("chain", "draw"), b),
        "1|g": (("chain", "draw", "g"), d),
        "1|g_sigma": (("chain", "draw"), np.full((C, D), 0.8)),
    })
    tree = to_user_scale(xr.DataTree.from_dict({"posterior": post}), built, seed=1)
    out = tree["posterior"]
    t = ic - np.asarray(out[CENTERED_INTERCEPT])
    assert np.std(t) > 0.05  # a real draw of the group mean
    np.testing.assert_allclose(np.asarray(out["Intercept"]), np.asarray(out[CENTERED_INTERCEPT]) - b * means[1], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(out["1|g"]).mean(axis=-1), t, rtol=1e-9, atol=1e-9)


def test_qr_rotation_orthogonalizes_the_centered_design():
    df = far_df()
    built = build(df, "y ~ x * cond")
    Xc = built.data_vars["_X"][:, 1:]
    L = qr_rotation(Xc)
    assert np.allclose(L, np.tril(L)) and np.all(np.diag(L) > 0)
    Qt = Xc @ np.linalg.inv(L)
    np.testing.assert_allclose(Qt.T @ Qt, (len(Xc) - 1) * np.eye(Xc.shape[1]), atol=1e-8)
    assert abs(np.corrcoef(Xc[:, 1], Xc[:, 3])[0, 1]) > 0.9  # cond[b] vs x:cond[b]: collinear before
    # collinear or single columns: no rotation
    assert qr_rotation(np.column_stack([Xc[:, 0], 2 * Xc[:, 0]])) is None
    assert qr_rotation(Xc[:, :1]) is None


def test_rotated_slopes_have_exactly_the_users_normal_priors():
    """theta = L b ~ MvNormal(L mu, L diag(sigma)) is the Normal(mu, sigma) prior on b in
    rotated coordinates: its log density is the sum of the slopes' Normal log densities
    minus log|det L| (the Jacobian), at any point; the terms keep their names and dims."""
    from scipy import stats

    df = far_df()
    built = build(df, "y ~ x * cond + (1|g)", priors=["x=Normal(0.2, 3)"])
    m = built.model
    assert QR_SLOPES in [v.name for v in m.free_RVs]
    assert {"x", "cond", "x:cond"} <= {v.name for v in m.deterministics}
    labels = built.design.x_labels[1:]
    mu = np.array([built.priors[lab].kwargs["mu"] for lab in labels])
    sd = np.array([built.priors[lab].kwargs["sigma"] for lab in labels])
    assert mu[0] == 0.2 and sd[0] == 3.0
    L = qr_rotation(built.data_vars["_X"][:, 1:])
    lp = m.compile_fn(m.logp(vars=[m[QR_SLOPES]]), inputs=m.value_vars, on_unused_input="ignore")
    get = point_fn(built, [QR_SLOPES, "x", "cond", "x:cond"])
    rng = np.random.default_rng(4)
    for _ in range(3):
        p = {k: v + rng.normal(0, 1.0, np.shape(v)) for k, v in m.initial_point().items()}
        theta, x, cond, inter = get(p)
        b = np.concatenate([np.atleast_1d(x), cond, inter])
        np.testing.assert_allclose(L @ b, theta, rtol=1e-9, atol=1e-12)
        ref = stats.norm.logpdf(b, mu, sd).sum() - np.log(np.diag(L)).sum()
        assert float(lp(p)) == pytest.approx(ref, rel=1e-9)
    assert point_fn(built, ["cond"])(p)[0].shape == (2,)


def test_non_normal_slope_priors_are_centered_but_not_rotated():
    df = far_df()
    built = build(df, "y ~ x * cond", priors=["x=StudentT(3, 0, 1)"])
    free = [v.name for v in built.model.free_RVs]
    assert QR_SLOPES not in free and {"x", "cond", "x:cond", CENTERED_INTERCEPT} <= set(free)
    assert built.structure_key != build(df, "y ~ x * cond").structure_key
