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

The fork is skipped (everything runs here, in order) where it is unsafe or useless: no
``os.fork`` (Windows) or macOS (frameworks that are not fork-safe), one CPU, a single job,
a large process (the copy-on-write child could double the memory of a big fit), or
``HLM_SERIAL_FIGURES=1``.
"""

from __future__ import annotations

import gc
import os
import pickle
import struct
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MAX_FORK_RSS = 1.5e9  # bytes; above this the figures are drawn in this process only
_INDEX = struct.Struct("<H")  # job numbers in the pipe: 2 bytes, far below PIPE_BUF (atomic)


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


def _rss_bytes() -> float:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0.0


def can_fork() -> bool:
    if os.environ.get("HLM_SERIAL_FIGURES", "") not in ("", "0"):
        return False
    if not hasattr(os, "fork") or sys.platform == "darwin":
        return False
    if (os.cpu_count() or 1) < 2:
        return False
    return _rss_bytes() < MAX_FORK_RSS


def warm_matplotlib() -> None:
    """Import matplotlib and lay out one text once, so that a forked child inherits the loaded
    fonts and caches instead of paying for them again (about 0.5 s per process)."""
    import scipy.ndimage  # noqa: F401 - the densities' smoother (plots.kde_line)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.set_title("x", fontsize=9)
    ax.set_xlabel("x")
    fig.canvas.draw()


def run_jobs(jobs: list[Callable[[], object]], *, parent_first: Callable[[], object] | None = None,
             before_fork: Callable[[], object] | None = warm_matplotlib) -> list[object]:
    """Run ``jobs`` (callables without arguments) on up to two processes.

    Parameters
    ----------
    jobs : list of callables
        Each returns a picklable value (e.g. the paths it wrote).
    parent_first : callable, optional
        Run in this process before it starts taking jobs (its exceptions propagate).
    before_fork : callable, optional
        Run once before forking, for state both processes need (default: load matplotlib).

    Returns
    -------
    list
        One result per job, in the order of ``jobs``; a job that raised gives a
        :class:`JobError`.
    """
    if len(jobs) < 2 or len(jobs) >= 2**16 or not can_fork():
        if parent_first is not None:
            parent_first()
        return [_call(j) for j in jobs]

    if before_fork is not None:
        try:
            before_fork()
        except Exception:  # noqa: BLE001 - only a warm-up; the jobs report their own errors
            pass
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"".join(_INDEX.pack(i) for i in range(len(jobs))))
    os.close(write_fd)
    os.set_blocking(read_fd, False)
    fd, result_path = tempfile.mkstemp(prefix="hlm-figures-", suffix=".pkl")
    os.close(fd)
    sys.stdout.flush()
    sys.stderr.flush()
    # keep the garbage collector off the inherited heap: a collection writes to every object
    # it visits, and each written page is copied for the child (Python's docs on gc.freeze)
    gc.freeze()
    pid = os.fork()
    if pid == 0:  # child: take jobs until none are left, report, leave without cleanup
        code = 0
        try:
            done = _take_all(read_fd, jobs)
            with open(result_path, "wb") as fh:
                pickle.dump(done, fh, protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException:  # noqa: BLE001 - the parent redoes whatever is missing
            code = 1
        finally:
            os._exit(code)

    results: dict[int, object] = {}
    try:
        if parent_first is not None:
            parent_first()
        results.update(_take_all(read_fd, jobs))
    except BaseException:  # Ctrl-C or a failing parent_first: do not leave the child drawing
        import signal

        os.kill(pid, signal.SIGKILL)
        raise
    finally:
        gc.unfreeze()
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
        try:
            if os.waitstatus_to_exitcode(status) == 0:
                with open(result_path, "rb") as fh:
                    results.update(pickle.load(fh))
        except (OSError, EOFError, pickle.UnpicklingError):
            pass
        finally:
            Path(result_path).unlink(missing_ok=True)
    return [results[i] if i in results else _call(job) for i, job in enumerate(jobs)]


def _take_all(read_fd: int, jobs: list[Callable[[], object]]) -> dict[int, object]:
    done: dict[int, object] = {}
    while True:
        try:
            raw = os.read(read_fd, _INDEX.size)
        except BlockingIOError:
            return done
        if len(raw) < _INDEX.size:
            return done
        (i,) = _INDEX.unpack(raw)
        done[i] = _call(jobs[i])
