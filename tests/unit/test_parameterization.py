"""Group-term parameterizations: the shifted (covariate-centered) and partially centered forms
of a correlated term are the same model, and the pilot picks them where they help.

No sampling: models are built and their log densities evaluated at corresponding points.
"""

import numpy as np
import pandas as pd
import pytest

from hlm_cli.formula import parse
from hlm_cli.formula.design import build_design
from hlm_cli.model import build as build_mod
from hlm_cli.model import parameterization as param
from hlm_cli.model.build import build_model, group_shift
from hlm_cli.model.families import get_family
from hlm_cli.model.priors import parse_priors

FORMULA = "y ~ age + sex + (age|subj)"


def orthodont_like(seed=1, n_subj=27, sd0=1.9, sd1=0.15, sigma=1.4):
    """Four ages 8-14 per subject (far from 0), a between-subject factor."""
    rng = np.random.default_rng(seed)
    ages = np.tile([8.0, 10.0, 12.0, 14.0], n_subj)
    subj = np.repeat(np.arange(n_subj), 4)
    b0, b1 = rng.normal(0, sd0, n_subj), rng.normal(0, sd1, n_subj)
    sex = np.where(np.arange(n_subj) < 11, "F", "M")[subj]
    y = 17 + 0.66 * ages + 2.0 * (sex == "M") + b0[subj] + b1[subj] * ages + rng.normal(0, sigma, len(ages))
    return pd.DataFrame({"y": y, "age": ages, "sex": sex, "subj": [f"s{j}" for j in subj]})


def design_of(df, formula=FORMULA):
    return build_design(parse(formula, list(df.columns)), df)


def build_with(df, choice, formula=FORMULA, monkeypatch=None):
    """The model with the one group term's Choice forced."""
    design = design_of(df, formula)
    monkeypatch.setattr(param, "choose", lambda *a, **k: {g.term.label: choice for g in design.groups})
    return build_model(design, get_family("gaussian"), parse_priors([]))


def term_label(df, formula=FORMULA):
    """The term's key in param.choose's answer."""
    return design_of(df, formula).groups[0].term.label


def rv_label(df, formula=FORMULA):
    """The term's part of its sampled variables' names (``_z(subj|1 + age)``)."""
    g = design_of(df, formula).groups[0]
    return f"{g.factor}|{g.term.expr}"


def logp_at(built, values):
    m = built.model
    point = m.initial_point()
    point.update(values)
    return float(m.compile_logp()(point))


def effects_at(built, values, names):
    m = built.model
    point = m.initial_point()
    point.update(values)
    by_name = {v.name: v for v in m.unobserved_value_vars}
    fn = m.compile_fn([by_name[n] for n in names], inputs=m.value_vars, on_unused_input="ignore")
    return fn(point)


def _effects_fn(built, names):
    m = built.model
    by_name = {v.name: v for v in m.unobserved_value_vars}
    return m.compile_fn([by_name[n] for n in names], inputs=m.value_vars, on_unused_input="ignore")


def _at(built, fn):
    """``fn`` at the model's initial point updated with the given values."""
    base = built.model.initial_point()
    return lambda values: fn({**base, **values})


def _point(rng, built):
    """Random values of the SDs' and correlation's value variables (transformed space)."""
    out = {}
    for v in built.model.value_vars:
        if "_sigma" in v.name or "_cholcorr" in v.name or v.name in ("sigma_log__",):
            out[v.name] = rng.normal(0, 0.5, size=built.model.initial_point()[v.name].shape)
    return out


def test_shift_applies_to_correlated_terms_with_an_intercept_and_slopes_only():
    df = orthodont_like()
    assert param.shifts(design_of(df).groups[0])
    assert not param.shifts(design_of(df, "y ~ age + (age||subj)").groups[0])
    assert not param.shifts(design_of(df, "y ~ age + (1|subj)").groups[0])
    assert not param.shifts(design_of(df, "y ~ age + (0 + age|subj)").groups[0])
    np.testing.assert_allclose(group_shift(design_of(df).groups[0]), [0.0, 11.0])


def test_shifted_centered_term_is_the_same_model(monkeypatch):
    """b' = A b has unit Jacobian: the joint log density of the shifted model at (theta, A b)
    equals the unshifted one at (theta, b), and the reported effects are b in both."""
    df = orthodont_like()
    lab = rv_label(df)
    plain = build_with(df, param.Choice("centered", None, "test"), monkeypatch=monkeypatch)
    shifted = build_with(df, param.Choice("centered", None, "test", shifted=True), monkeypatch=monkeypatch)
    rng = np.random.default_rng(0)
    A = np.eye(2)
    A[0] += group_shift(plain.design.groups[0])
    key = f"_b({lab})"
    # each function compiled once (a C compile each), then evaluated at three points
    logp0, logp1 = (_at(m, m.model.compile_logp()) for m in (plain, shifted))
    eff0, eff1 = (_at(m, _effects_fn(m, ["1|subj", "age|subj"])) for m in (plain, shifted))
    for _ in range(3):
        theta = _point(rng, plain)
        b = rng.normal(0, 1.0, (27, 2)) * [2.0, 0.2]
        p0, p1 = {**theta, key: b}, {**theta, key: b @ A.T}
        assert float(logp0(p0)) == pytest.approx(float(logp1(p1)), rel=1e-9, abs=1e-8)
        e0 = eff0(p0)
        e1 = eff1(p1)
        np.testing.assert_allclose(e0, e1, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(np.stack(e0, axis=1), b, rtol=1e-8, atol=1e-10)
    # the priors of the SDs and the correlation are the same variables in both
    names = lambda m: [v.name for v in m.model.free_RVs if "_sigma" in v.name or "cholcorr" in v.name]  # noqa: E731
    assert names(plain) == names(shifted) and len(names(plain)) == 3


def test_shifted_noncentered_effects_have_the_users_covariance(monkeypatch):
    """b = A^{-1} chol(A Sigma A^T) z: the implied covariance of b is Sigma exactly."""
    df = orthodont_like()
    lab = rv_label(df)
    built = build_with(df, param.Choice("noncentered", None, "test", shifted=True), monkeypatch=monkeypatch)
    m = built.model
    point = m.initial_point()
    point["1|subj_sigma_log__"] = np.log(1.9)
    point["age|subj_sigma_log__"] = np.log(0.15)
    by_name = {v.name: v for v in m.unobserved_value_vars}
    fn = m.compile_fn([by_name["1|subj"], by_name["age|subj"], by_name["cor(Intercept,age|subj)"]],
                      inputs=m.value_vars, on_unused_input="ignore")
    # b is linear in z: its covariance is M M^T for the columns M = b(e_k) of the map
    cols = []
    for k in range(2):
        z = np.zeros((27, 2))
        z[0, k] = 1.0
        b0, b1, r = fn({**point, f"_z({lab})": z})
        cols.append([b0[0], b1[0]])
    M = np.array(cols).T
    sigma = np.array([[1.9**2, r * 1.9 * 0.15], [r * 1.9 * 0.15, 0.15**2]])
    np.testing.assert_allclose(M @ M.T, sigma, rtol=1e-8, atol=1e-12)
    assert abs(M[0, 1]) > 1e-6  # not the plain Cholesky factor: the coordinates did change


@pytest.mark.slow  # suite time budget (14 s cold); the shifted and between-centering equivalences stay in the default run
def test_partially_centered_term_is_the_same_model(monkeypatch):
    """(t0, z) -> b' = chol' [(t0 - 0)/chol'_00, z]: log p(t0, z) = log p_centered(b') +
    sum over levels of log |d b'/d(t0, z)| = L * log(chol'_11), and the effects agree."""
    df = orthodont_like()
    lab = rv_label(df)
    centered = build_with(df, param.Choice("centered", None, "test", shifted=True), monkeypatch=monkeypatch)
    partial = build_with(df, param.Choice("noncentered", None, "test", shifted=True, intercept_centered=True),
                         monkeypatch=monkeypatch)
    assert {f"_b0({lab})", f"_z({lab})"} <= {v.name for v in partial.model.free_RVs}
    rng = np.random.default_rng(5)
    key_c = f"_b({lab})"
    for _ in range(3):
        theta = _point(rng, centered)
        s0, s1 = np.exp(theta["1|subj_sigma_log__"]), np.exp(theta["age|subj_sigma_log__"])
        r = float(effects_at(centered, theta, ["cor(Intercept,age|subj)"])[0])
        c = group_shift(centered.design.groups[0])
        A = np.eye(2)
        A[0] += c
        S = np.array([[s0**2, r * s0 * s1], [r * s0 * s1, s1**2]])
        Lp = np.linalg.cholesky(A @ S @ A.T)
        w = rng.normal(0, 1, (27, 2))
        bp = w @ Lp.T
        lp_c = logp_at(centered, {**theta, key_c: bp})
        lp_p = logp_at(partial, {**theta, f"_b0({lab})": bp[:, 0], f"_z({lab})": w[:, 1:]})
        assert lp_p == pytest.approx(lp_c + 27 * np.log(Lp[1, 1]), rel=1e-9, abs=1e-7)
        e_c = effects_at(centered, {**theta, key_c: bp}, ["1|subj", "age|subj"])
        e_p = effects_at(partial, {**theta, f"_b0({lab})": bp[:, 0], f"_z({lab})": w[:, 1:]}, ["1|subj", "age|subj"])
        np.testing.assert_allclose(e_c, e_p, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(np.stack(e_c, axis=1), bp @ np.linalg.inv(A).T, rtol=1e-8, atol=1e-10)


def test_priors_do_not_depend_on_the_parameterization():
    df = orthodont_like()
    design = design_of(df)
    a = build_model(design, get_family("gaussian"), parse_priors([]), parameterization="auto")
    b = build_model(design, get_family("gaussian"), parse_priors([]), parameterization="centered")
    assert a.priors == b.priors
    assert a.structure_key != b.structure_key


def test_auto_centers_only_the_intercept_of_a_poorly_informed_slope_term():
    """Orthodont-like: 4 observations per subject, a small slope SD (ratio < 3) but a well
    informed intercept at the mean age (ratio >= 3)."""
    df = orthodont_like()
    choice = param.choose(design_of(df), get_family("gaussian"))[term_label(df)]
    assert choice.kind == "noncentered"
    assert choice.shifted and choice.intercept_centered
    assert choice.info_ratio < param.CENTER_AT
    assert "intercept at the covariates' means" in choice.reason


def test_auto_keeps_a_poorly_informed_intercept_noncentered():
    df = orthodont_like(sd0=0.2, sigma=3.0)
    choice = param.choose(design_of(df), get_family("gaussian"))[term_label(df)]
    assert choice.kind == "noncentered" and choice.shifted and not choice.intercept_centered


def gamma_df(per_level, seed=2, levels=48, cv=0.04, sd=0.16):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(levels), per_level)
    x = rng.normal(10, 1, levels)[g] + rng.normal(0, 0.1, len(g))
    mu = np.exp(3.0 + 0.5 * x + rng.normal(0, sd, levels)[g])
    shape = 1 / cv**2
    y = rng.gamma(shape, mu / shape)
    return pd.DataFrame({"y": y, "x": x, "g": [f"s{j}" for j in g]})


def test_gamma_pilot_on_log_y_centers_well_informed_levels():
    """plm::Produc-like: 17 observations per state (< 30, the old rule's non-centered), but a
    CV of 0.04 against sd(state) 0.16: information ratio ~ 17 * 16 = 270."""
    df = gamma_df(17)
    design = design_of(df, "y ~ x + (1|g)")
    choice = param.choose(design, get_family("gamma"))[design.groups[0].term.label]
    assert choice.info_ratio > 50
    # x (like log(pcap)) varies between levels: centered on it, not zero-sum
    assert choice.kind == "centered" and choice.between == ("x",) and choice.on_mean


def test_gamma_pilot_keeps_noisy_levels_noncentered():
    df = gamma_df(3, cv=1.0, sd=0.1)
    design = design_of(df, "y ~ x + (1|g)")
    choice = param.choose(design, get_family("gamma"))[design.groups[0].term.label]
    assert choice.kind == "noncentered"
    assert choice.info_ratio < param.CENTER_AT


def test_bernoulli_keeps_the_observations_per_level_rule():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"y": rng.integers(0, 2, 200), "x": rng.normal(size=200), "g": np.repeat([f"g{i}" for i in range(20)], 10)})
    design = design_of(df, "y ~ x + (1|g)")
    choice = param.choose(design, get_family("bernoulli"))[design.groups[0].term.label]
    assert choice.info_ratio is None and "observations per level" in choice.reason


def test_build_module_has_no_leftover_choice_patch():
    assert build_mod.param.choose is param.choose


def between_df(seed=4, levels=40, per=4, sd=0.5, sigma=1.0):
    """x varies between levels (level covariate plus a little noise), w within them."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(levels), per)
    x = rng.normal(10, 2, levels)[g] + rng.normal(0, 0.1, len(g))
    w = rng.normal(0, 1, len(g))
    y = 1.0 + 0.3 * x + 0.5 * w + rng.normal(0, sd, levels)[g] + rng.normal(0, sigma, len(g))
    return pd.DataFrame({"y": y, "x": x, "w": w, "g": [f"l{j}" for j in g]})


def test_between_columns_are_those_varying_mostly_between_levels():
    design = design_of(between_df(), "y ~ x + w + (1|g)")
    assert param.between_columns(design, design.groups[0]) == ("x",)
    xm = param.level_means(design, design.groups[0], ("x",))
    assert xm.shape == (40, 1)
    np.testing.assert_allclose(xm[:, 0].mean(), 0.0, atol=1e-10)  # balanced: centered means


def test_centering_on_between_covariates_is_the_same_model(monkeypatch):
    """theta_j = b_j + Intercept_c + (xbar_j - xbar) beta_x: a shift with unit Jacobian, so the
    log density at (rest, theta(b)) equals the plain centered model's at (rest, b)."""
    df = between_df()
    f = "y ~ x + w + (1|g)"
    plain = build_with(df, param.Choice("centered", None, "test"), formula=f, monkeypatch=monkeypatch)
    between = build_with(df, param.Choice("centered", None, "test", on_mean=True, between=("x",)), formula=f,
                         monkeypatch=monkeypatch)
    assert "_mean(1|g)" in {v.name for v in between.model.free_RVs}
    xm = param.level_means(plain.design, plain.design.groups[0], ("x",))[:, 0]
    rng = np.random.default_rng(1)
    for _ in range(3):
        rest = {k: rng.normal(0, 0.5, np.shape(v)) for k, v in plain.model.initial_point().items() if k != "1|g"}
        b = rng.normal(0, 0.7, 40)
        # the slopes are QR-rotated (two Normal-prior columns): read beta_x at this point
        beta = effects_at(plain, {**rest, "1|g": b}, ["x", "_Intercept_c"])
        theta = b + beta[1] + xm * beta[0]
        lp0 = logp_at(plain, {**rest, "1|g": b})
        lp1 = logp_at(between, {**rest, "_mean(1|g)": theta})
        assert lp1 == pytest.approx(lp0, rel=1e-9, abs=1e-8)
        np.testing.assert_allclose(effects_at(between, {**rest, "_mean(1|g)": theta}, ["1|g"])[0], b, atol=1e-9)


def test_auto_centers_on_between_covariates_from_a_lower_ratio():
    """A ratio between BETWEEN_CENTER_AT and CENTER_AT: centered on the between-level column
    when there is one, non-centered otherwise."""
    df = between_df(seed=5, per=3, sd=1.0, sigma=1.0)  # the pilot says 2.78
    with_x = param.choose(design_of(df, "y ~ x + w + (1|g)"), get_family("gaussian"))["1|g"]
    without = param.choose(design_of(df, "y ~ w + (1|g)"), get_family("gaussian"))["1|g"]
    assert param.BETWEEN_CENTER_AT <= with_x.info_ratio < param.CENTER_AT, with_x.info_ratio
    assert with_x.kind == "centered" and with_x.between == ("x",) and with_x.on_mean
    assert without.kind == "noncentered" and without.between == ()


def test_between_centering_is_not_used_for_a_term_nested_in_another():
    rng = np.random.default_rng(2)
    df = between_df(levels=40, per=10, sd=2.0, sigma=0.5)
    df["region"] = [f"r{int(s[1:]) // 4}" for s in df["g"]]
    df["y"] += rng.normal(0, 2.0, 10)[[int(s[1:]) // 4 for s in df["g"]]]
    design = design_of(df, "y ~ x + (1|region) + (1|g)")
    choices = param.choose(design, get_family("gaussian"))
    assert choices["1|g"].between == ()
