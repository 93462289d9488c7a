"""Structured group covariances ar1(), cs(), diag() and brms's ar() residual AR(1) (issue 19):
parser, design, priors, the model's likelihood against the multivariate normal it stands for,
the pointwise (conditional) log-likelihood and predictions at new times. Nothing is sampled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hlm_cli.errors import FormulaError, InputError, PriorError
from hlm_cli.formula.design import build_design
from hlm_cli.formula.parser import GroupTerm, ResidualAR, parse
from hlm_cli.model.build import build_model, resolve_priors
from hlm_cli.model.families import get_family
from hlm_cli.model.priors import parse_priors


def panel(n_id=5, times=(1, 2, 3, 4), seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [dict(id=f"s{i}", t=t, x=rng.normal(), y=rng.normal(), c=int(rng.poisson(2)), f=f"v{k % 3}")
            for i in range(n_id) for k, t in enumerate(times)]
    return pd.DataFrame(rows)


def design_of(formula: str, df: pd.DataFrame):
    return build_design(parse(formula, list(df.columns)), df)


# ------------------------------------------------------------------------------------ parser


@pytest.mark.parametrize("text", ["y ~ x + ar1(t | id)", "y ~ x + ar1(t + 0 | id)", "y ~ x + ar1(0 + t|id)"])
def test_ar1_parses_to_a_structured_group_term(text):
    f = parse(text, ["y", "x", "t", "id"])
    assert f.groups == (GroupTerm("t", ("id",), True, "ar1"),)
    assert f.groups[0].label == "ar1(t|id)" and f.fixed == "1 + x"


def test_cs_and_diag_parse():
    f = parse("y ~ cs(1 + x | g) + diag(1 + x | h)", ["y", "x", "g", "h"])
    assert f.groups[0] == GroupTerm("1 + x", ("g",), True, "cs") and f.groups[0].label == "cs(1 + x|g)"
    # diag() is lme4's ||: independent terms, no correlation
    assert [(g.expr, g.correlated, g.cov) for g in f.groups[1:]] == [("1", False, ""), ("0 + x", False, "")]


def test_ar_term_is_residual_autocorrelation_not_a_predictor():
    f = parse("y ~ x + ar(time = t, gr = id)", ["y", "x", "t", "id"])
    assert f.autocor == ResidualAR("t", ("id",)) and f.groups == () and f.fixed == "1 + x"
    assert f.predictor_columns == frozenset({"x"})
    assert parse("y ~ ar(time = t, p = 1)", ["y", "t"]).autocor == ResidualAR("t", ())


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("y ~ ar1(t + x | id)", "ar1() takes one time column"),
        ("y ~ ar1(log(t) | id)", "ar1() takes one time column"),
        ("y ~ cs(x)", "cs() holds a group term"),
        ("y ~ ar(time = t, gr = id, p = 2)", "order 1 only"),
        ("y ~ ar(t)", "keywords time =, gr = and p = 1 only"),
        ("y ~ ar(gr = id)", "needs its time column"),
        ("y ~ ar(time = t) + ar(time = x)", "two ar() terms"),
        ("y ~ ar(time = zz, gr = id)", "column 'zz' is not in"),
    ],
)
def test_parser_refusals(text, fragment):
    with pytest.raises(FormulaError, match=None) as err:
        parse(text, ["y", "x", "t", "id"])
    assert fragment in str(err.value)


# ------------------------------------------------------------------------------------ design


def test_ar1_design_has_one_column_per_time_and_the_rows_as_series():
    df = panel(times=(1, 2, 4))
    d = design_of("c ~ x + ar1(t | id)", df)
    g = d.groups[0]
    assert g.columns == ["ar1(t)[1]", "ar1(t)[2]", "ar1(t)[4]"] and g.unit == 1.0
    assert g.effect_names[0] == "ar1(t)[1]|id" and g.sd_names == ["ar1(t)|id_sigma"] and g.rho_name == "cor(ar1(t)|id)"
    assert np.array_equal(g.Z.argmax(axis=1), np.tile([0, 1, 2], 5)) and np.all(g.Z.sum(axis=1) == 1)
    # the residual series: each row's predecessor in its group, lags in units of the smallest gap
    assert g.resid.prev.tolist()[:3] == [-1, 0, 1] and g.resid.lag.tolist()[:3] == [0.0, 1.0, 2.0]


def test_ar1_time_must_be_numeric_and_vary():
    df = panel()
    df["t"] = df["t"].map({1: "a", 2: "b", 3: "c", 4: "d"})
    with pytest.raises(InputError, match="time column 't' is not numeric") as err:
        design_of("y ~ ar1(t | id)", df)
    assert "code the times as numbers" in err.value.hint
    with pytest.raises(InputError, match="single value"):
        design_of("y ~ ar1(t | id)", panel(times=(3,)))


def test_structured_term_needs_two_groups():
    with pytest.raises(InputError, match="single level"):
        design_of("c ~ ar1(t | id)", panel(n_id=1))
    with pytest.raises(InputError, match="single level"):
        design_of("y ~ cs(0 + f | id)", panel(n_id=1))


def test_duplicated_time_is_refused_for_a_residual_ar1():
    df = pd.concat([panel(), panel().iloc[[2]]], ignore_index=True)  # s0 twice at t = 3
    gauss = design_of("y ~ ar1(t | id)", df)
    with pytest.raises(FormulaError, match="data row 3 and data row 21 have the same time") as err:
        build_model(gauss, get_family("gaussian"))
    assert "one row per group and time" in err.value.hint
    with pytest.raises(InputError, match="same time"):
        design_of("y ~ ar(time = t, gr = id)", df)
    # a latent ar1() (poisson) takes several rows per (group, time): they share the effect
    built = build_model(design_of("c ~ ar1(t | id)", df), get_family("poisson"))
    assert "cor(ar1(t)|id)" in built.params.correlations["id"]


def test_residual_ar_needs_gaussian_and_one_structure():
    df = panel()
    with pytest.raises(FormulaError, match="needs --family gaussian, not poisson") as err:
        build_model(design_of("c ~ ar(time = t, gr = id)", df), get_family("poisson"))
    assert "ar1(t | id)" in err.value.hint
    with pytest.raises(FormulaError, match="one residual AR"):
        build_model(design_of("y ~ ar1(t | id) + ar(time = t, gr = id)", df), get_family("gaussian"))


# ------------------------------------------------------------------------------------ priors


def test_default_priors_and_names():
    df = panel()
    fam = get_family("gaussian")
    priors, _ = resolve_priors(design_of("y ~ x + ar(time = t, gr = id)", df), fam, {})
    assert priors["ar[1]"].dist == "Uniform" and priors["ar[1]"].kwargs == {"lower": -1.0, "upper": 1.0}
    priors, _ = resolve_priors(design_of("c ~ x + ar1(t | id)", df), get_family("poisson"), {})
    assert priors["cor(ar1(t)|id)"].kwargs["lower"] == -1.0 and priors["ar1(t)|id_sigma"].dist == "HalfNormal"
    priors, _ = resolve_priors(design_of("y ~ cs(0 + f | id)", df), fam, {})
    assert priors["cor(cs|id)"].kwargs == {"lower": -0.5, "upper": 1.0}  # -1/(K-1) for K = 3
    # unequal gaps that are not whole steps: rho ** lag needs rho > 0
    priors, _ = resolve_priors(design_of("c ~ ar1(t | id)", panel(times=(0, 1, 2.5))), get_family("poisson"), {})
    assert priors["cor(ar1(t)|id)"].kwargs["lower"] == 0.0


def test_user_priors_by_printed_name_and_rho_checks():
    df = panel()
    user = parse_priors(["sd(ar1(t)|id)=HalfNormal(1)", "cor(ar1(t)|id)=Uniform(0, 1)"])
    priors, used = resolve_priors(design_of("c ~ ar1(t | id)", df), get_family("poisson"), user)
    assert priors["ar1(t)|id_sigma"].kwargs == {"sigma": 1.0} and priors["cor(ar1(t)|id)"].kwargs["lower"] == 0.0
    with pytest.raises(PriorError, match="must be Uniform"):
        resolve_priors(design_of("y ~ ar(time = t, gr = id)", df), get_family("gaussian"), parse_priors(["ar[1]=Normal(0, 1)"]))
    with pytest.raises(PriorError, match=r"within \(-0.5, 1\)"):
        resolve_priors(design_of("y ~ cs(0 + f | id)", df), get_family("gaussian"), parse_priors(["cor(cs|id)=Uniform(-1, 1)"]))


# ------------------------------------------------------------------------------------ model


def _point(model, **values):
    ip = model.initial_point()
    for name, v in values.items():
        ip[name] = np.asarray(v, dtype=float)
    return ip


@pytest.mark.parametrize("rho", [0.55, -0.4])
def test_residual_ar_likelihood_is_the_multivariate_normal(rho):
    """Irregular series (a missing visit) and a negative rho: the conditional factorization
    equals the stationary MVN with sigma^2 rho^|t_i - t_j|, sigma the marginal SD."""
    df = panel(n_id=4, times=(1, 2, 3, 4, 5))
    df = df[~((df.id == "s1") & (df.t == 3))].reset_index(drop=True)
    d = design_of("y ~ x + ar(time = t, gr = id)", df)
    built = build_model(d, get_family("gaussian"))
    m = built.model
    ip = _point(m, **{"_Intercept_c": 0.3, "x": 0.4, "sigma_log__": np.log(0.9), "ar[1]_interval__": np.log((1 + rho) / (1 - rho))})
    ll = float(m.compile_fn(m.observedlogp)(ip))
    xm = d.X.mean(axis=0)
    xm[0] = 0
    eta = (d.X - xm) @ np.array([0.3, 0.4])
    ref = 0.0
    for _, sub in df.groupby("id"):
        i, t = sub.index.to_numpy(), sub.t.to_numpy(dtype=float)
        ref += stats.multivariate_normal(eta[i], 0.81 * rho ** np.abs(t[:, None] - t[None, :])).logpdf(d.y[i])
    assert ll == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize(("times", "rho"), [((1, 2, 4, 5), -0.6), ((0, 1, 2.5, 4), 0.6)])
def test_latent_ar1_effects_have_the_ar1_covariance(times, rho):
    import pytensor
    import pytensor.tensor as pt

    df = panel(n_id=3, times=times)
    d = design_of("c ~ 1 + ar1(t | id)", df)
    g = d.groups[0]
    m = build_model(d, get_family("poisson")).model
    z, r, sd = m["_z(ar1(t|id))"], m[g.rho_name], m[g.sd_names[0]]
    f = pytensor.function([z, r, sd], pt.stack([m[n] for n in g.effect_names], axis=1))
    K = len(times)
    chol_t = np.array([f(np.tile(np.eye(K)[j], (3, 1)), rho, 1.5)[0] for j in range(K)])  # row j: column j of chol
    T = np.asarray(times, dtype=float)
    lag = np.abs(T[:, None] - T[None, :]) / g.unit
    target = 1.5**2 * np.sign(rho) ** np.round(lag) * np.abs(rho) ** lag
    assert np.allclose(chol_t.T @ chol_t, target, atol=1e-12)


def test_cs_effects_share_one_correlation():
    import pytensor
    import pytensor.tensor as pt

    df = panel()
    d = design_of("y ~ cs(0 + f | id)", df)
    g = d.groups[0]
    m = build_model(d, get_family("gaussian")).model
    z, r = m["_z(cs(0 + f|id))"], m["cor(cs|id)"]
    sds = [m[n] for n in g.sd_names]
    f = pytensor.function([z, r, *sds], pt.stack([m[n] for n in g.effect_names], axis=1))
    chol_t = np.array([f(np.tile(np.eye(3)[j], (5, 1)), 0.3, 1.0, 2.0, 3.0)[0] for j in range(3)])
    s = np.array([1.0, 2.0, 3.0])
    assert np.allclose(chol_t.T @ chol_t, np.outer(s, s) * (0.7 * np.eye(3) + 0.3))


# ------------------------------------------------------------------------------------ draws


class _Ctx:
    """What linpred/likelihood read from a run: a posterior tree and a BuiltModel."""


def _tree(values: dict[str, np.ndarray]):
    import xarray as xr

    post = xr.Dataset({k: (("chain", "draw") + tuple(f"{k}_d{i}" for i in range(np.ndim(v) - 1)), np.asarray(v)[None])
                       for k, v in values.items()})
    return {"posterior": post}


def test_pointwise_loglik_is_conditional_on_the_previous_row():
    from hlm_cli.model.likelihood import pointwise

    df = panel(n_id=3, times=(1, 2, 3))
    d = design_of("y ~ 1 + ar(time = t, gr = id)", df)
    built = build_model(d, get_family("gaussian"))
    rho, sigma, b0 = np.array([0.5, -0.2]), np.array([1.0, 2.0]), np.array([0.1, -0.3])
    ll = pointwise(_tree({"Intercept": b0, "sigma": sigma, "ar[1]": rho}), built)
    y = d.y
    # row 1 (s0, t = 2) given row 0; row 0 is a group's first row: marginal
    s = 1
    mu = b0[s] + rho[s] * (y[0] - b0[s])
    assert ll[s, 1] == pytest.approx(stats.norm(mu, sigma[s] * np.sqrt(1 - rho[s] ** 2)).logpdf(y[1]))
    assert ll[s, 0] == pytest.approx(stats.norm(b0[s], sigma[s]).logpdf(y[0]))
    # the sum over a group's rows is its joint (MVN) density
    t = np.array([1.0, 2.0, 3.0])
    joint = stats.multivariate_normal(np.full(3, b0[0]), sigma[0] ** 2 * rho[0] ** np.abs(t[:, None] - t)).logpdf(y[:3])
    assert ll[0, :3].sum() == pytest.approx(joint)


def test_ar1_predictions_at_new_times_and_groups():
    from hlm_cli.model.linpred import eta_draws

    df = panel(n_id=2, times=(1, 2, 3))
    d = design_of("c ~ 1 + ar1(t | id)", df)
    built = build_model(d, get_family("poisson"))
    S = 4000
    rng = np.random.default_rng(0)
    eff = {n: np.tile(rng.normal(size=(1, 2)), (S, 1)) for n in d.groups[0].effect_names}
    eff["cor(ar1(t)|id)"] = np.full(S, 0.8)
    eff["ar1(t)|id_sigma"] = np.full(S, 2.0)
    eff["Intercept"] = np.zeros(S)
    tree = _tree(eff)
    new = pd.DataFrame({"id": ["s0", "s0", "s1", "new"], "t": [2.0, 4.0, 2.5, 1.0]})
    eta = eta_draws(tree, built, new, seed=1)
    b = {n: eff[n][0] for n in d.groups[0].effect_names}
    # a fitted time: the fitted effect itself
    assert np.allclose(eta[:, 0], b["ar1(t)[2]|id"][0])
    # one step past the last time: N(rho * b_3, sigma^2 (1 - rho^2))
    assert eta[:, 1].mean() == pytest.approx(0.8 * b["ar1(t)[3]|id"][0], abs=0.05)
    assert eta[:, 1].std() == pytest.approx(2.0 * np.sqrt(1 - 0.64), rel=0.05)
    # half-way between two times: pulled towards both, with less spread than one step out
    assert eta[:, 2].std() < 2.0 * np.sqrt(1 - 0.64)
    # a new group: its series drawn from the AR(1): marginal SD sigma
    assert eta[:, 3].std() == pytest.approx(2.0, rel=0.05)
    with pytest.raises(InputError, match="was not in the fitted data"):
        eta_draws(tree, built, new, new_levels="error")


def test_sigma_formula_refuses_ar(tmp_path):
    from hlm_cli.spec import FitSpec
    from hlm_cli.workflows.fit import prepare

    data = tmp_path / "p.csv"
    panel().to_csv(data, index=False)
    spec = FitSpec(data=data, formula="y ~ x", sigma_formula="~ ar(time = t, gr = id)", out=tmp_path / "o")
    with pytest.raises(InputError, match="population-level terms only"):
        prepare(spec)


@pytest.mark.parametrize("lhs", ["y | cens(c)", "y | trunc(lb = -10)"])
def test_residual_ar_refuses_censoring_and_truncation(tmp_path, lhs):
    """A residual AR(1) row is conditioned on the previous observed value: refused, not fitted."""
    import pandas as pd

    from hlm_cli.errors import FormulaError
    from hlm_cli.spec import FitSpec
    from hlm_cli.workflows.fit import prepare

    rng = np.random.default_rng(2)
    d = pd.DataFrame({"id": np.repeat(["a", "b", "c"], 6), "t": np.tile(np.arange(6), 3),
                      "y": rng.normal(size=18), "c": np.r_[np.zeros(17, int), 1]})
    path = tmp_path / "d.csv"
    d.to_csv(path, index=False)
    with pytest.raises(FormulaError, match="cannot be combined with (cens|trunc)"):
        prepare(FitSpec(data=path, formula=f"{lhs} ~ 1 + ar(time = t, gr = id)", out=tmp_path / "o"))
