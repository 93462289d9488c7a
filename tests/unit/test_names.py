"""One name per parameter: the printed names (sd(Intercept|g), cor(Intercept,x|g)) work in
--prior and in hypotheses as aliases of the posterior's (1|g_sigma, cor(g))."""

import numpy as np
import pandas as pd
import pytest

from hlm_cli.errors import PriorError
from hlm_cli.formula import parse
from hlm_cli.formula.design import build_design
from hlm_cli.formula.hypothesis import HypothesisError
from hlm_cli.formula.hypothesis import parse as parse_hypothesis
from hlm_cli.formula.priors import sd_display_name, sd_variable_name
from hlm_cli.model.build import resolve_priors
from hlm_cli.model.families import get_family
from hlm_cli.model.priors import parse_priors


def priors_for(df, formula, texts):
    d = build_design(parse(formula, list(df.columns)), df)
    return resolve_priors(d, get_family("gaussian"), parse_priors(texts))


def test_display_names_round_trip():
    assert sd_display_name("1|Subject_sigma") == "sd(Intercept|Subject)"
    assert sd_display_name("Days|Subject_sigma") == "sd(Days|Subject)"
    assert sd_variable_name("sd(Intercept|Subject)") == "1|Subject_sigma"
    assert sd_variable_name("sd(Days | Subject)") == "Days|Subject_sigma"
    assert sd_variable_name("sd(Subject)") is None and sd_variable_name("sigma") is None


def test_prior_on_printed_sd_names(tiny_df):
    priors, used = priors_for(tiny_df, "y ~ x + (1 + x | g)", ["sd(Intercept|g)=HalfNormal(2)", "sd(x|g)=Exponential(3)"])
    assert priors["1|g_sigma"].dist == "HalfNormal" and priors["1|g_sigma"].kwargs == {"sigma": 2.0}
    assert priors["x|g_sigma"].dist == "Exponential" and priors["x|g_sigma"].kwargs == {"lam": 3.0}
    assert used == {"sd(Intercept|g)": "1|g_sigma", "sd(x|g)": "x|g_sigma"}


def test_prior_on_printed_sd_name_with_spaces(tiny_df):
    priors, _ = priors_for(tiny_df, "y ~ x + (1|g)", ["sd( Intercept | g )=HalfNormal(2)"])
    assert priors["1|g_sigma"].dist == "HalfNormal"


def test_prior_on_printed_correlation_name(tiny_df):
    priors, used = priors_for(tiny_df, "y ~ x + (1 + x | g)", ["cor(Intercept,x|g)=LKJ(3)"])
    assert priors["cor(g)"].kwargs == {"eta": 3.0} and used == {"cor(Intercept,x|g)": "cor(g)"}


def test_prior_on_one_correlation_of_a_larger_matrix_is_refused(tiny_df):
    df = tiny_df.assign(z=np.random.default_rng(0).normal(size=len(tiny_df)))
    with pytest.raises(PriorError, match="one correlation of a 3-column term") as err:
        priors_for(df, "y ~ x + (1 + x + z | g)", ["cor(Intercept,x|g)=LKJ(3)"])
    assert "cor(g)=LKJ(2)" in err.value.hint


def test_unknown_printed_name_is_refused_with_the_right_suggestion(tiny_df):
    with pytest.raises(PriorError, match="sd\\(Intercept\\|gg\\)") as err:
        priors_for(tiny_df, "y ~ x + (1|g)", ["sd(Intercept|gg)=HalfNormal(1)"])
    assert "sd(Intercept|g)" in err.value.hint


LABELS = ["Intercept", "Days", "1|mouse_sigma", "Days|mouse_sigma", "sigma", "cor(Intercept,Days|mouse)"]


def test_hypothesis_accepts_printed_sd_names():
    h = parse_hypothesis("sd(Intercept|mouse) > sigma", LABELS)
    assert h.labels == ["1|mouse_sigma", "sigma"]
    h = parse_hypothesis("sd(Days|mouse) / sd(Intercept|mouse) < 0.5", LABELS)
    assert h.labels == ["Days|mouse_sigma", "1|mouse_sigma"]
    assert parse_hypothesis("cor(Intercept,Days|mouse) > 0", LABELS).labels == ["cor(Intercept,Days|mouse)"]
    with pytest.raises(HypothesisError, match="not a parameter"):
        parse_hypothesis("sd(Intercept|mice) > sigma", LABELS)


def test_hypothesis_workflow_with_printed_name(tmp_path):
    import xarray as xr

    from hlm_cli.workflows.hypothesis import run_hypothesis
    from tests.helpers import write_run

    rng = np.random.default_rng(0)
    post = xr.Dataset({
        "1|mouse_sigma": (("chain", "draw"), np.abs(rng.normal(3, 0.3, (2, 500)))),
        "sigma": (("chain", "draw"), np.abs(rng.normal(7, 0.3, (2, 500)))),
    })
    params = {"population": [], "group_effects": {}, "group_sds": {"mouse": ["1|mouse_sigma"]}, "correlations": {}, "family": ["sigma"]}
    run = write_run(tmp_path / "run", {"posterior": post}, {"config": {}, "parameters": params})
    res = run_hypothesis(run, ["sd(Intercept|mouse) > sigma", "(1|mouse_sigma) > sigma"])
    t = pd.read_csv(run / "hypothesis.csv")
    assert t.loc[0, "post_prob"] == t.loc[1, "post_prob"] and t.loc[0, "post_prob"] < 0.01
    assert res.table.loc[0, "estimate"] == pytest.approx(float((post["1|mouse_sigma"] - post["sigma"]).mean()))


# --------------------------------------------------------------------------------------------
# reference levels (--reference COL=LEVEL) and the small-integer hint


from hlm_cli.errors import HlmError, InputError  # noqa: E402
from hlm_cli.formula.design import set_reference  # noqa: E402


@pytest.fixture
def geno():
    rng = np.random.default_rng(3)
    G = np.array(["het", "ko", "wt"] * 20)
    eff = {"het": 1.0, "ko": 3.0, "wt": 0.0}
    y = np.array([eff[v] for v in G]) + rng.normal(0, 0.01, 60)
    return pd.DataFrame({"y": y, "G": G, "g": np.repeat([f"m{i}" for i in range(10)], 6), "period": np.tile([1, 2, 3, 4, 1, 2], 10)})


def ols(d):
    return dict(zip(d.x_labels, np.linalg.lstsq(d.X, d.y, rcond=None)[0], strict=True))


def test_reference_level_changes_labels_and_coefficients(geno):
    f = parse("y ~ G + (1|g)", list(geno.columns))
    default = build_design(f, geno)
    assert default.x_labels == ["Intercept", "G[ko]", "G[wt]"]  # het, the first sorted level, is the reference
    d = build_design(f, geno, reference={"G": "wt"})
    assert d.x_labels == ["Intercept", "G[het]", "G[ko]"]
    b = ols(d)
    assert b["Intercept"] == pytest.approx(0.0, abs=0.02)  # wt's mean
    assert b["G[ko]"] == pytest.approx(3.0, abs=0.02) and b["G[het]"] == pytest.approx(1.0, abs=0.02)
    b0 = ols(default)
    assert b0["G[wt]"] == pytest.approx(-b["G[het]"], abs=1e-9)  # same model, other coordinates


def test_reference_makes_a_numeric_column_a_factor(geno):
    d = build_design(parse("y ~ period", list(geno.columns)), geno, reference={"period": "3"})
    assert d.x_labels == ["Intercept", "period[1]", "period[2]", "period[4]"]
    assert d.notes == []


def test_reference_errors(geno):
    with pytest.raises(InputError, match="'zz' is not a level of 'G'") as err:
        set_reference(geno, {"G": "zz"})
    assert "het, ko, wt" in err.value.hint
    with pytest.raises(InputError, match="no column 'GG'") as err:
        set_reference(geno, {"GG": "wt"})
    assert "G" in err.value.hint


def test_reference_in_spec(tmp_path, tiny_csv):
    from hlm_cli.spec import load_fit_spec

    spec = load_fit_spec(None, data=tiny_csv, formula="y ~ cond", out=tmp_path / "r", reference=["cond=b", "g=g2"])
    assert spec.reference == {"cond": "b", "g": "g2"}
    cfg = tmp_path / "c.toml"
    cfg.write_text('formula = "y ~ cond"\n[reference]\ncond = "b"\n')
    assert load_fit_spec(cfg, data=tiny_csv, out=tmp_path / "r").reference == {"cond": "b"}
    with pytest.raises(HlmError, match="COLUMN=LEVEL"):
        load_fit_spec(None, data=tiny_csv, formula="y ~ cond", out=tmp_path / "r", reference=["cond"])


def test_small_integer_column_as_a_number_gets_a_hint(geno):
    d = build_design(parse("y ~ G + period", list(geno.columns)), geno)
    assert d.notes == ["period has 4 distinct integer values and enters as a number (one slope); "
                       "if it is a factor, add --categorical period"]
    flag = geno.assign(ko=(geno.G == "ko").astype(int))
    d = build_design(parse("y ~ ko", list(flag.columns)), flag)
    assert len(d.notes) == 1 and d.notes[0].startswith("ko is coded 0/1") and "--categorical ko" in d.notes[0]
    cont = geno.assign(x=np.linspace(0, 1, 60))
    assert build_design(parse("y ~ x", list(cont.columns)), cont).notes == []
