"""The compiled-model cache (hlm_cli.sampling.cache), quick first fits (hlm_cli.sampling.quick) and
the figure helper of `hlm fit` (hlm_cli.outputs.parallel.start_helper).

Every test compiles real models: a cold compile of these small models takes a few seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hlm_cli import sampling
from hlm_cli.outputs import parallel
from hlm_cli.sampling import cache as compile_cache
from hlm_cli.sampling import quick as compile_quick
from hlm_cli.spec import FitSpec

ROOT = Path(__file__).resolve().parents[2]
CELL = ROOT / "sample_data" / "cell_lines.csv"
CELL_FORMULA = "logfc ~ 1 + (1|gene) + (1|cell_line)"


def _built(data: Path, formula: str, family: str = "gaussian"):
    from hlm_cli.workflows.fit import prepare

    return prepare(FitSpec(data=data, formula=formula, out=Path("unused"), family=family)).built


def _draws(compiled, cores: int, seed: int = 3) -> dict[str, np.ndarray]:
    from hlm_cli.sampling import _nutpie

    nutpie = _nutpie.import_nutpie()
    tree = nutpie.sample(compiled, draws=60, tune=60, chains=2, cores=cores, seed=seed, progress_bar=False)
    post = tree["posterior"]
    return {name: np.asarray(post[name].values) for name in post.data_vars}


@pytest.fixture(autouse=True)
def cache_key(tmp_path_factory, monkeypatch):
    """Entries are signed with a key from HLM_CACHE_KEY_FILE: one for this module, not the
    user's ~/.config/hlm/cache.key."""
    key = tmp_path_factory.getbasetemp() / "compile-cache-e2e.key"
    monkeypatch.setenv("HLM_CACHE_KEY_FILE", str(key))
    return key


@pytest.fixture
def quick_on(monkeypatch):
    monkeypatch.setenv("HLM_QUICK_COMPILE", "1")
    monkeypatch.setenv("HLM_BACKGROUND_COMPILE", "0")
    compile_quick._PENDING.clear()
    compile_quick._SEEN.clear()
    yield
    compile_quick._PENDING.clear()
    compile_quick._SEEN.clear()


def _mcse2(draws: np.ndarray) -> np.ndarray:
    """Squared Monte Carlo standard error of the mean of (chain, draw, ...) draws (arviz_stats ESS)."""
    import arviz_stats as azs
    import xarray as xr

    dims = ("chain", "draw", *(f"d{i}" for i in range(draws.ndim - 2)))
    ess = azs.ess(xr.Dataset({"v": (dims, draws)}))["v"].values
    return draws.var(axis=(0, 1)) / np.maximum(ess, 1.0)


def _cfunc_logp(compiled):
    """Call a compiled model's C log-density callback as nutpie does."""
    import ctypes

    proto = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
    fn = proto(compiled.compiled_logp_func.address)

    def logp(x):
        grad, value = np.zeros(compiled.n_dim), np.zeros(1)
        assert fn(compiled.n_dim, x.ctypes.data, grad.ctypes.data, value.ctypes.data, compiled.user_data.ctypes.data) == 0
        return value[0], grad

    return logp


@pytest.mark.parametrize(
    ("data", "formula", "family"),
    [
        (CELL, CELL_FORMULA, "gaussian"),
        # the LKJ and binomial cases compile 10-20 s each: make test-slow (suite time budget)
        pytest.param(ROOT / "sample_data" / "sleepstudy.csv", "Reaction ~ Days + (Days | Subject)", "gaussian",
                     marks=pytest.mark.slow),
        pytest.param(ROOT / "sample_data" / "cbpp.csv", "cbind(incidence, size - incidence) ~ period + (1|herd)", "binomial",
                     marks=pytest.mark.slow),
    ],
    ids=["crossed-intercepts", "correlated-slopes", "binomial"],
)
def test_quick_model_is_the_compiled_model(quick_on, data, formula, family):
    """Same log density, gradient and initial points; same posterior. Draws are identical for
    a given seed only up to floating-point rounding: the C callback inlines PyTensor's function
    and LLVM may reassociate its sums (observed: bit-identical draws for the cell-line model,
    gradients equal to 1e-15 relative and diverging chains for the LKJ model)."""
    built = _built(data, formula, family)
    compile_cache.clear_memo()  # earlier tests may have compiled the same structure
    quick = sampling.compile_model(built.model, structure_key=built.structure_key, cache_dir=None, quick=True)[0]
    assert compile_quick.is_quick(quick)
    compile_cache.clear_memo()
    full = compile_cache.compile_model(built.model, structure_key=built.structure_key, cache_dir=None)
    assert not compile_quick.is_quick(full) and quick.n_dim == full.n_dim
    quick_logp, full_logp = quick._make_logp_func(), _cfunc_logp(full)
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.normal(scale=0.5, size=full.n_dim)
        (v1, g1), (v2, g2) = quick_logp(x), full_logp(x)
        np.testing.assert_allclose(v1, v2, rtol=1e-12)
        np.testing.assert_allclose(g1, g2, rtol=1e-9, atol=1e-9 * np.abs(g2).max())
    for seed in (1, 7):
        np.testing.assert_array_equal(quick._make_initial_points(seed), full.initial_point_func(seed))
    a, b = _draws(quick, cores=1), _draws(full, cores=2)
    assert a.keys() == b.keys() and len(a) >= 3
    for name in a:
        assert a[name].shape == b[name].shape, name
        diff = a[name].mean(axis=(0, 1)) - b[name].mean(axis=(0, 1))
        assert np.all(np.abs(diff) <= 5 * np.sqrt(_mcse2(a[name]) + _mcse2(b[name])) + 1e-12), name
    again = _draws(quick, cores=1)
    for name in a:
        np.testing.assert_array_equal(a[name], again[name], err_msg=f"quick path not reproducible: {name}")


def test_quick_chains_on_two_processes(quick_on):
    """compile_quick.sample: one tree with chains 0..3, reproducible for a seed, each chain its
    own; with one core it is nutpie.sample itself."""
    import nutpie

    built = _built(CELL, CELL_FORMULA)
    compile_cache.clear_memo()
    quick = sampling.compile_model(built.model, structure_key=built.structure_key, cache_dir=None, quick=True)[0]
    assert compile_quick.chain_groups(4, 2) == [2, 2] and compile_quick.chain_groups(3, 8) == [1, 1, 1]
    assert compile_quick.chain_groups(5, 1) == [5]
    assert compile_quick.group_seeds(9, 1) == [9] and len(set(compile_quick.group_seeds(9, 3))) == 3
    kw = dict(draws=60, tune=60, progress_bar=False)
    one = compile_quick.sample(quick, chains=4, cores=2, seed=5, **kw)
    two = compile_quick.sample(quick, chains=4, cores=2, seed=5, **kw)
    post = one["posterior"]
    assert list(post["chain"].values) == [0, 1, 2, 3] and post.sizes["draw"] == 60
    assert one["sample_stats"].sizes["chain"] == 4
    for name in post.data_vars:
        np.testing.assert_array_equal(post[name].values, two["posterior"][name].values)
    icpt = post["Intercept"].values
    assert len({tuple(np.round(icpt[c, :5], 12)) for c in range(4)}) == 4  # four different chains
    single = compile_quick.sample(quick, chains=2, cores=1, seed=5, **kw)
    direct = nutpie.sample(quick, chains=2, cores=1, seed=5, **kw)
    np.testing.assert_array_equal(single["posterior"]["Intercept"].values, direct["posterior"]["Intercept"].values)


@pytest.mark.slow  # suite time budget (cold compile ~8 s); make test-slow
def test_disk_entry_gives_the_same_draws_in_a_new_memo(tmp_path):
    built = _built(CELL, CELL_FORMULA)
    compile_cache.clear_memo()
    before = compile_cache.stats()
    cold = compile_cache.compile_model(built.model, structure_key=built.structure_key, cache_dir=tmp_path)
    assert compile_cache.stats()["disk_writes"] == before["disk_writes"] + 1
    entries = list(tmp_path.rglob("*.entry"))
    assert len(entries) == 1
    compile_cache.clear_memo()
    warm = compile_cache.compile_model(built.model, structure_key=built.structure_key, cache_dir=tmp_path)
    assert compile_cache.stats()["disk_hits"] == before["disk_hits"] + 1
    a, b = _draws(cold, cores=2), _draws(warm, cores=2)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.parametrize("damage", ["overwrite-tail", pytest.param("truncate", marks=pytest.mark.slow)])
def test_corrupt_entry_is_ignored_and_rewritten(tmp_path, damage):
    built = _built(CELL, CELL_FORMULA)
    compile_cache.clear_memo()
    compile_cache.compile_model(built.model, structure_key=built.structure_key, cache_dir=tmp_path)
    (entry,) = tmp_path.rglob("*.entry")
    good = entry.read_bytes()
    entry.write_bytes(good[:-100] + b"x" * 100 if damage == "overwrite-tail" else good[: len(good) // 2])
    compile_cache.clear_memo()
    before = compile_cache.stats()
    compiled = compile_cache.compile_model(built.model, structure_key=built.structure_key, cache_dir=tmp_path)
    after = compile_cache.stats()
    assert after["disk_hits"] == before["disk_hits"] and after["compiles"] == before["compiles"] + 1
    assert np.isfinite(_draws(compiled, cores=2)["Intercept"]).all()
    # the damaged entry was replaced: the next process loads the new one
    assert after["disk_writes"] == before["disk_writes"] + 1
    compile_cache.clear_memo()
    compile_cache.compile_model(built.model, structure_key=built.structure_key, cache_dir=tmp_path)
    assert compile_cache.stats()["disk_hits"] == after["disk_hits"] + 1


@pytest.mark.slow  # suite time budget (cold compile ~8 s); make test-slow
def test_damaged_entry_is_filled_again_after_a_quick_fit(quick_on, tmp_path):
    """A quick fit that finds a damaged entry deletes it, so the background fill (which skips
    models already in the cache) compiles it again instead of leaving it damaged forever."""
    built = _built(CELL, CELL_FORMULA)
    compile_cache.clear_memo()
    compile_cache.compile_model(built.model, structure_key=built.structure_key, cache_dir=tmp_path)
    (entry,) = tmp_path.rglob("*.entry")
    entry.write_bytes(entry.read_bytes()[:1000])
    compile_cache.clear_memo()
    quick = sampling.compile_model(built.model, structure_key=built.structure_key, cache_dir=tmp_path, quick=True)[0]
    assert compile_quick.is_quick(quick) and not entry.exists()
    assert list(compile_quick._PENDING) == [entry]


def test_quick_path_is_only_for_small_data(quick_on, monkeypatch):
    compile_cache.clear_memo()
    built = _built(CELL, CELL_FORMULA)
    assert compile_quick.quick_ok(built.model)
    monkeypatch.setattr(compile_quick, "QUICK_MAX_ROWS", 50)  # the cell-line data have 90 rows
    assert not compile_quick.quick_ok(built.model)
    monkeypatch.setattr(compile_quick, "QUICK_MAX_ROWS", 5000)
    monkeypatch.setenv("HLM_QUICK_COMPILE", "0")
    assert not compile_quick.quick_ok(built.model)


def test_quick_fit_schedules_the_cache_fill_only_with_a_cache(quick_on, tmp_path):
    built = _built(CELL, CELL_FORMULA)
    compile_cache.clear_memo()
    sampling.compile_model(built.model, structure_key=built.structure_key, cache_dir=None, quick=True)[0]
    assert compile_quick.pending() == 0
    compile_quick._SEEN.clear()  # as in a new process
    sampling.compile_model(built.model, structure_key=built.structure_key, cache_dir=tmp_path, quick=True)[0]
    assert compile_quick.pending() == 1
    assert compile_quick.start_background_fills() == 0  # HLM_BACKGROUND_COMPILE=0
    assert compile_quick.pending() == 0 and not list(tmp_path.rglob("*.entry"))


@pytest.mark.slow  # suite time budget (cold compile ~8 s); make test-slow
def test_second_quick_fit_of_a_structure_in_one_process_compiles_it(quick_on):
    built = _built(CELL, CELL_FORMULA)
    compile_cache.clear_memo()
    first = sampling.compile_model(built.model, structure_key=built.structure_key, cache_dir=None, quick=True)[0]
    second = sampling.compile_model(built.model, structure_key=built.structure_key, cache_dir=None, quick=True)[0]
    third = sampling.compile_model(built.model, structure_key=built.structure_key, cache_dir=None, quick=True)[0]
    assert compile_quick.is_quick(first) and not compile_quick.is_quick(second) and not compile_quick.is_quick(third)
    before = compile_cache.stats()["memo_hits"]
    sampling.compile_model(built.model, structure_key=built.structure_key, cache_dir=None, quick=True)[0]
    assert compile_cache.stats()["memo_hits"] == before + 1


def test_lock_keeps_a_second_process_from_compiling_into_the_same_cache(tmp_path):
    (lock,) = compile_quick.slot_locks(tmp_path)
    assert compile_quick._take_lock(lock)
    assert not compile_quick._take_lock(lock)  # held by a live process (this one)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    lock.write_text(f"{int(dead.stdout)} 1\n")  # left over from a killed process
    assert compile_quick._take_lock(lock)


@pytest.mark.skipif(sys.platform != "linux", reason="the background compile forks (Linux only)")
def test_cli_quick_first_fit_then_cache_hit(tmp_path):
    """`hlm fit` of a new model: quick first fit, compiled entry written after the command
    returned, the repeat fit loads it and gives the same summary. Output is captured (not a
    terminal), so the background compile is requested explicitly with HLM_BACKGROUND_COMPILE=1."""
    env = {**os.environ, "HLM_CACHE_DIR": str(tmp_path / "cache"), "HLM_QUICK_COMPILE": "1", "HLM_BACKGROUND_COMPILE": "1",
           "HLM_CACHE_KEY_FILE": os.environ["HLM_CACHE_KEY_FILE"]}
    hlm = [sys.executable, "-c", "from hlm_cli.cli.app import run; run()"]
    args = ["fit", str(CELL), "--formula", CELL_FORMULA, "--draws", "200", "--tune", "200", "--seed", "2", "--no-plots", "--quiet"]
    first = subprocess.run([*hlm, *args, "--out", str(tmp_path / "a")], env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert json.loads((tmp_path / "a" / "run.json").read_text())["sampler"]["compile_mode"] == "quick"
    deadline = time.time() + 240
    while time.time() < deadline and (not list(tmp_path.rglob("*.entry")) or list(tmp_path.rglob("*.filling"))):
        time.sleep(0.5)
    assert list(tmp_path.rglob("*.entry")), "the background compile wrote no cache entry"
    assert not list(tmp_path.rglob("*.filling"))
    assert (tmp_path / "cache").stat().st_mode & 0o777 == 0o700
    second = subprocess.run([*hlm, *args, "--out", str(tmp_path / "b")], env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert json.loads((tmp_path / "b" / "run.json").read_text())["sampler"]["compile_mode"] == "cache"
    # the quick fit sampled its chains in two processes with seeds derived from --seed, so the
    # draws differ from the compiled model's; the posterior must not
    import pandas as pd

    a, b = (pd.read_csv(tmp_path / d / "summary.csv").set_index("parameter") for d in "ab")
    assert list(a.index) == list(b.index)
    mcse = np.sqrt(a["mcse_mean"] ** 2 + b["mcse_mean"] ** 2)
    assert ((a["mean"] - b["mean"]).abs() <= 5 * mcse + 1e-9).all()


@pytest.mark.slow  # one cold compile (~8 s quiet); make test-slow
def test_a_script_of_fits_gets_quick_then_compiled_then_cached(tmp_path):
    """`hlm fit` run by a script (output captured: no terminal, so no background compile):
    the first fit of a structure is quick, the second compiles and stores it, the third loads
    it. Before the marker beside the cache entry every fit of such a script was quick."""
    env = {**os.environ, "HLM_CACHE_DIR": str(tmp_path / "cache"), "HLM_QUICK_COMPILE": "1", "HLM_BACKGROUND_COMPILE": "0",
           "HLM_CACHE_KEY_FILE": os.environ["HLM_CACHE_KEY_FILE"]}
    hlm = [sys.executable, "-c", "from hlm_cli.cli.app import run; run()"]
    args = ["fit", str(CELL), "--formula", CELL_FORMULA, "--draws", "200", "--tune", "200", "--seed", "2", "--no-plots", "--quiet"]
    modes = []
    for out in "abc":
        done = subprocess.run([*hlm, *args, "--out", str(tmp_path / out)], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        modes.append(json.loads((tmp_path / out / "run.json").read_text())["sampler"]["compile_mode"])
    assert modes == ["quick", "compiled", "cache"]


@pytest.mark.skipif(not parallel.can_fork(), reason="no fork here (platform, one CPU or HLM_SERIAL_FIGURES)")
def test_fit_summary_from_the_helper_equals_one_computed_here(fitted_run):
    """`hlm fit` lets its figure helper compute summary.csv's table: it must be the table."""
    import pandas as pd
    import xarray as xr

    from hlm_cli.outputs import summary as summary_mod
    from hlm_cli.workflows.runs import load_run

    ctx = load_run(fitted_run)
    tree = xr.open_datatree(fitted_run / "posterior.nc", engine="h5netcdf").load()
    here = summary_mod.summarize(tree, ctx.built.params).reset_index()
    written = pd.read_csv(fitted_run / "summary.csv", keep_default_na=False, na_values=[""])
    assert list(written["parameter"]) == list(here["parameter"])
    for col in ("mean", "sd", "hdi94_lb", "ess_bulk", "r_hat"):
        assert (written[col] - here[col]).abs().max() < 1e-4 * (1 + here[col].abs().max()), col
