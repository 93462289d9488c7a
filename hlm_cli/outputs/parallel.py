"""Drawing figures on two cores: jobs shared between this process and one forked child.

After sampling, a small fit spends most of its remaining time in matplotlib (about 2.5 s
for the ten figures of plots/ and report.html on the cell-line model) while the second core
idles. :func:`run_jobs` forks one child *after* everything the figures need is in memory
(posterior, model, data), so nothing is pickled on the way in: both processes take job
numbers from one shared, non-blocking pipe (a claimed number is gone for the other side,
so each job runs once, and a slow job does not hold up the rest), the child writes what
its jobs returned to a file and leaves with ``os._exit``. The parent first does its own
work (``parent_first``: writing posterior.nc), then draws too, then collects the child's
results; any job the child claimed but did not report (it crashed or was killed) is run
again in the parent, so a failure of the child costs time, never a figure.

Jobs return something picklable (paths); an exception in a job becomes its result as
``JobError`` rather than propagating, as a failed figure must never sink a fit.

A child forked after sampling still has to import matplotlib and lay out its first text (about
0.5 s) before it draws, and that is the time the fit ends later. :func:`start_helper` forks the
child earlier instead, before compiling and sampling, which keep only one core busy for most of
their time: the helper imports the figure stack meanwhile and then waits. ``run_jobs(...,
helper=, payload=)`` hands it the posterior (pickled through a pipe, so only for small fits) and
the helper calls the ``plan`` function it was forked with to rebuild the very job list the
parent built (checked by the jobs' keys). The helper then draws every figure, sharing them with a
child forked from it (already warm, so nothing is imported twice), while the parent writes its
tables; the parent draws only what the helper did not report.

The process plumbing (forked children that report one pickled result, the shared job pipe,
reaping with a deadline) is :mod:`hlm_cli._procs`; this module keeps the figure-specific
scheduling on top of it.

The fork is skipped (everything runs here, in order) where it is unsafe or useless: no
``os.fork`` (Windows) or macOS (frameworks that are not fork-safe), one CPU, a single job,
a large process (the copy-on-write child could double the memory of a big fit), or
``HLM_SERIAL_FIGURES=1``.
"""

from __future__ import annotations

import gc
import os
import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass

from hlm_cli import _procs

MAX_FORK_RSS = 1.5e9  # bytes; above this the figures are drawn in this process only
HELPER_TIMEOUT_S = 600  # a helper still drawing after this is killed and its figures redone here


@dataclass(frozen=True)
class JobError:
    """A job that raised: its exception, as one line."""

    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}" if self.message else self.kind


def _call(job: Callable[[], object]) -> object:
    try:
        return job()
    except Exception as err:  # noqa: BLE001 - reported as the job's result
        first = str(err).splitlines()[0] if str(err) else ""
        return JobError(type(err).__name__, first)
    finally:
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")


def can_fork() -> bool:
    if os.environ.get("HLM_SERIAL_FIGURES", "") not in ("", "0"):
        return False
    if not _procs.fork_available():
        return False
    if (os.cpu_count() or 1) < 2:
        return False
    return _procs.rss_bytes() < MAX_FORK_RSS


def warm_matplotlib() -> None:
    """Import matplotlib and lay out one text once, so that a forked child inherits the loaded
    fonts and caches instead of paying for them again (about 0.5 s per process)."""
    import scipy.ndimage  # noqa: F401 - the densities' smoother (figures.kde_line)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.set_title("x", fontsize=9)
    ax.set_xlabel("x")
    fig.canvas.draw()


def warm_figures() -> None:
    """What a helper imports while the parent compiles and samples: matplotlib with its fonts,
    pyplot (hlm_cli.outputs.figures) and arviz_stats (the densities' HDIs)."""
    warm_matplotlib()
    import arviz_stats  # noqa: F401
    import matplotlib.pyplot  # noqa: F401


class Helper:
    """A child forked by :func:`start_helper`, waiting for :func:`run_jobs` to hand it work."""

    def __init__(self, child: _procs.Child, msg_w: int, early_r: int) -> None:
        self.child, self.msg_w, self.early_r = child, msg_w, early_r
        self.open = True
        self.handed = False  # the payload went out: an early result may come back

    @property
    def pid(self) -> int:
        return self.child.pid

    @property
    def result_path(self) -> str:
        return self.child.result_path

    def early_result(self) -> object | None:
        """What the plan's ``early`` callable returned in the helper, once it is there; None
        when the helper was not handed work or did not deliver (compute it yourself then)."""
        if not self.handed or self.early_r < 0:
            return None
        try:
            blob = _procs.receive_message(self.early_r)
        finally:
            _procs.close_quietly(self.early_r)
            self.early_r = -1
        try:
            return pickle.loads(blob) if blob else None
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            return None

    def close(self) -> None:
        """Stop the helper if no :func:`run_jobs` used it (it has written nothing)."""
        if not self.open:
            return
        self.open = False
        _procs.close_quietly(self.msg_w, self.early_r)
        self.early_r = -1
        self.child.kill()


def start_helper(plan: Callable[[object], tuple], *, warm: Callable[[], object] = warm_figures) -> Helper | None:
    """Fork a figure helper now (None where :func:`can_fork` says no).

    Parameters
    ----------
    plan : callable
        Called in the helper with the ``payload`` the parent later gives :func:`run_jobs`;
        returns ``(keys, jobs, early)``: the job list, one key per job, which must equal the
        parent's (``payload["keys"]``) or the helper draws nothing, and a callable (or None)
        whose result the helper sends back first (:meth:`Helper.early_result`), e.g. a table
        the parent would otherwise need a slow import for.
    warm : callable
        Run in the helper right away (default: import the figure stack).
    """
    if not can_fork():
        return None
    msg_r, msg_w = os.pipe()
    early_r, early_w = os.pipe()
    # the fork happens inside fork_child: the helper closes the parent's ends first thing

    def serve() -> dict:  # helper: warm up, wait for the posterior, draw, report, leave
        os.close(msg_w)
        os.close(early_r)
        try:
            warm()
        except Exception:  # noqa: BLE001 - only a warm-up
            pass
        blob = _procs.read_to_end(msg_r)
        if not blob:  # the parent closed without work
            return {}
        payload = pickle.loads(blob)
        keys, jobs, early = plan(payload)

        def send_early() -> None:
            # length-prefixed: the child forked below holds the pipe open, so the parent
            # cannot wait for end of file; length 0 means "compute it yourself"
            blob = b""
            try:
                if early is not None:
                    blob = pickle.dumps(early(), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # noqa: BLE001 - the parent computes it itself
                blob = b""
            _procs.send_message(early_w, blob)

        done = {}
        if list(keys) == list(payload["keys"]):
            # shared with a child of this warm process (nothing is imported twice), which
            # starts drawing while this one computes the early result
            done = dict(enumerate(run_jobs(jobs, before_fork=None, parent_first=send_early)))
        else:
            send_early()
        return done

    child = _procs.fork_child(serve, prefix="hlm-figures-", group=True)
    os.close(msg_r)
    os.close(early_w)
    return Helper(child, msg_w, early_r)


def _with_helper(helper: Helper, jobs: list, parent_first, payload: dict) -> list[object] | None:
    """run_jobs through a started helper; None when it cannot take the work (then the caller
    goes on as without one)."""
    try:
        _procs.write_all(helper.msg_w, pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
        os.close(helper.msg_w)
    except (OSError, pickle.PicklingError, TypeError, AttributeError):  # helper gone, or payload unpicklable
        helper.close()
        return None
    helper.open = False
    helper.handed = True
    results: dict[int, object] = {}
    try:
        if parent_first is not None:
            parent_first()
        # the helper (and a child of its own) draws; this process redoes below only what it
        # did not report (it crashed, hung, or could not plan the same jobs)
        ok, done = helper.child.collect(HELPER_TIMEOUT_S)
        if ok and isinstance(done, dict):
            results.update(done)
    except BaseException:
        helper.child.kill()
        raise
    finally:
        _procs.close_quietly(helper.early_r)
        helper.early_r = -1
    return [results[i] if i in results else _call(job) for i, job in enumerate(jobs)]


def run_jobs(jobs: list[Callable[[], object]], *, parent_first: Callable[[], object] | None = None,
             before_fork: Callable[[], object] | None = warm_matplotlib, helper: Helper | None = None,
             payload: dict | None = None) -> list[object]:
    """Run ``jobs`` (callables without arguments) on up to two processes.

    Parameters
    ----------
    jobs : list of callables
        Each returns a picklable value (e.g. the paths it wrote).
    parent_first : callable, optional
        Run in this process before it starts taking jobs (its exceptions propagate).
    before_fork : callable, optional
        Run once before forking, for state both processes need (default: load matplotlib).
    helper : Helper, optional
        A child from :func:`start_helper`: it draws the jobs (this process does
        ``parent_first`` meanwhile) instead of a child forked now.
    payload : dict, optional
        With ``helper``: what its ``plan`` needs, with ``"keys"``, one key per job.

    Returns
    -------
    list
        One result per job, in the order of ``jobs``; a job that raised gives a
        :class:`JobError`.
    """
    if helper is not None:
        if helper.open and 0 < len(jobs) < _procs.MAX_JOBS and payload is not None:
            done = _with_helper(helper, jobs, parent_first, payload)
            if done is not None:
                return done
        helper.close()
    if len(jobs) < 2 or len(jobs) >= _procs.MAX_JOBS or not can_fork():
        if parent_first is not None:
            parent_first()
        return [_call(j) for j in jobs]

    if before_fork is not None:
        try:
            before_fork()
        except Exception:  # noqa: BLE001 - only a warm-up; the jobs report their own errors
            pass
    read_fd = _procs.job_pipe(len(jobs))
    # keep the garbage collector off the inherited heap: a collection writes to every object
    # it visits, and each written page is copied for the child (Python's docs on gc.freeze)
    gc.freeze()
    child = _procs.fork_child(lambda: _take_all(read_fd, jobs), prefix="hlm-figures-")

    results: dict[int, object] = {}
    try:
        if parent_first is not None:
            parent_first()
        results.update(_take_all(read_fd, jobs))
    except BaseException:  # Ctrl-C or a failing parent_first: do not leave the child drawing
        child.kill()
        raise
    finally:
        gc.unfreeze()
        os.close(read_fd)
        if not child.reaped:
            ok, done = child.collect()
            if ok and isinstance(done, dict):
                results.update(done)
        child.kill()  # removes the result file
    return [results[i] if i in results else _call(job) for i, job in enumerate(jobs)]


def _take_all(read_fd: int, jobs: list[Callable[[], object]]) -> dict[int, object]:
    return {i: _call(jobs[i]) for i in _procs.claim(read_fd)}
