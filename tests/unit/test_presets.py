"""--prior-preset brms|rstanarm: those packages' default priors, computed from the data."""

import numpy as np
import pandas as pd
import pytest

from hlm_cli.errors import HlmError, PriorError
from hlm_cli.formula import parse
from hlm_cli.formula.design import build_design
from hlm_cli.model.build import build_model, resolve_priors
from hlm_cli.model.families import get_family
from hlm_cli.model.priors import parse_priors, r_mad


def design(df, formula):
    return build_design(parse(formula, list(df.columns)), df)


def preset(df, formula, name, family="gaussian", user=None):
    priors, _ = resolve_priors(design(df, formula), get_family(family), parse_priors(user, preset=name))
    return priors


def test_r_mad_is_scaled_like_r():
    # R: mad(c(1, 2, 3, 4, 100)) == 1.4826
    assert r_mad(np.array([1, 2, 3, 4, 100.0])) == pytest.approx(1.4826)


def test_brms_eight_schools_matches_get_prior():
    # brms::get_prior(y | se(sigma) ~ 1 + (1|school), schools):
    #   Intercept student_t(3, 7.5, 11.1); sd student_t(3, 0, 11.1)
    df = pd.read_csv("sample_data/eight_schools.csv")
    p = preset(df, "y | se(sigma) ~ 1 + (1|school)", "brms")
    assert p["Intercept"].dist == "StudentT" and p["Intercept"].kwargs == {"nu": 3.0, "mu": 7.5, "sigma": 11.1}
    assert p["1|school_sigma"].dist == "HalfStudentT" and p["1|school_sigma"].kwargs == {"nu": 3.0, "sigma": 11.1}
    assert set(p) == {"Intercept", "1|school_sigma"}  # no sigma under se()
    assert all(v.source == "preset:brms" for v in p.values())


def test_brms_gaussian_flat_b_student_t_and_lkj(tiny_df):
    p = preset(tiny_df, "y ~ x + cond + (1 + x | g)", "brms")
    s = max(2.5, round(1.4826 * np.median(np.abs(tiny_df.y - np.median(tiny_df.y))), 1))
    assert p["x"].dist == "Flat" and p["cond[b]"].dist == "Flat"
    assert p["Intercept"].kwargs == pytest.approx({"nu": 3.0, "mu": round(float(np.median(tiny_df.y)), 1), "sigma": s})
    for name in ("1|g_sigma", "x|g_sigma", "sigma"):
        assert p[name].dist == "HalfStudentT" and p[name].kwargs == pytest.approx({"nu": 3.0, "sigma": s})
    assert p["cor(g)"].dist == "LKJ" and p["cor(g)"].kwargs == {"eta": 1.0}


def test_brms_scale_is_at_least_2_5_and_uses_the_link(tiny_df):
    big = tiny_df.assign(y=tiny_df.y * 100)
    s_big = round(1.4826 * np.median(np.abs(big.y - np.median(big.y))), 1)
    assert s_big > 2.5 and preset(big, "y ~ x", "brms")["sigma"].kwargs["sigma"] == pytest.approx(s_big)
    # logit: location 0, scale 2.5 whatever y is
    b = preset(tiny_df, "flag ~ x + (1|g)", "brms", family="bernoulli")
    assert b["Intercept"].kwargs == {"nu": 3.0, "mu": 0.0, "sigma": 2.5}
    assert b["1|g_sigma"].kwargs == {"nu": 3.0, "sigma": 2.5}
    # log link: zeros become 0.1 before the log (brms: ifelse(y == 0, y + 0.1, y))
    ylog = np.log(np.where(tiny_df["count"] == 0, 0.1, tiny_df["count"]))
    pc = preset(tiny_df, "count ~ x", "brms", family="poisson")
    assert pc["Intercept"].kwargs["mu"] == pytest.approx(round(float(np.median(ylog)), 1))
    assert pc["Intercept"].kwargs["sigma"] == pytest.approx(max(2.5, round(r_mad(ylog), 1)))


def test_rstanarm_autoscaled_normals(tiny_df):
    p = preset(tiny_df, "y ~ x + (1|g)", "rstanarm")
    sd_y, sd_x = np.std(tiny_df.y, ddof=1), np.std(tiny_df.x, ddof=1)
    assert p["x"].dist == "Normal" and p["x"].kwargs == pytest.approx({"mu": 0.0, "sigma": 2.5 * sd_y / sd_x})
    assert p["Intercept"].kwargs == pytest.approx({"mu": np.mean(tiny_df.y), "sigma": 2.5 * sd_y})
    assert p["sigma"].dist == "Exponential" and p["sigma"].kwargs == pytest.approx({"lam": 1 / sd_y})
    assert p["1|g_sigma"].dist == "Exponential"
    pb = preset(tiny_df, "flag ~ x + (1|g)", "rstanarm", family="bernoulli")
    assert pb["x"].kwargs == pytest.approx({"mu": 0.0, "sigma": 2.5 / sd_x})
    assert pb["Intercept"].kwargs == pytest.approx({"mu": 0.0, "sigma": 2.5})
    assert pb["1|g_sigma"].kwargs == pytest.approx({"lam": 1.0})


def test_user_prior_overrides_the_preset(tiny_df):
    p = preset(tiny_df, "y ~ x + (1|g)", "brms", user=["x=Normal(0, 3)", "sd=HalfNormal(2)"])
    assert p["x"].dist == "Normal" and p["x"].source == "user"
    assert p["1|g_sigma"].dist == "HalfNormal"
    assert p["Intercept"].dist == "StudentT"  # the rest stays the preset's


def test_default_preset_is_hlm(tiny_df):
    assert preset(tiny_df, "y ~ x", "hlm") == preset(tiny_df, "y ~ x", None)
    assert preset(tiny_df, "y ~ x", None)["x"].dist == "Normal"


def test_unknown_preset_is_refused():
    with pytest.raises(PriorError, match="unknown --prior-preset 'stan'") as err:
        parse_priors([], preset="stan")
    assert "brms" in err.value.hint


def test_spec_and_cli_take_the_preset(tmp_path, tiny_csv):
    from hlm_cli.spec import load_fit_spec

    spec = load_fit_spec(None, data=tiny_csv, formula="y ~ x", out=tmp_path / "r", prior_preset="brms")
    assert spec.prior_preset == "brms" and spec.model_dump(mode="json")["prior_preset"] == "brms"
    cfg = tmp_path / "c.toml"
    cfg.write_text('formula = "y ~ x"\nprior-preset = "rstanarm"\n')
    assert load_fit_spec(cfg, data=tiny_csv, out=tmp_path / "r").prior_preset == "rstanarm"
    cfg.write_text('formula = "y ~ x"\nprior_preset = "stan"\n')
    with pytest.raises(HlmError, match="prior_preset"):
        load_fit_spec(cfg, data=tiny_csv, out=tmp_path / "r")


def test_cli_refuses_an_unknown_preset(tmp_path, tiny_csv):
    from hlm_cli.cli.app import main

    code = main(["fit", str(tiny_csv), "--formula", "y ~ x", "--out", str(tmp_path / "r"), "--prior-preset", "stan"])
    assert code in (1, 2) and not (tmp_path / "r").exists()


def test_brms_preset_builds(tiny_df):
    built = build_model(design(tiny_df, "y ~ x + cond + (1 + x | g)"), get_family("gaussian"), parse_priors({}, preset="brms"))
    names = {v.name for v in built.model.free_RVs}
    assert "x" in names and built.priors["x"].dist == "Flat"
    assert built.priors["Intercept"].dist == "StudentT"
    assert np.isfinite(built.model.compile_logp()(built.model.initial_point()))
