"""hlm loo without sampling: folds, the Pareto k table, WAIC, the family log densities, the
different-data refusal and the comparison, on synthetic run directories (conjugate normal
posteriors written as posterior.nc + run.json)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hlm_cli.cli.app import main
from hlm_cli.errors import ConfigError, InputError
from hlm_cli.workflows import loo as loo_wf
from tests.helpers import write_run

# --------------------------------------------------------------------------------------------
# synthetic run directories
# --------------------------------------------------------------------------------------------


def make_run(path: Path, y: np.ndarray, *, mu_shift: float = 0.0, sigma: float = 1.0, sha: str = "a" * 64,
             seed: int = 0, chains: int = 2, draws: int = 500, formula: str = "y ~ 1") -> Path:
    """A run directory for y ~ Normal(mu, sigma) with known sigma and a flat prior on mu.

    The posterior of mu is Normal(mean(y) + mu_shift, sigma / sqrt(n)); ``mu_shift`` makes a
    deliberately worse model.
    """
    rng = np.random.default_rng(seed)
    n = y.size
    mu = rng.normal(y.mean() + mu_shift, sigma / np.sqrt(n), size=(chains, draws))
    ll = -0.5 * np.log(2 * np.pi * sigma**2) - 0.5 * ((y[None, None, :] - mu[..., None]) / sigma) ** 2
    groups = {
        "posterior": xr.Dataset({"Intercept": (("chain", "draw"), mu)}),
        "log_likelihood": xr.Dataset({"y": (("chain", "draw", "__obs__"), ll)}),
        "observed_data": xr.Dataset({"y": (("__obs__",), y)}),
    }
    data = str(path / "data.csv")  # not written: these runs cannot be refitted
    info = {"formula": formula, "response": "y", "data": {"file": data, "sha256": sha, "rows_used": n},
            "config": {"data": data, "formula": formula, "out": str(path)}}
    return write_run(path, groups, info)


@pytest.fixture
def y_obs():
    return np.random.default_rng(42).normal(2.0, 1.0, size=60)


@pytest.fixture
def two_runs(tmp_path, y_obs):
    good = make_run(tmp_path / "good", y_obs, seed=1)
    bad = make_run(tmp_path / "shifted", y_obs, mu_shift=-1.5, seed=2, formula="y ~ 0")
    return good, bad


# --------------------------------------------------------------------------------------------
# folds
# --------------------------------------------------------------------------------------------


def test_grouped_folds_leave_out_whole_groups():
    groups = np.repeat([f"s{i}" for i in range(18)], 10)  # sleepstudy: 18 subjects x 10 days
    folds = loo_wf.assign_folds(groups.size, 5, groups=groups, seed=3)
    assert set(folds) == {1, 2, 3, 4, 5}
    for g in np.unique(groups):  # every subject's rows are in exactly one fold
        assert len(set(folds[groups == g])) == 1
    per_fold = [len(set(groups[folds == f])) for f in range(1, 6)]
    assert max(per_fold) - min(per_fold) <= 1  # 18 subjects over 5 folds: 4 or 3 each
    assert np.array_equal(folds, loo_wf.assign_folds(groups.size, 5, groups=groups, seed=3))
    assert not np.array_equal(folds, loo_wf.assign_folds(groups.size, 5, groups=groups, seed=4))


def test_ungrouped_folds_are_balanced():
    folds = loo_wf.assign_folds(23, 4, seed=0)
    counts = np.bincount(folds)[1:]
    assert counts.sum() == 23 and counts.max() - counts.min() <= 1


def test_more_folds_than_groups_is_refused():
    with pytest.raises(ConfigError, match="number of groups"):
        loo_wf.assign_folds(6, 4, groups=["a", "a", "b", "b", "c", "c"])


# --------------------------------------------------------------------------------------------
# Pareto k table
# --------------------------------------------------------------------------------------------


def test_good_k_threshold_depends_on_draws():
    assert loo_wf.good_k_threshold(4000) == pytest.approx(0.7)
    assert loo_wf.good_k_threshold(300) == pytest.approx(1 - 1 / np.log10(300))
    assert loo_wf.good_k_threshold(300) < 0.6


def test_pareto_k_table_bands():
    k = np.array([0.1, 0.5, 0.55, 0.7, 0.71, 1.0, 1.2, -0.3])
    kt = loo_wf.pareto_k_table(k, 4000)
    assert kt.counts == {"good": 3, "ok": 2, "bad": 2, "very_bad": 1}
    assert kt.bad_obs == [4, 5, 6] and kt.n_bad == 3
    assert kt.max_k == pytest.approx(1.2)
    assert [b[1] for b in kt.bands] == ["(-Inf, 0.50]", "(0.50, 0.70]", "(0.70, 1]", "(1, Inf)"]
    small = loo_wf.pareto_k_table(k, 300)  # good_k = 0.60: 0.7 is now bad
    assert small.counts["bad"] == 3 and 3 in small.bad_obs


# --------------------------------------------------------------------------------------------
# held-out log-likelihood (the family densities themselves: tests/unit/test_likelihood.py)
# --------------------------------------------------------------------------------------------


def test_heldout_log_lik_reproduces_the_saved_log_likelihood(recorded_run):
    """Evaluated under the full-data posterior, the held-out machinery gives posterior.nc's values."""
    from hlm_cli import data as data_mod
    from hlm_cli.model.linpred import stacked
    from hlm_cli.workflows.runs import load_run

    ctx = load_run(recorded_run)
    raw = data_mod.read_csv(Path(ctx.info["data"]["file"]))
    obs = np.array([0, 7, 33, 89])
    rows = raw.frame.loc[ctx.prepared.table.frame.index[obs]]
    ours = loo_wf.heldout_log_lik(ctx, rows, obs)
    ll = ctx.tree["log_likelihood"][ctx.info["response"]]
    saved = np.asarray(ll.stack(s=("chain", "draw")).transpose("s", ...))[:, obs]
    assert ours.shape == saved.shape == (stacked(ctx.tree, "Intercept").shape[0], obs.size)
    np.testing.assert_allclose(ours, saved, rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------------------------
# WAIC, comparison, data checks
# --------------------------------------------------------------------------------------------


def test_waic_is_close_to_psis_loo_for_a_regular_model(tmp_path, y_obs):
    run = loo_wf._open_run(make_run(tmp_path / "r", y_obs, seed=5))
    w = loo_wf.waic(run)
    psis = loo_wf._psis(run)
    assert w.kind == "waic" and w.n_data_points == 60
    assert w.elpd == pytest.approx(psis.elpd, abs=0.3)
    assert w.p == pytest.approx(psis.p, abs=0.1)
    # the textbook formula, computed independently
    ll = np.asarray(run.loglik.stack(s=("chain", "draw")).transpose("s", ...))
    lppd = np.log(np.exp(ll).mean(axis=0))
    assert w.elpd == pytest.approx(np.sum(lppd - ll.var(axis=0, ddof=1)))


def test_compare_ranks_the_better_model_first(two_runs):
    good, bad = two_runs
    res = loo_wf.compare_runs([bad, good])
    assert res.best == "good"
    t = res.table
    assert list(t["rank"]) == [1, 2]
    assert t.loc["good", "elpd_diff"] == 0.0 and t.loc["shifted", "elpd_diff"] < -10
    assert t.loc["shifted", "dse"] > 0
    assert t["weight"].sum() == pytest.approx(1.0, abs=1e-6) and t.loc["good", "weight"] > 0.9
    m = {x.name: x for x in res.models}
    assert m["good"].method == "psis" and m["good"].ktable.n_bad == 0
    assert m["good"].ic == pytest.approx(-2 * m["good"].elpd)
    assert 0.2 < m["good"].p < 2  # one free parameter


def test_waic_criterion_compares_too(two_runs):
    res = loo_wf.compare_runs(list(two_runs), criterion="waic")
    assert res.best == "good" and all(m.method == "waic" and m.ktable is None for m in res.models)


def test_different_data_refused_unless_forced(tmp_path, y_obs):
    a = make_run(tmp_path / "a", y_obs)
    b = make_run(tmp_path / "b", y_obs, sha="b" * 64)
    with pytest.raises(InputError, match="different data"):
        loo_wf.compare_runs([a, b])
    res = loo_wf.compare_runs([a, b], force=True)
    assert any("different data" in n for n in res.notes)


def test_same_file_different_response_is_different_data(tmp_path, y_obs):
    a = make_run(tmp_path / "a", y_obs)
    b = make_run(tmp_path / "b", np.log(y_obs - y_obs.min() + 1))
    with pytest.raises(InputError, match="observed responses differ"):
        loo_wf.compare_runs([a, b])


def test_different_row_counts_refused_even_forced(tmp_path, y_obs):
    a = make_run(tmp_path / "a", y_obs)
    b = make_run(tmp_path / "b", y_obs[:50], sha="b" * 64)
    with pytest.raises(InputError, match="different numbers of observations"):
        loo_wf.compare_runs([a, b], force=True)


def test_different_data_cli_one_line_exit_1(tmp_path, y_obs, capsys):
    a = make_run(tmp_path / "a", y_obs)
    b = make_run(tmp_path / "b", y_obs, sha="b" * 64)
    assert main(["loo", str(a), str(b)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error: a and b were fit to different data (data.sha256 differs")
    assert err[1].startswith("hint:") and "--force" in err[1] and len(err) == 2


@pytest.mark.parametrize("args, fragment", [
    (["--criterion", "aic"], "--criterion must be one of"),
    (["--fix", "refit"], "--fix must be one of"),
    (["--group", "g"], "--group only applies to K-fold"),
    (["--kfold", "5", "--criterion", "waic"], "exclude each other"),
])
def test_bad_options(two_runs, args, fragment, capsys):
    assert main(["loo", *map(str, two_runs), *args]) == 1
    assert fragment in capsys.readouterr().err


def test_not_a_run_directory(tmp_path, capsys):
    assert main(["loo", str(tmp_path)]) == 1
    assert "is not an hlm run directory" in capsys.readouterr().err


def test_cli_json_and_out_files(two_runs, tmp_path, capsys):
    out = tmp_path / "loo"
    assert main(["loo", *map(str, two_runs), "--json", "--out", str(out)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in doc["comparison"]] == ["good", "shifted"]
    good = doc["models"][0]
    assert {"elpd_loo", "elpd_loo_se", "p_loo", "looic", "looic_se", "pareto_k"} <= set(good)
    assert good["estimate"]["method"] == "psis" and good["pareto_k"]["good_k"] == pytest.approx(1 - 1 / np.log10(1000))
    assert {p.name for p in out.iterdir()} == {"loo.csv", "compare.csv", "pointwise.csv", "loo.json", "pareto_k.png", "compare.png"}
    loo_csv = pd.read_csv(out / "loo.csv")
    assert loo_csv["elpd"].tolist() == pytest.approx([m["elpd_loo"] for m in doc["models"]])
    cmp = pd.read_csv(out / "compare.csv")
    assert cmp["model"].tolist() == ["good", "shifted"] and cmp["elpd_diff"].iloc[0] == 0
    assert len(pd.read_csv(out / "pointwise.csv")) == 120
    # rerunning into the same --out replaces our files; a directory with other files is refused
    assert main(["loo", *map(str, two_runs), "--json", "--out", str(out)]) == 0
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(["loo", *map(str, two_runs), "--out", str(out)]) == 1
    assert "holds other files" in capsys.readouterr().err


def test_cli_prints_k_table_and_comparison(two_runs, capsys):
    assert main(["loo", *map(str, two_runs)]) == 0
    out = capsys.readouterr().out
    for fragment in ("elpd_loo", "p_loo", "looic", "(-Inf, 0.50]", "(very bad)", "Model comparison", "elpd_diff", "weight"):
        assert fragment in out
    assert "good <= 0.50 < ok <= 0.67" in out  # S = 1000 draws: good_k = 1 - 1/3


def test_too_many_bad_k_recommends_kfold(tmp_path, y_obs, monkeypatch):
    """--fix auto with more than MAX_RELOO flagged observations refits nothing and says what to do."""
    run = make_run(tmp_path / "r", y_obs)
    monkeypatch.setattr(loo_wf, "MAX_RELOO", 0)
    real = loo_wf.pareto_k_table
    monkeypatch.setattr(loo_wf, "pareto_k_table", lambda k, s: real(np.where(np.arange(k.size) < 3, 0.9, k), s))
    res = loo_wf.compare_runs([run])
    m = res.models[0]
    assert m.method == "psis" and m.n_refits == 0 and m.ktable.n_bad == 3
    assert "--fix kfold" in m.recommendation
    none = loo_wf.compare_runs([run], fix="none").models[0]
    assert none.method == "psis" and "--fix reloo" in none.recommendation


# --------------------------------------------------------------------------------------------
# refit plumbing (reloo, K-fold) with the sampler replaced by the full-data posterior
# --------------------------------------------------------------------------------------------


@pytest.fixture
def fake_sampler(recorded_run, monkeypatch):
    """sampling.sample returns the run's own posterior, restricted to the refit's group levels.

    Exact LOO with the full-data posterior is the in-sample lpd_i, so the refit results are
    known; the calls record the rows each refit was given.
    """
    from hlm_cli import sampling
    from hlm_cli.workflows.runs import open_tree

    full = open_tree(recorded_run)
    calls = []

    def sample(built, spec, *, use_cache=True, on_progress=None):
        post = full["posterior"].to_dataset()
        for g in built.design.groups:
            post = post.sel({g.factor: list(g.levels)})
        calls.append(built)
        return sampling.Posterior(tree=xr.DataTree.from_dict({"posterior": post}), seed=spec.seed)

    monkeypatch.setattr(sampling, "sample", sample)
    return calls


def _lpd(run_dir: Path) -> np.ndarray:
    run = loo_wf._open_run(run_dir)
    return loo_wf._lpd_i(loo_wf._loglik_matrix(run))


def test_reloo_refits_each_flagged_observation(recorded_run, fake_sampler, monkeypatch):
    real = loo_wf._psis
    seen = {}

    def psis_with_bad_k(run):
        res = real(run)
        res.pareto_k[[3, 41]] = [0.9, 1.3]
        seen["k"] = np.asarray(res.pareto_k)
        return res

    monkeypatch.setattr(loo_wf, "_psis", psis_with_bad_k)
    m = loo_wf.compare_runs([recorded_run]).models[0]
    flagged = [int(i) for i in np.flatnonzero(seen["k"] > loo_wf.good_k_threshold(m.n_samples))]
    assert {3, 41} <= set(flagged) and len(flagged) <= loo_wf.MAX_RELOO
    assert m.method == "reloo" and m.n_refits == len(flagged) == len(fake_sampler)
    assert m.refit_obs == flagged and m.refit_lines == [f + 2 for f in flagged]
    n = m.n_obs
    assert [b.design.n for b in fake_sampler] == [n - 1] * len(flagged)  # each refit drops one row
    # the held-out density under the (full-data) refit posterior is the in-sample lpd
    np.testing.assert_allclose(m.elpd_i[flagged], _lpd(recorded_run)[flagged], rtol=1e-6)
    assert m.ktable.n_bad == len(flagged) and m.estimate == f"reloo ({len(flagged)} exact refits)"


def test_reloo_not_used_when_k_is_fine(recorded_run, fake_sampler):
    m = loo_wf.compare_runs([recorded_run], fix="reloo").models[0]
    if m.ktable.n_bad == 0:
        assert m.method == "psis" and m.n_refits == 0 and not fake_sampler
    else:
        assert m.n_refits == m.ktable.n_bad == len(fake_sampler)


def test_grouped_kfold_refits_without_whole_groups(recorded_run, fake_sampler):
    res = loo_wf.compare_runs([recorded_run], kfold=5, group="cell_line", seed=2)
    m = res.models[0]
    assert res.criterion == "kfold" and m.method == "kfold" and m.kfold == 5 and m.n_refits == 5 == len(fake_sampler)
    frame = pd.read_csv(Path(loo_wf._open_run(recorded_run).info["data"]["file"]))
    lines = frame["cell_line"].astype(str).to_numpy()
    for f in range(1, 6):  # fold f's refit saw none of fold f's cell lines
        held = set(lines[m.folds == f])
        refit = next(g for g in fake_sampler[f - 1].design.groups if g.factor == "cell_line")
        assert len(held) == 2 and held.isdisjoint(refit.levels) and len(refit.levels) == 8
    assert np.isfinite(m.elpd) and m.se > 0
    # leaving out whole cell lines predicts worse than the in-sample lpd
    assert m.elpd < _lpd(recorded_run).sum()
    assert m.estimate == "kfold (K = 5, grouped by cell_line)"


def test_kfold_group_must_be_a_column(recorded_run, fake_sampler):
    with pytest.raises(InputError, match="--group 'cell_lines' is not a column"):
        loo_wf.compare_runs([recorded_run], kfold=5, group="cell_lines")


def test_auto_keeps_psis_when_the_data_file_is_gone(tmp_path, y_obs, monkeypatch):
    """--fix auto cannot refit without the data: it warns and says how to fix it."""
    run = make_run(tmp_path / "r", y_obs)  # run.json points at a data.csv that does not exist
    real = loo_wf.pareto_k_table
    monkeypatch.setattr(loo_wf, "pareto_k_table", lambda k, s: real(np.where(np.arange(k.size) < 2, 0.9, k), s))
    m = loo_wf.compare_runs([run]).models[0]
    assert m.method == "psis" and "cannot be refitted" in m.warnings[0]
    with pytest.raises(InputError, match="no longer exists"):
        loo_wf.compare_runs([run], fix="reloo")
