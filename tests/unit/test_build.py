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
