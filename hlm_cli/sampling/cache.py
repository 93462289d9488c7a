"""Compile-once caching of nutpie-compiled PyMC models (private to :mod:`hlm_cli.sampling`).

Compiling a PyMC model with ``nutpie.compile_pymc_model`` (numba backend) takes
~6 s per process for a small crossed random-intercept model, while sampling it
takes ~0.3 s. Almost all of the compile time is numba type inference and LLVM
code generation for the two C callbacks nutpie generates around PyTensor's
numba functions (log density + gradient, and the "expand" function for the
trace); PyTensor's own numba functions already come from PyTensor's disk cache.

This module avoids paying that cost twice:

* **In-process memo** -- a second :func:`compile_model` call for the same
  structure returns the already compiled object re-bound to the new model's
  ``pm.Data`` values and coordinate labels (``with_data``), in milliseconds.
* **On-disk cache** -- after a cold compile, numba's compile results for the
  two callbacks (object code plus the metadata numba's own ``cache=True``
  stores), the model metadata nutpie needs (names, shapes, shared-variable
  layout) and, when it is exactly reproducible, a NumPy description of PyMC's
  initial-point function are written to ``cache_dir``. A later process
  rebuilds the ``CompiledPyMCModel`` from that entry in ~0.1 s without
  building or compiling any PyTensor graph.

numba's own ``cache=True`` (which nutpie forwards to ``numba.cfunc``) does not
work for these callbacks: they are closures over values (random ``uuid4``
shared-variable keys, data arrays, PyTensor-generated functions) that pickle
differently in every process, so numba writes a new entry each time and never
finds an old one.

Entries are keyed by the caller's ``structure_key`` together with a signature
of the model (variables, transforms, dimension lengths, data dtypes), a
fingerprint of its generative graph (including every constant) and the
software/CPU environment (library versions, numba's codegen target, numba
optimisation level). Entries that are unreadable, fail their checksum, need
symbols the process does not provide, or do not fit the model are ignored and
the model is compiled normally (logged at DEBUG level on the
``hlm_cli.sampling.cache`` logger). An unexpected error in a cache step is not
swallowed silently either: the fit compiles the model without the cache and the
step is named once per process at WARNING level (:func:`_attempt`), so the
cache can make a fit faster but never break it. When the installed nutpie,
numba or PyTensor is outside the versions :mod:`hlm_cli.sampling._nutpie` was
written for, the cache is not used at all (one WARNING on ``hlm_cli.sampling``).
Every private name of those libraries is used through that module. Files are written atomically (temporary file
plus ``os.replace``), so concurrent processes of one user may share a cache
directory.

Trust model (docs/cache.md)
---------------------------
An entry is a pickle that carries native object code, so loading one runs
code. Entries are therefore only ever loaded from a directory that only the
current user can write, and only after they are authenticated:

* The cache directory and its ``nutpie-v<N>`` subdirectory must be owned by
  the current user and not writable by group or others; hlm creates them with
  mode 0700. A directory that fails this is neither read nor written: models
  are compiled as if ``cache_dir`` were ``None``, and the reason is logged once
  per process at WARNING level on this module's logger (no handler configured:
  Python prints it on stderr).
* Every entry is ``MAGIC + tag + body`` with ``tag = HMAC-SHA256(key, MAGIC +
  file name + body)`` under a per-user secret key kept outside the cache
  (:func:`key_file`: ``$HLM_CACHE_KEY_FILE``, else
  ``$XDG_CONFIG_HOME/hlm/cache.key``, else ``~/.config/hlm/cache.key``;
  32 random bytes, created atomically with mode 0600). The tag is checked with
  :func:`hmac.compare_digest` before anything is unpickled. A key file that is
  not the user's own regular file, or that group or others may read or write,
  is refused like an unsafe directory.
* An entry that is not a regular file owned by the user, is writable by group
  or others (refused with a warning), is truncated, fails its tag or has
  another format is deleted, so the next compile writes it again.

Consequently a cache directory cannot be shared between users (each user's
entries are signed with a different key); one user's processes on several
machines share it when they see the same key file (a shared home directory).
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import hashlib
import hmac
import json
import logging
import os
import pickle
import platform
import stat
import sys
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hlm_cli.sampling import _nutpie

if TYPE_CHECKING:
    import nutpie
    import pymc as pm

__all__ = ["compile_model", "find", "compile_and_store", "Slot", "default_cache_dir", "key_file", "clear_memo", "stats"]

#: Bump when the on-disk entry layout or the reconstruction logic changes, and when the C
#: callbacks' Python functions move to another module: numba pickles them by module path.
_FORMAT_VERSION = 5  # 4: entries authenticated with HMAC-SHA256 under a per-user key; 5: callbacks pickled from hlm_cli.sampling._nutpie
_MAGIC = b"HLM-NUTPIE-CACHE\x00"
_TAG_SIZE = 32  # HMAC-SHA256
_KEY_SIZE = 32
_SUBDIR = f"nutpie-v{_FORMAT_VERSION}"
_ENTRY_SUFFIX = ".entry"
#: Most entries kept on disk (~0.7 MB each for a small model; LRU by mtime).
_MAX_ENTRIES = 256
#: Most compiled models kept alive by the in-process memo (LRU).
_MEMO_MAX = 64

_log = logging.getLogger(__name__)

_MEMO: OrderedDict[str, _MemoEntry] = OrderedDict()
_MEMO_LOCK = threading.Lock()
_STATS = {"memo_hits": 0, "disk_hits": 0, "compiles": 0, "disk_writes": 0, "quick": 0}
#: Cache steps whose unexpected failure was already reported in this process.
_FAILED: set[str] = set()


@dataclasses.dataclass(frozen=True)
class _MemoEntry:
    compiled: Any
    shapes: dict[str, tuple[int, ...]]
    data_shapes: dict[str, tuple[int, ...]]
    #: The initial-point function does not depend on pm.Data and can be reused.
    fixed_point: bool
    #: Otherwise: PyMC's initial-point function built for one model of this structure, with
    #: that model's pm.Data variables by name (their values are set to the next model's
    #: before it is used: compiling it again costs ~0.5 s per fit, see ``_rebind``).
    point_fn: Any = None



# --------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """Return the default directory of the compiled-model cache.

    Returns
    -------
    pathlib.Path
        ``$HLM_CACHE_DIR`` if that environment variable is set and non-empty,
        otherwise ``~/.cache/hlm``. The directory is not created.
    """
    env = os.environ.get("HLM_CACHE_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "hlm"


def key_file() -> Path:
    """Return the file holding the secret key that authenticates cache entries.

    Returns
    -------
    pathlib.Path
        ``$HLM_CACHE_KEY_FILE`` if set and non-empty, else
        ``$XDG_CONFIG_HOME/hlm/cache.key`` (when ``XDG_CONFIG_HOME`` is an
        absolute path), else ``~/.config/hlm/cache.key``. Created (32 random
        bytes, mode 0600) the first time an entry is read or written.
    """
    env = os.environ.get("HLM_CACHE_KEY_FILE", "").strip()
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME", "").strip()
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".config"
    return base / "hlm" / "cache.key"


def stats() -> dict[str, int]:
    """Counters of this process's :func:`compile_model` calls.

    Returns
    -------
    dict of str to int
        ``memo_hits``, ``disk_hits``, ``hits`` (their sum), ``compiles`` (cold
        compiles) and ``disk_writes`` (entries written). A new dict each call.
    """
    with _MEMO_LOCK:
        out = dict(_STATS)
    out["hits"] = out["memo_hits"] + out["disk_hits"]
    return out


def count(name: str) -> None:
    """Add one to the counter ``name`` of :func:`stats` (``"quick"``: a quick first fit)."""
    _count(name)


def _count(name: str) -> None:
    with _MEMO_LOCK:
        _STATS[name] += 1


def clear_memo() -> None:
    """Forget every compiled model held by the in-process memo."""
    with _MEMO_LOCK:
        _MEMO.clear()



@dataclasses.dataclass(frozen=True)
class Slot:
    """Where a model's compilation is looked up and stored (:func:`find`)."""

    structure_key: str
    #: The model's signature and graph fingerprint; None: the model cannot be cached.
    identity: dict[str, Any] | None
    #: Key of the in-process memo ("" without an identity).
    memo_key: str
    #: The trusted cache directory, or None (no disk cache: disabled, unusable or untrusted).
    cache_dir: Path | None
    #: The entry file of this model, or None.
    path: Path | None
    secret: bytes | None = dataclasses.field(default=None, repr=False)


def compile_model(
    model: pm.Model,
    *,
    structure_key: str,
    cache_dir: Path | None,
) -> nutpie.CompiledModel:
    """Compile `model` with nutpie, reusing an on-disk cache keyed by `structure_key`.

    Lookup order: the in-process memo, then the on-disk entry under
    `cache_dir`, then a fresh ``nutpie.compile_pymc_model(model)`` (whose result
    is then written to `cache_dir` and memoised).

    Parameters
    ----------
    model : pymc.Model
        The model to compile. Observed data and covariates that should be
        swappable must be ``pm.Data`` containers.
    structure_key : str
        A hash the caller computes from everything that determines the model
        graph (formula, family, priors, group counts, ...). Two models with the
        same key must have the same graph up to ``pm.Data`` values. As a
        safety net the key is combined with a signature of `model` (variable
        names, transforms, dimension lengths, data dtypes) and a fingerprint of
        its graph (including every constant), so a key that forgets a prior or
        a group count leads to a recompile, not to wrong results.
    cache_dir : pathlib.Path or None
        Root of the on-disk cache (see :func:`default_cache_dir`); created
        (mode 0700) if needed. ``None`` disables the disk cache (the in-process
        memo is still used), and so does a directory that is not the user's own
        or that group or others can write (with one warning per process; see
        the module's trust model).

    Returns
    -------
    nutpie.CompiledModel
        A ``nutpie.compile_pymc.CompiledPyMCModel`` bound to `model`'s current
        ``pm.Data`` values and coordinate labels, ready for ``nutpie.sample``
        or ``.with_data(...)``.

    Notes
    -----
    A model served from the disk cache has ``logp_func`` and ``expand_func``
    (the PyTensor functions) set to ``None``; nutpie does not use them for
    sampling. Sampling it with a given seed gives the same draws as sampling a
    freshly compiled model: the initial-point replica is only used when it was
    checked to be bit-identical to PyMC's function.

    Data whose shape differs from the compiled entry is accepted after
    checking that every sampled and deterministic variable keeps its shape.

    When the installed nutpie, numba or PyTensor is not one
    :mod:`hlm_cli.sampling._nutpie` supports, this is ``nutpie.compile_pymc_model(model)``
    (no memo, no disk cache; :func:`hlm_cli.sampling._nutpie.available` warns once).
    """
    compiled, slot = find(model, structure_key=structure_key, cache_dir=cache_dir)
    if compiled is not None:
        return compiled
    return compile_and_store(model, slot)


def find(model: pm.Model, *, structure_key: str, cache_dir: Path | None) -> tuple[Any | None, Slot]:
    """Look `model` up in the memo, then on disk: ``(compiled or None, slot)``.

    The slot says where :func:`compile_and_store` stores a compilation of `model`
    (its ``cache_dir`` is None when the disk cache is off, unusable or untrusted).
    """
    if not _nutpie.available():
        return None, Slot(structure_key, None, "", None, None)
    identity = _attempt("describing the model", _model_identity, model)
    if identity is None:  # cannot describe the model safely: no caching at all
        return None, Slot(structure_key, None, "", None, None)
    memo_key = _hash(["memo", structure_key, identity])

    with _MEMO_LOCK:
        entry = _MEMO.get(memo_key)
        if entry is not None:
            _MEMO.move_to_end(memo_key)
    if entry is not None:
        rebound = _attempt("re-binding a compiled model", _rebind, entry, model)
        if rebound is not None:
            _log.debug("compile cache: in-process hit")
            _count("memo_hits")
            return rebound, Slot(structure_key, identity, memo_key, None, None)

    store = _attempt("opening the cache directory", _open_store, Path(cache_dir)) if cache_dir is not None else None
    key = _attempt("computing the cache key", _disk_key, structure_key, identity) if store is not None else None
    if store is None or key is None:  # disabled, unusable or untrusted: compile without the disk cache
        return None, Slot(structure_key, identity, memo_key, None, None)
    entry_dir, secret = store
    path = entry_dir / (key + _ENTRY_SUFFIX)
    slot = Slot(structure_key, identity, memo_key, Path(cache_dir), path, secret)
    compiled = _attempt("loading a cache entry", _load_from_disk, model, path, secret)
    _log.debug("compile cache: disk %s (%s)", "hit" if compiled is not None else "miss", path)
    if compiled is None:
        return None, slot
    _count("disk_hits")
    _attempt("remembering a compiled model", _memoise, memo_key, compiled, isinstance(compiled.initial_point_func, _JitteredPoint))
    return compiled, slot


def compile_and_store(model: pm.Model, slot: Slot) -> Any:
    """Compile `model` (a miss of :func:`find`), write its entry to ``slot.path`` and
    memoise it."""
    _count("compiles")
    if slot.identity is None:
        import nutpie

        return nutpie.compile_pymc_model(model)
    compiled, records = _nutpie.compile_recording(model)
    point_spec = _attempt("describing the initial point", _initial_point_spec, model, compiled)
    if slot.path is not None and slot.secret is not None:
        if _attempt("writing a cache entry", _save_to_disk, model, slot.path, compiled, records, point_spec, slot.secret):
            _count("disk_writes")
    _attempt("remembering a compiled model", _memoise, slot.memo_key, compiled, point_spec is not None)
    return compiled


def pymc_point_fn(model: pm.Model) -> Any:
    """PyMC's seeded initial-point function as nutpie compiles it (the quick first fit's)."""
    return _nutpie.pymc_point_fn(model)


# --------------------------------------------------------------------------
# trust: who may write the cache, and the key that authenticates entries
# --------------------------------------------------------------------------

#: Secret keys read in this process, by key file path.
_KEYS: dict[str, bytes] = {}
#: Warnings already given in this process (each is given once).
_WARNED: set[str] = set()


class _Untrusted(Exception):
    """The cache directory or key file may be written (or read) by someone else."""


def _warn_once(message: str) -> None:
    with _MEMO_LOCK:
        if message in _WARNED:
            return
        _WARNED.add(message)
    _log.warning("%s", message)


def _owner_problem(st: os.stat_result, others: int = 0o022, verb: str = "write to") -> str | None:
    """Why a file or directory with status `st` is not trusted (``None``: it is)."""
    uid = os.getuid()
    if st.st_uid != uid:
        return f"it belongs to uid {st.st_uid}, not to you (uid {uid})"
    if st.st_mode & others:
        return f"group or others can {verb} it (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def _file_problem(st: os.stat_result) -> str | None:
    if not stat.S_ISREG(st.st_mode):
        return "it is not a regular file"
    return _owner_problem(st)


def _private_dir(path: Path) -> None:
    """Create `path` (mode 0700) if missing; raise :class:`_Untrusted` unless it is the
    user's own directory that group and others cannot write (``OSError`` if unusable)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(path))
    problem = _owner_problem(st)
    if problem is not None:
        fix = f"chmod go-w {path}" if st.st_uid == os.getuid() else "set HLM_CACHE_DIR to a directory of your own"
        raise _Untrusted(f"{path}: {problem}; {fix}, or pass --no-cache")


def _open_store(cache_dir: Path) -> tuple[Path, bytes] | None:
    """The entry directory under `cache_dir` and the key, or ``None`` (no disk cache).

    Untrusted directories and key files are refused with one WARNING per process;
    other failures (no permission, not a directory) are logged at DEBUG level.
    """
    try:
        _private_dir(cache_dir)
        entry_dir = cache_dir / _SUBDIR
        _private_dir(entry_dir)
        secret = _secret()
    except _Untrusted as err:
        _warn_once(f"warning: compiled-model cache not used (every fit compiles its model): {err}")
        return None
    except OSError as err:
        _log.debug("compile cache: %s unusable: %s", cache_dir, err)
        return None
    return entry_dir, secret


def _secret() -> bytes:
    """This user's cache key (see :func:`key_file`), created on first use."""
    path = key_file()
    cached = _KEYS.get(str(path))
    if cached is not None:
        return cached
    try:
        secret = _read_key(path)
    except FileNotFoundError:
        _create_key(path)
        secret = _read_key(path)
    _KEYS[str(path)] = secret
    return secret


def _read_key(path: Path) -> bytes:
    with open(path, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise _Untrusted(f"key file {path} is not a regular file; delete it (a new one is made)")
        problem = _owner_problem(st, others=0o077, verb="read or write")
        if problem is not None:
            raise _Untrusted(f"key file {path}: {problem}; delete it (a new one is made)")
        secret = fh.read(4096)
    if len(secret) < _KEY_SIZE:
        raise _Untrusted(f"key file {path} is shorter than {_KEY_SIZE} bytes; delete it (a new one is made)")
    return secret


def _create_key(path: Path) -> None:
    """Write 32 random bytes to `path` (mode 0600) unless another process got there first."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".cache.key.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(os.urandom(_KEY_SIZE))
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic, and never replaces a key another process made
        except FileExistsError:
            pass
        except OSError:  # no hard links on this file system
            os.replace(tmp, path)
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


# --------------------------------------------------------------------------
# keys, signatures, fingerprints
# --------------------------------------------------------------------------


def _hash(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def _dim_length(var: Any) -> int:
    if hasattr(var, "get_value"):
        return int(var.get_value())
    if hasattr(var, "data"):
        return int(var.data)
    return int(var.eval())


def _model_signature(model: pm.Model) -> dict[str, Any]:
    """Cheap (no graph compilation) description of the model's structure."""
    transforms = model.rvs_to_transforms
    return {
        "free": [
            [
                rv.name,
                str(rv.type),
                type(transforms.get(rv)).__name__,
                rv.owner.op.__class__.__name__,
            ]
            for rv in model.free_RVs
        ],
        "observed": [
            [rv.name, str(rv.type), rv.owner.op.__class__.__name__] for rv in model.observed_RVs
        ],
        "deterministics": [[v.name, str(v.type)] for v in model.deterministics],
        "potentials": [[v.name, str(v.type)] for v in model.potentials],
        "dims": {name: _dim_length(v) for name, v in model.dim_lengths.items()},
        "data": [[v.name, str(v.dtype), int(v.ndim)] for v in model.data_vars],
        "check_bounds": bool(model.check_bounds),
    }


def _model_identity(model: pm.Model) -> dict[str, Any]:
    """Signature plus graph fingerprint: what, besides the caller's key, keys the cache."""
    return {"signature": _model_signature(model), "graph": _graph_fingerprint(model)}


def _data_shapes(model: pm.Model) -> dict[str, tuple[int, ...]]:
    return {
        v.name: tuple(int(s) for s in np.shape(v.get_value(borrow=True))) for v in model.data_vars
    }


def _graph_fingerprint(model: pm.Model) -> str:
    """Hash of the model's generative graph.

    The log density PyMC derives (and nutpie compiles) is a function of the
    random-variable graph, the transforms (part of the signature) and the
    library versions (part of the environment), so hashing the graph of the
    free, observed and deterministic variables and potentials is enough and
    avoids building ``model.logp()``. Uses PyTensor's debug print (op names,
    types, variable names; ``pm.Data`` containers appear by name only) plus the
    bytes of every constant, so prior hyper-parameters folded into constants
    are covered even when the printout abbreviates them.
    """
    from pytensor.graph.basic import Constant
    from pytensor.printing import debugprint

    observed_values = [model.rvs_to_values[rv] for rv in model.observed_RVs]
    outputs = [
        *model.free_RVs,
        *model.observed_RVs,
        *observed_values,  # constants when the data are not pm.Data
        *model.deterministics,
        *model.potentials,
    ]
    hasher = hashlib.sha256()
    hasher.update(debugprint(outputs, file="str", print_type=True).encode())
    seen: set[int] = set()
    stack = list(outputs)
    consts = []
    while stack:
        var = stack.pop()
        if id(var) in seen:
            continue
        seen.add(id(var))
        if isinstance(var, Constant):
            consts.append(_constant_digest(var.data))
        elif var.owner is not None:
            stack.extend(var.owner.inputs)
    for digest in sorted(consts):
        hasher.update(digest.encode())
    return hasher.hexdigest()


def _constant_digest(value: Any) -> str:
    data = (
        np.asarray(value)
        if isinstance(value, np.ndarray | np.generic | int | float | bool)
        else None
    )
    if data is None or data.dtype.kind not in "biufc":
        # None, slices, strings, ...: object arrays' bytes would be pointers.
        return hashlib.sha256(repr(value).encode()).hexdigest()
    head = f"{data.dtype.str}{data.shape}".encode()
    return hashlib.sha256(head + np.ascontiguousarray(data).tobytes()).hexdigest()


@functools.lru_cache(maxsize=1)
def _environment() -> dict[str, Any]:
    """Everything outside the model that the compiled machine code depends on."""
    from importlib.metadata import PackageNotFoundError, version

    import numba
    import pytensor

    versions = {}
    for pkg in ("numpy", "numba", "llvmlite", "pytensor", "pymc", "nutpie"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    return {
        "format": _FORMAT_VERSION,
        "python": sys.version,
        "platform": platform.platform(),
        "versions": versions,
        "codegen": _nutpie.codegen_magic(),
        "numba_opt": str(numba.config.OPT),
        "fastmath": str(pytensor.config.numba__fastmath),
        "floatX": str(pytensor.config.floatX),
    }


# --------------------------------------------------------------------------
# compiling (cold path): nutpie's compile, recorded (hlm_cli.sampling._nutpie)
# --------------------------------------------------------------------------


class _JitteredPoint:
    """NumPy replica of PyMC's seeded initial-point function (support point + jitter).

    ``pymc.initial_point.make_initial_point_fn`` compiles a PyTensor function
    (~0.25 s, most of a warm cache load) that returns the transformed support
    point plus ``Uniform(-1, 1)`` jitter drawn from one generator per jittered
    variable, seeded through ``np.random.SeedSequence(seed).spawn(n_rngs)``.
    When the support point does not depend on ``pm.Data`` it is a constant,
    and this class reproduces the function bit for bit; :func:`_initial_point_spec`
    only stores a spec after checking that on several seeds, so sampling with a
    given seed gives the same draws whether or not the model came from the cache.

    Parameters
    ----------
    base : list of float
        Flat un-jittered initial point (float64) in nutpie's parameter order.
    segments : list of [int, int, int, list of int, str]
        ``[start, stop, rng_index, shape, dtype]`` per free variable;
        ``rng_index`` is -1 for variables without jitter.
    n_rngs : int
        Number of generators PyMC's function reseeds.
    """

    def __init__(self, base: list[float], segments: list[list[Any]], n_rngs: int) -> None:
        self._base = np.asarray(base, dtype=np.float64)
        self._base.flags.writeable = False
        self._segments = [
            (int(a), int(b), int(r), tuple(sh), np.dtype(dt)) for a, b, r, sh, dt in segments
        ]
        self._n_rngs = int(n_rngs)

    def __call__(self, seed: Any = None) -> np.ndarray:
        gens = [
            np.random.Generator(np.random.PCG64(sub))
            for sub in np.random.SeedSequence(seed).spawn(self._n_rngs)
        ]
        out = np.array(self._base, dtype=np.float64, order="C", copy=True)
        for start, stop, rng, shape, dtype in self._segments:
            if rng < 0:
                continue
            base = self._base[start:stop].reshape(shape)
            jitter = gens[rng].uniform(-1, 1, size=shape)
            out[start:stop] = (base + jitter).astype(dtype).ravel().astype(np.float64)
        return out


def _initial_point_spec(model: pm.Model, compiled: Any) -> dict[str, Any] | None:
    """Describe ``compiled.initial_point_func`` as a :class:`_JitteredPoint`, if exact.

    Returns ``None`` (warm loads then rebuild PyMC's function) when the
    support point depends on shared data, or when the replica does not match
    PyMC's function bit for bit on a handful of seeds.
    """
    from pymc.initial_point import make_initial_point_fn
    from pymc.pytensorf import find_rng_nodes
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.traversal import graph_inputs

    reference = compiled.initial_point_func  # nutpie: flat array wrapper(lock(pymc inner(fn)))
    fn = _nutpie.pytensor_point_fn(reference)
    if fn is None:
        return None
    outputs = fn.maker.fgraph.outputs
    rngs = find_rng_nodes(outputs)
    if len(rngs) > 256:
        return None
    # Dimension lengths are part of the cache key; any other shared input
    # (pm.Data) would make the support point data-dependent.
    # (pytensor.function clones shared variables; clones share the container.)
    dim_containers = {id(getattr(v, "container", None)) for v in model.dim_lengths.values()}
    rng_ids = {id(r) for r in rngs}
    for v in graph_inputs(outputs):
        if not isinstance(v, SharedVariable) or id(v) in rng_ids:
            continue
        if id(getattr(v, "container", None)) not in dim_containers:
            return None

    n_free = len(model.free_RVs)
    names = [str(n) for n in compiled.shape_info[0][:n_free]]
    shapes = [tuple(int(d) for d in np.asarray(s).ravel()) for s in compiled.shape_info[2][:n_free]]
    unjittered = make_initial_point_fn(
        model=model, default_strategy="support_point", jitter_rvs=set(), return_transformed=True
    )(0)
    base = np.concatenate(
        [np.asarray(unjittered[n], dtype=np.float64).ravel() for n in names] or [np.zeros(0)]
    )
    if base.shape != (int(compiled.n_dim),):
        return None
    seeds = [0, 1, 20240531, 2**40 + 7]
    refs = [np.asarray(reference(seed), dtype=np.float64) for seed in seeds]
    bounds = []
    start = 0
    for name, shape in zip(names, shapes, strict=True):
        stop = start + int(np.prod(shape, dtype=np.int64))
        bounds.append((start, stop, list(shape), str(np.asarray(unjittered[name]).dtype)))
        start = stop
    # A variable is jittered iff its value moves with the seed. PyMC reseeds
    # every generator in its graph (``find_rng_nodes`` order), not only the
    # jitter ones, so find the generator of each jittered variable by trial.
    subseeds = [np.random.SeedSequence(seed).spawn(len(rngs)) for seed in seeds]
    segments = []
    used: set[int] = set()
    for a, b, shape, dtype in bounds:
        if all(np.array_equal(ref[a:b], base[a:b]) for ref in refs):
            segments.append([a, b, -1, shape, dtype])
            continue
        found = None
        for r in range(len(rngs)):
            if r in used:
                continue
            if all(
                np.array_equal(
                    (
                        base[a:b].reshape(shape)
                        + np.random.Generator(np.random.PCG64(subs[r])).uniform(-1, 1, size=shape)
                    )
                    .astype(dtype)
                    .ravel(),
                    ref[a:b],
                )
                for subs, ref in zip(subseeds, refs, strict=True)
            ):
                found = r
                break
        if found is None:
            return None
        used.add(found)
        segments.append([a, b, found, shape, dtype])
    spec = {"base": base.tolist(), "segments": segments, "n_rngs": len(rngs)}
    replica = _JitteredPoint(**spec)
    if not all(np.array_equal(replica(seed), ref) for seed, ref in zip(seeds, refs, strict=True)):
        return None
    return spec


def _save_to_disk(
    model: pm.Model,
    path: Path,
    compiled: Any,
    records: list[Any] | None,
    point_spec: dict[str, Any] | None,
    secret: bytes,
) -> bool:
    """Write the cache entry for a cold compile; ``True`` if one was written."""
    if not records or len(records) != 2 or not _nutpie.is_compiled_pymc(compiled):
        return False
    logp_cres, expand_cres = records
    if (
        _nutpie.callback_name(logp_cres) != compiled.compiled_logp_func.native_name
        or _nutpie.callback_name(expand_cres) != compiled.compiled_expand_func.native_name
    ):
        return False
    logp_parts, expand_parts = _nutpie.reduce_result(logp_cres), _nutpie.reduce_result(expand_cres)
    if logp_parts is None or expand_parts is None:  # process-local addresses or lifted loops
        return False

    # The shared variables of the compiled functions must be pm.Data
    # containers that can be found again by (unique) name in a new model.
    data_names = [v.name for v in model.data_vars]
    shared = []
    for var, key in compiled.shared_var_keys.items():
        if var.name is None or data_names.count(var.name) != 1:
            return False
        value = compiled.shared_data[key]
        shared.append(
            {"name": var.name, "key": key, "ndim": int(var.ndim), "dtype": str(value.dtype)}
        )

    names, slices, shapes = compiled.shape_info
    n_free = len(model.free_RVs)
    meta = {
        "n_dim": int(compiled.n_dim),
        "n_expanded": int(compiled.n_expanded),
        "names": [str(n) for n in names],
        "slices": [[int(s.start), int(s.stop)] for s in slices],
        "shapes": [[int(d) for d in np.asarray(s).ravel()] for s in shapes],
        "n_free": n_free,
        "reparameterized_names": list(compiled.reparameterized_names or []),
        "shared": shared,
        "user_data_dtype": compiled.user_data.dtype.descr,
        "data_shapes": {k: list(v) for k, v in _data_shapes(model).items()},
    }
    if sum(int(np.prod(s)) for s in meta["shapes"][:n_free]) != meta["n_dim"]:
        return False

    meta["initial_point"] = point_spec
    meta["external_symbols"] = sorted(_nutpie.external_symbols(logp_cres) | _nutpie.external_symbols(expand_cres))
    payload = {
        "format": _FORMAT_VERSION,
        "meta": meta,
        "logp": logp_parts,
        "expand": expand_parts,
    }
    _atomic_write(path, _seal(secret, path.name, _nutpie.dumps(payload)))
    _prune(path.parent)
    return True


def _prune(entry_dir: Path) -> None:
    """Keep at most ``_MAX_ENTRIES`` entries, dropping the least recently used."""
    keep_newest(entry_dir, "*" + _ENTRY_SUFFIX, _MAX_ENTRIES)


def keep_newest(directory: Path, pattern: str, keep: int) -> None:
    """Delete all but the ``keep`` most recently modified files matching ``pattern`` in
    ``directory`` (files that vanish or cannot be removed meanwhile are skipped)."""
    found = []
    for p in directory.glob(pattern):
        try:
            found.append((p.stat().st_mtime, p))
        except OSError:
            continue
    found.sort()
    for _, p in found[: max(0, len(found) - keep)]:
        try:
            p.unlink()
        except OSError:
            pass


def _atomic_write(path: Path, blob: bytes) -> None:
    """Write `blob` to `path` (mode 0600) through a temporary file and ``os.replace``."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# --------------------------------------------------------------------------
# loading (warm path)
# --------------------------------------------------------------------------


def _disk_key(structure_key: str, identity: dict[str, Any]) -> str:
    return _hash(["disk", structure_key, identity, _environment()])


def _entry_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / _SUBDIR / (key + _ENTRY_SUFFIX)


def _seal(secret: bytes, name: str, body: bytes) -> bytes:
    """The bytes of an entry: magic, HMAC-SHA256 tag, body (the pickle)."""
    return _MAGIC + _tag(secret, name, body) + body


def _tag(secret: bytes, name: str, body: bytes) -> bytes:
    # The file name (the disk key) is authenticated too, so an entry cannot be
    # moved to another model's name.
    mac = hmac.new(secret, _MAGIC, hashlib.sha256)
    mac.update(name.encode() + b"\x00")
    mac.update(body)
    return mac.digest()


def _read_entry(path: Path, secret: bytes) -> dict[str, Any] | None:
    """The payload of the entry at `path`, or ``None``.

    Nothing is unpickled unless the file is the user's own regular file, not
    writable by group or others, and its HMAC tag checks out. An entry that
    fails any check, or has another format, is deleted (the next compile writes
    it again); a missing file is just a miss.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno == errno.ELOOP:  # a symbolic link: hlm never writes one
            _discard(path, None, "a symbolic link")
        return None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        problem = _file_problem(st)
        blob = fh.read() if problem is None else b""
    if problem is not None:
        _warn_once(f"warning: compiled-model cache entry not loaded, {path}: {problem}; it is deleted and compiled again")
        _discard(path, st, problem)
        return None
    head = len(_MAGIC) + _TAG_SIZE
    if len(blob) <= head or not blob.startswith(_MAGIC):
        _discard(path, st, "truncated or not an entry")
        return None
    tag, body = blob[len(_MAGIC) : head], blob[head:]
    if not hmac.compare_digest(tag, _tag(secret, path.name, body)):
        _discard(path, st, "authentication failed (corrupt, or written under another key)")
        return None
    payload = pickle.loads(body)  # authenticated: written by this user's hlm
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT_VERSION:
        _discard(path, st, "another entry format")
        return None
    return payload


def _discard(path: Path, st: os.stat_result | None, why: str) -> None:
    """Delete the entry at `path` if it is still the file that was examined."""
    _log.debug("compile cache: dropping entry %s: %s", path, why)
    try:
        now = os.stat(path, follow_symlinks=False)
        if st is None or (now.st_ino, now.st_dev) == (st.st_ino, st.st_dev):
            os.unlink(path)
    except OSError:
        pass


def _load_from_disk(model: pm.Model, path: Path, secret: bytes) -> Any | None:
    payload = _read_entry(path, secret)
    if payload is None:
        return None
    meta = payload["meta"]
    data_vars = {v.name: v for v in model.data_vars}
    if any(s["name"] not in data_vars for s in meta["shared"]):
        return None
    shapes = {n: tuple(s) for n, s in zip(meta["names"], meta["shapes"], strict=True)}
    data_shapes = {k: tuple(v) for k, v in meta["data_shapes"].items()}
    if not _shapes_ok(model, shapes, data_shapes):
        return None

    callbacks = _nutpie.load_callbacks(payload["logp"], payload["expand"], meta["external_symbols"])
    if callbacks is None:  # the process lacks a symbol the object code needs
        return None
    logp_fn, expand_fn = callbacks
    compiled = _assemble(model, meta, logp_fn, expand_fn)
    if compiled is not None:
        try:
            os.utime(path)  # keeps frequently used entries out of _prune's way
        except OSError:
            pass
    return compiled


def _shapes_ok(
    model: pm.Model, shapes: dict[str, tuple[int, ...]], data_shapes: dict[str, tuple[int, ...]]
) -> bool:
    """Check a reused compilation still fits the model's current data.

    When the ``pm.Data`` shapes are those the code was compiled with, the
    (key-matched) graph implies identical variable shapes. Otherwise ask PyMC
    for the shapes of every sampled/deterministic variable.
    """
    if _data_shapes(model) == data_shapes:
        return True
    current = _nutpie.compute_shapes(model)
    for name, shape in shapes.items():
        if name not in current or tuple(int(d) for d in np.asarray(current[name]).ravel()) != shape:
            return False
    return True


def _pymc_initial_point_fn(
    model: pm.Model, *, names: list[str], shapes: list[tuple[int, ...]]
) -> Any:
    """PyMC's seeded initial-point function, wrapped exactly as nutpie does."""
    return _nutpie.flat_point_fn(_nutpie.pymc_point_fn(model), names=names, shapes=shapes)


def _assemble(model: pm.Model, meta: dict[str, Any], logp_fn: Any, expand_fn: Any) -> Any:
    """Rebuild a ``CompiledPyMCModel`` from cached metadata and callbacks."""
    spec = meta.get("initial_point")
    if spec is not None:
        initial_point_fn = _JitteredPoint(**spec)
    else:
        n_free = meta["n_free"]
        initial_point_fn = _pymc_initial_point_fn(
            model, names=meta["names"][:n_free], shapes=[tuple(s) for s in meta["shapes"][:n_free]]
        )
    return _nutpie.assemble(model, meta, logp_fn, expand_fn, initial_point_fn)


# --------------------------------------------------------------------------
# in-process memo
# --------------------------------------------------------------------------


def _memoise(memo_key: str, compiled: Any, fixed_point: bool) -> None:
    shapes = _nutpie.compiled_shapes(compiled)
    if shapes is None:
        return
    entry = _MemoEntry(
        compiled=compiled,
        shapes=dict(shapes),
        data_shapes=_data_shapes_from(compiled),
        fixed_point=fixed_point,
    )
    with _MEMO_LOCK:
        _MEMO[memo_key] = entry
        _MEMO.move_to_end(memo_key)
        while len(_MEMO) > _MEMO_MAX:
            _MEMO.popitem(last=False)


def _data_shapes_from(compiled: Any) -> dict[str, tuple[int, ...]]:
    return {
        var.name: tuple(int(s) for s in compiled.shared_data[key].shape)
        for var, key in compiled.shared_var_keys.items()
    }


def _rebind(entry: _MemoEntry, model: pm.Model) -> Any | None:
    """Return the memoised model bound to `model`'s data and coordinates."""
    compiled = entry.compiled
    data_vars = {v.name: v for v in model.data_vars}
    names = [var.name for var in compiled.shared_var_keys]
    if any(n not in data_vars for n in names):
        return None
    current = {n: s for n, s in _data_shapes(model).items() if n in names}
    if current != entry.data_shapes and not _shapes_ok(model, entry.shapes, {}):
        return None
    updates = {n: data_vars[n].get_value() for n in names}
    rebound = compiled.with_data(**updates) if updates else compiled
    dims, coords = _nutpie.dims_and_coords(model, compiled.shape_info, compiled.reparameterized_names or [])
    point_fn = None
    if not entry.fixed_point:
        # The support point may depend on pm.Data: use the new model's values, in the function
        # built once for this structure (same graph, same shapes: only the values differ)
        if entry.point_fn is not None:
            point_fn, shared = entry.point_fn
            for n, var in data_vars.items():
                if n in shared:
                    shared[n].set_value(var.get_value())
        else:
            n_free = len(model.free_RVs)
            point_fn = _pymc_initial_point_fn(
                model,
                names=list(compiled.shape_info[0][:n_free]),
                shapes=[tuple(int(d) for d in np.ravel(s)) for s in compiled.shape_info[2][:n_free]],
            )
            if point_fn is not None:
                object.__setattr__(entry, "point_fn", (point_fn, dict(data_vars)))
    return _nutpie.rebind(rebound, dims=dims, coords=coords, initial_point_func=point_fn)


def _attempt(what: str, fn: Any, *args: Any) -> Any:
    """Run one cache step; an unexpected error means "no cache for this step".

    Expected outcomes (a miss, an entry that does not fit, an untrusted directory) are
    return values of the steps, not exceptions. An exception here is a bug or an upstream
    change :func:`hlm_cli.sampling._nutpie.check` did not catch: the fit goes on without the
    cache (it compiles the model), and the failing step is reported once per process at
    WARNING level with the error, so a slow fit always says why.
    """
    try:
        return fn(*args)
    except Exception as err:  # noqa: BLE001 - the cache must never break a fit
        _log.debug("compile cache: %s failed", what, exc_info=True)
        with _MEMO_LOCK:
            first = what not in _FAILED
            _FAILED.add(what)
        if first:
            _log.warning("warning: compiled-model cache: %s failed (%s: %s); compiling without the cache",
                         what, type(err).__name__, str(err).splitlines()[0] if str(err) else "")
        return None
