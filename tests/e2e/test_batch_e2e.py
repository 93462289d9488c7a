"""hlm batch with real fits: failures isolated, same numbers as hlm fit, resume after kill -9,
and the same results through a local Dask scheduler and worker.

Every input gets the same explicit priors and parameterization, so all inputs share one model
structure and each process compiles it once (default priors are scaled to each input's data).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hlm_cli.cli.app import main

FORMULA = "y ~ 1 + (1|g)"
FIXED = ["--parameterization", "noncentered", "--prior", "Intercept=Normal(0, 5)",
         "--prior", "sd=HalfNormal(1)", "--prior", "sigma=HalfNormal(1)"]
FAST = ["--draws", "150", "--tune", "150", "--chains", "2", "--seed", "1", "--no-plots", *FIXED]


def make_inputs(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """n CSVs of 30 rows: 5 groups x 6 observations, new group effects in each."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        idx = np.repeat(np.arange(5), 6)
        y = 1.0 + rng.normal(0, 0.7, 5)[idx] + rng.normal(0, 0.3, 30)
        path = folder / f"screen_{i + 1:02d}.csv"
        pd.DataFrame({"g": [f"g{k}" for k in idx], "y": y.round(6)}).to_csv(path, index=False)
        paths.append(path)
    return paths


def batch_args(inputs: str, out: Path, *extra: str) -> list[str]:
    return ["batch", inputs, "--formula", FORMULA, "--out", str(out), *FAST, *extra]


def test_batch_fits_isolates_failures_and_matches_hlm_fit(tmp_path, capsys):
    good = make_inputs(tmp_path / "in", 2)
    (tmp_path / "in" / "broken.csv").write_text("g,y\ng0,1.5\ng1,#VALUE!\n")
    out = tmp_path / "out"
    assert main(batch_args(str(tmp_path / "in" / "*.csv"), out, "--workers", "1")) == 4
    err = capsys.readouterr().err
    assert "failed: broken (" in err and "CSV line 3 has '#VALUE!'" in err

    status = pd.read_csv(out / "batch_status.csv", keep_default_na=False).set_index("run_dir")
    assert status.loc["broken", "status"] == "failed"
    assert set(status.loc[["screen_01", "screen_02"], "status"]) <= {"ok", "diagnostics-warning"}
    summary = pd.read_csv(out / "batch_summary.csv")
    params = summary[summary["run_dir"] == "screen_01"]["parameter"].tolist()
    assert params[:3] == ["Intercept", "1|g_sigma", "sigma"] and len(params) == 3 + 5  # + 5 group effects
    for p in good:
        run = out / p.stem
        assert {"summary.csv", "posterior.nc", "run.json"} <= {f.name for f in run.iterdir()}
        info = json.loads((run / "run.json").read_text())
        assert info["seed"] == 1 and info["config"]["sampler"]["cores"] is None  # one worker: all cores per fit

    # one input through hlm fit with the same settings: the same numbers
    single = tmp_path / "single"
    assert main(["fit", str(good[1]), "--formula", FORMULA, "--out", str(single), *FAST, "--quiet"]) == 0
    assert (single / "summary.csv").read_text() == (out / "screen_02" / "summary.csv").read_text()

    # the same command again: nothing refitted, same tables
    stamps = {p.stem: (out / p.stem / "run.json").stat().st_mtime_ns for p in good}
    before = (out / "batch_summary.csv").read_text()
    capsys.readouterr()
    assert main(batch_args(str(tmp_path / "in" / "*.csv"), out, "--workers", "1")) == 4
    assert "0 run now, 3 already done" in capsys.readouterr().out
    assert stamps == {p.stem: (out / p.stem / "run.json").stat().st_mtime_ns for p in good}
    assert (out / "batch_summary.csv").read_text() == before


# --------------------------------------------------------------------------
# slow: kill -9 and resume; Dask
# --------------------------------------------------------------------------


def reference(root: Path, n: int) -> tuple[Path, Path]:
    """n tiny inputs and the tables of one uninterrupted, single-process batch over them."""
    make_inputs(root / "in", n, seed=3)
    ref = root / "ref"
    assert main(batch_args(str(root / "in"), ref, "--workers", "1", "--quiet")) == 0
    return root / "in", ref


@pytest.fixture(scope="module")
def screens(tmp_path_factory):
    return reference(tmp_path_factory.mktemp("screens"), 6)


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _hlm(*args: str) -> list[str]:
    return [sys.executable, "-m", "hlm_cli", *args]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the worker processes")
def test_kill_9_then_rerun_finishes_only_the_rest(screens, tmp_path):
    inputs, ref = screens
    out = tmp_path / "out"
    args = _hlm(*batch_args(str(inputs), out, "--workers", "2", "--quiet"))
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and len(list(out.glob("*/run.json"))) < 2 and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, proc.stderr.read().decode()
    workers = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)  # the batch process only: its workers must follow it
    proc.wait()
    proc.stderr.close()
    for _ in range(100):
        if not any(_alive(p) for p in workers):
            break
        time.sleep(0.1)
    assert workers and not any(_alive(p) for p in workers), "worker processes outlived the killed batch"

    finished = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/run.json")}
    assert 2 <= len(finished) < 6
    if (out / "batch_status.csv").exists():  # written periodically: never claims unfinished work
        st = pd.read_csv(out / "batch_status.csv", keep_default_na=False)
        assert set(st[st["status"].isin(["ok", "diagnostics-warning"])]["run_dir"]) <= set(finished)

    res = subprocess.run(_hlm(*batch_args(str(inputs), out, "--workers", "2")), capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr
    assert f"{6 - len(finished)} run now, {len(finished)} already done" in res.stdout
    assert finished == {k: (out / k / "run.json").stat().st_mtime_ns for k in finished}  # not refitted
    assert not [p for p in out.iterdir() if ".tmp-" in p.name or ".old-" in p.name]
    # same seeds, same numbers, whatever the worker, the order or the interruption
    assert (out / "batch_summary.csv").read_text() == (ref / "batch_summary.csv").read_text()
    st = pd.read_csv(out / "batch_status.csv", keep_default_na=False)
    assert len(st) == 6 and set(st["status"]) <= {"ok", "diagnostics-warning"}


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """A compiled-model cache of this test's own: processes started from here (the Dask
    scheduler and worker) inherit it, and no other test run on the machine writes to it."""
    monkeypatch.setenv("HLM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HLM_CACHE_KEY_FILE", str(tmp_path / "cache.key"))
    return tmp_path / "cache"


def _wait_for(what: str, ready, procs: list[subprocess.Popen], logs: list[Path], guard: float = 600) -> None:
    """Poll ``ready()`` until it is true. Fails at once if a process exits (its log is shown);
    ``guard`` only stops a hang: how long a loaded machine takes to start one is not a test."""
    deadline = time.monotonic() + guard
    while not ready():
        for p, log in zip(procs, logs, strict=True):
            if p.poll() is not None:
                pytest.fail(f"{what}: {p.args[1]} exited with {p.returncode}:\n{log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: nothing after {guard:.0f} s:\n" + "\n".join(log.read_text()[-1000:] for log in logs))
        time.sleep(0.1)


def _address(sched_file: Path) -> str | None:
    """The scheduler's address once it has written its file (it writes it in place, so a
    read can see it empty or half written: that is "not yet")."""
    try:
        return json.loads(sched_file.read_text())["address"]
    except (OSError, ValueError, KeyError):
        return None


@pytest.fixture
def dask_cluster(tmp_path, private_cache):
    """A real `dask scheduler` and one `dask worker` on 127.0.0.1 (free port), torn down after.

    Started by protocol, not by timing: the scheduler's address is read from its scheduler
    file, and the worker counts once the scheduler says it has registered.
    """
    bindir = Path(sys.executable).parent
    if not (bindir / "dask").exists():
        pytest.skip("the dask command is not installed")
    sched_file = tmp_path / "scheduler.json"
    logs = [tmp_path / "scheduler.log", tmp_path / "worker.log"]
    sinks = [log.open("w") for log in logs]
    procs = [subprocess.Popen([str(bindir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(sched_file)],
                              stdout=subprocess.DEVNULL, stderr=sinks[0], cwd=tmp_path)]
    try:
        _wait_for("the Dask scheduler", lambda: _address(sched_file) is not None, procs, logs[:1])
        address = _address(sched_file)
        procs.append(subprocess.Popen([str(bindir / "dask"), "worker", address, "--nthreads", "1", "--nworkers", "1",
                                       "--no-dashboard", "--memory-limit", "0", "--host", "127.0.0.1"],
                                      stdout=subprocess.DEVNULL, stderr=sinks[1], cwd=tmp_path))
        from dask.distributed import Client

        with Client(address, timeout="600s") as client:
            _wait_for("the Dask worker", lambda: sum(client.nthreads().values()) >= 1, procs, logs)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for sink in sinks:
            sink.close()


@pytest.mark.dask  # about 15 s with a warm compile cache, 30 s cold
@pytest.mark.slow  # suite time budget: make test-slow runs it
def test_dask_scheduler_gives_the_same_results(tmp_path, dask_cluster):
    """Same seeds, same numbers: a batch through a Dask worker (another process that compiles
    or loads the model itself, one core per fit) writes the tables of a local batch."""
    inputs, ref = reference(tmp_path / "local", 3)
    out = tmp_path / "out"
    assert main(batch_args(str(inputs), out, "--scheduler", dask_cluster, "--quiet")) == 0
    for run in sorted(p.name for p in ref.iterdir() if (p / "summary.csv").exists()):
        if (out / run / "summary.csv").read_text() != (ref / run / "summary.csv").read_text():
            how = {k: json.loads((d / run / "run.json").read_text()).get("sampler") for k, d in (("local", ref), ("dask", out))}
            pytest.fail(f"{run}: the Dask worker's draws differ from the local fit's; sampler records: {how}")
    assert (out / "batch_summary.csv").read_text() == (ref / "batch_summary.csv").read_text()
    st = pd.read_csv(out / "batch_status.csv", keep_default_na=False)
    assert len(st) == 3 and st["worker"].str.len().min() > 0
    assert set(st["worker"]) != set(pd.read_csv(ref / "batch_status.csv", keep_default_na=False)["worker"])


def test_dask_scheduler_that_is_not_there(tmp_path, capsys, monkeypatch):
    from hlm_cli.workflows import batch as wb

    monkeypatch.setattr(wb._DaskPool, "connect_timeout", "1s")
    make_inputs(tmp_path / "in", 1)
    code = main(batch_args(str(tmp_path / "in"), tmp_path / "out", "--scheduler", "tcp://127.0.0.1:9"))
    err = capsys.readouterr().err
    assert code == 1 and "error: cannot connect to the Dask scheduler at tcp://127.0.0.1:9" in err


@pytest.mark.slow
def test_several_formulas_and_loo_comparison(tmp_path):
    make_inputs(tmp_path / "in", 1)
    out = tmp_path / "out"
    code = main(["batch", str(tmp_path / "in"), "--formula", FORMULA, "--formula", "y ~ 1", "--out", str(out),
                 *FAST, "--workers", "1", "--quiet"])
    assert code == 0
    assert (out / "screen_01" / "m1" / "run.json").exists() and (out / "screen_01" / "m2" / "run.json").exists()
    st = pd.read_csv(out / "batch_status.csv", keep_default_na=False)
    assert list(st["model"]) == ["m1", "m2"]
    try:
        import hlm_cli.workflows.loo  # noqa: F401
    except ImportError:
        assert set(st["compare"]) == {"skipped: hlm loo is not available"}
        return
    assert set(st["compare"]) == {"ok"}, st["compare"]
    cmp = pd.read_csv(out / "screen_01" / "compare.csv")
    assert len(cmp) == 2 and set(cmp.iloc[:, 0]) == {"m1", "m2"}
