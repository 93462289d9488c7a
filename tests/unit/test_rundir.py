"""Run directories and the files in them: what --force may replace, umask, full disks, damaged
run.json/posterior.nc, incomplete posteriors and Ctrl-C while sampling. Nothing here samples."""

from __future__ import annotations

import errno
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from hlm_cli.errors import InputError, OutputError, SamplingError
from hlm_cli.outputs import rundir, runinfo


def make_run_dir(path: Path, *, extra: dict[str, str] | None = None) -> Path:
    """A directory with the files of an hlm fit (contents are stand-ins)."""
    path.mkdir(parents=True)
    runinfo.write(path / "run.json", {"config": {"formula": "y ~ 1"}, "files": ["summary.csv"]})
    (path / "summary.csv").write_text("parameter,mean\n")
    (path / "posterior.nc").write_bytes(b"\x89HDF")
    (path / "plots").mkdir()
    (path / "plots" / "trace.png").write_bytes(b"png")
    for name, text in (extra or {}).items():
        (path / name).write_text(text)
    return path


# --force replaces only an hlm run directory ------------------------------------------------

def test_force_refuses_a_folder_of_the_users(tmp_path):
    out = tmp_path / "v"
    out.mkdir()
    (out / "good.csv").write_text("y,g\n1,a\n")
    (out / "notes.txt").write_text("keep")
    with pytest.raises(OutputError, match="replaces only an earlier hlm run directory") as err:
        rundir.check_out(out, force=True)
    assert "good.csv" in str(err.value) and "notes.txt" in str(err.value)
    assert (out / "notes.txt").read_text() == "keep"


def test_force_refuses_the_current_directory(tmp_path, monkeypatch):
    run = make_run_dir(tmp_path / "r")
    monkeypatch.chdir(run)
    with pytest.raises(OutputError, match="holds the current directory"):
        rundir.check_out(Path("."), force=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputError, match="holds the current directory"):
        rundir.check_out(tmp_path, force=True)


def test_force_refuses_a_directory_holding_the_input(tmp_path):
    run = make_run_dir(tmp_path / "r")
    with pytest.raises(OutputError, match="holds the input"):
        rundir.check_out(run, force=True, protect=(run / "plots" / "trace.png",))


def test_force_refuses_a_run_dir_with_extra_files_or_a_fake_run_json(tmp_path):
    run = make_run_dir(tmp_path / "r", extra={"analysis.R": "x <- 1"})
    with pytest.raises(OutputError, match="analysis.R"):
        rundir.check_out(run, force=True)
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "run.json").write_text("{}")
    with pytest.raises(OutputError, match="not written by hlm"):
        rundir.check_out(fake, force=True)
    nested = make_run_dir(tmp_path / "n")
    (nested / "plots" / "sub").mkdir()
    with pytest.raises(OutputError, match="plots/sub"):
        rundir.check_out(nested, force=True)


def test_force_refuses_a_symlinked_entry(tmp_path):
    run = make_run_dir(tmp_path / "r")
    (tmp_path / "precious.txt").write_text("keep")
    (run / "report.html").symlink_to(tmp_path / "precious.txt")
    with pytest.raises(OutputError, match="report.html"):
        rundir.check_out(run, force=True)


def test_force_replaces_an_hlm_run_dir(tmp_path):
    run = make_run_dir(tmp_path / "r")
    rundir.check_out(run, force=True)
    with rundir.staged(run, force=True) as stage:
        (stage / "summary.csv").write_text("new\n")
    assert (run / "summary.csv").read_text() == "new\n"
    assert not (run / "plots").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # no staging or trash left


def test_staged_refuses_a_directory_that_changed_while_fitting(tmp_path):
    run = make_run_dir(tmp_path / "r")
    with pytest.raises(OutputError, match="mine.txt"):
        with rundir.staged(run, force=True) as stage:
            (stage / "summary.csv").write_text("new\n")
            (run / "mine.txt").write_text("written by the user meanwhile")
    assert (run / "mine.txt").exists() and (run / "summary.csv").read_text() == "parameter,mean\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_loo_out_replaces_only_its_own_files(tmp_path):
    from hlm_cli.outputs import loo_out

    out = tmp_path / "loo"
    out.mkdir()
    (out / "loo.csv").write_text("x\n")
    loo_out.check_out(out)
    (out / "data.csv").write_text("y\n")
    with pytest.raises(OutputError, match="data.csv"):
        loo_out.check_out(out)


# writability, umask, full disks ----------------------------------------------------------

def test_unwritable_out_is_refused_before_any_work():
    if not Path("/proc/self").exists():
        pytest.skip("no /proc")
    with pytest.raises(OutputError, match="cannot (write in|create)"):
        rundir.check_out(Path("/proc/self/hlm-run"), force=False)


@pytest.mark.parametrize("mask, dir_mode, file_mode", [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600), (0o002, 0o775, 0o664)])
def test_run_dirs_respect_the_umask(tmp_path, mask, dir_mode, file_mode):
    old = os.umask(mask)
    try:
        out = tmp_path / "r"
        with rundir.staged(out, force=False) as stage:
            rundir.write_atomic(stage / "summary.csv", lambda fh: fh.write("a\n"))
            runinfo.write(stage / "run.json", {"config": {}})
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == dir_mode
    assert (out / "summary.csv").stat().st_mode & 0o777 == file_mode
    assert (out / "run.json").stat().st_mode & 0o777 == file_mode


def test_full_disk_is_one_error_naming_device_and_file(tmp_path):
    out = tmp_path / "r"
    with pytest.raises(OutputError) as err:
        with rundir.staged(out, force=False) as stage:
            with rundir.writing(stage / "posterior.nc"):
                raise OSError(errno.ENOSPC, "Can't close file (file write failed)")
    assert str(err.value).startswith("no space left on ") and str(err.value).endswith("while writing posterior.nc")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_h5py_style_full_disk_message_is_recognised():
    assert rundir.is_no_space(OSError("[Errno 28] Can't close file (file write failed: time = ...)"))
    assert not rundir.is_no_space(OSError(errno.EACCES, "Permission denied"))


# reading a run back ----------------------------------------------------------------------

def test_damaged_run_json_is_named(tmp_path):
    run = make_run_dir(tmp_path / "r")
    text = (run / "run.json").read_text()
    (run / "run.json").write_text(text[: len(text) // 2])
    with pytest.raises(InputError, match=r"run.json' is damaged"):
        runinfo.read(run)


def test_run_json_from_a_newer_hlm_is_refused(tmp_path):
    run = make_run_dir(tmp_path / "r")
    info = json.loads((run / "run.json").read_text())
    info["schema_version"] = runinfo.SCHEMA_VERSION + 1
    info["versions"]["hlm"] = "9.0.0"
    (run / "run.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match="written by hlm 9.0.0") as err:
        runinfo.read(run)
    assert "upgrade hlm" in err.value.hint


def test_damaged_posterior_is_named(tmp_path):
    from hlm_cli.workflows.runs import open_tree

    run = make_run_dir(tmp_path / "r")
    (run / "posterior.nc").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 50)
    with pytest.raises(InputError, match="posterior.nc' is damaged"):
        open_tree(run)
    (run / "posterior.nc").write_text("garbage")
    with pytest.raises(InputError, match="posterior.nc' is damaged"):
        open_tree(run)


def test_run_json_is_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "run.json"
    runinfo.write(path, {"config": {"a": 1}})
    before = path.read_text()

    def boom(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OutputError, match="no space left"):
        runinfo.write(path, {"config": {"a": 2}})
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


# complete posteriors, Ctrl-C -------------------------------------------------------------

def _tree(chains: int, draws: int, nan_tail: int = 0):
    import xarray as xr

    x = np.ones((chains, draws))
    if nan_tail:
        x[1, -nan_tail:] = np.nan
    return xr.DataTree.from_dict({"posterior": xr.Dataset({"mu": (("chain", "draw"), x)})})


def test_incomplete_posteriors_are_refused():
    from hlm_cli.sampling import check_complete

    check_complete(_tree(4, 50), chains=4, draws=50)
    with pytest.raises(SamplingError, match="incomplete posterior"):
        check_complete(_tree(4, 30), chains=4, draws=50)
    with pytest.raises(SamplingError, match="incomplete posterior"):
        check_complete(_tree(3, 50), chains=4, draws=50)
    with pytest.raises(SamplingError, match="incomplete posterior"):
        check_complete(_tree(4, 50, nan_tail=20), chains=4, draws=50)


def test_interrupt_guard_records_ctrl_c_that_a_library_swallows():
    from hlm_cli.sampling import interrupt_guard

    def library_call():  # what nutpie does: catch KeyboardInterrupt, return partial work
        try:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass
        except KeyboardInterrupt:
            return "partial"
        return "complete"

    before = signal.getsignal(signal.SIGINT)
    with interrupt_guard() as interrupted:
        got = library_call()
    assert got == "partial" and interrupted
    assert signal.getsignal(signal.SIGINT) is before
    with interrupt_guard() as interrupted:
        pass
    assert not interrupted


def test_fit_interrupted_while_sampling_exits_130_and_writes_nothing(tmp_path, tiny_csv, capsys, monkeypatch):
    """nutpie returns a partial trace after Ctrl-C: hlm must exit 130, say so, write nothing."""
    import nutpie

    from hlm_cli import sampling
    from hlm_cli.cli.app import main

    def fake_sample(compiled, *, chains, draws, **kw):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass
        except KeyboardInterrupt:
            pass
        return _tree(chains, draws, nan_tail=draws // 2)

    monkeypatch.setattr(sampling, "_compile", lambda built, use_cache, quick=False: (object(), "compiled"))
    monkeypatch.setattr(nutpie, "sample", fake_sample)
    out = tmp_path / "run"
    code = main(["fit", str(tiny_csv), "--formula", "y ~ x + (1|g)", "--out", str(out), "--no-plots", "--draws", "40", "--tune", "40"])
    err = capsys.readouterr().err
    assert code == 130
    assert err.startswith("error: interrupted")
    assert not out.exists() and list(tmp_path.glob(".run.*")) == []


def test_fit_with_a_short_trace_is_not_a_success(tmp_path, tiny_csv, capsys, monkeypatch):
    import nutpie

    from hlm_cli import sampling
    from hlm_cli.cli.app import main

    monkeypatch.setattr(sampling, "_compile", lambda built, use_cache, quick=False: (object(), "compiled"))
    monkeypatch.setattr(nutpie, "sample", lambda compiled, *, chains, draws, **kw: _tree(chains, draws // 3))
    out = tmp_path / "run"
    code = main(["fit", str(tiny_csv), "--formula", "y ~ x + (1|g)", "--out", str(out), "--no-plots", "--draws", "40", "--tune", "40"])
    err = capsys.readouterr().err
    assert code == 1 and "incomplete posterior" in err
    assert not out.exists()


def test_fit_force_in_the_users_folder_deletes_nothing(tmp_path, tiny_csv, capsys, monkeypatch):
    """The issue's repro: cd v; hlm fit good.csv ... --out . --force."""
    from hlm_cli.cli.app import main

    v = tmp_path / "v"
    v.mkdir()
    data = v / "good.csv"
    data.write_bytes(tiny_csv.read_bytes())
    (v / "notes.txt").write_text("keep")
    monkeypatch.chdir(v)
    code = main(["fit", "good.csv", "--formula", "y ~ x + (1|g)", "--out", ".", "--force"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: ") and "hint:" in err
    assert sorted(p.name for p in v.iterdir()) == ["good.csv", "notes.txt"]
    # and a sibling directory holding the data is protected too
    code = main(["fit", str(data), "--formula", "y ~ x + (1|g)", "--out", str(v), "--force"])
    assert code == 1 and sorted(p.name for p in v.iterdir()) == ["good.csv", "notes.txt"]


def test_files_changed_after_the_fit_are_refused(tmp_path):
    run = make_run_dir(tmp_path / "r")
    runinfo.write(run / "run.json", {"config": {}, "checksums": runinfo.checksums(run)})
    info = runinfo.read(run)
    runinfo.verify(run, "summary.csv", info)
    runinfo.verify(run, "posterior.nc", info)
    (run / "summary.csv").write_text("parameter,mean\nIntercept,1\n")
    with pytest.raises(InputError, match="summary.csv' is damaged or was changed"):
        runinfo.verify(run, "summary.csv", info)
    (run / "posterior.nc").write_bytes(b"\x89HD")
    with pytest.raises(InputError, match="posterior.nc' is damaged or was changed"):
        runinfo.verify(run, "posterior.nc", info)


def test_batch_removes_only_stale_run_dirs_of_its_own(tmp_path):
    torn = make_run_dir(tmp_path / "torn")
    (torn / "run.json").write_text('{"schema_')
    assert rundir.remove_stale(torn) and not torn.exists()
    mixed = make_run_dir(tmp_path / "mixed", extra={"notes.txt": "keep"})
    (mixed / "run.json").unlink()
    assert not rundir.remove_stale(mixed) and (mixed / "notes.txt").read_text() == "keep"
