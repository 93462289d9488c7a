"""``hlm batch``: one fit per input file (x formula), isolated, resumable, in parallel.

The unit of work is one input: its fits (one per ``--formula``) and, with several formulas,
the LOO comparison. Units run in worker processes (``ProcessPoolExecutor``, spawn context) or
on a Dask cluster (``--scheduler``). Each worker imports PyMC once and keeps compiled models in
memory (:mod:`hlm_cli.sampling.cache`), so inputs of the same model structure compile once per
worker; the first unit runs alone so that the others can load its compiled model from the
on-disk cache instead of compiling it again at the same time.

Every fit is committed atomically by :func:`hlm_cli.workflows.fit.run_fit` (staging directory
renamed onto the run directory). The batch tables are rebuilt from those committed run
directories (:mod:`hlm_cli.outputs.batch_out`), so a batch killed at any point (Ctrl-C,
``kill -9``) resumes by re-running the same command: inputs whose data hash and settings are
unchanged are skipped, the rest are fitted. Every input uses the spec's seed, so results do
not depend on the order, the worker or the number of workers.

Nothing here prints: progress goes up through ``on_progress``.
"""

from __future__ import annotations

import glob
import hashlib
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hlm_cli.errors import ConfigError, ExitCode, HlmError, InputError
from hlm_cli.outputs import batch_out
from hlm_cli.spec import FitSpec

DATA_SUFFIXES = (".csv", ".tsv", ".txt")
FLUSH_EVERY_S = 15.0  # rebuild the batch tables at most this often while fitting


# --------------------------------------------------------------------------
# what to run
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchSpec:
    """Everything ``hlm batch`` needs, validated by the CLI before anything runs.

    Attributes
    ----------
    inputs : list of str
        Globs (``"data/*.csv"``), directories (their ``*.csv``, ``*.tsv``, ``*.txt``) or files.
    out : Path
        Batch output directory.
    specs : list of FitSpec
        One template per formula; ``data`` and ``out`` are replaced per input.
    manifest : Path, optional
        A text file listing inputs, one path or glob per line, relative to its own folder.
    workers : int, optional
        Worker processes (default: all cores). Ignored with ``scheduler``.
    scheduler : str, optional
        Address of a Dask scheduler, e.g. ``tcp://10.0.0.5:8786``.
    rerun_failed : bool
        Fit again the inputs whose last attempt failed (otherwise they are skipped).
    force : bool
        Fit every input again, even finished ones.
    strict : bool
        Diagnostics warnings count as failures for the exit code.
    compare : bool
        With several formulas, write ``INPUT/compare.csv`` (LOO) when ``hlm loo`` is available.
    share : bool
        Empirical-Bayes shared priors (``--share``): run with
        :func:`hlm_cli.workflows.share.run_shared_batch` instead of :func:`run_batch`.
    """

    inputs: list[str]
    out: Path
    specs: list[FitSpec]
    manifest: Path | None = None
    workers: int | None = None
    scheduler: str | None = None
    rerun_failed: bool = False
    force: bool = False
    strict: bool = False
    compare: bool = True
    command: str | None = None
    share: bool = False
    # (path, run directory name) of inputs already resolved and named (``hlm batch --by``'s
    # feature files, which live under --out): used instead of inputs/manifest when given
    named_inputs: list[tuple[str, str]] | None = None
    # "module:function" called in the worker after each successful fit as f(run_dir, record, result)
    # (``hlm batch --by`` summarises each feature's draws there); its failure never fails the fit
    after_fit: str | None = None


@dataclass
class Fit:
    """One fit for a worker: where it goes and the full FitSpec as JSON."""

    entry: batch_out.Entry
    spec: dict


@dataclass
class Unit:
    """One input's work: its fits and, with several formulas, the LOO comparison."""

    input: str
    name: str
    out: str  # absolute batch --out (workers check they can see it)
    fits: list[Fit]
    compare: list[str] = field(default_factory=list)  # run dirs (relative) to compare
    seed: int = 0  # of the comparison's refits (hlm loo --seed)
    after_fit: str | None = None  # BatchSpec.after_fit


@dataclass
class Plan:
    entries: list[batch_out.Entry]
    units: list[Unit]
    skipped: int  # entries already done (or failed, without --rerun-failed)


@dataclass
class BatchProgress:
    """Counts sent to ``on_progress`` after every change."""

    total: int  # fits to run now (skipped ones excluded)
    done: int = 0
    warnings: int = 0  # done, with diagnostics warnings
    failed: int = 0
    running: int = 0
    skipped: int = 0
    workers: int = 0
    last: str = ""  # e.g. "gene_0001: ok"


@dataclass
class BatchResult:
    out: Path
    status: object  # pandas.DataFrame, batch_out.STATUS_COLUMNS
    status_path: Path
    summary_path: Path
    fitted: int  # attempted in this run
    skipped: int
    wall_s: float
    workers: int
    strict: bool = False

    def count(self, status: str) -> int:
        return int((self.status["status"] == status).sum())

    @property
    def succeeded(self) -> int:
        good = ("ok",) if self.strict else ("ok", "diagnostics-warning")
        return int(self.status["status"].isin(good).sum())

    @property
    def exit_code(self) -> int:
        n = len(self.status)
        if n and self.succeeded == n:
            return int(ExitCode.OK)
        return int(ExitCode.BAD_INPUT if self.succeeded == 0 else ExitCode.BATCH_FAILURES)


# --------------------------------------------------------------------------
# inputs and names
# --------------------------------------------------------------------------


def resolve_inputs(patterns: list[str], manifest: Path | None = None, *, exclude: Path | None = None) -> list[str]:
    """The input files named by globs, directories, files and a manifest, in a stable order.

    Parameters
    ----------
    patterns : list of str
        Each one a glob (``data/*.csv``, ``**`` allowed), a directory (its ``*.csv``, ``*.tsv``
        and ``*.txt`` files), or a file (kept even if missing: it then fails on its own).
    manifest : Path, optional
        One path or glob per line; ``#`` starts a comment; relative paths are relative to the
        manifest's folder.
    exclude : Path, optional
        Files under this folder (the batch's ``--out``) are left out, so a re-run's glob does
        not pick up the batch's own CSV outputs.

    Returns
    -------
    list of str
        Paths as the user spelled them, first occurrence kept when two name the same file.

    Raises
    ------
    InputError
        A glob or directory that matches nothing, or an unreadable manifest.
    """
    items: list[tuple[str, Path | None]] = [(p, None) for p in patterns]
    if manifest is not None:
        manifest = Path(manifest)
        try:
            lines = manifest.read_text().splitlines()
        except OSError as err:
            raise InputError(f"cannot read the manifest {str(manifest)!r}: {err.strerror}", hint="check the path given to --manifest") from None
        for line in lines:
            line = line.split("#", 1)[0].strip()
            if line:
                items.append((line, manifest.parent))
    if not items:
        raise InputError("no input files given", hint='give a glob, e.g. hlm batch "data/*.csv" ..., a directory, or --manifest list.txt')
    found: list[str] = []
    for pattern, base in items:
        path = Path(pattern).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
        text = str(path)
        if path.is_dir():
            matches = sorted(str(p) for p in path.iterdir() if p.is_file() and p.suffix.lower() in DATA_SUFFIXES)
            if not matches:
                raise InputError(f"directory {text!r} has no .csv, .tsv or .txt files", hint="give a glob such as 'data/*.csv' to choose the files")
        elif glob.has_magic(text):
            matches = sorted(p for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not matches:
                raise InputError(f"no files match {pattern!r}", hint="check the pattern; quote it so that the shell does not expand it")
        else:
            matches = [text]
        found.extend(matches)
    seen: set[str] = set()
    out: list[str] = []
    skip = Path(exclude).resolve() if exclude is not None else None
    for p in found:
        real = os.path.realpath(p)
        if real in seen or (skip is not None and Path(real).is_relative_to(skip)):
            continue
        seen.add(real)
        out.append(p)
    if not out:
        raise InputError("every input file is inside --out", hint="keep the inputs outside the batch output directory")
    return out


def unique_names(paths: list[str]) -> list[str]:
    """One sub-directory name per input: the file's stem, disambiguated when stems repeat.

    Repeated stems get the parent folder's name (``a/x.csv`` -> ``x-a``) and, if that still
    repeats, a short hash of the full path; both depend only on the path, never on the order,
    so a re-run finds the same directories.
    """
    def stem(p: str) -> str:
        s = Path(p).stem or "input"
        return "_" + s[1:] if s.startswith(".") else s

    stems = [stem(p) for p in paths]
    names = []
    for p, s in zip(paths, stems, strict=True):
        if stems.count(s) > 1:
            s = f"{s}-{Path(os.path.realpath(p)).parent.name or 'root'}"
        names.append(s)
    repeated = {s for s in names if names.count(s) > 1}
    for i, (p, s) in enumerate(zip(paths, names, strict=True)):
        if s in repeated:
            names[i] = f"{s}-{hashlib.sha1(os.path.realpath(p).encode()).hexdigest()[:8]}"
    return names


def _sha256(path: str) -> str:
    from hlm_cli.data import file_sha256

    try:
        return file_sha256(Path(path))
    except OSError:
        return ""


def plan(spec: BatchSpec, *, cores: int | None = None, inputs: list[str] | None = None) -> Plan:
    """Decide the run directory of every input x formula, and which of them to fit now.

    An entry is skipped when its committed ``run.json`` has the same data hash and settings
    (unless ``force``), or when its last attempt failed on the same data and settings (unless
    ``force`` or ``rerun_failed``). ``cores`` (threads per fit) applies where the spec gives
    none; it does not change the draws. ``inputs``: already resolved input paths.
    """
    out = Path(spec.out).resolve()
    if spec.named_inputs is not None:
        inputs, names = [p for p, _ in spec.named_inputs], [n for _, n in spec.named_inputs]
    else:
        if inputs is None:
            inputs = resolve_inputs(spec.inputs, spec.manifest, exclude=out)
        names = unique_names(inputs)
    nested = len(spec.specs) > 1
    prints = [batch_out.fingerprint(s.model_dump(mode="json")) for s in spec.specs]
    entries: list[batch_out.Entry] = []
    units: list[Unit] = []
    skipped = 0
    for path, name in zip(inputs, names, strict=True):
        sha = _sha256(path)
        fits, group, n_done = [], [], 0
        for i, (template, fp) in enumerate(zip(spec.specs, prints, strict=True)):
            model = f"m{i + 1}"
            run_dir = f"{name}/{model}" if nested else name
            entry = batch_out.Entry(path, model, template.formula, run_dir, sha, fp)
            entries.append(entry)
            group.append(entry)
            done = batch_out.done_info(out, entry) is not None
            failed = batch_out.failed_record(out, entry) is not None
            n_done += done
            if not spec.force and (done or (failed and not spec.rerun_failed)):
                skipped += 1
                continue
            sampler = template.sampler
            if sampler.cores is None and cores is not None:
                sampler = sampler.model_copy(update={"cores": cores})
            fit_spec = template.model_copy(update={
                "sampler": sampler,
                "data": Path(os.path.abspath(path)),
                "out": out / run_dir,
                "force": True,  # the batch owns its run directories: a stale one is replaced
                "quiet": True,
                "command": spec.command,
            })
            fits.append(Fit(entry, fit_spec.model_dump(mode="json")))
        compare = [e.run_dir for e in group] if nested and spec.compare else []
        if compare and not fits and (n_done < 2 or (out / name / batch_out.COMPARE_FILE).exists()):
            compare = []  # nothing new to compare
        if fits or compare:
            units.append(Unit(path, name, str(out), fits, compare, spec.specs[0].sampler.seed, spec.after_fit))
    return Plan(entries, units, skipped)


# --------------------------------------------------------------------------
# the worker side
# --------------------------------------------------------------------------


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(tz=UTC).isoformat(timespec="seconds")


def _worker_id() -> str:
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


def _stage_timings(marks: list[tuple[str, float]], end: float) -> dict[str, float]:
    """Seconds spent in each stage reported by run_fit's progress callback (failed fits)."""
    out: dict[str, float] = {}
    for (stage, t), nxt in zip(marks, [*marks[1:], ("", end)], strict=True):
        out[stage] = round(out.get(stage, 0.0) + nxt[1] - t, 4)
    return out


def fit_one(fit: Fit, after: Callable | None = None) -> dict:
    """Run one fit and return its attempt record; never raises for a problem with the input.

    Parameters
    ----------
    fit : Fit
    after : callable, optional
        Called as ``after(run_dir, record, result)`` after a successful fit (``BatchSpec.after_fit``);
        its failure never fails the fit.

    Returns
    -------
    dict
        ``run_dir, input, model, sha256, fingerprint, status (ok, diagnostics-warning, failed),
        error, hint, timings, attempted_at, worker``.
    """
    from hlm_cli.workflows.fit import run_fit

    entry = fit.entry
    rec = {
        "run_dir": entry.run_dir, "input": entry.input, "model": entry.model, "sha256": entry.sha256,
        "fingerprint": entry.fingerprint, "attempted_at": _now(), "worker": _worker_id(),
        "status": "failed", "error": "", "hint": "", "timings": {},
    }
    marks: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    try:
        spec = FitSpec.model_validate(fit.spec)
        result = run_fit(spec, on_progress=lambda stage: marks.append((stage, time.perf_counter())), quick=False)
    except HlmError as err:
        rec.update(error=str(err), hint=err.hint or "")
    except Exception as err:  # a bug, or the sampler crashing on this input: isolate it
        first = str(err).splitlines()[0] if str(err) else ""
        rec.update(error=f"internal error ({type(err).__name__}: {first})",
                   hint=f"rerun this input alone with: hlm --debug fit {entry.input} ...")
    else:
        from hlm_cli.diagnostics import worst

        warnings = [f for f in result.findings if f.severity == "warning"]
        rec["status"] = "diagnostics-warning" if warnings else "ok"
        if warnings:  # the worst finding first (61 divergences must not hide behind an R-hat note)
            w = worst(warnings)
            others = [f.code for f in warnings if f is not w]
            rec.update(error=w.message + (f" (and {len(others)} more: {', '.join(others)})" if others else ""), hint=w.remedy)
        rec["timings"] = {k: round(v, 4) for k, v in result.timings.items()}
        if after is not None:
            t = time.perf_counter()
            try:
                after(Path(spec.out), rec, result)
            except Exception:  # noqa: BLE001 - a summary must not lose the fit (it is recomputed)
                pass
            rec["timings"]["after_fit"] = round(time.perf_counter() - t, 4)
        return rec
    rec["timings"] = {**_stage_timings(marks, time.perf_counter()), "total": round(time.perf_counter() - t0, 4)}
    return rec


def compare_unit(unit: Unit) -> str:
    """Write ``OUT/INPUT/compare.csv`` from the unit's finished models; return a short status."""
    out = Path(unit.out)
    dirs = [out / d for d in unit.compare if (out / d / "run.json").exists()]
    if len(dirs) < 2:
        return "skipped: fewer than 2 models fitted"
    try:
        from hlm_cli.workflows.loo import compare_runs
    except ImportError:
        return "skipped: hlm loo is not available"
    try:
        result = compare_runs(dirs, seed=unit.seed)
        if getattr(result, "table", None) is None:
            return "skipped: no comparison table"
        try:  # the same compare.csv as `hlm loo --out`
            from hlm_cli.outputs.loo_out import compare_frame
        except ImportError:
            frame = result.table.reset_index()
        else:
            frame = compare_frame(result)
        batch_out.write_compare(out / unit.name / batch_out.COMPARE_FILE, frame)
    except HlmError as err:
        return f"failed: {err}"
    except Exception as err:  # noqa: BLE001 - a comparison must not lose the fits
        return f"failed: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return "ok"


def run_unit(unit: Unit) -> list[dict]:
    """Fit one input's models (and compare them); the function workers and Dask run.

    Returns one attempt record per fit, plus ``{"compare": status}`` records when a
    comparison was asked for.
    """
    if not (Path(unit.out) / batch_out.STATE_DIR).is_dir():
        # Dask workers on another machine write to --out themselves: it must be shared.
        msg = f"--out {unit.out!r} is not visible on worker {_worker_id()}"
        return [{**_failed_stub(f.entry), "error": msg,
                 "hint": "with --scheduler, --out must be on a filesystem shared by the client and every worker"}
                for f in unit.fits]
    if unit.fits and len(unit.fits[0].entry.run_dir.split("/")) > 1:  # OUT/INPUT/m1: make OUT/INPUT
        (Path(unit.out) / unit.name).mkdir(parents=True, exist_ok=True)
    after = _after_fit(unit.after_fit) if unit.after_fit else None
    records = [fit_one(f, after) if after is not None else fit_one(f) for f in unit.fits]
    if unit.compare:
        cmp = compare_unit(unit)
        records.append({"compare": cmp, "run_dirs": list(unit.compare)})
    return records


def _after_fit(name: str) -> Callable | None:
    """The ``module:function`` named by ``BatchSpec.after_fit`` (None if it cannot be imported)."""
    import importlib

    try:
        module, attr = name.split(":")
        return getattr(importlib.import_module(module), attr)
    except (ValueError, ImportError, AttributeError):
        return None


def _failed_stub(entry: batch_out.Entry) -> dict:
    return {
        "run_dir": entry.run_dir, "input": entry.input, "model": entry.model, "sha256": entry.sha256,
        "fingerprint": entry.fingerprint, "attempted_at": _now(), "worker": "", "status": "failed",
        "error": "", "hint": "", "timings": {},
    }


def _init_worker(single_thread: bool, parent_pid: int) -> None:
    """Start a local worker process: die with the batch, quiet Ctrl-C, import PyMC once."""
    import signal

    if sys.platform.startswith("linux"):
        # Workers must not outlive a batch killed with kill -9: an orphan still fitting would
        # race the re-run for the same run directory. PR_SET_PDEATHSIG = 1.
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
        if os.getppid() != parent_pid:
            os._exit(0)
    # Ctrl-C reaches the whole process group; the batch process decides and ends the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if single_thread:  # one fit per core: keep BLAS/OpenMP from oversubscribing
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")
    import warnings

    warnings.filterwarnings("ignore")
    import pymc  # noqa: F401

    from hlm_cli import sampling

    sampling.preload()

    from hlm_cli.workflows import fit  # noqa: F401


# --------------------------------------------------------------------------
# executors: local processes or a Dask cluster, behind the same three calls
# --------------------------------------------------------------------------


class _LocalPool:
    """A spawn-context ProcessPoolExecutor; ``run_unit`` runs in-process when workers == 1."""

    def __init__(self, workers: int, single_thread: bool) -> None:
        import concurrent.futures as cf
        import multiprocessing as mp

        self.slots = workers
        self._cf = cf
        self._pool = None
        if workers > 1:
            self._pool = cf.ProcessPoolExecutor(
                max_workers=workers, mp_context=mp.get_context("spawn"),
                initializer=_init_worker, initargs=(single_thread, os.getpid()),
            )

    def submit(self, unit: Unit):
        if self._pool is None:
            fut = self._cf.Future()
            try:
                fut.set_result(run_unit(unit))
            except Exception as err:  # noqa: BLE001 - reported like a crashed worker
                fut.set_exception(err)
            return fut
        return self._pool.submit(run_unit, unit)

    def wait(self, futures: set):
        done, pending = self._cf.wait(futures, return_when=self._cf.FIRST_COMPLETED)
        return done, pending

    def broken(self, err: BaseException) -> bool:
        from concurrent.futures.process import BrokenProcessPool

        return isinstance(err, BrokenProcessPool)

    def restart(self, workers: int, single_thread: bool) -> None:
        self.close(kill=True)
        self.__init__(workers, single_thread)

    def close(self, kill: bool = False) -> None:
        if self._pool is None:
            return
        procs = list(getattr(self._pool, "_processes", {}) .values()) if kill else []
        self._pool.shutdown(wait=not kill, cancel_futures=True)
        for p in procs:  # a worker mid-fit ignores SIGINT; its staging dir is swept on re-run
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=5)
        self._pool = None


class _DaskPool:
    """The same calls on a ``dask.distributed`` cluster; workers write to the shared --out."""

    connect_timeout = "10s"

    def __init__(self, address: str) -> None:
        try:
            from dask.distributed import Client
        except ImportError:
            raise ConfigError("--scheduler needs dask.distributed, which is not installed", hint="pip install 'hlm[dask]' (or run without --scheduler)") from None
        try:
            self.client = Client(address, timeout=self.connect_timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ConfigError(
                f"cannot connect to the Dask scheduler at {address}: {first}",
                hint="start one with `dask scheduler` and workers with `dask worker ADDRESS --nthreads 1` (see docs/batch.md)",
            ) from None
        self.slots = 0  # submit everything: the scheduler queues, and workers may come and go

    def threads(self) -> int:
        try:
            return sum(self.client.nthreads().values())
        except Exception:  # noqa: BLE001 - only used for the progress display
            return 0

    def submit(self, unit: Unit):
        import uuid

        return self.client.submit(run_unit, unit, key=f"hlm-batch-{unit.name}-{uuid.uuid4().hex[:8]}", pure=False)

    def wait(self, futures: set):
        from dask.distributed import wait

        with self.client.as_current():  # wait() looks up the current client
            res = wait(list(futures), return_when="FIRST_COMPLETED")
        return set(res.done), set(res.not_done)

    def broken(self, err: BaseException) -> bool:
        return False

    def close(self, kill: bool = False) -> None:
        try:
            self.client.close()
        except Exception:  # noqa: BLE001 - closing a dead connection
            pass


def default_workers() -> int:
    """Worker processes: one per core this process may run on."""
    from hlm_cli._procs import available_cores

    return available_cores()


# --------------------------------------------------------------------------
# the batch
# --------------------------------------------------------------------------


def _batch_report(out: Path) -> None:
    """OUT/batch_report.html: a sortable table of inputs linking each input's report. A page
    that fails to build never fails the batch (its tables are the record)."""
    try:
        from hlm_cli.outputs.report import write_batch_report

        write_batch_report(out)
    except Exception:  # noqa: BLE001
        pass


def run_batch(spec: BatchSpec, *, on_progress: Callable[[BatchProgress], None] | None = None,
              flush_every: float = FLUSH_EVERY_S) -> BatchResult:
    """Fit every input, skipping finished ones, and write the batch tables.

    Parameters
    ----------
    spec : BatchSpec
    on_progress : callable, optional
        Receives a :class:`BatchProgress` whenever a fit starts or ends.
    flush_every : float
        Rebuild batch_status.csv and batch_summary.csv at most this often (seconds) while
        fitting; they are always rebuilt at the end, and when the batch is interrupted.

    Returns
    -------
    BatchResult

    Raises
    ------
    HlmError
        Before any fit: bad inputs, config or --out. Failures of single inputs are recorded
        in batch_status.csv, not raised.
    """
    t0 = time.perf_counter()
    out = Path(spec.out)
    nested = len(spec.specs) > 1
    inputs = ([p for p, _ in spec.named_inputs] if spec.named_inputs is not None
              else resolve_inputs(spec.inputs, spec.manifest, exclude=out.resolve()))  # before --out is made
    batch_out.prepare_out(out, {"formulas": [s.formula for s in spec.specs], "nested": nested})
    def sweep() -> None:  # staging dirs of fits killed mid-way (kill -9, a crashed worker)
        batch_out.remove_leftovers(out, [p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")] if nested else [])

    with batch_out.locked(out):
        sweep()
        # several fits at once: chains of one fit run one after another (see benchmarks/README.md)
        parallel = bool(spec.scheduler) or (spec.workers or default_workers()) > 1
        the_plan = plan(spec, cores=1 if parallel else None, inputs=inputs)
        from hlm_cli.outputs import rundir

        for unit in the_plan.units:  # stale run dirs of this batch (torn run.json): refit from scratch
            for fit in unit.fits:
                rundir.remove_stale(out / fit.entry.run_dir)
        n_fits = sum(len(u.fits) for u in the_plan.units)
        progress = BatchProgress(total=n_fits, skipped=the_plan.skipped)
        say = on_progress or (lambda p: None)
        workers = 0
        try:
            if the_plan.units:
                workers = _execute(spec, the_plan, progress, say, flush_every)
        finally:
            if not spec.scheduler:  # every local worker has ended; Dask workers may still write
                sweep()
            status, summary = batch_out.rebuild(out, the_plan.entries)
            status_path, summary_path = batch_out.write_tables(out, status, summary)
            _batch_report(out)
    return BatchResult(out, status, status_path, summary_path, n_fits, the_plan.skipped,
                       time.perf_counter() - t0, workers, spec.strict)


def _execute(spec: BatchSpec, the_plan: Plan, progress: BatchProgress, say, flush_every: float) -> int:
    out = Path(spec.out)
    units = deque(the_plan.units)
    if spec.scheduler:
        pool = _DaskPool(spec.scheduler)
        workers = pool.threads()
    else:
        workers = max(1, min(spec.workers or default_workers(), len(units)))
        pool = _LocalPool(workers, single_thread=workers > 1)
    progress.workers = workers
    by_future: dict = {}
    retried: set[str] = set()
    last_flush = time.perf_counter()
    # A pilot unit runs alone while compiled models are cached on disk: the others then load
    # its compiled model instead of all compiling the same model at the same time. A pilot
    # that fails (a broken file) hands over to the next unit, three times at most.
    parallel = bool(spec.scheduler) or workers > 1
    pilot = units[0].name if len(units) > 1 and parallel and all(s.cache for s in spec.specs) else None
    pilots_left = 3

    def top_up() -> None:
        limit = 1 if pilot is not None else (pool.slots or len(units) + len(by_future))
        while units and len(by_future) < limit:
            unit = units.popleft()
            by_future[pool.submit(unit)] = unit
        progress.running = sum(len(u.fits) for u in by_future.values())
        if spec.scheduler:
            progress.running = min(progress.running, max(1, pool.threads()))
        say(progress)

    try:
        top_up()
        while by_future:
            done, _ = pool.wait(set(by_future))
            broken = False
            for fut in done:
                unit = by_future.pop(fut)
                try:
                    records = fut.result()
                except Exception as err:  # the worker process died, or Dask lost the task
                    if pool.broken(err):
                        broken = True
                        if unit.name not in retried:  # bystanders of a crash get a 2nd try
                            retried.add(unit.name)
                            units.appendleft(unit)
                            continue
                    records = _crashed(unit, err)
                _record(out, unit, records, progress)
                if unit.name == pilot:
                    pilots_left -= 1
                    fitted = any(r.get("status") in ("ok", "diagnostics-warning") for r in records)
                    pilot = units[0].name if units and not fitted and pilots_left > 0 else None
            if broken:  # the process pool is gone: start a new one for the rest
                for fut, unit in list(by_future.items()):
                    by_future.pop(fut)
                    if unit.name in retried:
                        _record(out, unit, _crashed(unit, RuntimeError("worker crash")), progress)
                    else:
                        retried.add(unit.name)
                        units.appendleft(unit)
                pool.restart(workers, workers > 1)
            if time.perf_counter() - last_flush > flush_every:
                t_flush = time.perf_counter()
                status, summary = batch_out.rebuild(out, the_plan.entries)
                batch_out.write_tables(out, status, summary)
                last_flush = time.perf_counter()
                # rebuilding reads every run directory: with many inputs, do it less often
                flush_every = max(flush_every, 10 * (last_flush - t_flush))
            top_up()
    except BaseException:
        pool.close(kill=True)
        raise
    pool.close()
    return workers


def _crashed(unit: Unit, err: BaseException) -> list[dict]:
    name = type(err).__name__
    first = str(err).splitlines()[0] if str(err) else ""
    msg = f"the worker fitting this input stopped ({name}{': ' + first if first else ''})"
    return [{**_failed_stub(f.entry), "error": msg,
             "hint": "a crash or out-of-memory kill; rerun with --rerun-failed, or fit this input alone with hlm fit"}
            for f in unit.fits]


def _record(out: Path, unit: Unit, records: list[dict], progress: BatchProgress) -> None:
    """Save the attempt records of a finished unit and update the counts."""
    compare = next((r["compare"] for r in records if "compare" in r), "")
    for rec in records:
        if "compare" in rec:
            continue
        if compare:
            rec["compare"] = compare
        batch_out.write_record(out, rec)
        status = rec["status"]
        if status == "failed":
            progress.failed += 1
        else:
            progress.done += 1
            progress.warnings += status == "diagnostics-warning"
        progress.last = f"{rec['run_dir']}: {status}"
    if compare and not unit.fits:  # only the comparison was redone: keep it on the records
        for run_dir in unit.compare:
            rec = batch_out.read_record(out, run_dir)
            if rec is not None:
                batch_out.write_record(out, {**rec, "compare": compare})
