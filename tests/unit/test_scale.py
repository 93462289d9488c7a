"""Large runs (hlm_cli.model.scale, docs/scale.md) without sampling: the recorded cell-line run
(tests/data/cell_lines_run) with its log-likelihood dropped stands for a run above the budget."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from hlm_cli.errors import ConfigError
from hlm_cli.model import likelihood, scale
from hlm_cli.model.linpred import eta_draws


@pytest.fixture
def ctx(recorded_run):
    from hlm_cli.workflows.runs import load_run

    return load_run(recorded_run)


def make_large(run_dir, ctx, seed: int = 1):
    """Rewrite a run directory as a large fit writes it: no log_likelihood, the thinned
    predictive of complete_large and run.json's storage record."""
    from hlm_cli.outputs import runinfo
    from hlm_cli.outputs.summary import write_posterior

    tree = ctx.tree.copy()
    for g in ("log_likelihood", "posterior_predictive"):
        if g in tree.children:
            del tree[g]
    scale.complete_large(ctx.built, tree, seed=seed)
    (run_dir / "posterior.nc").unlink()
    write_posterior(tree, run_dir / "posterior.nc")
    info = json.loads((run_dir / "run.json").read_text())
    info["storage"] = scale.storage_json(tree, ctx.built.design.n)
    info.pop("checksums", None)
    (run_dir / "run.json").write_text(json.dumps(info))
    info["checksums"] = runinfo.checksums(run_dir)
    (run_dir / "run.json").write_text(json.dumps(info))
    return tree


# -- the log-likelihood of some rows ---------------------------------------------------------


def test_rows_loglik_equals_full_pointwise(ctx):
    full = likelihood.pointwise(ctx.tree, ctx.built)
    rows = np.array([89, 0, 17, 17, 45])
    part = scale.rows_loglik(ctx.tree, ctx.built, rows, chunk_values=7 * len(rows))  # many draw chunks
    assert part.shape == (full.shape[0], len(rows))
    np.testing.assert_array_equal(part, full[:, rows])
    assert np.array_equal(np.asarray(ctx.tree["log_likelihood"]["logfc"]).reshape(full.shape)[:, rows], part)


def test_eta_rows_equals_eta_draws(ctx):
    rows = np.array([3, 60, 2])
    draws = slice(10, 50)
    np.testing.assert_allclose(scale.eta_rows(ctx.tree, ctx.built, rows, draws), eta_draws(ctx.tree, ctx.built, draws=draws)[:, rows],
                               rtol=0, atol=1e-12)


def test_lazy_loglik_reads_only_what_is_selected(ctx, monkeypatch):
    full = likelihood.pointwise(ctx.tree, ctx.built)
    C, D = ctx.tree["posterior"].sizes["chain"], ctx.tree["posterior"].sizes["draw"]
    ll = scale.lazy_loglik(ctx.tree, ctx.built, "logfc")
    assert ll.dims == ("chain", "draw", "__obs__") and ll.shape == (C, D, 90)
    asked = []
    real = scale.rows_loglik
    monkeypatch.setattr(scale, "rows_loglik", lambda t, b, rows, **kw: (asked.append(np.array(rows)), real(t, b, rows, **kw))[1])
    sub = ll.isel(__obs__=[7, 3]).values
    assert [sorted(r.tolist()) for r in asked] == [[3, 7]]  # only the selected rows are computed
    np.testing.assert_array_equal(sub.reshape(C * D, 2), full[:, [7, 3]])
    np.testing.assert_array_equal(ll.isel(chain=1, draw=5, __obs__=4).values, full[D + 5, 4])
    monkeypatch.setattr(scale, "MAX_VALUES_PER_REQUEST", 1000)
    with pytest.raises(MemoryError, match="refused"):
        ll.values  # noqa: B018 - the whole matrix at once


def test_point_loglik_is_the_density_at_the_posterior_mean(ctx):
    from scipy.stats import norm

    pt = scale.point_loglik(ctx.tree, ctx.built)
    post = ctx.tree["posterior"]
    eta = scale.eta_rows({"posterior": post.to_dataset().mean(("chain", "draw")).expand_dims(chain=[0], draw=[0])}, ctx.built, np.arange(90))[0]
    y = np.asarray(ctx.built.design.y, dtype=float)
    np.testing.assert_allclose(pt, norm.logpdf(y, eta, float(post["sigma"].mean())), rtol=1e-12)


def test_total_loglik_gives_the_same_sensitivity(ctx):
    from hlm_cli import diagnostics

    tree = ctx.tree.copy()
    stored = diagnostics.sensitivity(tree, ctx.built)
    del tree["log_likelihood"]
    tree["log_likelihood"] = scale.total_loglik_dataset(ctx.tree, ctx.built, rows_per_chunk=13)
    again = diagnostics.sensitivity(tree, ctx.built)
    assert len(stored) == 4
    np.testing.assert_allclose(again[["prior", "likelihood"]].to_numpy(float), stored[["prior", "likelihood"]].to_numpy(float), atol=2e-4)


# -- thresholds ------------------------------------------------------------------------------


def test_budget_threshold_and_env(monkeypatch):
    monkeypatch.delenv(scale.ENV_BUDGET, raising=False)
    assert scale.budget() == scale.DEFAULT_BUDGET
    assert not scale.is_large(73_421, 4_000)  # InstEval keeps its stored log-likelihood
    assert scale.is_large(1_024_000, 4_000)
    monkeypatch.setenv(scale.ENV_BUDGET, "1000")
    assert scale.is_large(90, 400) and not scale.is_large(2, 400)
    monkeypatch.setenv(scale.ENV_BUDGET, "lots")
    with pytest.raises(ConfigError, match="HLM_POINTWISE_BUDGET='lots'"):
        scale.budget()


def test_memory_rows_counts_no_loglik_for_a_large_run(monkeypatch):
    monkeypatch.delenv(scale.ENV_BUDGET, raising=False)
    assert scale.memory_rows(1000, 4000) == 1000
    big = scale.memory_rows(1_024_000, 4000)
    assert big < 2000  # the thinned predictive only: 200 draws x 50,000 rows over 2 x 4,000 draws
    from hlm_cli.spec import estimate_posterior_bytes

    assert estimate_posterior_bytes(4, 1000, 16_100, big) < 1e9


def test_loo_subsample_size_env(monkeypatch):
    monkeypatch.delenv(scale.ENV_LOO_SUBSAMPLE, raising=False)
    assert scale.loo_subsample_size() == scale.LOO_SUBSAMPLE
    monkeypatch.setenv(scale.ENV_LOO_SUBSAMPLE, "1")
    with pytest.raises(ConfigError, match=">= 2"):
        scale.loo_subsample_size()


# -- what a large run stores -----------------------------------------------------------------


def test_complete_large_stores_a_thinned_predictive(ctx, monkeypatch):
    monkeypatch.setenv("HLM_PPC_ROWS", "30")
    tree = ctx.tree.copy()
    del tree["log_likelihood"]
    del tree["posterior_predictive"]
    scale.complete_large(ctx.built, tree, seed=3)
    assert "log_likelihood" not in tree.children
    ppc = tree["posterior_predictive"]["logfc"]
    assert ppc.dtype == np.float32
    assert ppc.sizes["chain"] * ppc.sizes["draw"] <= scale.PPC_DRAWS and ppc.sizes["__obs__"] == 30
    rows = scale.ppc_rows(tree, 90)
    assert rows is not None and len(set(rows)) == 30 and np.all(np.diff(rows) > 0)
    # the stored draws are of the chosen rows: their mean tracks those rows' fitted means
    eta = eta_draws(ctx.tree, ctx.built).mean(axis=0)[rows]
    assert np.corrcoef(np.asarray(ppc).reshape(-1, 30).mean(axis=0), eta)[0, 1] > 0.99
    assert scale.ppc_rows(ctx.tree, 90) is None  # a normal run: every row
    info = scale.storage_json(tree, 90)
    assert info["large"] and info["posterior_predictive"]["rows"] == 30


def test_figures_read_the_stored_rows(ctx, monkeypatch, tmp_path):
    import importlib

    from hlm_cli.outputs.figures import _base

    ppc_mod = importlib.import_module("hlm_cli.outputs.figures.ppc")  # the package exports a function of that name

    monkeypatch.setenv("HLM_PPC_ROWS", "25")
    tree = ctx.tree.copy()
    del tree["log_likelihood"]
    del tree["posterior_predictive"]
    scale.complete_large(ctx.built, tree, seed=3)
    pred = ppc_mod.predictions(tree, "logfc")
    rows = scale.ppc_rows(tree, 90)
    np.testing.assert_array_equal(pred.observed, np.asarray(ctx.built.design.y, dtype=float)[rows])
    small = _base.thin(tree, max_draws=50)
    n_ppc = small["posterior_predictive"].sizes["chain"] * small["posterior_predictive"].sizes["draw"]
    assert 25 <= n_ppc <= 50  # thinned by its own draw count, not the posterior's
    assert ppc_mod.ppc(tree, tmp_path / "ppc.png")[0].exists()


# -- hlm loo on a large run ------------------------------------------------------------------


def test_loo_of_a_large_run_within_budget_equals_the_stored_one(ctx, recorded_run, tmp_path, monkeypatch):
    from hlm_cli.workflows import loo as loo_wf
    from tests.conftest import copy_recorded_run

    monkeypatch.delenv(scale.ENV_BUDGET, raising=False)
    stored = loo_wf.compare_runs([recorded_run], reuse=False, fix="none").models[0]
    big = copy_recorded_run(tmp_path / "big")
    make_large(big, ctx)
    assert "log_likelihood" not in xr.open_datatree(big / "posterior.nc").children
    lazy = loo_wf.compare_runs([big], reuse=False, fix="none").models[0]
    assert lazy.method == "psis" and lazy.subsample is None
    assert lazy.elpd == stored.elpd and lazy.se == stored.se and lazy.p == stored.p
    np.testing.assert_array_equal(lazy.pareto_k, stored.pareto_k)


def test_loo_of_a_large_run_above_budget_subsamples(ctx, recorded_run, tmp_path, monkeypatch):
    import arviz_stats as azs

    from hlm_cli.workflows import loo as loo_wf
    from tests.conftest import copy_recorded_run

    big = copy_recorded_run(tmp_path / "big")
    make_large(big, ctx)
    monkeypatch.setenv(scale.ENV_BUDGET, "1000")
    monkeypatch.setenv(scale.ENV_LOO_SUBSAMPLE, "40")
    res = loo_wf.compare_runs([big], reuse=False, seed=5)
    m = res.models[0]
    assert m.method == "subsample" and m.subsample["subsample_size"] == 40
    assert np.isfinite(m.subsample["subsampling_se"]) and 0 < m.subsample["subsampling_se"] < m.se
    assert int(np.sum(np.isfinite(m.elpd_i))) == 40 and int(np.sum(np.isfinite(m.pareto_k))) == 40  # the subsample only
    # the same as arviz_stats.loo_subsample on the stored (dense) log-likelihood, same rows
    dense = xr.DataTree.from_dict({"posterior": ctx.tree["posterior"].to_dataset(),
                                   "log_likelihood": ctx.tree["log_likelihood"].to_dataset(),
                                   "observed_data": ctx.tree["observed_data"].to_dataset()})
    ref = azs.loo_subsample(dense, observations=40, var_name="logfc", method="plpd", seed=5, pointwise=True,
                            log_lik_fn=lambda o, d: scale.point_loglik(d, ctx.built))
    assert m.elpd == pytest.approx(float(ref.elpd), rel=1e-12)
    assert m.subsample["subsampling_se"] == pytest.approx(float(ref.subsampling_se), rel=1e-12)
    js = res.to_json()["models"][0]
    assert js["subsample"]["subsample_size"] == 40 and "subsampled (40 of 90" in js["estimate"]["text"]
    with pytest.raises(ConfigError, match="needs every row's log-likelihood"):
        loo_wf.compare_runs([big], reuse=False, criterion="waic")


def test_sensitivity_of_a_large_run(ctx, tmp_path, monkeypatch):
    from hlm_cli.workflows.sensitivity import run_sensitivity
    from tests.conftest import copy_recorded_run

    big = copy_recorded_run(tmp_path / "big")
    make_large(big, ctx)
    res = run_sensitivity(big, write=False)
    assert list(res.table["parameter"])[:1] == ["Intercept"] and res.table["likelihood"].notna().all()
