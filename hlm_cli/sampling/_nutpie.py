"""Every use of nutpie's, numba's, PyTensor's, llvmlite's and xarray's private names, behind one door.

hlm's fast paths (the compiled-model cache, :mod:`hlm_cli.sampling.cache`, and the quick first
fit, :mod:`hlm_cli.sampling.quick`) need pieces of those libraries that are not their public
API: nutpie's helpers that turn a PyMC model into a ``CompiledPyMCModel``, numba's compile
results (to store and reload object code), PyTensor's jitted function. This module is the only
place in hlm that touches them, and it is written for the versions in :data:`SUPPORTED`:

=========  ===============  ==========================================================
library    supported        private names used
=========  ===============  ==========================================================
nutpie     0.16.x           ``compile_pymc._compute_shapes``, ``_rv_dict_to_flat_array_wrapper``,
                            ``_wrap_with_lock``, ``_prepare_dims_and_coords``,
                            ``_make_functions``, ``_make_c_logp_func`` /
                            ``_make_c_expand_func`` (replaced while compiling, see
                            :func:`compile_recording`), ``CompiledPyMCModel(_n_dim=,
                            _coords=, _shapes=)``, the three ``functools.wraps`` layers
                            around PyMC's initial-point function (``__wrapped__``)
numba      0.68.x           ``CompileResult._reduce`` / ``_rebuild``, ``library._final_module``,
                            ``numba.core`` (compiler, registry, runtime, serialize)
pytensor   3.3.x            ``Function.vm.jit_fn`` (set by ``JITLinker.make_all``)
llvmlite   0.50.x           (numba's pin; ``binding.address_of_symbol`` is public)
xarray     checked, any     ``namedarray.pycompat._cached_duck_array_modules`` and
                            ``DuckArrayModule`` (:func:`defer_duck_arrays`; checked by
                            :func:`xarray_problems`, skipped when they changed)
=========  ===============  ==========================================================

:func:`available` says whether the fast paths may run in this process: the installed versions
are within :data:`SUPPORTED` and :func:`check` finds every name with the expected signature.
When not, hlm compiles the standard, public way (``nutpie.compile_pymc_model``; every fit pays
the full compile) and says so once, at WARNING level on the ``hlm_cli.sampling`` logger.
tests/unit/test_upstream.py fails when a dependency moves out of range or :func:`check` fails,
so an upgrade breaks hlm's test suite instead of silently slowing every user's fits.

Importing nutpie without arviz's plotting stack
-----------------------------------------------
``nutpie.sample`` does ``import arviz`` at import time and then only calls ``arviz.from_dict``
and ``arviz.dict_to_dataset``, both arviz_base's functions (arviz 1.x re-exports them). The
full ``arviz`` package also imports arviz_plots and matplotlib.pyplot (0.3-0.6 s per run that
hlm does not need; hlm's figures import matplotlib themselves when drawn). :func:`import_nutpie`
therefore imports nutpie inside :func:`_arviz_base_as_arviz`, a context manager that puts a
module holding arviz_base's two functions at ``sys.modules["arviz"]`` *only for the duration of
``import nutpie``* and then restores ``sys.modules`` as it was. Afterwards ``import arviz``
anywhere in the process (a user of hlm as a library, a plugin) gets the real package; only
nutpie's own module keeps a reference to the stand-in, whose two functions are the very
functions ``arviz`` exports, and any other attribute is looked up on the real arviz. When
arviz or nutpie is already imported, nothing is replaced.

arviz_base itself is imported in a short-lived thread: on import it asks ``lazy_loader.load``
for jax and numpyro, and when they are not installed lazy_loader calls ``inspect.stack()``,
which reads the source of every frame on the calling thread's stack (hlm's, typer's, click's:
about 0.1-0.3 s). A new thread's stack is a handful of frames; nothing is patched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import importlib.util
import inspect
import logging
import sys
import threading
import types
import warnings
from typing import Any

import numpy as np

#: Supported versions of each library: [lowest, highest) as (major, minor) pairs.
SUPPORTED: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    "nutpie": ((0, 16), (0, 17)),
    "numba": ((0, 68), (0, 69)),
    "pytensor": ((3, 3), (3, 4)),
    "llvmlite": ((0, 50), (0, 51)),
}

_log = logging.getLogger("hlm_cli.sampling")
_STATE: dict[str, Any] = {}
_STATE_LOCK = threading.Lock()


class UpstreamChanged(RuntimeError):
    """A private name this module relies on is missing or has another signature."""


# --------------------------------------------------------------------------
# versions and the check
# --------------------------------------------------------------------------


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _major_minor(text: str) -> tuple[int, int] | None:
    parts = text.split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or "x")
    except (IndexError, ValueError):
        return None


def version_problems() -> list[str]:
    """One line per installed library outside :data:`SUPPORTED` (empty: all supported)."""
    problems = []
    for package, (low, high) in SUPPORTED.items():
        got = _version(package)
        mm = _major_minor(got) if got else None
        span = f"{low[0]}.{low[1]}.x" if (high[0], high[1] - 1) == low else f">={low[0]}.{low[1]},<{high[0]}.{high[1]}"
        if got is None:
            problems.append(f"{package} is not installed (hlm's fast path supports {span})")
        elif mm is None or not low <= mm < high:
            side = "newer" if mm is not None and mm >= high else "older"
            problems.append(f"{package} {got} is {side} than hlm's fast path supports ({span})")
    return problems


def _params(fn: Any) -> list[str]:
    return list(inspect.signature(fn).parameters)


def _expect_params(problems: list[str], owner: str, fn: Any, expected: list[str]) -> None:
    if fn is None:
        problems.append(f"{owner} is missing")
        return
    try:
        got = _params(fn)
    except (TypeError, ValueError):
        problems.append(f"{owner} has no signature")
        return
    if got != expected:
        problems.append(f"{owner}{tuple(got)} is not {owner}{tuple(expected)}")


def _source_has(problems: list[str], owner: str, obj: Any, text: str) -> None:
    try:
        source = inspect.getsource(obj)
    except (OSError, TypeError):
        problems.append(f"no source for {owner} (looking for {text!r})")
        return
    if text not in source:
        problems.append(f"{owner} no longer does {text!r}")


def check() -> list[str]:
    """Verify every upstream name this module uses: one line per problem (empty: all there).

    Checks names and parameter lists of nutpie's private helpers, the fields of
    ``CompiledPyMCModel``, numba's compile-result methods and the attributes PyTensor and numba
    set in their own code (``fn.jit_fn``, ``self._final_module``), and that nutpie forwards
    extra keyword arguments to ``numba.cfunc``. Imports nutpie, numba and PyTensor.
    """
    problems: list[str] = []
    try:
        import_nutpie()
        import numba.core.codegen as codegen
        import numba.core.compiler as ncompiler
        import numba.core.compiler_lock  # noqa: F401
        import numba.core.registry  # noqa: F401
        import numba.core.runtime  # noqa: F401
        import numba.core.serialize as nserialize
        import nutpie.compile_pymc as ncp
        import nutpie.compiled_pyfunc as npf
        import pytensor.link.basic as plink
    except ImportError as err:
        return [f"cannot import {err.name}: {err}"]

    g = functools.partial(getattr, ncp)
    _expect_params(problems, "nutpie.compile_pymc._compute_shapes", g("_compute_shapes", None), ["model"])
    _expect_params(problems, "nutpie.compile_pymc._rv_dict_to_flat_array_wrapper",
                   g("_rv_dict_to_flat_array_wrapper", None), ["fn", "names", "shapes"])
    _expect_params(problems, "nutpie.compile_pymc._wrap_with_lock", g("_wrap_with_lock", None), ["func"])
    _expect_params(problems, "nutpie.compile_pymc._prepare_dims_and_coords", g("_prepare_dims_and_coords", None),
                   ["model", "shape_info", "reparameterized_names"])
    _expect_params(problems, "nutpie.compile_pymc._make_functions", g("_make_functions", None),
                   ["model", "mode", "compute_grad", "join_expanded", "pymc_initial_point_fn", "var_names"])
    _expect_params(problems, "nutpie.compile_pymc._make_c_logp_func", g("_make_c_logp_func", None),
                   ["n_dim", "logp_fn", "user_data", "shared_keys", "shared_data"])
    _expect_params(problems, "nutpie.compile_pymc._make_c_expand_func", g("_make_c_expand_func", None),
                   ["n_dim", "n_expanded", "expand_fn", "user_data", "shared_var_keys", "shared_data"])
    _expect_params(problems, "nutpie.compile_pymc.make_extraction_fn", g("make_extraction_fn", None),
                   ["inner", "shared_data", "shared_var_keys", "record_dtype"])
    _expect_params(problems, "nutpie.compile_pymc.make_user_data", g("make_user_data", None),
                   ["shared_var_keys", "shared_data"])
    compile_fn = g("compile_pymc_model", None)
    if compile_fn is None or "kwargs" not in _params(compile_fn):
        problems.append("nutpie.compile_pymc_model no longer takes **kwargs (forwarded to numba.cfunc)")
    _source_has(problems, "nutpie.compile_pymc._compile_pymc_model_numba", g("_compile_pymc_model_numba", None),
                "_make_c_logp_func(")
    model_cls = g("CompiledPyMCModel", None)
    fields = {f.name for f in dataclasses.fields(model_cls)} if dataclasses.is_dataclass(model_cls) else set()
    need = {"_n_dim", "_coords", "_shapes", "dims", "compiled_logp_func", "compiled_expand_func", "initial_point_func",
            "shared_data", "shared_var_keys", "user_data", "n_expanded", "shape_info", "logp_func", "expand_func",
            "reparameterized_names"}
    if need - fields:
        problems.append(f"nutpie CompiledPyMCModel lacks the fields {sorted(need - fields)}")
    from_pyfunc = getattr(npf, "from_pyfunc", None)
    used = {"ndim", "make_logp_fn", "make_expand_fn", "make_initial_point_fn", "expanded_dtypes", "expanded_shapes",
            "expanded_names", "dims", "coords", "reparameterized_names"}
    if from_pyfunc is None or used - set(_params(from_pyfunc)):
        problems.append(f"nutpie.compiled_pyfunc.from_pyfunc does not take {sorted(used)}")
    if not hasattr(npf, "PyFuncModel"):
        problems.append("nutpie.compiled_pyfunc.PyFuncModel is missing")

    cres_cls = getattr(ncompiler, "CompileResult", None)
    for name in ("_reduce", "_rebuild"):
        if not callable(getattr(cres_cls, name, None)):
            problems.append(f"numba CompileResult.{name} is missing")
    if cres_cls is not None and callable(getattr(cres_cls, "_rebuild", None)):
        _expect_params(problems, "numba CompileResult._rebuild", cres_cls._rebuild,
                       ["target_context", "libdata", "fndesc", "env", "signature", "objectmode", "lifted", "typeann",
                        "reload_init", "referenced_envs"])
    if not callable(getattr(getattr(ncompiler, "Compiler", None), "compile_extra", None)):
        problems.append("numba Compiler.compile_extra is missing")
    if not callable(getattr(nserialize, "dumps", None)):
        problems.append("numba.core.serialize.dumps is missing")
    _source_has(problems, "numba.core.codegen", codegen, "self._final_module = ")
    lib_cls = getattr(codegen, "JITCodeLibrary", None)
    for name in ("serialize_using_object_code", "get_pointer_to_function", "has_dynamic_globals"):
        if not hasattr(lib_cls, name):
            problems.append(f"numba JITCodeLibrary.{name} is missing")
    _source_has(problems, "pytensor.link.basic.JITLinker.make_all", getattr(getattr(plink, "JITLinker", None), "make_all", None),
                "fn.jit_fn = jit_fn")
    return problems


def background_problems() -> list[str]:
    """What ``--ess`` (:mod:`hlm_cli.sampling.ess`) needs of nutpie's background sampler and is
    missing: ``nutpie.sample(..., blocking=False)`` returning ``nutpie.sample._BackgroundSampler``
    with ``inspect()``, ``wait()``, ``cancel()`` and ``is_finished`` (which nutpie 0.16 answers with
    a TimeoutError while the chains run). Empty: all there. Separate from :func:`check`: a
    change here breaks ``--ess`` only, not the compiled-model cache."""
    try:
        nutpie = import_nutpie()
        nsample = importlib.import_module("nutpie.sample")  # the module: ``nutpie.sample`` is the function
    except ImportError as err:
        return [f"cannot import {err.name}: {err}"]
    problems = []
    sample_fn = getattr(nsample, "sample", None) if callable(getattr(nutpie, "sample", None)) else None
    if sample_fn is None or "blocking" not in _params(sample_fn):
        problems.append("nutpie.sample no longer takes blocking=")
    cls = getattr(nsample, "_BackgroundSampler", None)
    if cls is None:
        problems.append("nutpie.sample._BackgroundSampler is missing")
    else:
        for name in ("inspect", "wait", "cancel", "is_finished"):
            if not hasattr(cls, name):
                problems.append(f"nutpie's background sampler has no {name}")
    return problems


def available() -> bool:
    """Whether hlm's fast paths may use the private names here (checked once per process).

    When they may not, the reason is logged once at WARNING level on ``hlm_cli.sampling``.
    """
    with _STATE_LOCK:
        if "ok" in _STATE:
            return _STATE["ok"]
    problems = version_problems()
    if not problems:
        try:
            problems = check()
        except Exception as err:  # noqa: BLE001 - an upstream change we did not foresee
            problems = [f"the check itself failed ({type(err).__name__}: {err})"]
    ok = not problems
    with _STATE_LOCK:
        first = "ok" not in _STATE
        _STATE["ok"] = ok
        _STATE["problems"] = problems
    if first and not ok:
        what = problems[0] if len(problems) == 1 else f"{problems[0]}; and {len(problems) - 1} more"
        _log.warning("warning: %s; compiling the standard way (slower first fit)", what)
    return ok


def problems() -> list[str]:
    """What :func:`available` found (empty before it ran or when all is well)."""
    with _STATE_LOCK:
        return list(_STATE.get("problems", []))


def _reset() -> None:
    """Forget what :func:`available` found (tests)."""
    with _STATE_LOCK:
        _STATE.clear()


# --------------------------------------------------------------------------
# importing nutpie without arviz's plotting stack
# --------------------------------------------------------------------------


def import_nutpie() -> types.ModuleType:
    """``import nutpie``, without importing the full arviz package (see the module docstring)."""
    if "nutpie" in sys.modules:
        return sys.modules["nutpie"]
    if "arviz" in sys.modules:
        import nutpie

        return nutpie
    with _arviz_base_as_arviz():
        import nutpie
    return nutpie


def import_arviz_base() -> types.ModuleType:
    """Import arviz_base in a new thread (a shallow stack for lazy_loader's ``inspect.stack``)."""
    if "arviz_base" in sys.modules:
        return sys.modules["arviz_base"]
    failure: list[BaseException] = []

    def load() -> None:
        try:
            importlib.import_module("arviz_base")
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            failure.append(err)

    loader = threading.Thread(target=load, name="hlm-import-arviz-base")
    loader.start()
    loader.join()
    if failure:
        raise failure[0]
    return sys.modules["arviz_base"]


@contextlib.contextmanager
def _arviz_base_as_arviz():
    """For the duration of the ``with`` block only: ``sys.modules["arviz"]`` is a module with
    arviz_base's ``from_dict`` and ``dict_to_dataset`` (other names come from the real arviz,
    imported on first use). ``sys.modules`` is restored on exit, so no later import sees it."""
    arviz_base = import_arviz_base()
    stand_in = types.ModuleType("arviz", "arviz_base's from_dict and dict_to_dataset, for nutpie (hlm_cli.sampling._nutpie)")
    stand_in.from_dict = arviz_base.from_dict
    stand_in.dict_to_dataset = arviz_base.dict_to_dataset

    def real_arviz(name: str) -> Any:
        if sys.modules.get("arviz") is stand_in:
            raise AttributeError(name)
        return getattr(importlib.import_module("arviz"), name)

    stand_in.__getattr__ = real_arviz
    previous = sys.modules.get("arviz")
    sys.modules["arviz"] = stand_in
    try:
        yield
    finally:
        if sys.modules.get("arviz") is stand_in:
            if previous is None:
                del sys.modules["arviz"]
            else:
                sys.modules["arviz"] = previous


# --------------------------------------------------------------------------
# xarray: no dask.array or sparse import for a process that never makes such arrays
# --------------------------------------------------------------------------

#: The duck-array libraries whose import :func:`defer_duck_arrays` defers: xarray's module
#: name -> (the module that defines the array class, its name), as in xarray's DuckArrayModule.
DEFERRED_DUCK_ARRAYS: dict[str, tuple[str, str]] = {"dask": ("dask.array", "Array"), "sparse": ("sparse", "SparseArray")}


class _LazyArrayType(type):
    """``isinstance(x, cls)`` is ``isinstance(x, <module>.<name>)`` once that module has been
    imported, and False before: no such array can exist before its module is imported."""

    _where: tuple[str, str]

    def _real(cls) -> type | None:
        module, name = cls._where
        return getattr(sys.modules.get(module), name, None)

    def __instancecheck__(cls, obj: Any) -> bool:
        real = cls._real()
        return real is not None and isinstance(obj, real)

    def __subclasscheck__(cls, sub: type) -> bool:
        real = cls._real()
        return real is not None and issubclass(sub, real)


def lazy_array_type(module: str, name: str) -> type:
    """A class standing for ``module.name`` in isinstance checks, without importing it."""
    return _LazyArrayType(f"Lazy{name}", (), {"_where": (module, name), "__module__": __name__})


@functools.cache  # xarray cannot change within a process: checked once, not on every call
def xarray_problems() -> tuple[str, ...]:
    """What :func:`defer_duck_arrays` needs from xarray, checked (empty: all there)."""
    try:
        pycompat = importlib.import_module("xarray.namedarray.pycompat")
    except ImportError as err:
        return (f"cannot import {err.name}: {err}",)
    problems: list[str] = []
    cache = getattr(pycompat, "_cached_duck_array_modules", None)
    if not isinstance(cache, dict):
        problems.append("xarray.namedarray.pycompat._cached_duck_array_modules is missing or not a dict")
    duck = getattr(pycompat, "DuckArrayModule", None)
    if duck is None:
        problems.append("xarray.namedarray.pycompat.DuckArrayModule is missing")
    else:
        _source_has(problems, "xarray.namedarray.pycompat.DuckArrayModule", duck, 'import_module("dask.array").Array')
        _source_has(problems, "xarray.namedarray.pycompat.DuckArrayModule", duck, "duck_array_module.SparseArray")
    getter = getattr(pycompat, "_get_cached_duck_array_module", None)
    if getter is None:
        problems.append("xarray.namedarray.pycompat._get_cached_duck_array_module is missing")
    else:
        _source_has(problems, "xarray.namedarray.pycompat._get_cached_duck_array_module", getter,
                    "_cached_duck_array_modules[mod]")
    return tuple(problems)


def defer_duck_arrays() -> list[str]:
    """Keep xarray from importing dask.array and sparse in a process that never creates such
    arrays; returns the libraries deferred.

    xarray asks ``isinstance(data, dask.array.Array)`` on the first DataArray it builds, and
    ``isinstance(data, sparse.SparseArray)`` when it converts one to numpy, and finds each
    class by importing its library whenever that library is installed: dask.array costs
    0.3-0.45 s, sparse (which imports numba) about 0.5 s. Both come with hlm's development
    extras (dask, and Bambi requires sparse). A fit paid them on its critical path in three
    processes: nutpie's conversion of the draws, the figure helper's tables and the helper's
    figure child. This puts an entry for each in xarray's cache of duck-array modules
    (``xarray.namedarray.pycompat._cached_duck_array_modules``, private) whose type is a
    :func:`lazy_array_type`: the same answer for every object, without the import. Its
    ``module`` and ``version`` fields are read only by xarray code that already holds such an
    array, and are filled in (importing the library) on first use. A library is skipped when
    xarray has already cached its answer, the library is already imported or not installed,
    and everything is skipped when :func:`xarray_problems` finds xarray changed (xarray then
    imports them as usual: slower, not wrong). Children forked afterwards inherit the entries.
    """
    if xarray_problems():
        return []
    pycompat = importlib.import_module("xarray.namedarray.pycompat")
    cache = pycompat._cached_duck_array_modules
    done = []
    for mod, (module, name) in DEFERRED_DUCK_ARRAYS.items():
        if mod in cache or mod in sys.modules or module in sys.modules or importlib.util.find_spec(mod) is None:
            continue
        cache[mod] = _deferred_entry(pycompat.DuckArrayModule, mod, lazy_array_type(module, name))
        done.append(mod)
    return done


def _deferred_entry(base: type, mod: str, lazy: type) -> Any:
    class Deferred(base):
        def __init__(self) -> None:  # nothing imported until a field other than .type is read
            self.type = (lazy,)
            self.available = True

        def __getattr__(self, attr: str) -> Any:  # module, version: the real entry's
            if attr in ("module", "version"):
                real = base(mod)
                self.module, self.version = real.module, real.version
                return getattr(real, attr)
            raise AttributeError(attr)

    return Deferred()


# --------------------------------------------------------------------------
# nutpie: building and re-binding CompiledPyMCModel
# --------------------------------------------------------------------------


def compute_shapes(model: Any) -> dict[str, Any]:
    """Shapes of every sampled and deterministic variable of ``model`` (nutpie's helper)."""
    from nutpie.compile_pymc import _compute_shapes

    return _compute_shapes(model)


def pymc_point_fn(model: Any) -> Any:
    """PyMC's initial-point function with ``nutpie.compile_pymc_model``'s defaults (jittered
    support point, returning a dict of transformed values), behind nutpie's lock."""
    from nutpie.compile_pymc import _wrap_with_lock
    from pymc.initial_point import make_initial_point_fn

    point_fn = make_initial_point_fn(
        model=model,
        default_strategy="support_point",
        jitter_rvs=set(model.free_RVs),
        return_transformed=True,
    )
    return _wrap_with_lock(point_fn)


def flat_point_fn(point_fn: Any, *, names: list[str], shapes: list[tuple[int, ...]]) -> Any:
    """``point_fn`` (a dict of arrays per seed) as nutpie wraps it: one flat float64 array."""
    from nutpie.compile_pymc import _rv_dict_to_flat_array_wrapper

    return _rv_dict_to_flat_array_wrapper(point_fn, names=names, shapes=shapes)


def pytensor_point_fn(initial_point_func: Any) -> Any | None:
    """The PyTensor function inside a compiled model's initial-point function (nutpie wraps
    PyMC's function, which wraps the compiled PyTensor function: three ``functools.wraps``
    layers), or None when it is not there."""
    fn = initial_point_func
    for _ in range(3):
        fn = getattr(fn, "__wrapped__", None)
    return fn if fn is not None and hasattr(fn, "maker") else None


def dims_and_coords(model: Any, shape_info: Any, reparameterized: list[str]) -> tuple[dict, dict]:
    """The dims and coords nutpie gives a compiled model of ``model``."""
    from nutpie.compile_pymc import _prepare_dims_and_coords

    return _prepare_dims_and_coords(model, shape_info, reparameterized)


def compiled_shapes(compiled: Any) -> dict[str, tuple[int, ...]] | None:
    """The variable shapes of a ``CompiledPyMCModel`` (None for other models)."""
    return getattr(compiled, "_shapes", None)


def rebind(compiled: Any, *, dims: dict, coords: dict, initial_point_func: Any | None = None) -> Any:
    """``compiled`` (a CompiledPyMCModel) with other dims, coords and initial-point function."""
    changes: dict[str, Any] = {"dims": dims, "_coords": coords}
    if initial_point_func is not None:
        changes["initial_point_func"] = initial_point_func
    return dataclasses.replace(compiled, **changes)


def assemble(model: Any, meta: dict[str, Any], logp_fn: Any, expand_fn: Any, initial_point_fn: Any) -> Any | None:
    """A ``CompiledPyMCModel`` from cached metadata (:mod:`hlm_cli.sampling.cache`) and C
    callbacks; None when ``model``'s data do not fit the metadata."""
    from nutpie.compile_pymc import CompiledPyMCModel, make_user_data

    data_vars = {v.name: v for v in model.data_vars}
    shared_var_keys = {}
    shared_data = {}
    for item in meta["shared"]:
        var = data_vars[item["name"]]
        if int(var.ndim) != item["ndim"]:
            return None
        value = np.array(var.get_value(), dtype=item["dtype"], order="C", copy=True)
        value.flags.writeable = False
        shared_var_keys[var] = item["key"]
        shared_data[item["key"]] = value
    user_data = make_user_data(shared_var_keys, shared_data)
    if user_data.dtype.descr != meta["user_data_dtype"]:
        return None

    names = meta["names"]
    slices = [slice(a, b) for a, b in meta["slices"]]
    shapes = [np.array(s, dtype=np.int64) for s in meta["shapes"]]
    shape_info = (names, slices, shapes)
    reparameterized = list(meta["reparameterized_names"])
    dims, coords = dims_and_coords(model, shape_info, reparameterized)
    return CompiledPyMCModel(
        _n_dim=meta["n_dim"],
        dims=dims,
        _coords=coords,
        _shapes={name: tuple(shape) for name, shape in zip(names, meta["shapes"], strict=True)},
        compiled_logp_func=logp_fn,
        compiled_expand_func=expand_fn,
        initial_point_func=initial_point_fn,
        shared_data=shared_data,
        shared_var_keys=shared_var_keys,
        user_data=user_data,
        n_expanded=meta["n_expanded"],
        shape_info=shape_info,
        logp_func=None,
        expand_func=None,
        reparameterized_names=reparameterized,
    )


def is_compiled_pymc(compiled: Any) -> bool:
    from nutpie.compile_pymc import CompiledPyMCModel

    return type(compiled) is CompiledPyMCModel


# --------------------------------------------------------------------------
# nutpie + numba: compiling with recorded compile results
# --------------------------------------------------------------------------


def compile_recording(model: Any) -> tuple[Any, list[Any] | None]:
    """``nutpie.compile_pymc_model(model)``, also returning numba's compile results of the two
    C callbacks (logp first, then expand), or None when they could not be recorded.

    nutpie forwards extra keyword arguments to ``numba.cfunc``; a compiler pipeline subclass
    records the top-level compile result of each callback, so it can be serialised like
    numba's own cache does. The callbacks are compiled with :func:`_loop_copy_wrappers`.
    """
    import nutpie
    from numba.core.compiler import Compiler

    records: list[Any] = []

    class _RecordingCompiler(Compiler):
        def compile_extra(self, func):
            cres = super().compile_extra(func)
            records.append(cres)
            return cres

    with _loop_copy_wrappers():
        compiled = nutpie.compile_pymc_model(model, pipeline_class=_RecordingCompiler)
    return compiled, records


@contextlib.contextmanager
def _loop_copy_wrappers():
    """While compiling: nutpie's two C callbacks written with element loops instead of
    ``out[...] = grad``.

    numba lowers a slice assignment together with the f-string ``ValueError`` of its shape
    check (``raise_shape_mismatch_error``), about 3 s of every cold compile, a third of it
    (benchmarks/compile_cache/FINDINGS.md, t_loopcopy.py: identical posterior). The callbacks
    below are nutpie 0.16's ``_make_c_logp_func`` / ``_make_c_expand_func`` with only that line
    changed (a wrong length still returns the same error code). The module attributes are
    restored when the block ends; :func:`check` verifies their signatures. Cache entries
    pickle the two functions by module path: moving them needs a new cache format
    (``hlm_cli.sampling.cache._FORMAT_VERSION``).
    """
    import nutpie.compile_pymc as ncp

    saved = ncp._make_c_logp_func, ncp._make_c_expand_func
    ncp._make_c_logp_func, ncp._make_c_expand_func = _make_c_logp_func, _make_c_expand_func
    try:
        yield
    finally:
        ncp._make_c_logp_func, ncp._make_c_expand_func = saved


def type_placeholders(shared_data: dict) -> dict:
    """One-element stand-ins of the model's data arrays, of the same dtype, rank and layout.

    nutpie's ``make_extraction_fn`` captures the tuple of data arrays in the compiled code only
    for their numba types: at every call each one is replaced by the array read from the user
    data. Captured real arrays are frozen into the machine code (up to 1 MB each) or, above
    1 MB, referenced by their process-local address, which makes the compiled model
    impossible to cache (numba's ``has_dynamic_globals``): a model with more than ~60k rows
    (InstEval) then compiled again on every fit. Stand-ins keep the types and drop the data.
    """
    out = {}
    for key, value in shared_data.items():
        value = np.asarray(value)
        order = "F" if value.ndim > 1 and value.flags.f_contiguous and not value.flags.c_contiguous else "C"
        if value.ndim and not (value.flags.c_contiguous or value.flags.f_contiguous):
            out[key] = value  # a non-contiguous array has its own numba layout: keep it
        else:
            out[key] = np.zeros((1,) * value.ndim, dtype=value.dtype, order=order)
    return out


def _make_c_logp_func(n_dim, logp_fn, user_data, shared_keys, shared_data):
    import numba
    from nutpie.compile_pymc import make_extraction_fn

    extract = make_extraction_fn(logp_fn, type_placeholders(shared_data), shared_keys, user_data.dtype)
    c_sig = numba.types.int64(
        numba.types.uint64,
        numba.types.CPointer(numba.types.double),
        numba.types.CPointer(numba.types.double),
        numba.types.CPointer(numba.types.double),
        numba.types.voidptr,
    )

    def logp_numba(dim, x_, out_, logp_, user_data_):
        if dim != n_dim:
            return -1
        try:
            x = numba.carray(x_, (n_dim,))
            out = numba.carray(out_, (n_dim,))
            logp = numba.carray(logp_, ())
            logp_val, grad = extract(x, user_data_)
            logp[()] = logp_val
            if grad.shape[0] != n_dim:
                return 1
            for i in range(n_dim):
                out[i] = grad[i]
            if not np.all(np.isfinite(out)):
                return 3
            if not np.isfinite(logp_val):
                return 4
        except Exception:  # noqa: BLE001
            return 1
        return 0

    return logp_numba, c_sig


def _make_c_expand_func(n_dim, n_expanded, expand_fn, user_data, shared_var_keys, shared_data):
    import numba
    from nutpie.compile_pymc import make_extraction_fn

    extract = make_extraction_fn(expand_fn, type_placeholders(shared_data), shared_var_keys, user_data.dtype)
    c_sig = numba.types.int64(
        numba.types.uint64,
        numba.types.uint64,
        numba.types.CPointer(numba.types.double),
        numba.types.CPointer(numba.types.double),
        numba.types.voidptr,
    )

    def expand_numba(dim, expanded, x_, out_, user_data_):
        if dim != n_dim:
            return -1
        if expanded != n_expanded:
            return -1
        try:
            x = numba.carray(x_, (n_dim,))
            out = numba.carray(out_, (n_expanded,))
            (values,) = extract(x, user_data_)
            if values.shape[0] != n_expanded:
                return -2
            for i in range(n_expanded):
                out[i] = values[i]
        except Exception:  # noqa: BLE001
            return -2
        return 0

    return expand_numba, c_sig


# --------------------------------------------------------------------------
# numba: storing and reloading compile results
# --------------------------------------------------------------------------


def callback_name(cres: Any) -> str:
    """The symbol of a compile result's C callback wrapper."""
    return cres.fndesc.llvm_cfunc_wrapper_name


def reduce_result(cres: Any) -> tuple | None:
    """Picklable parts of a compile result (numba's own cache format), or None when it cannot
    be stored (it references process-local addresses, or has lifted loops)."""
    if cres.library.has_dynamic_globals:
        return None
    if any(not getattr(x, "can_cache", False) for x in cres.lifted):
        return None
    return cres._reduce()


def external_symbols(cres: Any) -> set[str]:
    """Names the object code expects the process to provide (NRT, helperlib, CPython)."""
    mod = cres.library._final_module
    names = {f.name for f in mod.functions if f.is_declaration and not f.name.startswith("llvm.")}
    names |= {g.name for g in mod.global_variables if g.is_declaration}
    return names


def dumps(payload: Any) -> bytes:
    """Pickle ``payload`` with numba's pickler (handles numba's types and environments)."""
    from numba.core.serialize import dumps as numba_dumps

    return numba_dumps(payload)


class _LoadedCFunc:
    """Stand-in for ``numba.core.ccallback.CFunc`` rebuilt from a cache entry.

    nutpie only reads ``.address``; the compile result (and its code library) is kept
    referenced so the machine code stays alive.
    """

    def __init__(self, cres: Any) -> None:
        self._cres = cres
        self._library = cres.library
        self.native_name = cres.fndesc.llvm_cfunc_wrapper_name
        self.address = self._library.get_pointer_to_function(self.native_name)
        if not self.address:
            raise UpstreamChanged("a cached C callback has no address")

    def __repr__(self) -> str:
        return f"<cached numba C callback {self.native_name[:40]}...>"


def load_callbacks(logp_parts: tuple, expand_parts: tuple, symbols: list[str]) -> tuple[Any, Any] | None:
    """The two C callbacks rebuilt from :func:`reduce_result`'s parts, or None when the
    process does not provide every symbol the object code needs."""
    from numba.core.compiler import CompileResult
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.registry import cpu_target
    from numba.core.runtime import rtsys

    ctx = cpu_target.target_context
    # An unresolved symbol makes LLVM abort the whole process while linking the object code,
    # so make sure everything the entry needs is registered first. Initialising the numba
    # runtime (NRT) registers its symbols and numba's C helpers; ctx.refresh() (what numba runs
    # before loading one of its own cache entries, ~5x slower) is the fallback.
    rtsys.initialize(ctx)
    if not _symbols_available(symbols):
        ctx.refresh()
        if not _symbols_available(symbols):
            return None
    with global_compiler_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logp_fn = _LoadedCFunc(CompileResult._rebuild(ctx, *logp_parts))
        expand_fn = _LoadedCFunc(CompileResult._rebuild(ctx, *expand_parts))
    return logp_fn, expand_fn


def _symbols_available(names: list[str]) -> bool:
    import llvmlite.binding as ll

    return all(ll.address_of_symbol(name) for name in names)


def codegen_magic() -> list[Any]:
    """numba's description of the code it generates for this CPU (part of the cache key)."""
    from numba.core.registry import cpu_target

    return list(cpu_target.target_context.codegen().magic_tuple())


# --------------------------------------------------------------------------
# nutpie + PyTensor: a model without C callbacks (the quick first fit)
# --------------------------------------------------------------------------


def python_model(model: Any, initial_point_fn: Any) -> Any:
    """A nutpie model that calls PyTensor's numba function from Python (no C callbacks).

    Parameters
    ----------
    model : pymc.Model
    initial_point_fn : callable
        PyMC's seeded initial-point function as nutpie wraps it (:func:`pymc_point_fn`); the
        same function gives the same initial points as ``nutpie.compile_pymc_model``.

    Returns
    -------
    nutpie.compiled_pyfunc.PyFuncModel
    """
    from nutpie.compile_pymc import _make_functions
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

    dims, coords = dims_and_coords(model, shape_info, reparameterized)
    return from_pyfunc(
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


def is_python_model(compiled: Any) -> bool:
    """Whether ``compiled`` came from :func:`python_model`."""
    return type(compiled).__name__ == "PyFuncModel"


__all__ = ["SUPPORTED", "UpstreamChanged", "available", "check", "background_problems", "version_problems", "import_nutpie"]
