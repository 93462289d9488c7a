"""Figure jobs shared between this process and a forked child (hlm_cli.outputs.parallel)."""

import os
import time

import pytest

from hlm_cli.outputs import parallel

needs_fork = pytest.mark.skipif(not parallel.can_fork(), reason="no fork here (platform, one CPU or HLM_SERIAL_FIGURES)")


def _job(i, log=None):
    def run():
        time.sleep(0.05)
        return (i, os.getpid())
    return run


@needs_fork
def test_jobs_run_once_each_in_order_on_two_processes():
    results = parallel.run_jobs([_job(i) for i in range(12)], before_fork=None)
    assert [r[0] for r in results] == list(range(12))
    pids = {r[1] for r in results}
    assert os.getpid() in pids and len(pids) == 2  # both sides took jobs


def test_a_failing_job_is_reported_not_raised():
    def boom():
        raise ValueError("no data to draw\nsecond line")

    results = parallel.run_jobs([_job(0), boom, _job(2)], before_fork=None)
    assert isinstance(results[1], parallel.JobError)
    assert str(results[1]) == "ValueError: no data to draw"
    assert results[0][0] == 0 and results[2][0] == 2


@needs_fork
def test_jobs_of_a_crashed_child_are_redone_here():
    parent = os.getpid()

    def crash_in_child(i):
        def run():
            if os.getpid() != parent:
                os._exit(3)  # the child dies without reporting anything
            return (i, os.getpid())
        return run

    results = parallel.run_jobs([crash_in_child(i) for i in range(6)], before_fork=None)
    assert results == [(i, parent) for i in range(6)]


@needs_fork
def test_parent_first_runs_once_here_and_its_error_propagates(tmp_path):
    calls = []
    results = parallel.run_jobs([_job(i) for i in range(4)], parent_first=lambda: calls.append(os.getpid()), before_fork=None)
    assert calls == [os.getpid()] and len(results) == 4

    def fail():
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        parallel.run_jobs([_job(i) for i in range(4)], parent_first=fail, before_fork=None)
    with pytest.raises(ChildProcessError):  # the child was reaped, none is left behind
        os.waitpid(-1, os.WNOHANG)


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
def test_unused_helper_is_stopped_at_once():
    helper = parallel.start_helper(_plan, warm=lambda: time.sleep(30))
    t = time.perf_counter()
    helper.close()
    assert time.perf_counter() - t < 5
    with pytest.raises(ChildProcessError):
        os.waitpid(helper.pid, os.WNOHANG)  # reaped
    assert helper.early_result() is None


@needs_fork
def test_unpicklable_payload_falls_back_to_drawing_here():
    helper = parallel.start_helper(_plan, warm=lambda: None)
    results = parallel.run_jobs([_job(i) for i in range(2)], helper=helper, payload={"n": 2, "keys": [], "bad": lambda: 0})
    assert [r[0] for r in results] == [0, 1]



@needs_fork
def test_a_hung_helper_is_killed_and_its_jobs_redone_here(monkeypatch):
    def plan(payload):
        time.sleep(60)

    monkeypatch.setattr(parallel, "HELPER_TIMEOUT_S", 1.0)
    helper = parallel.start_helper(plan, warm=lambda: None)
    t = time.perf_counter()
    results = parallel.run_jobs([_job(i) for i in range(2)], helper=helper, payload={"n": 2, "keys": []})
    assert time.perf_counter() - t < 20
    assert results == [(i, os.getpid()) for i in range(2)]
