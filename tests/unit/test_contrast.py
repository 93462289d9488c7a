"""hlm contrast and hlm predict on synthetic runs: a real model build, hand-made draws, no sampling.

Each run directory here holds what ``hlm fit`` would write for the parts these commands
read (run.json's config, data hash and parameters; posterior.nc), with posterior draws chosen
by the test, so every expected number can be computed by hand from the same draws.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hlm_cli.errors import ConfigError, HlmError, InputError
from tests.helpers import write_run

S = 200  # draws in a synthetic posterior


def _frame(seed: int = 1) -> pd.DataFrame:
    """36 rows: 6 groups x 2 conditions x 3 replicates, a numeric x and a 0/1 dose."""
    rng = np.random.default_rng(seed)
    g = np.repeat([f"g{i}" for i in range(6)], 6)
    cond = np.tile(np.repeat(["a", "b"], 3), 6)
    x = rng.normal(size=36)
    y = 1.0 + 0.5 * x + 0.7 * (cond == "b") + rng.normal(0, 0.8, 6)[np.repeat(np.arange(6), 6)] + rng.normal(0, 0.3, 36)
    flag = (y > 1.3).astype(int)
    return pd.DataFrame({"y": y, "x": x, "cond": cond, "dose": (cond == "b").astype(int), "g": g, "flag": flag})


def make_run(root: Path, name: str, formula: str, *, family: str = "gaussian", loc: dict | None = None, sigma_per_row: bool = False, seed: int = 0):
    """Write a run directory with hand-made draws; return (run_dir, RunContext)."""
    import xarray as xr

    from hlm_cli.spec import FitSpec
    from hlm_cli.workflows.fit import prepare
    from hlm_cli.workflows.runs import RunContext, open_tree

    run = root / name
    run.mkdir()
    csv = root / f"{name}.csv"
    _frame().to_csv(csv, index=False)
    spec = FitSpec(data=csv, formula=formula, out=run, family=family)
    prep = prepare(spec)
    built = prep.built
    rng = np.random.default_rng(seed)
    loc = loc or {}
    design = built.design
    data_vars, coords = {}, {}
    for term, sl in design.fixed_slices.items():
        k = sl.stop - sl.start
        if k == 1:
            data_vars[term] = (("chain", "draw"), rng.normal(loc.get(term, 0.5), 0.1, (1, S)))
        else:
            dim = f"{term}_dim"
            coords[dim] = [lab[len(term):].strip("[]") for lab in design.x_labels[sl]]
            data_vars[term] = (("chain", "draw", dim), rng.normal(loc.get(term, 0.5), 0.1, (1, S, k)))
    for g in design.groups:
        coords[g.factor] = g.levels
        for eff in g.effect_names:
            # each level's effect known to +-0.2, as after a fit; levels spread with sd 1
            centre = rng.normal(0, 1.0, len(g.levels))
            data_vars[eff] = (("chain", "draw", g.factor), rng.normal(centre, 0.2, (1, S, len(g.levels))))
            data_vars[f"{eff}_sigma"] = (("chain", "draw"), np.abs(rng.normal(1.0, 0.1, (1, S))))
    for a in built.params.family:
        if a == "sigma" and sigma_per_row:
            coords["__obs__"] = np.arange(design.n)
            data_vars[a] = (("chain", "draw", "__obs__"), np.abs(rng.normal(1.0, 0.3, (1, S, design.n))) + 0.2)
        else:
            data_vars[a] = (("chain", "draw"), np.abs(rng.normal(loc.get(a, 1.0), 0.1, (1, S))))
    post = xr.Dataset(data_vars, coords={"chain": [0], "draw": np.arange(S), **coords})
    info = {"config": spec.model_dump(mode="json"), "formula": formula, "family": {"name": built.family.name, "link": built.family.link},
            "data": {"file": str(csv.resolve()), "sha256": prep.table.sha256}, "parameters": built.params.to_json()}
    write_run(run, {"posterior": post}, info)
    return run, RunContext(run, json.loads((run / "run.json").read_text()), open_tree(run), prep)


def _draws(ctx, name):
    from hlm_cli.model.linpred import stacked

    return stacked(ctx.tree, name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic_runs")
    return {
        "slopes": make_run(root, "slopes", "y ~ x + cond + (1 + cond | g)", loc={"cond": 0.7}),
        "bern": make_run(root, "bern", "flag ~ cond + x + (1 | g)", family="bernoulli", loc={"cond": 1.2}),
        "dose": make_run(root, "dose", "y ~ dose * x + (1 | g)", sigma_per_row=True),
    }


# --------------------------------------------------------------------------------------------
# contrast draws against hand computations


def test_factor_contrast_overall_and_by_group_use_each_groups_slope(runs):
    from hlm_cli.workflows.contrast import contrast_draws, pairs_for

    _, ctx = runs["slopes"]
    kind, pairs = pairs_for(ctx, "cond", None)
    assert kind == "factor" and [p.label for p in pairs] == ["b - a"]
    items = {it["level"]: it for it in contrast_draws(ctx, "cond", pairs, by="g")}
    beta = _draws(ctx, "cond").reshape(S, -1)[:, 0]
    slope = _draws(ctx, "cond[b]|g")  # (S, 6): each group's deviation of the b - a effect
    frame = ctx.prepared.table.frame
    for j, lev in enumerate(ctx.built.design.groups[0].levels):
        np.testing.assert_allclose(items[lev]["link"], beta + slope[:, j], rtol=1e-9, atol=1e-9)
        assert items[lev]["n_rows"] == int((frame["g"] == lev).sum())
    # overall: the average over rows of beta + their group's slope (equal group sizes here)
    np.testing.assert_allclose(items["overall"]["link"], beta + slope.mean(axis=1), atol=1e-9)
    # identity link: the response-scale contrast is the same
    np.testing.assert_allclose(items["overall"]["response"], items["overall"]["link"], atol=1e-12)
    # gaussian: BEST effect size = difference / sigma
    np.testing.assert_allclose(items["overall"]["es"], items["overall"]["link"] / _draws(ctx, "sigma"), atol=1e-9)


def test_bernoulli_response_scale_is_the_average_probability_difference(runs):
    from hlm_cli.model.linpred import linear_predictor
    from hlm_cli.workflows.contrast import contrast_draws, pairs_for

    _, ctx = runs["bern"]
    _, pairs = pairs_for(ctx, "cond", ("b", "a"))  # a - b: the reverse direction
    (item,) = contrast_draws(ctx, "cond", pairs)
    assert item["contrast"] == "a - b"
    frame = ctx.prepared.table.frame.reset_index(drop=True)
    eta = linear_predictor(ctx)  # fitted rows as observed
    beta = _draws(ctx, "cond").reshape(S, -1)[:, 0]
    is_b = (frame["cond"] == "b").to_numpy()
    eta_a = eta - beta[:, None] * is_b  # every row set to a
    eta_b = eta_a + beta[:, None]
    expit = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    np.testing.assert_allclose(item["link"], -beta, atol=1e-9)
    np.testing.assert_allclose(item["response"], (expit(eta_a) - expit(eta_b)).mean(axis=1), atol=1e-9)
    assert item["es"] is None  # no effect size for bernoulli


def test_numeric_term_default_is_plus_one_and_interaction_counts(runs):
    from hlm_cli.workflows.contrast import SHIFT, contrast_draws, pairs_for

    _, ctx = runs["dose"]
    kind, pairs = pairs_for(ctx, "x", None)
    assert kind == "numeric" and pairs[0].hi == SHIFT
    (item,) = contrast_draws(ctx, "x", pairs)
    dose = ctx.prepared.table.frame["dose"].to_numpy()
    expected = _draws(ctx, "x") + _draws(ctx, "dose:x") * dose.mean()  # d eta / d x = b_x + b_dose:x * dose
    np.testing.assert_allclose(item["link"], expected, atol=1e-9)


def test_zero_one_column_compares_one_with_zero_and_es_uses_per_row_sigma(runs):
    from hlm_cli.workflows.contrast import contrast_draws, pairs_for

    _, ctx = runs["dose"]
    _, pairs = pairs_for(ctx, "dose", None)
    assert [(p.label, p.lo, p.hi) for p in pairs] == [("1 - 0", 0.0, 1.0)]
    (item,) = contrast_draws(ctx, "dose", pairs)
    x = ctx.prepared.table.frame["x"].to_numpy()
    per_row = _draws(ctx, "dose")[:, None] + _draws(ctx, "dose:x")[:, None] * x[None, :]  # (S, n)
    np.testing.assert_allclose(item["link"], per_row.mean(axis=1), atol=1e-9)
    sigma = _draws(ctx, "sigma")
    assert sigma.shape == (S, len(x))
    np.testing.assert_allclose(item["es"], (per_row / sigma).mean(axis=1), atol=1e-9)


def test_new_group_contrast_is_wider_than_the_overall_one(runs):
    from hlm_cli.workflows.contrast import contrast_draws, pairs_for

    _, ctx = runs["slopes"]
    _, pairs = pairs_for(ctx, "cond", None)
    items = {it["level"]: it for it in contrast_draws(ctx, "cond", pairs, new_group=True, seed=3)}
    assert set(items) == {"overall", "new group"}
    assert items["new group"]["link"].std() > 2 * items["overall"]["link"].std()


# --------------------------------------------------------------------------------------------
# summaries and option checks


def test_describe_probability_of_direction_and_rope():
    from hlm_cli.workflows.contrast import describe

    draws = np.concatenate([np.full(90, 1.0), np.full(10, -1.0)])
    d = describe(draws, 0.94, (-0.5, 0.5))
    assert d["pd"] == pytest.approx(0.9) and d["p_rope"] == 0.0 and d["mean"] == pytest.approx(0.8)
    d = describe(np.linspace(-1, 1, 201), 0.5, (-0.5, 0.5))
    assert d["p_rope"] == pytest.approx(101 / 201)
    assert d["upper"] - d["lower"] == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("text", ["0.1", "a,b", "0.2,0.1", "1,1", ",1"])
def test_bad_rope_is_a_config_error(text):
    from hlm_cli.workflows.contrast import parse_rope

    with pytest.raises(ConfigError, match="--rope"):
        parse_rope(text)


def test_contrast_refuses_unknown_levels_and_terms(runs):
    from hlm_cli.workflows.contrast import ContrastSpec, pairs_for, run_contrast

    run, ctx = runs["slopes"]
    with pytest.raises(InputError, match="names 'c', which is not a level of 'cond'") as err:
        pairs_for(ctx, "cond", ("a", "c"))
    assert "a, b" in err.value.hint
    with pytest.raises(InputError, match="needs two numbers"):
        pairs_for(runs["dose"][1], "x", ("low", "high"))
    with pytest.raises(InputError, match="--term 'cnd' is not a column") as err:
        run_contrast(ContrastSpec(run, "cnd", out=run.parent / "never.csv"))
    assert "did you mean 'cond'" in err.value.hint
    with pytest.raises(InputError, match="--term 'g' is not a predictor"):
        run_contrast(ContrastSpec(run, "g", out=run.parent / "never.csv"))
    with pytest.raises(ConfigError, match="between 0 and 1"):
        run_contrast(ContrastSpec(run, "cond", prob=1.5))
    assert not (run.parent / "never.csv").exists()


def test_run_contrast_writes_csv_and_png(runs):
    from hlm_cli.cli.app import main

    run, _ = runs["bern"]
    assert main(["contrast", str(run), "--term", "cond", "--by", "g", "--rope=-0.05,0.05", "--hdi", "0.9"]) == 0
    table = pd.read_csv(run / "contrast_cond.csv")
    assert list(table["level"].unique()) == ["overall"] + [f"g{i}" for i in range(6)]
    assert set(table["scale"]) == {"response", "link"}
    assert table["ci_prob"].eq(0.9).all() and table["p_rope"].between(0, 1).all()
    assert table["es_mean"].isna().all()  # bernoulli: no effect size
    # logit link: probabilities differ by less than the log-odds do
    resp = table[table["scale"] == "response"].reset_index()
    link = table[table["scale"] == "link"].reset_index()
    assert (resp["mean"].abs() < link["mean"].abs()).all()
    assert (run / "contrast_cond.png").stat().st_size > 1000


def test_effect_size_rope_refused_for_bernoulli(runs, capsys):
    from hlm_cli.cli.app import main

    run, _ = runs["bern"]
    assert main(["contrast", str(run), "--term", "cond", "--rope=-0.1,0.1", "--rope-on", "effect-size", "--no-plot"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: effect sizes are defined for the gaussian and t families") and "hint:" in err


def test_not_a_run_directory(tmp_path, capsys):
    from hlm_cli.cli.app import main

    assert main(["contrast", str(tmp_path), "--term", "x"]) == 1
    assert "is not an hlm run directory" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# predict (shares the synthetic runs)


def test_predict_unseen_group_gets_a_wider_interval(runs, tmp_path):
    from hlm_cli.workflows.predict import run_predict

    run, _ = runs["slopes"]
    new = pd.DataFrame({"x": [0.0, 0.0], "cond": ["a", "a"], "g": ["g1", "g_new"], "note": ["seen", "unseen"]})
    new.to_csv(tmp_path / "new.csv", index=False)
    res = run_predict(run, tmp_path / "new.csv", out=tmp_path / "pred.csv")
    out = pd.read_csv(tmp_path / "pred.csv")
    assert list(out.columns) == ["x", "cond", "g", "note", "mean", "sd", "lower", "upper"]
    width = out["upper"] - out["lower"]
    assert width[1] > 1.5 * width[0]
    assert res.new_levels == {"g": ["g_new"]}
    # a seen group: the mean is Intercept + its own effect (x = 0, cond = a)
    ctx = runs["slopes"][1]
    expected = _draws(ctx, "Intercept") + _draws(ctx, "1|g")[:, 1]
    assert out["mean"][0] == pytest.approx(expected.mean(), abs=1e-6)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ({"x": [0.1], "g": ["g1"]}, "has no column 'cond'"),
        ({"x": [0.1], "cond": ["z"], "g": ["g1"]}, "'cond' = 'z' on CSV line 2 is not a level"),
        ({"x": ["abc"], "cond": ["a"], "g": ["g1"]}, "'x' must be a number, but CSV line 2 has 'abc'"),
        ({"x": [0.1], "cond": ["a"], "g": ["g1"], "mean": [1]}, "already has a column 'mean'"),
    ],
)
def test_predict_refuses_rows_it_cannot_use(runs, tmp_path, rows, message):
    from hlm_cli.workflows.predict import run_predict

    run, _ = runs["slopes"]
    pd.DataFrame(rows).to_csv(tmp_path / "new.csv", index=False)
    with pytest.raises(HlmError, match=message):
        run_predict(run, tmp_path / "new.csv", out=tmp_path / "pred.csv")
    assert not (tmp_path / "pred.csv").exists()


def test_predict_response_kind_is_wider_than_mean(runs, tmp_path):
    from hlm_cli.workflows.predict import run_predict

    run, _ = runs["slopes"]
    pd.DataFrame({"x": [0.0], "cond": ["b"], "g": ["g2"]}).to_csv(tmp_path / "new.csv", index=False)
    mean = run_predict(run, tmp_path / "new.csv", out=tmp_path / "m.csv").table
    resp = run_predict(run, tmp_path / "new.csv", out=tmp_path / "r.csv", kind="response").table
    assert (resp["upper"] - resp["lower"])[0] > (mean["upper"] - mean["lower"])[0]
    with pytest.raises(ConfigError, match="--kind"):
        run_predict(run, tmp_path / "new.csv", kind="median")


def test_contrast_levels_follow_the_fitted_reference_order():
    """--reference / relevel() / C(levels=) set the reference: contrasts are taken against it."""
    from hlm_cli.workflows.contrast import fitted_order

    assert fitted_order(["ko", "het", "wt"], ["wt", "het", "ko"]) == ["wt", "het", "ko"]
    assert fitted_order(["a", "b", "c"], None) == ["a", "b", "c"]
    assert fitted_order([1, 2, 3], ["2", "1", "3"]) == [2, 1, 3]  # numbers made factors match by text
    assert fitted_order(["a", "b", "z"], ["b"]) == ["b", "a", "z"]  # unnamed levels keep their place
