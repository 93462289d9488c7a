"""hlm loo on real fits (tests/unit/test_loo.py covers the plumbing without sampling, on the
recorded run in tests/data, whose layout the one default test here checks against a fit of
today): reloo repairs a deliberately outlying point, the sleepstudy comparison matches brms,
grouped K-fold leaves out whole subjects (those are @slow)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hlm_cli.cli.app import main
from tests.conftest import DATA, FAST, SAMPLE


def _json(args, capsys) -> dict:
    code = main(args)
    cap = capsys.readouterr()
    assert code == 0, cap.err
    return json.loads(cap.out)


def _layout(run) -> dict:
    """What a reader of a run directory relies on: groups, variables and their dims, run.json's keys."""
    import xarray as xr

    tree = xr.open_datatree(run / "posterior.nc", engine="h5netcdf")
    info = json.loads((run / "run.json").read_text())
    return {
        "groups": {g: {v: tree[g][v].dims for v in tree[g].data_vars} for g in tree.children},
        "run.json": sorted(k for k in info if k not in ("plots", "report", "timings")),  # --no-plots: no figures or report
        "parameters": info["parameters"], "family": info["family"], "formula": info["formula"],
    }


def test_recorded_run_has_the_layout_a_fit_writes_now(fitted_run):
    """tests/unit reads tests/data/cell_lines_run instead of sampling: it must stay what
    `hlm fit` writes. If this fails, rerun tests/data/make_recorded_run.py and commit it."""
    recorded, fitted = _layout(DATA / "cell_lines_run"), _layout(fitted_run)
    assert recorded == fitted, "tests/data/cell_lines_run is stale: rerun tests/data/make_recorded_run.py"
    assert (DATA / "cell_lines.csv").read_bytes() == (SAMPLE / "cell_lines.csv").read_bytes()


@pytest.mark.slow  # a fit and 1-3 refits (each refit shape compiles once): 20-60 s
def test_reloo_refits_each_high_k_observation(tmp_path, tiny_df, capsys):
    """A point 6 residual SDs away gets Pareto k > good_k; reloo refits exactly those rows."""
    df = tiny_df.copy()
    df.loc[4, "y"] += 6.0
    data = tmp_path / "outlier.csv"
    df.to_csv(data, index=False)
    run = tmp_path / "run"
    assert main(["fit", str(data), "--formula", "y ~ x + (1|g)", "--out", str(run), "--no-plots", *FAST]) == 0
    capsys.readouterr()

    psis = _json(["loo", str(run), "--json", "--fix", "none"], capsys)["models"][0]
    kt = psis["pareto_k"]
    assert psis["estimate"]["method"] == "psis" and 4 in kt["bad_obs"]
    assert 1 <= kt["n_bad"] <= 10 and kt["good_k"] == pytest.approx(1 - 1 / np.log10(300))

    out = tmp_path / "loo"
    doc = _json(["loo", str(run), "--json", "--out", str(out)], capsys)  # --fix auto: reloo
    m = doc["models"][0]
    assert m["estimate"]["method"] == "reloo"
    assert m["estimate"]["n_refits"] == kt["n_bad"]  # one refit per flagged observation
    assert m["estimate"]["refit_obs"] == kt["bad_obs"]
    assert m["estimate"]["refit_csv_lines"][kt["bad_obs"].index(4)] == 6  # header is line 1
    # the exact held-out density of the outlier is far worse than PSIS's estimate of it
    pw = pd.read_csv(out / "pointwise.csv")
    assert pw.loc[pw["obs"] == 4, "refit"].item()
    assert m["elpd_loo"] < psis["elpd_loo"] - 5
    assert np.isfinite(m["elpd_loo_se"]) and m["looic"] == pytest.approx(-2 * m["elpd_loo"])


def _fit(data, formula, out, draws=1000, chains=4):
    args = ["fit", str(data), "--formula", formula, "--out", str(out), "--draws", str(draws), "--tune", "1000",
            "--chains", str(chains), "--seed", "1", "--quiet", "--no-plots"]
    assert main(args) == 0


@pytest.fixture(scope="module")
def sleepstudy_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sleep")
    corr, icpt = root / "slopes", root / "intercepts"
    _fit(SAMPLE / "sleepstudy.csv", "Reaction ~ Days + (Days|Subject)", corr)
    _fit(SAMPLE / "sleepstudy.csv", "Reaction ~ Days + (1|Subject)", icpt)
    return corr, icpt


@pytest.mark.slow
def test_sleepstudy_ranking_and_elpd(sleepstudy_runs, capsys):
    """(Days|Subject) beats (1|Subject); elpd_loo near brms's (-860.9 and -884.8, loo 2.5.1)."""
    corr, icpt = sleepstudy_runs
    doc = _json(["loo", str(icpt), str(corr), "--json"], capsys)
    assert [r["model"] for r in doc["comparison"]] == ["slopes", "intercepts"]
    m = {x["name"]: x for x in doc["models"]}
    assert m["slopes"]["elpd_loo"] == pytest.approx(-860.9, abs=4)
    assert m["intercepts"]["elpd_loo"] == pytest.approx(-884.8, abs=4)
    diff = doc["comparison"][1]
    assert diff["elpd_diff"] < -10 and diff["dse"] > 5
    assert doc["comparison"][0]["weight"] > 0.5


@pytest.mark.slow
def test_sleepstudy_grouped_kfold_leaves_out_whole_subjects(sleepstudy_runs, tmp_path, capsys):
    _, icpt = sleepstudy_runs
    out = tmp_path / "kfold"
    doc = _json(["loo", str(icpt), "--kfold", "3", "--group", "Subject", "--json", "--out", str(out)], capsys)
    m = doc["models"][0]
    assert m["criterion"] == "kfold" and m["estimate"]["method"] == "kfold"
    assert m["estimate"]["n_refits"] == 3 and m["estimate"]["group"] == "Subject"
    assert np.isfinite(m["elpd_kfold"]) and m["elpd_kfold_se"] > 0
    # leaving out whole subjects predicts worse than leaving out single days
    assert m["elpd_kfold"] < -884.8
    pw = pd.read_csv(out / "pointwise.csv")
    subjects = pd.read_csv(SAMPLE / "sleepstudy.csv")["Subject"].to_numpy()
    assert (pw.groupby(subjects)["fold"].nunique() == 1).all()
    assert set(pw["fold"]) == {1, 2, 3}


@pytest.mark.slow
def test_fit_with_two_formulas_compares_them(tmp_path, tiny_csv, capsys):
    """Issue 5: `hlm fit --formula A --formula B` fits both and writes the LOO comparison."""
    import pandas as pd

    from hlm_cli.cli.app import main

    out = tmp_path / "cmp"
    code = main(["fit", str(tiny_csv), "--formula", "y ~ x + cond + (1|g)", "--formula", "y ~ 1 + (1|g)", "--out", str(out),
                 "--draws", "200", "--tune", "200", "--chains", "2", "--quiet", "--no-plots"])
    assert code == 0
    for f in ("m1/summary.csv", "m2/summary.csv", "loo/loo.csv", "loo/compare.csv"):
        assert (out / f).exists(), f
    cmp = pd.read_csv(out / "loo" / "compare.csv")
    assert len(cmp) == 2 and cmp.iloc[0]["elpd_diff"] == 0
    # the model with the real predictors wins clearly on the simulated data
    assert str(cmp.iloc[0].iloc[1]).endswith("m1") or "m1" in cmp.iloc[0].astype(str).tolist()
