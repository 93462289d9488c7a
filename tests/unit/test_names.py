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
