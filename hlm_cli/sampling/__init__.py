"""Sampling a built model, and completing the result for the output contract.

nutpie is the default sampler (Rust NUTS over a numba-compiled log density). ``pymc`` uses
PyMC's own NUTS; ``numpyro`` and ``blackjax`` go through ``pm.sample(nuts_sampler=...)`` when
JAX and those packages are installed.

The package, and which way its modules import each other::

    sampling/__init__.py   sample(): cache -> quick path -> background fill (compile_model)
        |-> quick.py       quick first fits (no C callbacks), chains over forked processes,
        |     |            the detached background compile that fills the cache
        |     v
        |-> cache.py       compiled-model cache: in-process memo + authenticated disk entries
        v     v
        _nutpie.py         every private name of nutpie, numba, PyTensor, llvmlite (pinned)

:func:`compile_model` makes a nutpie model ready: a cached compilation (memo or disk), else a
quick model for a small first fit (its compile is scheduled for the background), else a cold
compile that is stored. When the installed libraries are outside the versions
:mod:`hlm_cli.sampling._nutpie` supports, it compiles the standard way
(``nutpie.compile_pymc_model``) and says so once at WARNING level on this package's logger.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hlm_cli._procs import available_cores
from hlm_cli.errors import ConfigError, SamplingError
from hlm_cli.spec import SamplerSpec

if TYPE_CHECKING:  # not imported at run time: the figure helper imports this package without PyMC
    from hlm_cli.model.build import BuiltModel

_log = logging.getLogger(__name__)


@dataclass
class Posterior:
    """The sampled result: an ArviZ DataTree with every group of the output contract."""

    tree: object  # xarray.DataTree
    timings: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    sampler: str = "nutpie"
    #: How the model was made ready: "cache" (memo or disk), "compiled", "quick"
    #: (no C callbacks, see hlm_cli.sampling.quick) or "" for the PyMC/JAX samplers.
    compile_mode: str = ""
    #: How ``--ess`` sampling ended (:class:`hlm_cli.sampling.ess.EssOutcome`); None without --ess.
    ess: object | None = None

    @property
    def compile_cached(self) -> bool:
        return self.compile_mode == "cache"


def default_cores() -> int:
    """Cores for one fit's chains: all this process may run on."""
    return available_cores()


def preload() -> None:
    """Import what sampling with nutpie needs (nutpie, PyMC), e.g. in a worker process before
    its first fit; nutpie comes without arviz's plotting stack (:func:`_nutpie.import_nutpie`)."""
    from hlm_cli.sampling import _nutpie

    _nutpie.import_nutpie()
    import pymc  # noqa: F401


def compile_model(model, *, structure_key: str, cache_dir: Path | None, quick: bool = False) -> tuple[object, str]:
    """A nutpie-ready model for ``model`` and how it was made: "cache", "quick" or "compiled".

    Parameters
    ----------
    model : pymc.Model
    structure_key : str
        The caller's hash of the model's structure (:func:`hlm_cli.sampling.cache.compile_model`).
    cache_dir : pathlib.Path or None
        Root of the on-disk cache; None: only the in-process memo.
    quick : bool
        On a miss, return a model without C callbacks when the model is small enough
        (:func:`hlm_cli.sampling.quick.quick_ok`) and this is the structure's first fit in
        this process, and schedule its normal compile into ``cache_dir`` for when the command
        ends. Sample such a model with :func:`hlm_cli.sampling.quick.sample`.
    """
    from hlm_cli.sampling import _nutpie, cache
    from hlm_cli.sampling import quick as quick_mod

    _nutpie.import_nutpie()
    if not _nutpie.available():  # warned once: the standard, public compile
        cache.count("compiles")
        return _nutpie.import_nutpie().compile_pymc_model(model), "compiled"
    compiled, slot = cache.find(model, structure_key=structure_key, cache_dir=cache_dir)
    if compiled is not None:
        return compiled, "cache"
    if quick and slot.identity is not None and quick_mod.quick_ok(model) and quick_mod.first_time(slot.memo_key, slot.path, slot.cache_dir):
        try:
            fast = quick_mod.compile_quick(model, cache.pymc_point_fn(model))
        except Exception as err:  # noqa: BLE001 - a quick fit is an optimisation: compile instead
            _log.warning("warning: quick first fit not possible (%s: %s); compiling the model", type(err).__name__,
                         str(err).splitlines()[0] if str(err) else "")
        else:
            cache.count("quick")
            if slot.path is not None:
                quick_mod.schedule_fill(model, structure_key, slot.cache_dir, slot.path)
            return fast, "quick"
    return cache.compile_and_store(model, slot), "compiled"


def _compile(built: BuiltModel, use_cache: bool, quick: bool = False):
    """nutpie-ready model and how it was made: "cache", "compiled" or "quick"."""
    from hlm_cli.sampling import cache

    cache_dir = cache.default_cache_dir() if use_cache else None
    return compile_model(built.model, structure_key=built.structure_key, cache_dir=cache_dir, quick=quick)


def sample(
    built: BuiltModel,
    spec: SamplerSpec,
    *,
    use_cache: bool = True,
    quick: bool = False,
    on_progress: Callable[[str], None] | None = None,
    on_draws: Callable[[DrawProgress], None] | None = None,
    pointwise: bool = True,
) -> Posterior:
    """Sample the posterior of ``built`` and add log-likelihood and predictive draws
    (``pointwise=False``: neither, only the observed data; ``hlm batch --by``'s lean runs).

    Parameters
    ----------
    built : BuiltModel
    spec : SamplerSpec
    use_cache : bool
        Reuse compiled models across runs (nutpie only).
    quick : bool
        For a small model not yet in the cache, sample without compiling nutpie's C
        callbacks and compile them for the cache when the command ends
        (:mod:`hlm_cli.sampling.quick`). Best for one fit; a process that fits the same
        structure many times (batch, refits) leaves it off and compiles once.
    on_progress : callable, optional
        Receives short stage names ("compile", "sample", "predict").
    on_draws : callable, optional
        Receives a :class:`DrawProgress` about every 0.2 s while nutpie samples (chains x
        draws done, divergences so far, elapsed time), from one of nutpie's threads: keep it
        quick and thread-safe; what it raises is dropped. It changes no draw. The PyMC and
        JAX samplers do not report it.

    Returns
    -------
    Posterior
    """
    say = on_progress or (lambda stage: None)
    timings: dict[str, float] = {}
    cores = spec.cores or default_cores()
    mode = ""
    outcome = None
    from hlm_cli.spec import ess_problem

    problem = ess_problem(spec)
    if problem is not None:
        raise ConfigError(problem[0], hint=problem[1])
    if spec.ess is not None:
        quick = False  # a quick fit's chains run in forked processes; --ess watches them here
    t0 = time.perf_counter()
    if spec.sampler == "nutpie":
        from hlm_cli.sampling import _nutpie

        nutpie = _nutpie.import_nutpie()
        _nutpie.defer_duck_arrays()  # nutpie's draws become DataArrays: no dask.array/sparse import for that
        say("compile")
        compiled, mode = _compile(built, use_cache, quick)
        if mode != "quick" and _needs_data_swap(compiled, built):
            compiled = compiled.with_data(**built.data_vars)
        timings["compile"] = time.perf_counter() - t0
        say("sample")
        t1 = time.perf_counter()
        settings = dict(draws=spec.draws, tune=spec.tune, save_warmup=False, progress_bar=False,
                        target_accept=spec.target_accept, maxdepth=spec.max_treedepth, adaptation=spec.adaptation)
        reporter = DrawReporter(on_draws, chains=spec.chains, tune=spec.tune, draws=spec.draws) if on_draws is not None else None
        with interrupt_guard() as interrupted:
            try:
                if mode == "quick":
                    from hlm_cli.sampling import quick as quick_mod

                    tree = quick_mod.sample(compiled, chains=spec.chains, cores=cores, seed=spec.seed, progress=reporter, **settings)
                elif spec.ess is not None:
                    tree, outcome = _sample_to_ess(nutpie, compiled, built, spec, cores, settings, reporter)
                else:
                    report = reporter.nutpie_kwargs() if reporter is not None else {}
                    tree = nutpie.sample(compiled, chains=spec.chains, cores=min(cores, spec.chains), seed=spec.seed, **settings, **report)
            except RuntimeError as err:
                if interrupted:
                    raise KeyboardInterrupt from None
                raise SamplingError(f"the sampler failed: {str(err).splitlines()[0]}", hint="check the priors and the data's scale") from None
            except BaseException as err:  # nutpie's Rust panics are BaseExceptions (pyo3 PanicException)
                if interrupted or isinstance(err, KeyboardInterrupt):
                    raise KeyboardInterrupt from None
                if type(err).__name__ == "PanicException":
                    raise SamplingError(f"the sampler stopped with an internal error: {str(err).splitlines()[0] if str(err) else 'panic'}",
                                        hint="check the sampler settings (--tune, --draws, --max-treedepth); rerun with --debug to see more") from None
                raise
        if interrupted:  # nutpie catches Ctrl-C itself and returns the draws made so far
            raise KeyboardInterrupt
        check_complete(tree, chains=spec.chains, draws=outcome.draws if outcome is not None else spec.draws)
        timings["sample"] = time.perf_counter() - t1
    else:
        tree = _sample_pymc(built, spec, cores)
        check_complete(tree, chains=spec.chains, draws=spec.draws)
        timings["sample"] = time.perf_counter() - t0
    say("predict")
    t2 = time.perf_counter()
    from hlm_cli.model.reparam import to_user_scale

    tree = to_user_scale(tree, built, seed=spec.seed)
    tree = complete(built, tree, seed=spec.seed, pointwise=pointwise)
    timings["predict"] = time.perf_counter() - t2
    return Posterior(tree=tree, timings=timings, seed=spec.seed, sampler=spec.sampler, compile_mode=mode, ess=outcome)


def ess_names(built: BuiltModel, *, every: bool = False) -> list[str]:
    """The parameters ``--ess`` watches: the top-level ones (intercept, coefficients, group
    SDs, correlations, family parameters), with ``every`` (``--ess-all``) also the group effects."""
    names = list(built.params.top_level)
    if every:
        names += [v for vs in built.params.group_effects.values() for v in vs if v not in names]
    return names


def ess_measure(built: BuiltModel, spec: SamplerSpec) -> Callable[[object], tuple[float, str, float]]:
    """The function that measures a trace for ``--ess``: the minimum bulk ESS and largest R-hat
    of :func:`ess_names` on the user's scale (:func:`hlm_cli.model.reparam.to_user_scale` on a
    copy: the trace itself is left as sampled)."""
    import xarray as xr

    from hlm_cli.model.reparam import to_user_scale
    from hlm_cli.sampling import ess as ess_mod

    names = ess_names(built, every=spec.ess_all)

    def measure(tree) -> tuple[float, str, float]:
        copy = xr.DataTree.from_dict({"posterior": tree["posterior"].to_dataset()})
        copy = to_user_scale(copy, built, seed=spec.seed)
        return ess_mod.min_bulk_ess(copy["posterior"].to_dataset(), names)

    return measure


def _sample_to_ess(nutpie, compiled, built: BuiltModel, spec: SamplerSpec, cores: int, settings: dict, reporter):
    """nutpie in the background until the minimum bulk ESS reaches ``spec.ess`` or
    ``spec.draws`` are made (:func:`hlm_cli.sampling.ess.run_to_target`)."""
    from hlm_cli.sampling import _nutpie
    from hlm_cli.sampling import ess as ess_mod

    measure = ess_measure(built, spec)
    scope = "all" if spec.ess_all else "top-level"
    problems = _nutpie.background_problems()
    if problems:  # this nutpie cannot sample in the background: all draws, then the same checkpoints
        _log.warning("warning: --ess cannot stop nutpie early here (%s); sampling all --draws and keeping what the target needs",
                     problems[0])
        report = reporter.nutpie_kwargs() if reporter is not None else {}
        tree = nutpie.sample(compiled, chains=spec.chains, cores=min(cores, spec.chains), seed=spec.seed, **settings, **report)
        return ess_mod.run_to_target(ess_mod.DoneHandle(tree), target=int(spec.ess), chains=spec.chains,
                                     max_draws=spec.draws, measure=measure, scope=scope)
    counter = reporter if reporter is not None else DrawReporter(None, chains=spec.chains, tune=spec.tune, draws=spec.draws)
    background = nutpie.sample(compiled, chains=spec.chains, cores=min(cores, spec.chains), seed=spec.seed, blocking=False,
                               **settings, **counter.nutpie_kwargs())
    handle = ess_mod.NutpieHandle(background, counter, spec.tune)
    return ess_mod.run_to_target(handle, target=int(spec.ess), chains=spec.chains, max_draws=spec.draws,
                                 measure=measure, scope=scope)


#: How often nutpie calls the progress callback (ms): at most 5 updates a second.
PROGRESS_RATE_MS = 200


@dataclass(frozen=True)
class DrawProgress:
    """Where sampling stands, as :func:`sample` sends it to ``on_draws``.

    Attributes
    ----------
    tune, draws : int
        Warmup and kept draws asked for, per chain.
    finished : tuple of int
        Per chain: iterations done so far, warmup included (0 .. tune + draws).
    divergences : int
        Divergent transitions after warmup so far, all chains (nutpie's count, the one the
        diagnostics report).
    elapsed : float
        Seconds since sampling started.
    """

    tune: int
    draws: int
    finished: tuple[int, ...]
    divergences: int
    elapsed: float

    @property
    def chains(self) -> int:
        return len(self.finished)

    @property
    def warmup_done(self) -> int:
        """Warmup iterations done, all chains (of ``chains * tune``)."""
        return sum(min(f, self.tune) for f in self.finished)

    @property
    def draws_done(self) -> int:
        """Kept draws done, all chains (of ``chains * draws``)."""
        return sum(min(max(f - self.tune, 0), self.draws) for f in self.finished)

    @property
    def total(self) -> int:
        return self.chains * (self.tune + self.draws)

    @property
    def fraction(self) -> float:
        """Share of all iterations done, 0..1."""
        return (self.warmup_done + self.draws_done) / self.total if self.total else 1.0

    @property
    def warming_up(self) -> bool:
        return self.warmup_done < self.chains * self.tune

    @property
    def time_left(self) -> float | None:
        """Seconds left at the pace so far (None before the first iteration)."""
        f = self.fraction
        if f <= 0 or not math.isfinite(self.elapsed):
            return None
        return max(0.0, self.elapsed * (1.0 - f) / f)


class DrawReporter:
    """Turns nutpie's ``progress_callback`` calls (a list of ``nutpie.ChainProgress``) into
    :class:`DrawProgress` for a sink.

    Holds one row per chain (iterations done, divergences). :meth:`share` puts the rows in an
    anonymous shared memory map, so that chains sampled in forked processes
    (:func:`hlm_cli.sampling.quick.sample`) write theirs where this process reads them.
    Only reads the sampler's counters: the draws are the same with or without it.
    """

    def __init__(self, sink: Callable[[DrawProgress], None] | None, *, chains: int, tune: int, draws: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sink = sink
        self.tune, self.draws = int(tune), int(draws)
        self.clock = clock
        self.t0 = clock()
        self.rows = np.zeros((int(chains), 2), dtype=np.int64)
        self._failed = False

    def share(self) -> None:
        """Keep the rows in memory shared with processes forked after this call."""
        import mmap

        buf = mmap.mmap(-1, max(1, self.rows.nbytes))  # MAP_SHARED | MAP_ANONYMOUS
        shared = np.frombuffer(buf, dtype=np.int64, count=self.rows.size).reshape(self.rows.shape)
        shared[...] = self.rows
        self.rows = shared

    def snapshot(self) -> DrawProgress:
        rows = np.array(self.rows)  # one copy: the rows keep changing
        return DrawProgress(tune=self.tune, draws=self.draws, finished=tuple(int(f) for f in rows[:, 0]),
                            divergences=int(rows[:, 1].sum()), elapsed=max(0.0, self.clock() - self.t0))

    def callback(self, first: int = 0, *, emit: bool = True) -> Callable[[list], None]:
        """nutpie's ``progress_callback`` for chains ``first, first + 1, ...``; ``emit=False``
        (a forked process) only records them."""

        def on_chains(chain_progress) -> None:
            try:
                for i, p in enumerate(chain_progress):
                    self.rows[first + i] = (int(p.finished_draws), int(p.divergences))
            except Exception as err:  # noqa: BLE001 - nothing may reach nutpie (it prints it)
                self._failure(err)
                return
            if emit:
                self.emit()

        return on_chains

    def emit(self) -> None:
        """Send the sink where sampling stands now; what the sink raises is logged once (debug)."""
        if self.sink is None:
            return
        try:
            self.sink(self.snapshot())
        except Exception as err:  # noqa: BLE001 - a display problem must not stop sampling
            self._failure(err)

    def _failure(self, err: Exception) -> None:
        if not self._failed:
            self._failed = True
            _log.debug("progress display failed: %s: %s", type(err).__name__, err)

    def nutpie_kwargs(self, first: int = 0, *, emit: bool = True) -> dict:
        """The keyword arguments that make ``nutpie.sample`` report to this reporter."""
        return {"progress_callback": self.callback(first, emit=emit), "progress_rate": PROGRESS_RATE_MS}


class _Flag:
    """Truthy once SIGINT arrived."""

    def __init__(self) -> None:
        self.hit = False

    def __bool__(self) -> bool:
        return self.hit


@contextmanager
def interrupt_guard():
    """Remember a Ctrl-C that arrives while sampling.

    nutpie catches KeyboardInterrupt while it waits for its chains and returns the draws made
    so far as if sampling had finished; hlm must not write that as a result. The handler
    records the signal and raises KeyboardInterrupt as Python's default handler would; the
    caller turns a recorded interrupt into KeyboardInterrupt after the sampler returns.
    """
    flag = _Flag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        flag.hit = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def check_complete(tree, *, chains: int, draws: int) -> None:
    """Refuse a posterior with fewer chains or draws than asked for (an aborted sampler pads
    or truncates its trace), so success is never reported for a partial result."""
    post = tree["posterior"]
    got_c, got_d = int(post.sizes.get("chain", 0)), int(post.sizes.get("draw", 0))
    short = got_c != chains or got_d != draws
    if not short:
        for name in post.data_vars:
            arr = np.asarray(post[name].values)
            if arr.dtype.kind == "f" and arr.size:
                last = arr[:, -1].reshape(arr.shape[0], -1)
                if np.isnan(last).all(axis=1).any():
                    short = True
                break
    if short:
        raise SamplingError(
            f"the sampler returned an incomplete posterior ({got_c} chains x {got_d} draws, some missing; asked for {chains} x {draws})",
            hint="nothing was written; run again (rerun with --debug to see the sampler's messages)",
        )


def _needs_data_swap(compiled, built: BuiltModel) -> bool:
    return hasattr(compiled, "with_data") and bool(built.data_vars)


def _sample_pymc(built: BuiltModel, spec: SamplerSpec, cores: int):
    import pymc as pm

    if spec.sampler in ("numpyro", "blackjax"):
        try:
            __import__("jax")
            __import__(spec.sampler)
        except ImportError:
            raise ConfigError(
                f"--sampler {spec.sampler} needs JAX and {spec.sampler}, which are not installed",
                hint=f"pip install jax {spec.sampler}, or use the default --sampler nutpie",
            ) from None
    with built.model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pm.sample(
            draws=spec.draws,
            tune=spec.tune,
            chains=spec.chains,
            cores=min(cores, spec.chains),
            random_seed=spec.seed,
            nuts_sampler=spec.sampler,
            target_accept=spec.target_accept,
            progressbar=False,
            compute_convergence_checks=False,
        )


def _quiet_pymc() -> None:
    import logging

    for name in ("pymc", "pymc.sampling", "pytensor", "nutpie"):
        logging.getLogger(name).setLevel(logging.ERROR)


def complete(built: BuiltModel, tree, *, seed: int, pointwise: bool = True):
    """Add log_likelihood, posterior_predictive and observed_data groups (only observed_data
    with ``pointwise=False``).

    Both are computed in numpy from the posterior draws (:mod:`hlm_cli.model.likelihood`,
    :func:`hlm_cli.model.linpred.simulate`), which avoids compiling two more PyTensor
    functions per fit. Large data are stored as float32 to bound the file size. Above the rows x
    draws budget of :mod:`hlm_cli.model.scale` there is no log_likelihood group and a thinned
    posterior_predictive (docs/scale.md).
    """
    from hlm_cli.model import scale

    post = tree["posterior"]
    if pointwise and scale.is_large(built.design.n, post.sizes["chain"] * post.sizes["draw"]):
        tree = scale.complete_large(built, tree, seed=seed)
    elif pointwise:
        _complete_pointwise(built, tree, seed=seed)
    _observed_data(built, tree)
    return tree


def _complete_pointwise(built: BuiltModel, tree, *, seed: int):
    import xarray as xr

    from hlm_cli.model import likelihood, linpred

    post = tree["posterior"]
    C, D = post.sizes["chain"], post.sizes["draw"]
    d = built.design
    name = built.response_name
    coords = {"chain": post["chain"].values, "draw": post["draw"].values, "__obs__": np.arange(d.n)}
    S = C * D
    big = S * d.n > 20_000_000  # e.g. InstEval: store float32 to halve memory and file size
    dtype = np.float32 if big else float
    rng = np.random.default_rng(seed)
    ppc = np.empty((S, d.n), dtype=dtype)

    def simulate(sl: slice, eta: np.ndarray) -> None:  # the predictive from the same linear predictor
        ppc[sl] = linpred.simulate(built.family, tree, eta, trials=d.trials, se=d.se, draws=sl, rng=rng,
                                   terms=getattr(d, "terms", None))

    ll = likelihood.pointwise(tree, built, dtype=dtype, each_eta=simulate)
    dims = ("chain", "draw", "__obs__")
    tree["log_likelihood"] = xr.Dataset({name: (dims, ll.reshape(C, D, d.n))}, coords=coords)
    tree["posterior_predictive"] = xr.Dataset({name: (dims, ppc.reshape(C, D, d.n))}, coords=coords)


def _observed_data(built: BuiltModel, tree) -> None:
    import xarray as xr

    d = built.design
    name = built.response_name
    obs = {name: (("__obs__",), np.asarray(d.y, dtype=float))}
    if d.trials is not None:
        obs["trials"] = (("__obs__",), np.asarray(d.trials, dtype=float))
    if d.se is not None:
        obs["se"] = (("__obs__",), np.asarray(d.se, dtype=float))
    terms = getattr(d, "terms", None)
    if terms is not None and terms.censored:  # for the censored PPC (outputs/figures/ppc.py)
        obs["cens"] = (("__obs__",), np.asarray(terms.cens, dtype=float))
    tree["observed_data"] = xr.Dataset(obs, coords={"__obs__": np.arange(d.n)})


def sample_prior_predictive(built: BuiltModel, *, draws: int = 500, seed: int = 0):
    import pymc as pm

    _quiet_pymc()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pm.sample_prior_predictive(draws=draws, model=built.model, random_seed=seed)


__all__ = ["Posterior", "DrawProgress", "ess_names", "ess_measure", "DrawReporter", "sample", "compile_model", "preload", "complete", "check_complete", "interrupt_guard", "sample_prior_predictive",
           "default_cores"]


def defer_duck_arrays() -> list[str]:
    """Keep xarray from importing dask.array and sparse in this process until they are
    imported for another reason (:func:`hlm_cli.sampling._nutpie.defer_duck_arrays`)."""
    from hlm_cli.sampling import _nutpie

    return _nutpie.defer_duck_arrays()
