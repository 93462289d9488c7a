"""hlm sbc without sampling: ranks, thinning, the uniformity test, the generator, option errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hlm_cli.cli.app import main
from hlm_cli.workflows import sbc

# -------------------------------------------------------------------------- ranks and thinning


def test_rank_counts_draws_below_truth():
    rng = np.random.default_rng(0)
    draws = np.arange(10.0).reshape(1, 10)
    assert sbc.rank_of(4.5, draws, 1, rng) == (5, 10)
    assert sbc.rank_of(-1.0, draws, 1, rng) == (0, 10)
    assert sbc.rank_of(99.0, draws, 1, rng) == (10, 10)


def test_rank_thins_each_chain():
    rng = np.random.default_rng(0)
    draws = np.stack([np.arange(10.0), np.arange(10.0) + 0.5])  # 2 chains
    # every 2nd draw of each chain: 0 2 4 6 8 and 0.5 2.5 4.5 6.5 8.5
    assert sbc.rank_of(5.0, draws, 2, rng) == (6, 10)
    assert sbc.rank_of(4.9, draws, 5, rng) == (2, 4)  # 0, 5 | 0.5, 5.5: only 0 and 0.5 below 4.9


def test_rank_breaks_ties_within_their_range():
    draws = np.full((1, 8), 3.0)
    seen = {sbc.rank_of(3.0, draws, 1, np.random.default_rng(s))[0] for s in range(60)}
    assert seen <= set(range(9)) and len(seen) > 3


def test_thin_factor_iid_keeps_everything():
    x = np.random.default_rng(1).normal(size=(2, 500))
    assert sbc.thin_factor(x) == 1


def test_thin_factor_autocorrelated_draws_are_thinned_by_ess():
    from arviz_stats.base import array_stats

    rng = np.random.default_rng(2)
    x = np.zeros((2, 1000))
    for c in range(2):
        for t in range(1, 1000):
            x[c, t] = 0.8 * x[c, t - 1] + rng.normal()
    ess = float(array_stats.ess(x, method="bulk"))
    thin = sbc.thin_factor(x)
    assert thin == int(np.floor(2000 / ess))
    assert 3 < thin < 100  # below the cap of 2000 // 20


def test_thin_factor_keeps_a_minimum_of_draws():
    rng = np.random.default_rng(3)
    walk = np.cumsum(rng.normal(size=(2, 200)), axis=1)  # a random walk: an ESS of a few draws
    assert sbc.thin_factor(walk, min_kept=20) == 400 // 20
    assert sbc.thin_factor(walk, min_kept=100) == 4


def test_fractional_ranks_are_uniform_for_uniform_ranks():
    rng = np.random.default_rng(4)
    max_rank = rng.integers(5, 400, size=4000)
    ranks = rng.integers(0, max_rank + 1)
    u = sbc.fractional_ranks(ranks, max_rank, rng)
    assert u.min() > 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.02
    assert np.allclose(np.quantile(u, [0.1, 0.5, 0.9]), [0.1, 0.5, 0.9], atol=0.03)


# -------------------------------------------------------------------------- uniformity


def test_uniformity_passes_uniform_values():
    u = np.random.default_rng(5).random(200)
    res = sbc.uniformity(u, level=0.95)
    assert res["p_value"] > 0.05
    assert res["outside_band"] is False
    assert res["max_ecdf_diff"] < 0.15


def test_uniformity_fails_skewed_values():
    u = np.random.default_rng(6).beta(1.6, 1.0, size=200)  # true values too often high
    res = sbc.uniformity(u, level=0.95)
    assert res["p_value"] < 0.01
    assert res["outside_band"] is True


def test_uniformity_fails_a_too_narrow_posterior():
    u = np.random.default_rng(7).beta(0.6, 0.6, size=200)  # U shape: ranks pile up at both ends
    assert sbc.uniformity(u)["p_value"] < 0.01


def _ranks_frame(params: dict[str, np.ndarray], max_rank: int = 99) -> pd.DataFrame:
    rows = [{"sim": i, "parameter": name, "rank": int(r), "max_rank": max_rank} for name, rr in params.items()
            for i, r in enumerate(rr)]
    return pd.DataFrame(rows)


def test_summarize_passes_uniform_and_fails_skewed_ranks():
    rng = np.random.default_rng(8)
    good = rng.integers(0, 100, size=200)
    bad = np.minimum(99, (100 * rng.beta(2.5, 1.0, size=200)).astype(int))
    summary, curves = sbc.summarize(_ranks_frame({"sigma": bad, "Intercept": good}), alpha=0.05)
    row = summary.set_index("parameter")
    assert list(summary.columns) == ["parameter", "n_sims", "max_ecdf_diff", "p_value", "p_adjusted", "outside_band", "band_level", "verdict"]
    assert row.loc["Intercept", "verdict"] == "pass"
    assert row.loc["sigma", "verdict"] == "fail"
    assert row.loc["sigma", "n_sims"] == 200
    assert row.loc["sigma", "band_level"] == pytest.approx(1 - 0.05 / 2)
    assert row.loc["sigma", "p_adjusted"] == pytest.approx(min(1.0, 2 * row.loc["sigma", "p_value"]), abs=2e-4)
    assert set(curves) == {"sigma", "Intercept"}


def test_ranks_table_skips_failed_simulations():
    recs = [{"sim": 1, "status": "ok", "ranks": {"sigma": [3, 10, 2]}},
            {"sim": 0, "status": "failed", "ranks": {}},
            {"sim": 2, "status": "ok", "ranks": {"sigma": [7, 10, 1], "log_lik": [1, 5, 4]}}]
    t = sbc.ranks_table(recs)
    assert list(t.columns) == ["sim", "parameter", "rank", "max_rank", "thin"]
    assert t["sim"].tolist() == [1, 2, 2]
    assert t["rank"].tolist() == [3, 7, 1]


# -------------------------------------------------------------------------- the generator


def _built(csv: Path, formula: str, priors: list[str] | None = None, family: str = "gaussian"):
    from hlm_cli.spec import load_fit_spec
    from hlm_cli.workflows.fit import prepare

    spec = load_fit_spec(None, data=csv, formula=formula, out=csv.parent / "out", priors=priors or [], family=family)
    return prepare(spec).built


def test_generator_draws_from_the_priors_and_keeps_the_design(tiny_csv):
    built = _built(tiny_csv, "y ~ 1 + x + (1|g)", ["sigma=HalfNormal(0.5)", "1|g=HalfNormal(2)", "x=Normal(3, 0.1)"])
    tree, y, ll = sbc.draw_truths(built, built.priors, 3000, seed=1)
    post = tree["posterior"]
    assert y.shape == (3000, 36) and ll.shape == (3000,)
    sigma = np.asarray(post["sigma"])[0]
    assert np.mean(sigma) == pytest.approx(0.5 * np.sqrt(2 / np.pi), rel=0.05)
    assert np.mean(np.asarray(post["x"])[0]) == pytest.approx(3.0, abs=0.01)
    tau = np.asarray(post["1|g_sigma"])[0]
    b = np.asarray(post["1|g"])[0]  # (sims, 6 levels)
    assert b.shape == (3000, 6)
    assert np.std(b / tau[:, None]) == pytest.approx(1.0, rel=0.03)  # effects ~ N(0, tau)
    # y = Intercept + x * X + b[g] + N(0, sigma): residuals have sd sigma
    X = built.design.X
    g = built.design.groups[0]
    eta = np.asarray(post["Intercept"])[0][:, None] + np.asarray(post["x"])[0][:, None] * X[:, 1][None, :] + b[:, g.index]
    z = (y - eta) / sigma[:, None]
    assert np.std(z) == pytest.approx(1.0, rel=0.03)
    # the log-likelihood of each simulation at its truth
    expected = (-0.5 * z**2 - np.log(sigma)[:, None] - 0.5 * np.log(2 * np.pi)).sum(axis=1)
    assert np.allclose(ll, expected)


def test_generator_intercept_prior_is_on_the_centered_intercept(tiny_csv):
    built = _built(tiny_csv, "y ~ 1 + x", ["Intercept=Normal(10, 0.01)", "x=Normal(2, 0.01)"])
    tree, _, _ = sbc.draw_truths(built, built.priors, 500, seed=2)
    post = tree["posterior"]
    xbar = built.design.X[:, 1].mean()
    centered = np.asarray(post["Intercept"])[0] + np.asarray(post["x"])[0] * xbar
    assert np.mean(centered) == pytest.approx(10.0, abs=0.01)


def test_generator_correlated_terms_use_lkj(tiny_csv):
    built = _built(tiny_csv, "y ~ 1 + x + (1 + x|g)")
    tree, y, _ = sbc.draw_truths(built, built.priors, 400, seed=3)
    post = tree["posterior"]
    r = np.asarray(post["cor(Intercept,x|g)"])[0]
    assert r.shape == (400,) and np.all(np.abs(r) <= 1)
    assert abs(np.mean(r)) < 0.1 and np.std(r) > 0.4  # LKJ(1) on 2x2: uniform on (-1, 1)
    assert np.isfinite(y).all()


def test_simulate_prior_replaces_only_the_named_prior(tiny_csv):
    built = _built(tiny_csv, "y ~ 1 + (1|g)")
    gen = sbc.generator_priors(built, {"sigma": "HalfNormal(4)"})
    assert str(gen["sigma"]) == "HalfNormal(sigma=4)"
    assert {k: str(v) for k, v in gen.items() if k != "sigma"} == {k: str(v) for k, v in built.priors.items() if k != "sigma"}
    assert str(built.priors["sigma"]) != "HalfNormal(sigma=4)"
    classes = sbc.generator_priors(built, {"sd": "HalfNormal(9)"})
    assert str(classes["1|g_sigma"]) == "HalfNormal(sigma=9)"


def test_quantities_split_vector_terms(tiny_csv):
    built = _built(tiny_csv, "y ~ 1 + cond + (1|g)")
    tree, _, _ = sbc.draw_truths(built, built.priors, 5, seed=4)
    post = tree["posterior"]
    q = sbc.quantities({n: np.asarray(post[n])[0] for n in post.data_vars}, built, lead=1)
    assert set(q) == {"Intercept", "cond", "1|g_sigma", "sigma"} or "cond[b]" in q
    assert all(v.shape == (5,) for v in q.values())


# -------------------------------------------------------------------------- CLI errors


def _run(args, capsys):
    code = main(args)
    return code, capsys.readouterr()


FORMULA = ["--formula", "y ~ 1 + (1|g)"]


def test_cli_needs_out(tiny_csv, capsys):
    code, cap = _run(["sbc", str(tiny_csv), *FORMULA], capsys)
    assert code == 1 and "hlm sbc needs --out" in cap.err


def test_cli_refuses_too_few_sims(tiny_csv, tmp_path, capsys):
    code, cap = _run(["sbc", str(tiny_csv), *FORMULA, "--sims", "1", "--out", str(tmp_path / "s")], capsys)
    assert code == 2 and "--sims must be at least 2" in cap.err
    assert not (tmp_path / "s").exists()


def test_cli_missing_data(tmp_path, capsys):
    code, cap = _run(["sbc", str(tmp_path / "nope.csv"), *FORMULA, "--out", str(tmp_path / "s")], capsys)
    assert code == 1 and "does not exist" in cap.err


def test_cli_run_directory_takes_no_formula(recorded_run, tmp_path, capsys):
    code, cap = _run(["sbc", str(recorded_run), *FORMULA, "--out", str(tmp_path / "s")], capsys)
    assert code == 1 and "cannot be given with a run directory" in cap.err


def test_cli_bad_simulate_prior_text(tiny_csv, tmp_path, capsys):
    code, cap = _run(["sbc", str(tiny_csv), *FORMULA, "--simulate-prior", "sigma", "--out", str(tmp_path / "s")], capsys)
    assert code == 1 and "is not TERM=Dist(args)" in cap.err


def test_cli_simulate_prior_unknown_term(tiny_csv, tmp_path, capsys):
    code, cap = _run(["sbc", str(tiny_csv), *FORMULA, "--simulate-prior", "sigmaa=HalfNormal(1)", "--out", str(tmp_path / "s")], capsys)
    assert code == 1 and "--simulate-prior" in cap.err and "sigmaa" in cap.err
    assert "hint:" in cap.err
    assert not (tmp_path / "s").exists()


def test_cli_refuses_improper_priors(tiny_csv, tmp_path, capsys):
    code, cap = _run(["sbc", str(tiny_csv), *FORMULA, "--prior", "Intercept=Flat()", "--out", str(tmp_path / "s")], capsys)
    assert code == 1 and "improper Flat prior" in cap.err
    assert not (tmp_path / "s").exists()


def test_cli_other_settings_need_force(tiny_csv, tmp_path, capsys):
    out = tmp_path / "s"
    (out / "sims").mkdir(parents=True)
    (out / "sbc.json").write_text(json.dumps({"fingerprint": "something-else"}))
    code, cap = _run(["sbc", str(tiny_csv), *FORMULA, "--out", str(out)], capsys)
    assert code == 1 and "holds an SBC run with other settings" in cap.err and "--force" in cap.err


def test_cli_refuses_a_foreign_directory(tiny_csv, tmp_path, capsys):
    out = tmp_path / "s"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    code, cap = _run(["sbc", str(tiny_csv), *FORMULA, "--out", str(out), "--force"], capsys)
    assert code == 1 and "is not an hlm sbc directory" in cap.err
    assert (out / "mine.txt").read_text() == "keep me"


def test_sbc_defaults_are_small(tiny_csv, tmp_path):
    spec = sbc.fit_spec_for_sbc(tiny_csv, None, out=tmp_path / "s", formula="y ~ 1 + (1|g)", priors=[],
                                draws=None, tune=300, defaults={"draws": 500, "tune": 500, "chains": 2})
    assert (spec.sampler.draws, spec.sampler.tune, spec.sampler.chains) == (500, 300, 2)
    assert spec.plots is False


def test_generator_sigma_formula_and_counts(tiny_csv):
    from hlm_cli.spec import load_fit_spec
    from hlm_cli.workflows.fit import prepare

    spec = load_fit_spec(None, data=tiny_csv, formula="y ~ 1 + x", out=tiny_csv.parent / "o", sigma_formula="~ cond",
                         priors=["sigma_Intercept=Normal(-1, 0.01)", "sigma_cond=Normal(1, 0.01)"])
    built = prepare(spec).built
    tree, y, ll = sbc.draw_truths(built, built.priors, 200, seed=5)
    # the intercept's prior is on the centered intercept (log sigma at the mean of the columns,
    # half the rows are b): log sigma = -1 - 0.5 for a and -1 + 0.5 for b
    sigma = np.asarray(tree["posterior"]["sigma"])[0]  # (sims, rows)
    cond = pd.read_csv(tiny_csv)["cond"].to_numpy()
    assert np.allclose(sigma[:, cond == "a"], np.exp(-1.5), rtol=0.05)
    assert np.allclose(sigma[:, cond == "b"], np.exp(-0.5), rtol=0.05)
    assert np.isfinite(ll).all()
    q = sbc.quantities({n: np.asarray(tree["posterior"][n])[0] for n in tree["posterior"].data_vars}, built, lead=1)
    assert {"sigma_Intercept", "Intercept", "x"} <= set(q)

    counts = _built(tiny_csv, "count ~ 1 + x + (1|g)", family="poisson")
    _, yc, _ = sbc.draw_truths(counts, counts.priors, 50, seed=6)
    assert np.all(yc >= 0) and np.all(yc == np.round(yc))
    assert sbc.response_ok(counts.family, yc[0]) == ""
    assert "support" in sbc.response_ok(counts.family, np.array([1.5, 2.0]))


def test_run_directory_settings_are_reused(recorded_run, tmp_path):
    import json as _json

    info = _json.loads((recorded_run / "run.json").read_text())
    spec = sbc.fit_spec_for_sbc(recorded_run, None, out=tmp_path / "s", formula=None, priors=[], draws=None, tune=None,
                                chains=None, seed=9, defaults={"draws": 500, "tune": 500, "chains": 2})
    assert spec.formula == info["config"]["formula"]
    assert spec.priors == info["config"]["priors"]
    assert (spec.sampler.draws, spec.sampler.tune, spec.sampler.chains, spec.sampler.seed) == (500, 500, 2, 9)


def test_api_needs_out(tiny_csv):
    import hlm
    from hlm_cli.errors import ConfigError

    with pytest.raises(ConfigError, match="needs out="):
        hlm.sbc(tiny_csv, "y ~ 1 + (1|g)")
    assert "sbc" in dir(hlm)


def test_generator_zi_formula(tiny_csv):
    """A --zi-formula model: zi per row from its logit regression (centered intercept, as the
    fit places its prior), zeros at that rate (the generator had no zi before and crashed)."""
    from hlm_cli.spec import load_fit_spec
    from hlm_cli.workflows.fit import prepare

    spec = load_fit_spec(None, data=tiny_csv, formula="count ~ 1 + x", out=tiny_csv.parent / "o",
                         family="zero_inflated_poisson", zi_formula="~ cond",
                         priors=["zi_Intercept=Normal(0, 0.01)", "zi_cond=Normal(2, 0.01)"])
    built = prepare(spec).built
    tree, y, ll = sbc.draw_truths(built, built.priors, 300, seed=7)
    zi = np.asarray(tree["posterior"]["zi"])[0]  # (sims, rows)
    cond = pd.read_csv(tiny_csv)["cond"].to_numpy()
    # logit zi = 0 at the mean of the columns (half the rows are b): -1 for a, +1 for b
    assert np.allclose(zi[:, cond == "a"], 1 / (1 + np.exp(1.0)), atol=0.01)
    assert np.allclose(zi[:, cond == "b"], 1 / (1 + np.exp(-1.0)), atol=0.01)
    assert np.mean(y[:, cond == "b"] == 0) > np.mean(y[:, cond == "a"] == 0) + 0.2
    assert np.isfinite(ll).all()
    q = sbc.quantities({n: np.asarray(tree["posterior"][n])[0] for n in tree["posterior"].data_vars}, built, lead=1)
    assert {"zi_Intercept", "Intercept", "x"} <= set(q)


def test_out_is_marked_before_any_refit_so_an_interrupted_run_resumes(tmp_path):
    """sbc.json (with the fingerprint) is written when OUT is prepared, not only at the end: an
    interrupted run (sims/ written, no summary) resumes with the same settings and needs
    --force with others. Before, the rerun was refused as 'not an hlm sbc directory'."""
    from hlm_cli.errors import OutputError

    out = tmp_path / "sbc"
    sbc._prepare_out(out, "abc", False)
    assert json.loads((out / "sbc.json").read_text()) == {"fingerprint": "abc", "status": "running"}
    (out / "sims" / "sim_00000.json").write_text(json.dumps({"sim": 0, "status": "ok", "fingerprint": "abc"}))
    sbc._prepare_out(out, "abc", False)  # the same settings: resumes
    assert sbc._read_done(out, "abc", 3).keys() == {0}
    with pytest.raises(OutputError, match="holds an SBC run with other settings"):
        sbc._prepare_out(out, "other", False)


def test_an_out_with_only_simulation_files_resumes(tmp_path):
    """An OUT left by an interrupted run of an older hlm (only sims/) is reused; a folder with
    anything else in it is still refused."""
    from hlm_cli.errors import OutputError

    out = tmp_path / "sbc"
    (out / "sims").mkdir(parents=True)
    (out / "sims" / "sim_00000.json").write_text(json.dumps({"sim": 0, "status": "ok", "fingerprint": "abc"}))
    sbc._prepare_out(out, "abc", False)
    assert sbc._read_done(out, "abc", 2).keys() == {0}
    other = tmp_path / "other"
    (other / "sims").mkdir(parents=True)
    (other / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="is not an hlm sbc directory"):
        sbc._prepare_out(other, "abc", False)


def test_generator_ordinal_thresholds_are_sorted_iid_prior_draws(tmp_path):
    """A cumulative model's K - 1 thresholds: the sorted values of K - 1 draws from their prior
    (the ordered transform restricts the iid prior to increasing values), one vector per
    simulation, ranked as Intercept[1], Intercept[2], ... (a scalar per simulation made the
    calibration suite's cumulative cell fail on the log-likelihood)."""
    from scipy import stats

    rng = np.random.default_rng(5)
    n = 60
    frame = pd.DataFrame({"y": rng.choice([1, 2, 3, 4], n), "x": rng.normal(size=n), "g": [f"g{i % 6}" for i in range(n)]})
    csv = tmp_path / "ord.csv"
    frame.to_csv(csv, index=False)
    built = _built(csv, "y ~ 1 + x + (1|g)", family="cumulative")
    tree, y, ll = sbc.draw_truths(built, built.priors, 4000, seed=6)
    cut = np.asarray(tree["posterior"]["Intercept"])[0]
    assert cut.shape == (4000, 3)
    assert np.all(np.diff(cut, axis=1) > 0)
    # the order statistics of 3 iid StudentT(3, 0, 2.5): the middle one has median 0 and the
    # smallest is below 0 with probability 1 - 0.5**3
    assert np.median(cut[:, 1]) == pytest.approx(0.0, abs=0.15)
    assert np.mean(cut[:, 0] < 0) == pytest.approx(1 - 0.5**3, abs=0.02)
    pooled = np.sort(cut.ravel())
    assert stats.kstest(pooled, stats.t(3, 0, 2.5).cdf).pvalue > 0.01  # all thresholds pooled: the prior itself
    assert set(np.unique(y)) <= {1.0, 2.0, 3.0, 4.0} and np.isfinite(ll).all()
    q = sbc.quantities({v: np.asarray(tree["posterior"][v])[0] for v in tree["posterior"].data_vars}, built, lead=1)
    assert {"Intercept[1]", "Intercept[2]", "Intercept[3]"} <= set(q)
