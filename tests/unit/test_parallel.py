"""Figure jobs shared between this process and a forked child (hlm_cli.outputs.parallel) and the
process plumbing under them (hlm_cli._procs).

These tests check the protocol, not the timing: where a test needs the child to take a job it
waits for it with explicit synchronisation (a barrier shared across the fork, or a pipe), never
with a sleep that assumes when the other process runs, so they pass on a loaded machine.
"""

import multiprocessing
import os

import pytest

from hlm_cli import _procs
from hlm_cli.outputs import parallel

needs_fork = pytest.mark.skipif(not parallel.can_fork(), reason="no fork here (platform, one CPU or HLM_SERIAL_FIGURES)")
#: A generous bound on waiting for the other process: only reached when something is broken.
LIVENESS_S = 120


def _job(i):
    def run():
        return (i, os.getpid())
    return run


@pytest.fixture(autouse=True)
def _any_memory_size(monkeypatch):
    """The protocol, not the memory guard: a test process that has built many models may be
    above MAX_FORK_RSS by the time these run (a fresh clone's full suite was), where can_fork()
    rightly says no. The guard itself is tested below (test_a_big_process_draws_here)."""
    monkeypatch.setattr(parallel, "MAX_FORK_RSS", float("inf"))


@pytest.fixture
def forks(monkeypatch):
    """The children parallel forks, recorded (to check that each was reaped)."""
    made = []
    real = _procs.fork_child

    def record(work, **kw):
        child = real(work, **kw)
        made.append(child.pid)
        return child

    monkeypatch.setattr(_procs, "fork_child", record)
    return made


def _reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def _never_returns(fd: int):
    """Block on a pipe nobody writes to (a hung process, without a sleep)."""
    os.read(fd, 1)
    raise AssertionError("unreachable: nobody writes to this pipe")


@needs_fork
def test_jobs_run_once_each_in_order_on_two_processes(forks):
    """Jobs 0 and 1 meet at a barrier of two: whichever process took one of them can only go
    on when the other process took the other, so both sides provably take jobs."""
    barrier = multiprocessing.get_context("fork").Barrier(2)

    def meet(i):
        def run():
            barrier.wait(timeout=LIVENESS_S)
            return (i, os.getpid())
        return run

    jobs = [meet(0), meet(1)] + [_job(i) for i in range(2, 12)]
    results = parallel.run_jobs(jobs, before_fork=None)
    assert [r[0] for r in results] == list(range(12))  # each job's own result, in order
    assert {results[0][1], results[1][1]} == {os.getpid(), forks[0]}  # one each
    assert {r[1] for r in results} <= {os.getpid(), forks[0]}
    assert _reaped(forks[0])


def test_a_failing_job_is_reported_not_raised():
    def boom():
        raise ValueError("no data to draw\nsecond line")

    results = parallel.run_jobs([_job(0), boom, _job(2)], before_fork=None)
    assert isinstance(results[1], parallel.JobError)
    assert str(results[1]) == "ValueError: no data to draw"
    assert results[0][0] == 0 and results[2][0] == 2


@needs_fork
def test_jobs_of_a_crashed_child_are_redone_here(forks):
    """The child dies on the first job it takes without reporting anything; whichever jobs it
    claimed are run again here. The parent's first job waits until the child has died (its
    pipe closes), so the child surely claimed one."""
    parent = os.getpid()
    died_r, died_w = os.pipe()

    def crash_in_child(i):
        def run():
            if os.getpid() != parent:
                os._exit(3)  # the child dies without reporting anything
            if i == 0:
                os.close(died_w)
                assert os.read(died_r, 1) == b""  # end of file: the child's copy is closed too
            return (i, os.getpid())
        return run

    try:
        results = parallel.run_jobs([crash_in_child(i) for i in range(6)], before_fork=None)
    finally:
        _procs.close_quietly(died_r)
    assert results == [(i, parent) for i in range(6)]
    assert _reaped(forks[0])


@needs_fork
def test_parent_first_runs_once_here_and_its_error_propagates(forks):
    calls = []
    results = parallel.run_jobs([_job(i) for i in range(4)], parent_first=lambda: calls.append(os.getpid()), before_fork=None)
    assert calls == [os.getpid()] and [r[0] for r in results] == [0, 1, 2, 3]

    def fail():
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        parallel.run_jobs([_job(i) for i in range(4)], parent_first=fail, before_fork=None)
    assert len(forks) == 2 and all(_reaped(pid) for pid in forks)  # no child is left behind


def test_serial_when_asked(monkeypatch):
    monkeypatch.setenv("HLM_SERIAL_FIGURES", "1")
    assert not parallel.can_fork()
    order = []
    results = parallel.run_jobs([_job(i) for i in range(3)], parent_first=lambda: order.append("first"), before_fork=None)
    assert order == ["first"] and {r[1] for r in results} == {os.getpid()}


# -- the helper forked before sampling (start_helper) ---------------------------------------


def _plan(payload):
    """Rebuilds the same job list from the payload, as report.start_helper's plan does."""
    n = payload["n"]
    return [f"job{i}" for i in range(n)], [_job(i) for i in range(n)], (lambda: {"table": payload["n"] * 10})


@needs_fork
def test_helper_draws_every_job_and_sends_the_early_result_first():
    helper = parallel.start_helper(_plan, warm=lambda: None)
    assert helper is not None
    seen = []
    results = parallel.run_jobs([_job(i) for i in range(6)], helper=helper, payload={"n": 6, "keys": [f"job{i}" for i in range(6)]},
                                parent_first=lambda: seen.append(helper.early_result()))
    assert seen == [{"table": 60}]
    assert [r[0] for r in results] == list(range(6))
    assert os.getpid() not in {r[1] for r in results}  # all drawn by the helper and its child
    assert not os.path.exists(helper.result_path)
    assert _reaped(helper.pid)


@needs_fork
def test_helper_with_other_keys_draws_nothing_and_the_parent_does_it_all():
    helper = parallel.start_helper(_plan, warm=lambda: None)
    results = parallel.run_jobs([_job(i) for i in range(4)], helper=helper, payload={"n": 4, "keys": ["other"] * 4})
    assert results == [(i, os.getpid()) for i in range(4)]


@needs_fork
def test_jobs_of_a_crashed_helper_are_redone_here():
    def plan(payload):
        os._exit(5)

    helper = parallel.start_helper(plan, warm=lambda: None)
    early = []
    results = parallel.run_jobs([_job(i) for i in range(3)], helper=helper, payload={"n": 3, "keys": []},
                                parent_first=lambda: early.append(helper.early_result()))
    assert early == [None]  # nothing came: compute it here
    assert results == [(i, os.getpid()) for i in range(3)]


@needs_fork
def test_unused_helper_is_stopped():
    """A helper still warming up (here: blocked for good) is killed and reaped by close()."""
    block_r, block_w = os.pipe()
    try:
        helper = parallel.start_helper(_plan, warm=lambda: _never_returns(block_r))
        helper.close()
        assert _reaped(helper.pid)
        assert helper.early_result() is None
        assert not os.path.exists(helper.result_path)
    finally:
        _procs.close_quietly(block_r, block_w)


@needs_fork
def test_unpicklable_payload_falls_back_to_drawing_here():
    helper = parallel.start_helper(_plan, warm=lambda: None)
    results = parallel.run_jobs([_job(i) for i in range(2)], helper=helper, payload={"n": 2, "keys": [], "bad": lambda: 0})
    # the helper is stopped and the jobs run as without one (here, and maybe in a child forked now)
    assert _reaped(helper.pid)
    assert [r[0] for r in results] == [0, 1] and helper.pid not in {r[1] for r in results}


@needs_fork
def test_a_hung_helper_is_killed_and_its_jobs_redone_here(monkeypatch):
    """The helper never reports (it blocks for good): after HELPER_TIMEOUT_S it is killed and
    every job is drawn here."""
    block_r, block_w = os.pipe()

    def plan(payload):
        _never_returns(block_r)

    monkeypatch.setattr(parallel, "HELPER_TIMEOUT_S", 0.5)
    try:
        helper = parallel.start_helper(plan, warm=lambda: None)
        results = parallel.run_jobs([_job(i) for i in range(2)], helper=helper, payload={"n": 2, "keys": []})
    finally:
        _procs.close_quietly(block_r, block_w)
    assert results == [(i, os.getpid()) for i in range(2)]
    assert _reaped(helper.pid)


# -- hlm_cli._procs -------------------------------------------------------------------------


@needs_fork
def test_forked_child_reports_its_result_or_its_failure():
    child = _procs.fork_child(lambda: {"answer": 42})
    assert child.collect() == (True, {"answer": 42})
    assert not os.path.exists(child.result_path) and _reaped(child.pid)

    def fail():
        raise RuntimeError("boom")

    child = _procs.fork_child(fail)
    assert child.collect() == (False, None)
    assert not os.path.exists(child.result_path)


@needs_fork
def test_a_child_past_its_deadline_is_killed():
    block_r, block_w = os.pipe()
    try:
        child = _procs.fork_child(lambda: _never_returns(block_r))
        assert child.collect(timeout=0.2) == (False, None)
        assert _reaped(child.pid)
    finally:
        _procs.close_quietly(block_r, block_w)


def test_job_numbers_are_claimed_once_each():
    fd = _procs.job_pipe(5)
    try:
        first = next(_procs.claim(fd))
        rest = list(_procs.claim(fd))
    finally:
        os.close(fd)
    assert [first, *rest] == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="at most"):
        _procs.job_pipe(_procs.MAX_JOBS)


def test_messages_survive_a_pipe():
    r, w = os.pipe()
    try:
        _procs.send_message(w, b"table")
        _procs.send_message(w, b"")
        os.close(w)
        w = -1
        assert _procs.receive_message(r) == b"table"
        assert _procs.receive_message(r) == b""
        assert _procs.receive_message(r) == b""  # closed
    finally:
        _procs.close_quietly(r, w)


def test_killing_a_group_child_ends_what_it_forked(tmp_path):
    """A figure helper forks a drawing child of its own; killing the helper must end both, or
    the grandchild keeps writing into a staging directory the parent has removed."""
    import os
    import time

    from hlm_cli import _procs

    r, w = os.pipe()

    def helper():
        pid = os.fork()
        if pid == 0:  # grandchild: report its pid, then live until killed
            os.write(w, str(os.getpid()).encode().ljust(16))
            while True:
                time.sleep(1)
        os.waitpid(pid, 0)
        return "never"

    child = _procs.fork_child(helper, group=True)
    grandchild = int(os.read(r, 16).decode())
    child.kill()
    def dead(pid: int) -> bool:  # gone, or a zombie waiting for init to reap it
        try:
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
        except FileNotFoundError:
            return True

    deadline = time.monotonic() + 120  # SIGKILL is delivered asynchronously; a bound, not a timing claim
    while not dead(grandchild):
        assert time.monotonic() < deadline, "the grandchild survived its group's kill"
        time.sleep(0.01)
    os.close(r)
    os.close(w)


def test_a_big_process_draws_here(monkeypatch):
    """Above MAX_FORK_RSS a fork would copy-on-write gigabytes: the figures are drawn here."""
    monkeypatch.delenv("HLM_SERIAL_FIGURES", raising=False)
    monkeypatch.setattr(parallel, "MAX_FORK_RSS", 1e9)
    monkeypatch.setattr(_procs, "rss_bytes", lambda: 2e9)
    assert parallel.can_fork() is False
    monkeypatch.setattr(_procs, "rss_bytes", lambda: 1e8)
    assert parallel.can_fork() == (_procs.fork_available() and (os.cpu_count() or 1) >= 2)
