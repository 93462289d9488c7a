"""`hlm loo` reuses the refits that an earlier loo (e.g. `hlm fit --formula A --formula B`) ran
on the same run, with the same method, held-out rows and seed, and refits when anything differs.
The sampler is replaced by the run's own posterior (tests/unit never samples)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import xarray as xr

from hlm_cli.workflows import loo as loo_wf

FLAGGED = [3, 41, 17]


@pytest.fixture
def store_dir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("HLM_CACHE_DIR", str(d))
    return d / loo_wf.REFIT_SUBDIR


@pytest.fixture
def calls(recorded_run, monkeypatch, store_dir):
    """sampling.sample returns the run's posterior (restricted to the refit's levels); records calls."""
    from hlm_cli import sampling
    from hlm_cli.workflows.runs import open_tree

    full = open_tree(recorded_run)
    seen = []

    def sample(built, spec, *, use_cache=True, on_progress=None):
        post = full["posterior"].to_dataset()
        for g in built.design.groups:
            post = post.sel({g.factor: list(g.levels)})
        seen.append(spec.seed)
        return sampling.Posterior(tree=xr.DataTree.from_dict({"posterior": post}), seed=spec.seed)

    monkeypatch.setattr(sampling, "sample", sample)
    real = loo_wf._psis

    def psis_with_bad_k(run):
        res = real(run)
        res.pareto_k[FLAGGED] = [0.9, 1.3, 0.95]
        return res

    monkeypatch.setattr(loo_wf, "_psis", psis_with_bad_k)
    return seen


def test_second_loo_reuses_every_refit(recorded_run, calls, store_dir):
    first = loo_wf.compare_runs([recorded_run], seed=1)
    m1 = first.models[0]
    n = m1.n_refits
    assert m1.method == "reloo" and n >= len(FLAGGED) and len(calls) == n and m1.reused_refits == 0
    assert len(list(store_dir.glob("*.npz"))) == n
    assert not any("reused" in note for note in first.notes)

    again = loo_wf.compare_runs([recorded_run], seed=1)
    m2 = again.models[0]
    assert len(calls) == n  # nothing sampled the second time
    assert m2.n_refits == n and m2.reused_refits == n
    np.testing.assert_array_equal(m2.elpd_i, m1.elpd_i)
    assert m2.elpd == m1.elpd
    assert m2.estimate == f"reloo ({n} exact refits, {n} reused)"
    assert any(f"reused {n} of {n} refits from {store_dir}" in note for note in again.notes)
    written = json.dumps(m2.to_json(), default=str)
    assert f'"reused_refits": {n}' in written and f'"refit_store": "{store_dir}"' in written


def test_default_seed_is_the_runs_own(recorded_run, calls):
    """compare_runs() without a seed uses the run's sampler seed (1 here), as fit --formula A --formula B."""
    loo_wf.compare_runs([recorded_run], seed=1)
    n = len(calls)
    m = loo_wf.compare_runs([recorded_run]).models[0]
    assert m.reused_refits == n and len(calls) == n


def test_nothing_reused_when_anything_differs(recorded_run, calls, tmp_path):
    loo_wf.compare_runs([recorded_run], seed=1)
    n = len(calls)
    # another seed: every refit again
    m = loo_wf.compare_runs([recorded_run], seed=2).models[0]
    assert m.reused_refits == 0 and len(calls) == 2 * n
    # the same run copied elsewhere: another run directory
    other = tmp_path / "copy"
    shutil.copytree(recorded_run, other)
    m = loo_wf.compare_runs([other], seed=1).models[0]
    assert m.reused_refits == 0 and len(calls) == 3 * n
    # another method (K-fold) on the same run
    m = loo_wf.compare_runs([recorded_run], kfold=5, group="cell_line", seed=1).models[0]
    assert m.method == "kfold" and m.reused_refits == 0 and len(calls) == 3 * n + 5
    # ... which is itself reused the next time
    m = loo_wf.compare_runs([recorded_run], kfold=5, group="cell_line", seed=1).models[0]
    assert m.reused_refits == 5 and len(calls) == 3 * n + 5
    # reuse turned off
    m = loo_wf.compare_runs([recorded_run], seed=1, reuse=False).models[0]
    assert m.reused_refits == 0 and len(calls) == 4 * n + 5


def test_changed_run_is_not_reused(recorded_run, calls):
    loo_wf.compare_runs([recorded_run], seed=1)
    n = len(calls)
    info = json.loads((recorded_run / "run.json").read_text())
    info["config"]["sampler"]["target_accept"] = 0.95  # other settings: the refits would differ
    (recorded_run / "run.json").write_text(json.dumps(info))
    m = loo_wf.compare_runs([recorded_run], seed=1).models[0]
    assert m.reused_refits == 0 and len(calls) == 2 * n


def test_tampered_entry_is_refitted(recorded_run, calls, store_dir):
    loo_wf.compare_runs([recorded_run], seed=1)
    n = len(calls)
    entry = sorted(store_dir.glob("*.npz"))[0]
    blob = bytearray(entry.read_bytes())
    blob[-20] ^= 0xFF
    entry.write_bytes(bytes(blob))
    m = loo_wf.compare_runs([recorded_run], seed=1).models[0]
    assert m.reused_refits == n - 1 and len(calls) == n + 1


def test_cli_says_what_it_reused(recorded_run, calls, capsys):
    from hlm_cli.cli.app import main

    assert main(["loo", str(recorded_run), "--seed", "1"]) == 0
    n = len(calls)
    capsys.readouterr()
    assert main(["loo", str(recorded_run), "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert len(calls) == n
    assert f"reused {n} of {n} refits from" in " ".join(out.split())


def test_fit_compare_uses_the_seed_loo_defaults_to(recorded_run, monkeypatch):
    """fit --formula A --formula B compares with the runs' sampler seed: compare_runs' default."""
    from hlm_cli.spec import FitSpec
    from hlm_cli.workflows import fit_compare

    got = {}
    monkeypatch.setattr(loo_wf, "compare_runs", lambda dirs, **kw: got.update(kw) or "cmp")
    monkeypatch.setattr("hlm_cli.outputs.loo_out.write", lambda res, out: [])
    spec = FitSpec.model_validate({"data": str(recorded_run / "run.json"), "formula": "y ~ 1", "out": str(recorded_run.parent / "o"),
                                   "sampler": {"seed": 7}})
    assert fit_compare.compare_models(spec, 2)[0] == "cmp"
    assert got.get("seed", None) in (None, 7)
