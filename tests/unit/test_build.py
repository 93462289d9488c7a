"""The model builder: names, priors actually used, parameterization, without sampling."""

import numpy as np
import pandas as pd
import pytest

from hlm_cli.errors import InputError, PriorError
from hlm_cli.formula import parse
from hlm_cli.formula.design import build_design
from hlm_cli.model import parameterization
from hlm_cli.model.build import build_model, resolve_priors
from hlm_cli.model.families import get_family
from hlm_cli.model.priors import parse_priors


def design(df, formula):
    return build_design(parse(formula, list(df.columns)), df)


def test_design_uses_level_indices_not_dense_matrices(tiny_df):
    d = design(tiny_df, "y ~ x + cond + (1 + x | g)")
    assert d.x_labels == ["Intercept", "x", "cond[b]"]
    (g,) = d.groups
    assert g.Z.shape == (36, 2) and g.columns == ["Intercept", "x"] and g.levels == [f"g{i}" for i in range(6)]
    assert g.effect_names == ["1|g", "x|g"]
    assert np.array_equal(np.bincount(g.index), [6] * 6)


def test_single_level_group_is_refused(tiny_df):
    with pytest.raises(InputError, match="single level"):
        design(tiny_df.assign(one="a"), "y ~ 1 + (1|one)")


def test_default_priors_follow_bambi_scaling(tiny_df):
    d = design(tiny_df, "y ~ x + (1|g)")
    priors, _ = resolve_priors(d, get_family("gaussian"), {})
    sd_y, sd_x = np.std(tiny_df.y), np.std(tiny_df.x)
    assert priors["x"].kwargs["sigma"] == pytest.approx(2.5 * sd_y / sd_x)
    assert priors["sigma"].dist == "HalfStudentT" and priors["sigma"].kwargs["sigma"] == pytest.approx(sd_y)
    assert priors["1|g_sigma"].dist == "HalfNormal"
    assert priors["Intercept"].kwargs["mu"] == pytest.approx(tiny_df.y.mean())


def test_logit_defaults(tiny_df):
    d = design(tiny_df, "flag ~ x + (1|g)")
    priors, _ = resolve_priors(d, get_family("bernoulli"), {})
    assert priors["Intercept"].kwargs["mu"] == 0.0 and priors["Intercept"].kwargs["sigma"] >= 2.5
    assert priors["x"].kwargs["sigma"] == pytest.approx(2.5 / np.std(tiny_df.x))
    assert "sigma" not in priors


def test_user_priors_by_name_class_and_alias(tiny_df):
    d = design(tiny_df, "y ~ x + cond + (1 + x | g)")
    user = parse_priors(["b=Normal(0, 7)", "1|g=HalfNormal(3)", "sd=HalfNormal(2)", "cor=LKJ(2)", "sigma=Exponential(1)"])
    priors, used = resolve_priors(d, get_family("gaussian"), user)
    assert priors["x"].kwargs["sigma"] == 7 and priors["cond[b]"].kwargs["sigma"] == 7
    assert priors["1|g_sigma"].kwargs["sigma"] == 3 and priors["x|g_sigma"].kwargs["sigma"] == 2
    assert priors["cor(g)"].kwargs["eta"] == 2 and priors["sigma"].dist == "Exponential"


def test_unknown_prior_target(tiny_df):
    d = design(tiny_df, "y ~ x + (1|g)")
    with pytest.raises(PriorError) as ei:
        resolve_priors(d, get_family("gaussian"), parse_priors(["Interceptt=Normal(0, 1)"]))
    assert "not a parameter of this model" in str(ei.value) and "Intercept" in ei.value.hint


def test_sd_prior_must_be_positive(tiny_df):
    d = design(tiny_df, "y ~ x + (1|g)")
    with pytest.raises(PriorError, match="positive-only"):
        resolve_priors(d, get_family("gaussian"), parse_priors(["1|g=Normal(0, 1)"]))


def test_correlated_term_has_correlation_and_sds(tiny_df):
    b = build_model(design(tiny_df, "y ~ x + (1 + x | g)"), get_family("gaussian"))
    assert b.params.correlations == {"g": ["cor(Intercept,x|g)"]}
    assert b.params.group_sds == {"g": ["1|g_sigma", "x|g_sigma"]}
    names = {v.name for v in b.model.deterministics} | {v.name for v in b.model.free_RVs}
    assert {"1|g", "x|g", "cor(Intercept,x|g)"} <= names


def test_double_bar_has_no_correlation(tiny_df):
    b = build_model(design(tiny_df, "y ~ x + (x || g)"), get_family("gaussian"))
    assert b.params.correlations == {} and b.params.group_sds == {"g": ["1|g_sigma", "x|g_sigma"]}


@pytest.mark.parametrize("family, formula", [
    ("gaussian", "y ~ x + (1|g)"), ("t", "y ~ x + (1|g)"), ("poisson", "count ~ x + (1|g)"),
    ("negativebinomial", "count ~ x + (1|g)"), ("bernoulli", "flag ~ x + (1|g)"),
    ("gamma", "exp(y) ~ x + (1|g)"), ("lognormal", "exp(y) ~ x + (1|g)"), ("binomial", "cbind(count, 3) ~ x + (1|g)"),
])
def test_every_family_builds_with_finite_logp(tiny_df, family, formula):
    df = tiny_df.copy()
    b = build_model(design(df, formula), get_family(family))
    logp = b.model.compile_logp()(b.model.initial_point())
    assert np.isfinite(logp)


def test_se_model_has_no_sigma(tmp_path):
    df = pd.DataFrame({"y": [28, 8, -3, 7, -1, 1, 18, 12.0], "s": [15, 10, 16, 11, 9, 11, 10, 18.0], "school": list("ABCDEFGH")})
    b = build_model(design(df, "y | se(s) ~ 1 + (1|school)"), get_family("gaussian"))
    assert b.params.family == [] and "sigma" not in b.priors
    b2 = build_model(design(df, "y | se(s, sigma = TRUE) ~ 1 + (1|school)"), get_family("gaussian"))
    assert b2.params.family == ["sigma"]


def test_auto_parameterization_follows_information(tiny_df):
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(8), 20)
    informative = pd.DataFrame({"y": rng.normal(0, 2, 8)[g] + rng.normal(0, 0.1, 160), "g": g})
    weak = pd.DataFrame({"y": rng.normal(0, 0.05, 8)[g] + rng.normal(0, 3, 160), "g": g})
    fam = get_family("gaussian")
    assert parameterization.choose(design(informative, "y ~ 1 + (1|g)"), fam)["1|g"].kind == "zerosum"
    assert parameterization.choose(design(weak, "y ~ 1 + (1|g)"), fam)["1|g"].kind == "noncentered"
    forced = parameterization.choose(design(weak, "y ~ 1 + (1|g)"), fam, "centered")
    assert forced["1|g"].kind == "centered"


def test_structure_key_ignores_values_but_not_shapes(tiny_df):
    fam = get_family("gaussian")
    k1 = build_model(design(tiny_df, "y ~ x + (1|g)"), fam, parameterization="noncentered").structure_key
    other = tiny_df.assign(y=tiny_df.y * 1.0001)
    k2 = build_model(design(other, "y ~ x + (1|g)"), fam, parameterization="noncentered").structure_key
    k3 = build_model(design(tiny_df.iloc[:30], "y ~ x + (1|g)"), fam, parameterization="noncentered").structure_key
    assert k3 != k1
    # data-scaled default priors are pm.Data, not constants: same structure, same key
    assert k2 == k1


def _three_level(seed=0, sd_y=0.1):
    """students (crossed) + lecturers nested in departments, informative enough to centre."""
    rng = np.random.default_rng(seed)
    dept = np.repeat(np.arange(4), 60)
    lect = np.repeat(np.arange(24), 10)  # 6 lecturers per department, 10 ratings each
    stud = rng.integers(0, 15, size=240)
    y = 3 + rng.normal(0, 0.5, 4)[dept] + rng.normal(0, 1.0, 24)[lect] + rng.normal(0, 0.2, 15)[stud] + rng.normal(0, sd_y, 240)
    return pd.DataFrame({"y": y, "dept": [f"D{i}" for i in dept], "lect": [f"L{i}" for i in lect], "stud": [f"S{i}" for i in stud]})


def test_nesting_chain_is_centered_down_from_the_intercept():
    df = _three_level()
    ch = parameterization.choose(design(df, "y ~ 1 + (1|stud) + (1|lect) + (1|dept)"), get_family("gaussian"))
    assert ch["1|lect"].parent == "1|dept"
    # the top of the chain carries the intercept: not zero-sum, centered on the population mean
    assert ch["1|dept"].on_mean and not ch["1|dept"].sums_to_zero and ch["1|dept"].identified
    assert "top of a nesting chain" in ch["1|dept"].reason
    # a crossed factor keeps its own (zero-sum) form
    assert ch["1|stud"].parent is None and not ch["1|stud"].on_mean
    # without an intercept nothing can carry it
    ch0 = parameterization.choose(design(df, "y ~ 0 + (1|lect) + (1|dept)"), get_family("gaussian"))
    assert not ch0["1|dept"].on_mean


def test_nesting_chain_keeps_lme4_meaning_of_effects():
    """The chain is a shift of variables: drawn from the prior, the reported effects are
    mean-zero, independent of the intercept, with the group SD as their spread."""
    import pymc as pm

    df = _three_level()
    user = parse_priors(["Intercept=Normal(3, 2)", "1|dept=HalfNormal(0.001)", "1|lect=HalfNormal(0.001)", "1|stud=HalfNormal(0.001)"])
    b = build_model(design(df, "y ~ 1 + (1|stud) + (1|lect) + (1|dept)"), get_family("gaussian"), user)
    assert b.parameterization["1|lect"].parent == "1|dept" and b.parameterization["1|dept"].on_mean
    with b.model:
        prior = pm.sample_prior_predictive(draws=4000, random_seed=1, var_names=["Intercept", "1|dept", "1|lect", "1|dept_sigma", "1|lect_sigma"])["prior"]
    icpt = prior["Intercept"].values.ravel()
    dept = prior["1|dept"].values.reshape(-1, 4)
    lect = prior["1|lect"].values.reshape(-1, 24)
    assert abs(np.corrcoef(icpt, dept[:, 0])[0, 1]) < 0.05  # would be ~1 if b0 leaked into the effect
    assert abs(np.corrcoef(dept[:, 0], lect[:, 0])[0, 1]) < 0.05  # lecturers are deviations from their department
    sd_d = prior["1|dept_sigma"].values.ravel()
    assert np.mean(dept[:, 0] / sd_d) == pytest.approx(0, abs=0.05)
    assert np.std(dept[:, 0] / sd_d) == pytest.approx(1, abs=0.05)
    assert np.std(lect[:, 3] / prior["1|lect_sigma"].values.ravel()) == pytest.approx(1, abs=0.05)
    assert np.mean(icpt) == pytest.approx(3, abs=0.1)


def test_plain_group_intercepts_are_gathered_without_a_design_column(tiny_df):
    b = build_model(design(tiny_df, "y ~ x + (1|g) + (0 + x|g)"), get_family("gaussian"))
    names = set(b.data_vars)
    assert "_idx0" in names and "_idx1" in names
    assert "_Z0" not in names and "_Z1" in names  # (1|g): a gather; (0 + x|g): needs x


def test_formula_without_population_terms(tiny_df):
    d = design(tiny_df, "y ~ 0 + (1|g)")
    assert d.X.shape == (36, 0) and d.x_labels == [] and len(d.groups) == 1
    b = build_model(d, get_family("gaussian"))
    assert b.params.population == [] and b.parameterization["1|g"].kind != "zerosum"
