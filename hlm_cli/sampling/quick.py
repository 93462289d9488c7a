"""Quick first fits: sample without compiling nutpie's C callbacks, fill the cache afterwards
(private to :mod:`hlm_cli.sampling`, which decides when a fit is quick).

A cold ``nutpie.compile_pymc_model`` spends about 5 s (cell-line model) to 13 s (an LKJ
model) in numba compiling two C callbacks around PyTensor's log-density function; PyTensor's
own numba kernels come from PyTensor's disk cache in about 1 s. For a small model sampling
takes a fraction of a second, so the first fit of a new model structure is almost all
compilation (benchmarks/compile_cache/FINDINGS.md).

For small models this module skips the callbacks on the first fit: nutpie samples through its
Python-function interface (``nutpie.compiled_pyfunc.from_pyfunc``) and calls PyTensor's
numba-compiled function directly (:func:`hlm_cli.sampling._nutpie.python_model`), about 15-25 microseconds per gradient instead of well under
one. Every gradient then needs the GIL, so threads cannot run chains in parallel: :func:`sample`
splits the chains over forked processes, one per core, each with a seed derived from the
fit's. The log density, its gradient and the initial points are the compiled model's
(tests/e2e/test_compile_cache_e2e.py). With one process and the same seed the draws are the
compiled model's up to floating-point rounding (bit for bit for the cell-line model; the C
callback lets LLVM reorder some sums of the LKJ model); with several processes they differ from
the compiled model's by Monte Carlo error only.

The C callbacks are still wanted for the next fit of the same structure. After the command has
written everything, :func:`start_background_fills` forks one detached, low-priority process
per cache directory that compiles the pending models the normal way into the on-disk cache
(:mod:`hlm_cli.sampling.cache`), one after another, so a repeat fit loads them in 0.1 s.

Rules for the background compile (docs/cache.md). The CLI asks for it only after a command
that succeeded. It starts only on Linux, and not when

* ``HLM_BACKGROUND_COMPILE`` is ``0`` (or false/no/off; the test suite sets it);
* the ``CI`` environment variable is set to anything but ``0``/false/no/off (a CI job), or
  standard output is not a terminal (a pipeline, a batch worker, ``subprocess.run`` with
  captured output) -- unless ``HLM_BACKGROUND_COMPILE`` is ``1`` (or true/yes/on): an
  explicit request for scripts and benchmarks, still subject to the next two rules;
* ``MAX_BACKGROUND`` (1) background compilers are already running for that cache directory.
  Each holds a lock file ``background-<i>.filling`` in the cache directory that names its
  process (pid and start time); a lock whose process is gone is stale and is removed;
* the cache directory is not a trusted one (:mod:`hlm_cli.sampling.cache`: the user's own,
  not writable by group or others), or the model is already in the cache.

A model that gets no background compile is compiled in the foreground by its next fit, in this
process or another one using the same cache (:func:`first_time`: a marker beside the entry).

Imports point one way: this module uses :mod:`hlm_cli.sampling.cache` (the background compile
fills it); the cache knows nothing of quick fits. Forked processes go through :mod:`hlm_cli._procs`.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from hlm_cli import _procs
from hlm_cli.sampling import _nutpie

#: Largest data array (rows) for which a quick first fit pays off.
#: The Python call costs ~15-25 us per gradient; the C callbacks cost ~5-15 s of compiling
#: once and then well under 1 us of overhead. With ~60k-200k gradients per default fit the
#: quick path wins while a gradient costs less than ~100 us (a few thousand rows).
QUICK_MAX_ROWS = 5000
#: Most detached background compilers running at once per cache directory.
MAX_BACKGROUND = 1
_OFF = ("0", "false", "no", "off")
_ON = ("1", "true", "yes", "on")

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
    """Whether :func:`start_background_fills` may start anything here (see the module's rules;
    the per-cache cap is checked when it starts)."""
    return _background_refusal() is None


def _background_refusal() -> str | None:
    """Why no background compile starts in this process, or ``None``."""
    if not _forks():
        return "not Linux"
    setting = os.environ.get("HLM_BACKGROUND_COMPILE", "").strip().lower()
    if setting in _OFF:
        return "HLM_BACKGROUND_COMPILE=0"
    if setting in _ON:
        return None
    ci = os.environ.get("CI", "").strip().lower()
    if ci and ci not in _OFF:
        return "CI is set"
    try:
        tty = os.isatty(1)
    except OSError:
        tty = False
    if not tty:
        return "standard output is not a terminal"
    return None


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
        PyMC's seeded initial-point function as nutpie wraps it (jittered support point,
        :func:`hlm_cli.sampling.cache.pymc_point_fn`); the same function gives the same
        initial points as ``nutpie.compile_pymc_model``.

    Returns
    -------
    nutpie.compiled_pyfunc.PyFuncModel
    """
    return _nutpie.python_model(model, initial_point_fn)


def is_quick(compiled) -> bool:
    """Whether ``compiled`` came from :func:`compile_quick` (sample it with one core)."""
    return _nutpie.is_python_model(compiled)


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


def sample(compiled, *, chains: int, cores: int, seed: int, progress=None, **kwargs):
    """``nutpie.sample`` of a quick model with its chains spread over processes.

    Every gradient of a quick model is a Python call that holds the GIL, so threads do not run
    chains in parallel; processes do. With more than one core the chains are split into groups
    (:func:`chain_groups`), each with its own seed (:func:`group_seeds`), and the groups past the
    first are sampled by forked children that send their draws back pickled; the result is one
    tree with chains numbered 0..chains-1. A child that fails has its chains sampled here.
    With one core (or no fork) this is ``nutpie.sample`` with ``cores=1``.

    ``progress`` (a :class:`hlm_cli.sampling.DrawReporter`, optional) hears of every chain:
    the children record their chains' counts in memory shared with this process, which
    reports all of them while its own group samples.
    """
    import nutpie

    sizes = chain_groups(chains, cores if _forks() else 1)
    seeds = group_seeds(seed, len(sizes))
    firsts = [sum(sizes[:i]) for i in range(len(sizes))]

    def report(i: int, *, emit: bool) -> dict:
        return progress.nutpie_kwargs(firsts[i], emit=emit) if progress is not None else {}

    if len(sizes) == 1:
        return nutpie.sample(compiled, chains=chains, cores=1, seed=seed, **kwargs, **report(0, emit=True))
    if progress is not None:
        progress.share()
    children = [_fork_group(compiled, n, s, {**kwargs, **report(i, emit=False)})
                for i, (n, s) in enumerate(zip(sizes[1:], seeds[1:], strict=True), start=1)]
    try:
        trees = [nutpie.sample(compiled, chains=sizes[0], cores=1, seed=seeds[0], **kwargs, **report(0, emit=True))]
        if progress is not None:
            _report_until_done(children, progress)
    finally:
        results = [child.collect() for child in children]
    for (n, s), (ok, res) in zip(zip(sizes[1:], seeds[1:], strict=True), results, strict=True):
        if ok and isinstance(res, BaseException):
            raise res
        # a child that died is redone here: its chains are sampled in this process
        trees.append(res if ok and res is not None else nutpie.sample(compiled, chains=n, cores=1, seed=s, **kwargs))
    return _concat_chains(trees)


def _report_until_done(children: list[_procs.Child], progress, interval: float = 0.2) -> None:
    """Keep reporting the children's chains while they sample after this process's own are done
    (the children stay unreaped for :meth:`hlm_cli._procs.Child.collect`)."""
    import time

    def running(child) -> bool:
        try:
            return os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
        except (OSError, AttributeError):  # reaped already, or no waitid: stop reporting
            return False

    while any(running(c) for c in children):
        progress.emit()
        time.sleep(interval)
    progress.emit()


def _fork_group(compiled, chains: int, seed: int, kwargs: dict) -> _procs.Child:
    """A forked child sampling ``chains`` chains: its result is the tree, or the sampler's
    own failure as a RuntimeError (the parent reports it)."""
    import nutpie

    def chains_here():
        try:
            return nutpie.sample(compiled, chains=chains, cores=1, seed=seed, **kwargs)
        except RuntimeError as err:  # the sampler's own failure: the parent reports it
            return RuntimeError(str(err))

    return _procs.fork_child(chains_here, prefix="hlm-chains-")


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


#: Suffix of the marker beside a cache entry that says "fitted quick once, not compiled yet".
MARKER_SUFFIX = ".quickfit"
#: Markers kept per cache directory (the oldest are removed beyond this).
MAX_MARKERS = 256


def first_time(memo_key: str, entry: Path | None = None, cache_dir: Path | None = None) -> bool:
    """True the first time a structure is fitted quick, False after: the next fit compiles it
    (in the foreground) and stores it, so that every later fit loads it from the cache.

    "First" counts in this process (a process that fits one structure again, ``hlm fit`` with
    several data sets through the Python API, a notebook, is better served by compiling it
    once and reusing it from the memo) and, given the structure's cache ``entry``, in every
    process using that cache (``cache_dir``): a marker file beside the entry records the quick fit. Scripts
    and pipelines (no terminal, so no background compile) thus get a quick first fit, one
    compiling fit, and cached fits after that, instead of a quick fit every time. While a
    background compiler is running for the cache directory, a marked structure is fitted quick
    again rather than compiled twice at once."""
    if memo_key in _SEEN:
        return False
    _SEEN.add(memo_key)
    if entry is None:
        return True
    marker = Path(entry).with_name(Path(entry).name + MARKER_SUFFIX)
    try:
        if marker.exists():
            return cache_dir is not None and running(Path(cache_dir)) > 0
        marker.touch(mode=0o600)
        from hlm_cli.sampling import cache

        cache.keep_newest(marker.parent, "*" + MARKER_SUFFIX, MAX_MARKERS)
    except OSError:  # a read-only cache: each process's first fit is quick, as without markers
        pass
    return True


def pending() -> int:
    return len(_PENDING)


def start_background_fills() -> int:
    """Fork one detached process per cache directory to compile the pending models into it.

    Called by the CLI after a successful command has written everything. Returns the number
    of processes started: 0 when the module's rules forbid it (turned off, CI, no terminal,
    not Linux), when ``MAX_BACKGROUND`` compilers already run for the cache directory, or
    when there is nothing left to compile. The pending models are forgotten either way.
    """
    jobs = [(model, key, cache_dir, entry) for entry, (model, key, cache_dir) in _PENDING.items()]
    _PENDING.clear()
    if not jobs:
        return 0
    why = _background_refusal()
    if why is not None:
        _log.debug("background compile not started: %s", why)
        return 0
    from hlm_cli.sampling import cache

    by_dir: dict[Path, list[tuple[Any, str]]] = {}
    for model, key, cache_dir, entry in jobs:
        if not entry.exists():
            by_dir.setdefault(cache_dir, []).append((model, key))
    started = 0
    for cache_dir, models in by_dir.items():
        try:
            cache._private_dir(cache_dir)  # trusted, as when the fill was scheduled
        except (OSError, cache._Untrusted) as err:
            _log.debug("background compile not started: %s", err)
            continue
        lock = _take_slot(cache_dir)
        if lock is None:
            _log.debug("background compile not started: %d already running for %s", MAX_BACKGROUND, cache_dir)
            continue
        try:
            _fork_detached(models, cache_dir, lock)
            started += 1
        except OSError as err:  # cannot fork: the next fit compiles in the foreground
            _log.debug("background compile not started: %s", err)
            _release(lock)
    return started


def slot_locks(cache_dir: Path) -> list[Path]:
    """The lock files of the background compilers of ``cache_dir`` (one per allowed process)."""
    return [Path(cache_dir) / f"background-{i}.filling" for i in range(MAX_BACKGROUND)]


def running(cache_dir: Path) -> int:
    """How many background compilers hold a live lock on ``cache_dir`` now."""
    holders = [_holder(lock) for lock in slot_locks(cache_dir)]
    return sum(h is not None and _alive(*h) for h in holders)


def _take_slot(cache_dir: Path) -> Path | None:
    for lock in slot_locks(cache_dir):
        if _take_lock(lock):
            return lock
    return None


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux ``/proc``), or ""."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return fields[19].decode()
    except (OSError, IndexError, UnicodeDecodeError):
        return ""


def _owner_line(pid: int) -> str:
    return f"{pid} {_start_time(pid)}\n"


def _holder(lock: Path) -> tuple[int, str] | None:
    """(pid, start time) named by ``lock``, or None when it is missing or unreadable."""
    try:
        parts = lock.read_text().split()
        return int(parts[0]), (parts[1] if len(parts) > 1 else "")
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int, start: str) -> bool:
    """Whether process ``pid`` runs and is the one that started at ``start`` (pid reuse)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    except OSError:
        return False
    now = _start_time(pid)
    return not (start and now and now != start)


def _write_exclusive(path: Path, text: str) -> None:
    """Create ``path`` (mode 0600) holding ``text``, atomically; FileExistsError if it exists."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.link(tmp, path)
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _take_lock(lock: Path) -> bool:
    """Create ``lock`` naming this process; a lock whose process is gone is removed first."""
    for _ in range(2):
        try:
            _write_exclusive(lock, _owner_line(os.getpid()))
            return True
        except FileExistsError:
            pass
        except OSError:
            return False
        try:
            st = lock.stat()
        except FileNotFoundError:
            continue
        except OSError:
            return False
        holder = _holder(lock)
        if holder is not None and _alive(*holder):
            return False
        try:  # stale: its process died without removing it (killed, machine restarted)
            if lock.stat().st_ino == st.st_ino:
                lock.unlink()
        except OSError:
            return False
    return False


def _hand_over(lock: Path, pid: int) -> None:
    """Make ``lock`` name process ``pid`` (the detached compiler)."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=lock.name + ".", suffix=".tmp", dir=lock.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(_owner_line(pid))
    os.replace(tmp, lock)


def _release(lock: Path, pid: int | None = None) -> None:
    """Remove ``lock`` (only if it names ``pid``, when given)."""
    try:
        if pid is not None:
            holder = _holder(lock)
            if holder is None or holder[0] != pid:
                return
        lock.unlink()
    except OSError:
        pass


def _fork_detached(models: list[tuple[Any, str]], cache_dir: Path, lock: Path) -> None:
    """Double fork: the grandchild belongs to no terminal and holds none of our pipes, so
    the caller (a shell, ``subprocess.run``) sees this process end at once. The lock names
    this process until the first child has handed it to the grandchild."""
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    owner = None  # the first child: a failure here releases the parent's lock
    try:
        os.setsid()
        grandchild = os.fork()
        if grandchild:
            try:
                _hand_over(lock, grandchild)
            except OSError:
                pass
            os._exit(0)
        owner = os.getpid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.closerange(3, 1 << 16)
        try:
            os.nice(10)
        except OSError:
            pass
        from hlm_cli.sampling import cache

        for model, key in models:
            try:
                cache.compile_model(model, structure_key=key, cache_dir=cache_dir)
            except Exception:  # noqa: BLE001 - a failed fill only means the next fit compiles
                pass
    except BaseException:  # noqa: BLE001
        pass
    finally:
        _release(lock, owner)
        os._exit(0)


__all__ = ["compile_quick", "is_quick", "quick_ok", "schedule_fill", "start_background_fills", "pending", "running", "slot_locks"]
