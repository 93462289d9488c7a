"""Quick first fits: sample without compiling nutpie's C callbacks, fill the cache afterwards.

A cold ``nutpie.compile_pymc_model`` spends about 5 s (cell-line model) to 13 s (an LKJ
model) in numba compiling two C callbacks around PyTensor's log-density function; PyTensor's
own numba kernels come from PyTensor's disk cache in about 1 s. For a small model sampling
takes a fraction of a second, so the first fit of a new model structure is almost all
compilation (benchmarks/compile_cache/FINDINGS.md).

For small models this module skips the callbacks on the first fit: nutpie samples through its
Python-function interface (``nutpie.compiled_pyfunc.from_pyfunc``) and calls PyTensor's
numba-compiled function directly, about 15-25 microseconds per gradient instead of well under
one. Every gradient then needs the GIL, so threads cannot run chains in parallel: :func:`sample`
splits the chains over forked processes, one per core, each with a seed derived from the
fit's. The log density, its gradient and the initial points are the compiled model's
(tests/e2e/test_compile_cache_e2e.py). With one process and the same seed the draws are the
compiled model's up to floating-point rounding (bit for bit for the cell-line model; the C
callback lets LLVM reorder some sums of the LKJ model); with several processes they differ from
the compiled model's by Monte Carlo error only.

The C callbacks are still wanted for the next fit of the same structure. After the command has
written everything, :func:`start_background_fills` forks one detached process per pending
model that compiles it the normal way into the on-disk cache (:mod:`hlm_cli.compile_cache`),
so a repeat fit loads it in 0.1 s. A lock file next to the entry keeps two runs from compiling
the same model at once. ``HLM_BACKGROUND_COMPILE=0`` turns the background compile off (the test
suite does), and only Linux forks; elsewhere the next fit compiles in the foreground.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

#: Largest data array (rows) for which a quick first fit pays off.
#: The Python call costs ~15-25 us per gradient; the C callbacks cost ~5-15 s of compiling
#: once and then well under 1 us of overhead. With ~60k-200k gradients per default fit the
#: quick path wins while a gradient costs less than ~100 us (a few thousand rows).
QUICK_MAX_ROWS = 5000
#: A lock older than this is left over from a killed process and is ignored.
_STALE_LOCK_S = 900

_log = logging.getLogger(__name__)
#: Models whose C callbacks are still to be compiled into the cache, by cache entry (the newest
#: _MAX_PENDING are kept: a library caller that never ends through the CLI must not pile up models).
_PENDING: dict[Path, tuple[Any, str, Path]] = {}
_MAX_PENDING = 8
#: Structures (memo keys) already fitted quick in this process: the next fit compiles them.
_SEEN: set[str] = set()


def _forks() -> bool:
    """Whether this module forks processes here (Linux: fork after threads is unsafe on macOS)."""
    return hasattr(os, "fork") and sys.platform == "linux"


def background_enabled() -> bool:
    """Whether :func:`start_background_fills` starts anything (Linux, ``HLM_BACKGROUND_COMPILE`` not 0)."""
    return _forks() and os.environ.get("HLM_BACKGROUND_COMPILE", "1").strip() != "0"


def quick_ok(model) -> bool:
    """Whether ``model`` is small enough for a quick first fit (``HLM_QUICK_COMPILE=0``: never)."""
    if os.environ.get("HLM_QUICK_COMPILE", "1").strip() == "0":
        return False
    return _rows(model) <= QUICK_MAX_ROWS


def _rows(model) -> int:
    """Size of the largest data array (pm.Data, observed values or observed variables with a
    static shape): bounds the number of parameters too, since every group level has at least
    one row."""
    sizes = [0]
    for var in [*model.data_vars, *model.observed_RVs, *(model.rvs_to_values[rv] for rv in model.observed_RVs)]:
        if hasattr(var, "get_value"):
            sizes.append(int(np.size(var.get_value())))
        elif getattr(var, "data", None) is not None:
            sizes.append(int(np.size(var.data)))
        elif all(isinstance(n, int) for n in var.type.shape):
            sizes.append(int(np.prod(var.type.shape)))
    return max(sizes)


def compile_quick(model, initial_point_fn) -> Any:
    """A nutpie model that calls PyTensor's numba function from Python (no C callbacks).

    Parameters
    ----------
    model : pymc.Model
    initial_point_fn : callable
        PyMC's seeded initial-point function as nutpie wraps it (jittered support point);
        the same function gives the same initial points as ``nutpie.compile_pymc_model``.

    Returns
    -------
    nutpie.compiled_pyfunc.PyFuncModel
    """
    from nutpie.compile_pymc import _make_functions, _prepare_dims_and_coords
    from nutpie.compiled_pyfunc import from_pyfunc

    n_dim, _, logp_pt, expand_pt, point_fn, shape_info, reparameterized = _make_functions(
        model,
        mode="NUMBA",
        compute_grad=True,
        join_expanded=False,
        pymc_initial_point_fn=initial_point_fn,
        var_names=None,
    )
    logp_jit = logp_pt.vm.jit_fn
    expand_jit = expand_pt.vm.jit_fn
    logp_args = tuple(np.asarray(v.get_value()) for v in logp_pt.get_shared())
    expand_args = tuple(np.asarray(v.get_value()) for v in expand_pt.get_shared())
    names, _, shapes = shape_info

    def make_logp():
        def logp(x):
            value, grad = logp_jit(x, *logp_args)
            return float(value), grad

        return logp

    def make_expand(seed1, seed2, chain):
        def expand(x):
            values = expand_jit(x, *expand_args)
            return {n: np.asarray(v, dtype="float64", order="C").reshape(s) for n, v, s in zip(names, values, shapes, strict=True)}

        return expand

    dims, coords = _prepare_dims_and_coords(model, shape_info, reparameterized)
    compiled = from_pyfunc(
        ndim=n_dim,
        make_logp_fn=make_logp,
        make_expand_fn=make_expand,
        make_initial_point_fn=point_fn,
        expanded_dtypes=[np.dtype("float64")] * len(names),
        expanded_shapes=shapes,
        expanded_names=names,
        dims=dims,
        coords=coords,
        reparameterized_names=reparameterized,
    )
    return compiled


def is_quick(compiled) -> bool:
    """Whether ``compiled`` came from :func:`compile_quick` (sample it with one core)."""
    return type(compiled).__name__ == "PyFuncModel"


# --------------------------------------------------------------------------
# sampling a quick model on several cores
# --------------------------------------------------------------------------


def chain_groups(chains: int, cores: int) -> list[int]:
    """Chains per process: as even as possible over ``min(cores, chains)`` processes."""
    n = max(1, min(cores, chains))
    return [chains // n + (1 if i < chains % n else 0) for i in range(n)]


def group_seeds(seed: int, groups: int) -> list[int]:
    """One seed per process. A single process keeps ``seed`` itself, so that its draws are
    those of the compiled model with the same seed."""
    if groups == 1:
        return [int(seed)]
    return [int(s.generate_state(1, dtype=np.uint32)[0]) for s in np.random.SeedSequence([int(seed), 0x484C4D]).spawn(groups)]


def sample(compiled, *, chains: int, cores: int, seed: int, **kwargs):
    """``nutpie.sample`` of a quick model with its chains spread over processes.

    Every gradient of a quick model is a Python call that holds the GIL, so threads do not run
    chains in parallel; processes do. With more than one core the chains are split into groups
    (:func:`chain_groups`), each with its own seed (:func:`group_seeds`), and the groups past the
    first are sampled by forked children that send their draws back pickled; the result is one
    tree with chains numbered 0..chains-1. A child that fails has its chains sampled here.
    With one core (or no fork) this is ``nutpie.sample`` with ``cores=1``.
    """
    import nutpie

    sizes = chain_groups(chains, cores if _forks() else 1)
    seeds = group_seeds(seed, len(sizes))
    if len(sizes) == 1:
        return nutpie.sample(compiled, chains=chains, cores=1, seed=seed, **kwargs)
    children = [_fork_group(compiled, n, s, kwargs) for n, s in zip(sizes[1:], seeds[1:], strict=True)]
    try:
        trees = [nutpie.sample(compiled, chains=sizes[0], cores=1, seed=seeds[0], **kwargs)]
    finally:
        results = [_collect(pid, path) for pid, path in children]
    for (n, s), res in zip(zip(sizes[1:], seeds[1:], strict=True), results, strict=True):
        if isinstance(res, BaseException):
            raise res
        trees.append(res if res is not None else nutpie.sample(compiled, chains=n, cores=1, seed=s, **kwargs))
    return _concat_chains(trees)


def _fork_group(compiled, chains: int, seed: int, kwargs: dict) -> tuple[int, str]:
    import tempfile

    import nutpie

    fd, path = tempfile.mkstemp(prefix="hlm-chains-", suffix=".pkl")
    os.close(fd)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        from hlm_cli.outputs.parallel import finish_child

        def chains_here():
            try:
                return nutpie.sample(compiled, chains=chains, cores=1, seed=seed, **kwargs)
            except RuntimeError as err:  # the sampler's own failure: the parent reports it
                return RuntimeError(str(err))

        finish_child(path, chains_here)
    return pid, path


def _collect(pid: int, path: str):
    """The child's tree, its sampler error, or None (it died: sample its chains here)."""
    import pickle

    try:
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            return None
        with open(path, "rb") as fh:
            return pickle.load(fh)
    except (OSError, EOFError, pickle.UnpicklingError):
        return None
    finally:
        Path(path).unlink(missing_ok=True)


def _concat_chains(trees):
    """One DataTree from several, chains renumbered 0..n-1 in every group that has them."""
    import xarray as xr

    first = trees[0]
    out = {}
    for name in first.children:
        parts = [t[name].to_dataset() for t in trees]
        if "chain" not in parts[0].dims:
            out[name] = parts[0]
            continue
        merged = xr.concat(parts, dim="chain", data_vars="all", coords="minimal", compat="override", join="outer")
        out[name] = merged.assign_coords(chain=np.arange(merged.sizes["chain"]))
    tree = xr.DataTree.from_dict(out)
    tree.attrs.update(first.attrs)
    return tree


# --------------------------------------------------------------------------
# filling the disk cache after the command
# --------------------------------------------------------------------------


def schedule_fill(model, structure_key: str, cache_dir: Path, entry: Path) -> None:
    """Remember to compile ``model`` into ``cache_dir`` when the command ends."""
    _PENDING.pop(Path(entry), None)
    _PENDING[Path(entry)] = (model, structure_key, Path(cache_dir))
    while len(_PENDING) > _MAX_PENDING:
        _PENDING.pop(next(iter(_PENDING)))


def first_time(memo_key: str) -> bool:
    """True the first time a structure is fitted quick in this process, False after: a process
    that fits one structure again (``hlm fit`` with several data sets through the Python API,
    a notebook) is better served by compiling it once and reusing it from the memo."""
    if memo_key in _SEEN:
        return False
    _SEEN.add(memo_key)
    return True


def pending() -> int:
    return len(_PENDING)


def lock_path(entry: Path) -> Path:
    return entry.with_name(entry.name + ".filling")


def start_background_fills() -> int:
    """Fork one detached process per pending model to compile it into the disk cache.

    Called by the CLI after everything is written. Returns the number of processes started
    (0 when turned off, not on Linux, or another process is already compiling the model).
    """
    jobs = [(model, key, cache_dir, entry) for entry, (model, key, cache_dir) in _PENDING.items()]
    _PENDING.clear()
    if not jobs or not background_enabled():
        return 0
    started = 0
    for model, key, cache_dir, entry in jobs:
        if entry.exists() or not _take_lock(lock_path(entry)):
            continue
        try:
            _fork_detached(model, key, cache_dir, lock_path(entry))
            started += 1
        except OSError as err:  # cannot fork: the next fit compiles in the foreground
            _log.debug("background compile not started: %s", err)
            _release(lock_path(entry))
    return started


def _take_lock(lock: Path) -> bool:
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                if time.time() - lock.stat().st_mtime < _STALE_LOCK_S:
                    return False
                lock.unlink()
            except OSError:
                return False
            continue
        except OSError:
            return False
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return True
    return False


def _release(lock: Path) -> None:
    try:
        lock.unlink()
    except OSError:
        pass


def _fork_detached(model, key: str, cache_dir: Path, lock: Path) -> None:
    """Double fork: the grandchild belongs to no terminal and holds none of our pipes, so
    the caller (a shell, ``subprocess.run``) sees this process end at once."""
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    try:  # first child
        os.setsid()
        if os.fork():
            os._exit(0)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.closerange(3, 1 << 16)
        try:
            os.nice(10)
        except OSError:
            pass
        from hlm_cli import compile_cache

        compile_cache.compile_model(model, structure_key=key, cache_dir=cache_dir)
    except BaseException:  # noqa: BLE001 - a failed fill only means the next fit compiles
        pass
    finally:
        _release(lock)
        os._exit(0)


__all__ = ["compile_quick", "is_quick", "quick_ok", "schedule_fill", "start_background_fills", "pending", "lock_path"]
