"""Fork-and-pipe plumbing: forked children that report one pickled result, pipes, reaping.

Standard library only (the bottom layer of hlm). Used by the figure scheduling of
:mod:`hlm_cli.outputs.parallel` and by the quick first fits of :mod:`hlm_cli.sampling.quick`.

The protocol of a forked child (:func:`fork_child`): the child runs one callable, pickles what
it returned to a result file the parent named, and leaves with ``os._exit`` (exit code 0; 1 when
the callable raised or the file could not be written). No cleanup runs in the child: the parent
owns every shared resource. The parent reaps the child (:meth:`Child.collect`, optionally with a
deadline after which the child is killed) and reads the result only after a clean exit, so a
child that crashed, was killed or hung costs the parent a redo, never a wrong result.

Job numbers can be shared between processes through one pipe (:func:`job_pipe`,
:func:`claim`): each number is written once, and a read of a few bytes from a pipe is atomic,
so a number one process claimed is gone for the others.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

_INDEX = struct.Struct("<H")  # job numbers in a pipe: 2 bytes, far below PIPE_BUF (atomic)
MAX_JOBS = 2**16
_LENGTH = struct.Struct("<Q")


def fork_available() -> bool:
    """Whether this platform has ``os.fork`` and it is safe to use after threads started
    (not on macOS, whose system frameworks are not fork-safe)."""
    return hasattr(os, "fork") and sys.platform != "darwin"


def finish_child(result_path: str, work: Callable[[], object]) -> NoReturn:
    """In a forked child: pickle what ``work`` returns to ``result_path`` and leave at once
    (exit code 0; 1 when ``work`` raised or the file could not be written, and the parent
    then redoes the work). No cleanup runs: the parent owns every shared resource."""
    code = 0
    try:
        out = work()
        with open(result_path, "wb") as fh:
            pickle.dump(out, fh, protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException:  # noqa: BLE001 - reported by the exit code
        code = 1
    finally:
        os._exit(code)


@dataclass
class Child:
    """A forked child that reports one pickled result (:func:`fork_child`)."""

    pid: int
    result_path: str
    reaped: bool = False
    group: bool = False  # the child leads a process group: kill() ends its descendants too

    def collect(self, timeout: float | None = None) -> tuple[bool, object]:
        """Reap the child and read its result: ``(True, value)`` after a clean exit with a
        readable result, else ``(False, None)`` (it failed, crashed, or overran ``timeout``
        seconds and was killed). The result file is removed either way."""
        try:
            status = wait(self.pid, timeout)
            self.reaped = True
            if status is None and self.group:  # overran and was killed: end what it forked too
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except OSError:
                    pass
            if status is None or os.waitstatus_to_exitcode(status) != 0:
                return False, None
            with open(self.result_path, "rb") as fh:
                return True, pickle.load(fh)
        except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError):
            return False, None
        finally:
            Path(self.result_path).unlink(missing_ok=True)

    def kill(self) -> None:
        """Kill and reap the child (if not reaped yet) and remove its result file."""
        if not self.reaped:
            if self.group:
                try:  # the child and whatever it forked (a figure helper's own drawing child)
                    os.killpg(self.pid, signal.SIGKILL)
                except OSError:
                    pass
            kill(self.pid)
            self.reaped = True
        Path(self.result_path).unlink(missing_ok=True)


def fork_child(work: Callable[[], object], *, prefix: str = "hlm-child-", group: bool = False) -> Child:
    """Fork a child that runs ``work`` and reports what it returned (:func:`finish_child`).

    The result file is created (mode 0600) before the fork; stdout and stderr are flushed so
    the child does not print the parent's buffered output again. ``group=True`` puts the
    child in a process group of its own, so that :meth:`Child.kill` also ends every process
    it forked (nothing may keep writing into a directory the parent is removing).
    """
    fd, path = tempfile.mkstemp(prefix=prefix, suffix=".pkl")
    os.close(fd)
    flush_std()
    pid = os.fork()
    if pid == 0:
        if group:
            try:
                os.setpgid(0, 0)
            except OSError:
                pass
        finish_child(path, work)
    if group:
        try:  # both sides set it, so it holds whichever runs first
            os.setpgid(pid, pid)
        except OSError:
            pass
    return Child(pid, path, group=group)


def flush_std() -> None:
    """Flush Python's stdout and stderr (call before forking)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass


def wait(pid: int, timeout: float | None = None) -> int | None:
    """``waitpid`` with an optional deadline: the wait status, or None after killing a child
    that overran ``timeout`` seconds (a hung child must not hang the parent)."""
    if timeout is None:
        return os.waitpid(pid, 0)[1]
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            kill(pid)
            return None
        time.sleep(delay)
        delay = min(0.02, delay * 1.5)


def kill(pid: int) -> None:
    """SIGKILL process ``pid`` (a child of this process) and reap it; no error if it is gone."""
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def write_all(fd: int, blob: bytes) -> None:
    """Write every byte of ``blob`` to ``fd`` (a blocking pipe may take it in parts)."""
    view = memoryview(blob)
    while view:
        view = view[os.write(fd, view):]


def read_exactly(fd: int, n: int) -> bytes:
    """``n`` bytes, or fewer if the other side closed first."""
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_to_end(fd: int) -> bytes:
    """Everything until the other side closes ``fd``."""
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def send_message(fd: int, blob: bytes) -> None:
    """Write ``blob`` length-prefixed, for a reader that cannot wait for end of file."""
    write_all(fd, _LENGTH.pack(len(blob)) + blob)


def receive_message(fd: int) -> bytes:
    """Read one message of :func:`send_message` (``b""`` if the writer closed first)."""
    head = read_exactly(fd, _LENGTH.size)
    if len(head) < _LENGTH.size:
        return b""
    return read_exactly(fd, _LENGTH.unpack(head)[0])


def close_quietly(*fds: int) -> None:
    for fd in fds:
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass


def job_pipe(n: int) -> int:
    """A non-blocking pipe holding the job numbers ``0..n-1``; returns its read end, to be
    shared with forked children (:func:`claim`). ``n`` must be below :data:`MAX_JOBS`."""
    if not 0 <= n < MAX_JOBS:
        raise ValueError(f"{n} jobs: at most {MAX_JOBS - 1} fit in a job pipe")
    read_fd, write_fd = os.pipe()
    try:
        write_all(write_fd, b"".join(_INDEX.pack(i) for i in range(n)))
    finally:
        os.close(write_fd)
    os.set_blocking(read_fd, False)
    return read_fd


def claim(read_fd: int) -> Iterator[int]:
    """The job numbers this process claims from a :func:`job_pipe`, one at a time, until
    none are left (claim the next only after finishing the last: a slow job then does not
    hold up the others)."""
    while True:
        try:
            raw = os.read(read_fd, _INDEX.size)
        except BlockingIOError:
            return
        if len(raw) < _INDEX.size:
            return
        yield _INDEX.unpack(raw)[0]


def rss_bytes() -> float:
    """Resident memory of this process in bytes (Linux ``/proc``; 0 where unknown)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0.0


__all__ = [
    "Child", "fork_available", "finish_child", "fork_child", "flush_std", "wait", "kill", "write_all", "read_exactly",
    "read_to_end", "send_message", "receive_message", "close_quietly", "job_pipe", "claim", "rss_bytes", "MAX_JOBS",
]


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one), at least 1."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
