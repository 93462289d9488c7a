"""The report and its figures, on run directories built from synthetic draws (no sampling).

A fake run is a real run directory (``prepare`` builds the model, ``summarize`` and
``diagnostics.check`` write summary.csv and the findings, ``_write_runinfo`` writes run.json),
except that the posterior is drawn with numpy around a least-squares fit, so the numbers are
known and nothing is sampled.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from hlm_cli.errors import InputError

CHAINS, DRAWS = 2, 100


def _png(path: Path) -> None:
    """A small valid PNG standing in for the slow arviz figures (trace, rank, ppc)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(2, 1))
    fig.text(0.5, 0.5, path.stem)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=40)
    plt.close(fig)


def make_run(root: Path, frame: pd.DataFrame, formula: str, *, family: str = "gaussian", ident: bool = False,
             seed: int = 0) -> Path:
    """Write a complete run directory with synthetic posterior draws; return its path."""
    import xarray as xr

    from hlm_cli import diagnostics
    from hlm_cli.model.linpred import linear_predictor, response_draws
    from hlm_cli.model.run import RunContext
    from hlm_cli.outputs import summary as summary_mod
    from hlm_cli.spec import FitSpec
    from hlm_cli.workflows.fit import _write_runinfo, prepare

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    csv = root / "data.csv"
    frame.to_csv(csv, index=False)
    run = root / "run"
    run.mkdir()
    spec = FitSpec.model_validate({"data": str(csv), "formula": formula, "out": str(run), "family": family,
                                   # a trade-off is only possible (and checked) for non-zero-sum effects
                                   "sampler": {"draws": DRAWS, "chains": CHAINS, "seed": 1,
                                               "parameterization": "noncentered" if ident else "auto"}})
    prep = prepare(spec)
    built, design = prep.built, prep.built.design
    S = CHAINS * DRAWS
    model = built.model
    y = np.asarray(design.y, dtype=float)
    target = np.log(y + 0.5) if built.family.link == "log" else y
    beta, *_ = np.linalg.lstsq(design.X, target, rcond=None) if design.X.shape[1] else (np.zeros(0),)
    resid = target - design.X @ beta if design.X.shape[1] else target.copy()
    post: dict[str, tuple[tuple[str, ...], np.ndarray]] = {}

    def put(name: str, draws: np.ndarray) -> None:
        dims = tuple(model.named_vars_to_dims.get(name, ()))
        post[name] = (("chain", "draw", *dims), draws.reshape(CHAINS, DRAWS, *draws.shape[1:]))

    shift = rng.normal(0, 1.0, S) if ident else np.zeros(S)  # Intercept + shift, effects - shift
    for term, sl in design.fixed_slices.items():
        b = beta[sl]
        draws = b[None, :] + rng.normal(0, 0.05, (S, len(b)))
        if term == "Intercept":
            draws = draws + shift[:, None]
        put(term, draws[:, 0] if len(b) == 1 and term in model.named_vars and not model.named_vars_to_dims.get(term) else draws)
    for g in design.groups:
        means = np.array([resid[g.index == j].mean() for j in range(len(g.levels))])
        for k, eff in enumerate(g.effect_names):
            centre = means if k == 0 else np.zeros(len(g.levels))
            draws = centre[None, :] + rng.normal(0, 0.05, (S, len(g.levels)))
            if k == 0:
                draws = draws - shift[:, None]
            put(eff, draws)
            put(f"{eff}_sigma", np.abs(rng.normal(max(means.std(), 0.1), 0.05, S)))
    for names in built.params.correlations.values():
        for c in names:
            put(c, rng.uniform(-0.3, 0.3, S))
    for a in built.params.family:
        put(a, np.abs(rng.normal(max(resid.std(), 0.1) if a == "sigma" else 5.0, 0.02, S)))
    posterior = xr.Dataset({k: v for k, v in post.items()},
                           coords={d: list(model.coords[d]) for _, (dims, _) in post.items() for d in dims if d in model.coords})
    tree = xr.DataTree.from_dict({"posterior": posterior})
    ctx = RunContext(run, {"config": spec.model_dump(mode="json")}, tree, prep)
    eta = linear_predictor(ctx)
    yrep = response_draws(ctx, eta, trials=design.trials, se=design.se, seed=seed)
    obs = {"__obs__": np.arange(design.n)}
    resp = built.response_name
    tree = xr.DataTree.from_dict({
        "posterior": posterior,
        "posterior_predictive": xr.Dataset({resp: (("chain", "draw", "__obs__"), yrep.reshape(CHAINS, DRAWS, -1))}, coords=obs),
        "observed_data": xr.Dataset({resp: (("__obs__",), y)}, coords=obs),
        "sample_stats": xr.Dataset({"diverging": (("chain", "draw"), np.zeros((CHAINS, DRAWS), bool)),
                                    "energy": (("chain", "draw"), rng.normal(size=(CHAINS, DRAWS)))}),
    })
    summ = summary_mod.summarize(tree, built.params)
    findings = diagnostics.check(tree, summ[summ["kind"] != "group_effect"], built)
    tree.to_netcdf(run / "posterior.nc", engine="h5netcdf")
    summary_mod.write(summ, run / "summary.csv")
    plots = {}
    for name in ("trace", "rank", "ppc"):
        _png(run / "plots" / f"{name}.png")
        plots[name] = f"plots/{name}.png"
    _write_runinfo(run / "run.json", spec, prep, SimpleNamespace(seed=1, compile_cached=False, compile_mode="compiled"), findings, plots, {"total": 1.0})
    return run


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory):
    """y ~ x * cond + (1|g): numeric x factor interaction, one grouping factor, forced
    intercept/group-mean trade-off (an identifiability finding)."""
    from hlm_cli.workflows.report import run_report as write_report

    rng = np.random.default_rng(3)
    g = np.repeat([f"g{i}" for i in range(6)], 8)
    cond = np.tile(["a", "b"], 24)
    x = rng.normal(size=48)
    u = rng.normal(0, 1.0, 6)[np.repeat(np.arange(6), 8)]
    y = 1.0 + 0.5 * x + 0.8 * (cond == "b") + 0.4 * x * (cond == "b") + u + rng.normal(0, 0.3, 48)
    run = make_run(tmp_path_factory.mktemp("mixed"), pd.DataFrame({"y": y, "x": x, "cond": cond, "g": g}),
                   "y ~ x * cond + (1|g)", ident=True)
    return run, write_report(run, color_by="cond")


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    """count ~ x with the Poisson family: no group terms and a discrete response."""
    from hlm_cli.workflows.report import run_report as write_report

    rng = np.random.default_rng(4)
    x = rng.normal(size=40)
    count = rng.poisson(np.exp(0.7 + 0.4 * x))
    run = make_run(tmp_path_factory.mktemp("plain"), pd.DataFrame({"count": count, "x": x}), "count ~ x", family="poisson")
    return run, write_report(run)


def _plots(run: Path) -> set[str]:
    return {p.name for p in (run / "plots").glob("*.png")}


# ----------------------------------------------------------------------------- statistics


def test_group_means_match_pandas():
    from hlm_cli.outputs.figures import group_means

    rng = np.random.default_rng(0)
    index = rng.integers(0, 5, 200)
    values = rng.normal(size=(3, 200))
    got = group_means(values, index, 5)
    want = np.stack([pd.Series(v).groupby(index).mean().to_numpy() for v in values])
    np.testing.assert_allclose(got, want)
    w = rng.uniform(1, 3, 200)
    np.testing.assert_allclose(group_means(values[0], index, 5, w),
                               pd.DataFrame({"v": values[0] * w, "w": w, "i": index}).groupby("i").sum().eval("v / w").to_numpy())


def test_shrinkage_intercept_only_is_seed_001():
    """No pooling = each group's sample mean; partial pooling = Intercept + group effect."""
    from hlm_cli.outputs.figures import shrinkage_data

    rng = np.random.default_rng(1)
    index = np.repeat(np.arange(4), [2, 5, 9, 20])
    y = rng.normal(size=len(index)) + index
    S = 300
    intercept = rng.normal(1.5, 0.2, S)
    b = rng.normal([-1.0, -0.4, 0.5, 1.2], 0.1, (S, 4))
    mu = intercept[:, None] + b[:, index]
    mu_pop = np.repeat(intercept[:, None], len(index), axis=1)
    sh = shrinkage_data("g", index, ["a", "b", "c", "d"], y, mu, mu_pop)
    t = sh.table
    np.testing.assert_allclose(t["observed"], pd.Series(y).groupby(index).mean())
    np.testing.assert_allclose(t["estimate"], (intercept[:, None] + b).mean(axis=0))
    np.testing.assert_array_equal(t["n"], [2, 5, 9, 20])
    assert sh.grand_mean == pytest.approx(intercept.mean())
    assert (t["lo"] < t["estimate"]).all() and (t["estimate"] < t["hi"]).all()


def test_conditional_effect_of_x_is_the_population_line(mixed_run):
    """x on a grid, cond at its reference level 'a', group effects at 0: Intercept + x * b_x."""
    import dataclasses

    from hlm_cli.model.linpred import stacked
    from hlm_cli.outputs import figures as F
    from hlm_cli.workflows.runs import load_run

    run, _ = mixed_run
    ctx = load_run(run)
    effects = {e.name: e for e in F.conditional_effects(dataclasses.replace(ctx, tree=ctx.tree))}
    assert list(effects) == ["x", "cond", "x:cond"]
    ex = effects["x"]
    assert ex.x_kind == "numeric" and ex.held == {"cond": "a"}
    grid = ex.frame["x"].to_numpy()
    want = (stacked(ctx.tree, "Intercept")[:, None] + stacked(ctx.tree, "x")[:, None] * grid[None, :]).mean(axis=0)
    np.testing.assert_allclose(ex.frame["mean"], want, rtol=1e-6, atol=1e-9)
    assert grid.min() == pytest.approx(ctx.prepared.table.frame["x"].min())
    inter = effects["x:cond"].frame
    assert set(inter["by"]) == {"a", "b"}
    ec = effects["cond"]
    assert ec.x_kind == "factor" and list(ec.frame["x"]) == ["a", "b"]
    assert ec.held["x"] == pytest.approx(ctx.prepared.table.frame["x"].mean())


def test_binary_numeric_predictor_is_shown_as_two_levels():
    from hlm_cli.outputs.figures import shown_as_levels

    assert shown_as_levels(pd.Series([0, 1, 1, 0]), "numeric")
    assert not shown_as_levels(pd.Series([0, 3, 10, 3]), "numeric")
    assert shown_as_levels(pd.Series(["a", "b", "c"]), "factor")


# ----------------------------------------------------------------------------- numbers = summary.csv


def _summary(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "summary.csv").set_index("parameter")


def _printed(summary: pd.DataFrame) -> dict[str, str]:
    """What posteriors.png must print for each top-level parameter, from summary.csv."""
    rows = summary[summary["kind"].isin(["population", "group_sd", "family"])]
    return {name: f"mean {r['mean']:.3g}, 94% HDI [{r['hdi94_lb']:.3g}, {r['hdi94_ub']:.3g}]" for name, r in rows.iterrows()}


def test_posteriors_print_the_numbers_of_summary_csv(mixed_run, tmp_path):
    """hlm fit draws before summary.csv exists: shapes from thinned draws, numbers from all
    draws with summary's own call; the SVG's text is what the PNG prints."""
    from hlm_cli.outputs import figures as F
    from hlm_cli.workflows.runs import load_run

    run, _ = mixed_run
    ctx = load_run(run)
    params = ctx.built.params
    summary = _summary(run)
    want = _printed(summary)
    assert len(want) >= 5  # Intercept, x, cond[b], x:cond[b], sd(1|g), sigma
    top = [v for _, vs in F.effects.top_names(params) for v in vs]
    numbers = F.estimates(ctx.tree, top)
    np.testing.assert_allclose(numbers.loc[list(want), ["mean", "hdi94_lb", "hdi94_ub"]],
                               summary.loc[list(want), ["mean", "hdi94_lb", "hdi94_ub"]], rtol=1e-5)
    small = F.thin(ctx.tree, max_draws=40)
    svg = F.posteriors(small, params, tmp_path / "posteriors.png", numbers=numbers, svg=True)[1].read_text()
    for name, text in want.items():
        assert text in svg, (name, text)
    # the thinned draws give other numbers: the figure would disagree if it used them
    thinned = F.estimates(small, top)
    assert not np.allclose(thinned.loc[list(want), "hdi94_lb"], summary.loc[list(want), "hdi94_lb"], rtol=1e-3)


def test_report_figures_print_summary_csv(mixed_run):
    """hlm report: posteriors.png takes its numbers from summary.csv itself."""
    from hlm_cli.workflows.report import run_report as write_report

    run, _ = mixed_run
    write_report(run, color_by="cond", svg=True)
    svg = (run / "plots" / "posteriors.svg").read_text()
    for name, text in _printed(_summary(run)).items():
        assert text in svg, (name, text)


def test_forest_draws_the_summary_estimates(mixed_run):
    """forest.png: each level's mean and 94% interval are summary.csv's mean and eti94."""
    from hlm_cli.outputs import figures as F
    from hlm_cli.workflows.runs import load_run

    run, _ = mixed_run
    ctx = load_run(run)
    params = ctx.built.params
    summary = _summary(run)
    numbers = F.estimates(ctx.tree, F.effects.group_effect_names(ctx.tree, params), ci_kind="eti")
    terms = F.forest_terms(F.thin(ctx.tree, max_draws=40), params, numbers)
    assert [t.effect for t in terms] == ["1|g"]
    t = terms[0].table
    assert len(t) == 6 and (np.diff(t["mean"]) >= 0).all()
    rows = summary.loc[[f"1|g[{lev}]" for lev in t["level"]]]
    np.testing.assert_allclose(t[["mean", "lo", "hi"]].to_numpy(), rows[["mean", "eti94_lb", "eti94_ub"]].to_numpy(), rtol=1e-5)
    assert ((t["lo"] <= t["lo50"]) & (t["hi50"] <= t["hi"])).all()


# ----------------------------------------------------------------------------- the report


def test_report_has_every_applicable_figure(mixed_run):
    run, page = mixed_run
    assert page == run / "report.html"
    names = _plots(run)
    for name in ("posteriors.png", "forest.png", "shrinkage_g.png", "pred_vs_obs.png", "conditional_x.png",
                 "conditional_cond.png", "conditional_x_x_cond.png", "identifiability.png", "pairs.png"):
        assert name in names, name
    assert "ppc_rootogram.png" not in names  # gaussian
    info = json.loads((run / "run.json").read_text())
    assert info["report"] == "report.html" and "report.html" in info["files"]
    assert info["plots"]["shrinkage_g"] == "plots/shrinkage_g.png"
    assert info["plots"]["pairs"] == "plots/pairs.png"
    assert 0 < info["timings"]["report"] < 60
    assert not any(str(v).startswith("failed") for v in info["plots"].values()), info["plots"]


def test_report_is_self_contained(mixed_run):
    run, page = mixed_run
    text = page.read_text()
    srcs = re.findall(r"<img [^>]*src=\"([^\"]+)\"", text)
    assert len(srcs) >= 10 and all(s.startswith("data:image/png;base64,") for s in srcs)
    for s in srcs:  # every embedded image decodes to a PNG
        assert base64.b64decode(s.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r"(src|href)=['\"](https?:)?//", text)
    assert "<script" not in text and "<link" not in text
    assert page.stat().st_size < 5_000_000


def test_report_sections_show_model_data_diagnostics_and_summary(mixed_run):
    run, page = mixed_run
    text = page.read_text()
    info = json.loads((run / "run.json").read_text())
    assert "y ~ x * cond + (1|g)" in text
    for name, prior in info["priors"].items():  # every prior actually used
        assert f"<code>{html.escape(name)}</code>" in text and html.escape(prior["text"]) in text
    ident = [f for f in info["diagnostics"]["findings"] if f["code"] == "identifiability"]
    assert ident, "the forced trade-off should be found"
    assert html.escape(ident[0]["message"]) in text and html.escape(ident[0]["remedy"]) in text
    for heading in ("Population-level effects", "Group-level effects: standard deviations", "Family-specific parameters"):
        assert heading in text
    assert "sd(Intercept|g)" in text
    assert "48 / 48 / 0" in text  # rows read / used / dropped
    assert text.count("<figcaption>") == len(re.findall(r"<img ", text))


def test_no_group_terms_means_no_shrinkage_forest_or_pairs(plain_run):
    run, page = plain_run
    names = _plots(run)
    assert not any(n.startswith("shrinkage_") for n in names)
    assert "forest.png" not in names and "pairs.png" not in names and "identifiability.png" not in names
    assert {"posteriors.png", "pred_vs_obs.png", "conditional_x.png", "ppc_rootogram.png"} <= names
    text = page.read_text()
    assert "Shrinkage" not in text and "No group-level terms" in text


def test_color_by_unknown_column_names_the_closest(mixed_run):
    from hlm_cli.outputs.report import check_color_by
    from hlm_cli.workflows.report import run_report as write_report

    run, _ = mixed_run
    with pytest.raises(InputError) as err:
        write_report(run, color_by="cnd")
    assert "'cnd'" in str(err.value) and "did you mean 'cond'" in err.value.hint
    check_color_by(["a", "cond"], "cond")  # a known column passes


def test_cli_report_rebuilds_and_refuses_bad_input(plain_run, tmp_path, capsys):
    from hlm_cli.cli.app import main

    run, page = plain_run
    before = page.stat().st_mtime_ns
    assert main(["report", str(run), "--svg"]) == 0
    assert page.stat().st_mtime_ns > before
    assert (run / "plots" / "pred_vs_obs.svg").exists() and (run / "plots" / "posteriors.svg").exists()
    capsys.readouterr()
    assert main(["report", str(run), "--color-by", "xx"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --color-by names column 'xx'") and "hint:" in err
    assert main(["report", str(tmp_path / "nope")]) == 1
    assert "is not an hlm run directory" in capsys.readouterr().err


# ----------------------------------------------------------------------------- batch


def test_batch_report_links_each_run_and_sorts(tmp_path):
    from hlm_cli.outputs.report import write_batch_report

    (tmp_path / "screen_01").mkdir()
    (tmp_path / "screen_01" / "report.html").write_text("<html></html>")
    (tmp_path / "screen_02").mkdir()
    status = pd.DataFrame({
        "input": ["data/screen_01.csv", "data/screen_02.csv", "data/broken.csv"],
        "model": ["m1", "m1", "m1"], "formula": ["y ~ 1 + (1|g)"] * 3,
        "run_dir": ["screen_01", "screen_02", "broken"],
        "status": ["ok", "diagnostics-warning", "failed"],
        "error": ["", "R-hat above 1.01", "column 'logfc' is not in broken.csv"],
        "hint": ["", "run longer", "did you mean 'logFC'?"], "findings": ["", "rhat", ""],
        "total_s": ["12.5", "3.25", "0.01"],
    })
    status.to_csv(tmp_path / "batch_status.csv", index=False)
    rows = []
    for rd, b0, sd in (("screen_01", -1.0, 0.5), ("screen_02", 0.25, 0.7)):
        rows += [{"input": rd, "run_dir": rd, "parameter": "Intercept", "kind": "population", "mean": b0, "hdi94_lb": b0 - 1, "hdi94_ub": b0 + 1},
                 {"input": rd, "run_dir": rd, "parameter": "1|g_sigma", "kind": "group_sd", "mean": sd, "hdi94_lb": 0.1, "hdi94_ub": 2},
                 {"input": rd, "run_dir": rd, "parameter": "1|g[a]", "kind": "group_effect", "mean": 9.0, "hdi94_lb": 8, "hdi94_ub": 10}]
    pd.DataFrame(rows).to_csv(tmp_path / "batch_summary.csv", index=False)
    page = write_batch_report(tmp_path)
    text = page.read_text()
    assert page == tmp_path / "batch_report.html"
    assert "href='screen_01/report.html'" in text and "screen_02/report.html" not in text  # only existing reports
    assert "title='Intercept'>Intercept</th>" in text and "title='1|g_sigma'>1|<wbr>g_<wbr>sigma</th>" in text and "1|g[a]" not in text
    assert "-1<span class='ci'>[-2, 0]</span>" in text and "data-v='0.25'" in text
    assert "column &#x27;logfc&#x27; is not in broken.csv (hint: did you mean &#x27;logFC&#x27;?)" in text
    assert "1 ok, 1 diagnostics-warning, 1 failed" in text
    assert "table.sortable" in text and ">model</th>" not in text  # one model: no model column
    assert not re.search(r"(src|href)=['\"](https?:)?//", text)


def test_batch_report_needs_a_status_file(tmp_path):
    from hlm_cli.outputs.report import write_batch_report

    with pytest.raises(InputError, match="batch_status.csv"):
        write_batch_report(tmp_path)


def test_effect_grid_holds_factors_at_the_chosen_reference_level():
    """--reference / relevel() choose the level other factors are held at (else the first)."""
    from hlm_cli.outputs.figures.effects import effect_grid

    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "geno": ["ko", "wt", "ko", "wt"], "g": ["a", "a", "b", "b"]})
    kinds = {"x": "numeric", "geno": "factor"}
    _, held = effect_grid("x", None, kinds, frame, ["x", "geno"], ["g"], n_grid=5)
    assert held["geno"] == "ko"  # no order given: the first sorted level
    _, held = effect_grid("x", None, kinds, frame, ["x", "geno"], ["g"], n_grid=5, orders={"geno": ["wt", "ko"]})
    assert held["geno"] == "wt"
    numeric = frame.assign(geno=[2, 1, 2, 1])  # codes: the order is matched as written
    _, held = effect_grid("x", None, kinds, numeric, ["x", "geno"], ["g"], n_grid=5, orders={"geno": ["2", "1"]})
    assert held["geno"] == 2


def test_sigma_formula_follows_reference(tmp_path):
    """--reference geno=wt codes the sigma formula's factor against wt too (sigma_geno[ko])."""
    from hlm_cli.spec import FitSpec
    from hlm_cli.workflows.fit import prepare

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"y": rng.normal(size=24), "geno": ["wt", "ko", "zz"] * 8, "g": [f"g{i % 4}" for i in range(24)]})
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    names = {}
    for ref in ({}, {"geno": "wt"}):
        spec = FitSpec(data=path, formula="y ~ geno + (1|g)", sigma_formula="~ geno", reference=ref, out=tmp_path / "o")
        design = prepare(spec).built.design
        names[bool(ref)] = (list(design.x_labels), list(design.sigma.labels))
    assert not any("wt" in n for n in names[True][0]) and any("ko" in n for n in names[True][0])
    assert not any("wt" in n for n in names[True][1]) and any("ko" in n for n in names[True][1])
    assert any("wt" in n for n in names[False][1])  # default: ko is the reference, wt a column
