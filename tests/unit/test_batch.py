"""hlm batch without sampling: inputs, names, fingerprints, skip/resume logic, tables, exit codes.

Fits are replaced by a fake ``fit_one`` that commits a run directory the way run_fit does
(staged, renamed); broken CSVs go through the real ``fit_one`` (they fail before any PyMC).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from hlm_cli.cli.app import main
from hlm_cli.errors import InputError, OutputError
from hlm_cli.outputs import batch_out
from hlm_cli.spec import FitSpec
from hlm_cli.workflows import batch as wb

FORMULA = "y ~ 1 + (1|g)"


def spec_for(tmp_path: Path, **over) -> FitSpec:
    base = {"data": "INPUT", "out": str(tmp_path / "INPUT"), "formula": FORMULA,
            "sampler": {"draws": 100, "tune": 100, "chains": 2, "seed": 7}}
    base.update(over)
    return FitSpec.model_validate(base)


def batch_spec(tmp_path: Path, inputs, out=None, formulas=(FORMULA,), **kw) -> wb.BatchSpec:
    return wb.BatchSpec(inputs=[str(i) for i in inputs], out=out or tmp_path / "out",
                        specs=[spec_for(tmp_path, formula=f) for f in formulas], workers=1, **kw)


def write_inputs(folder: Path, names=("a", "b", "c")) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, n in enumerate(names):
        p = folder / f"{n}.csv"
        p.write_text("y,g\n" + "".join(f"{i + j * 0.5},{'uv'[j % 2]}\n" for j in range(6)))
        paths.append(p)
    return paths


class FakeClock:
    """The batch's clock (``workflows.batch.time``): it stands still, except while a fake fit
    "runs", so whether the tables are rebuilt never depends on how busy the machine is."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


def fake_fit_one(calls: list | None = None, divergences: int = 0, clock: FakeClock | None = None, seconds: float = 0.0):
    """A stand-in for fit_one: commits summary.csv + run.json atomically, like run_fit; with a
    ``clock``, each fit takes ``seconds`` of it."""
    from hlm_cli.outputs import rundir, runinfo

    def fit_one(fit):
        if calls is not None:
            calls.append(fit.entry.run_dir)
        if clock is not None:
            clock.now += seconds
        spec = FitSpec.model_validate(fit.spec)
        with rundir.staged(spec.out, force=True) as stage:
            pd.DataFrame({
                "parameter": ["Intercept", "1|g_sigma", "sigma"], "kind": ["population", "group_sd", "family"],
                "group": ["", "g", ""], "mean": [1.5, 0.5, 0.25], "sd": [0.1, 0.2, 0.05],
                "hdi94_lb": [1.3, 0.1, 0.15], "hdi94_ub": [1.7, 0.9, 0.35], "eti94_lb": [1.3, 0.1, 0.15],
                "eti94_ub": [1.7, 0.9, 0.35], "mcse_mean": 0.01, "mcse_sd": 0.01, "ess_bulk": [400.0, 300, 350],
                "ess_tail": [380.0, 290, 330], "r_hat": [1.0, 1.01, 1.0],
            }).to_csv(stage / "summary.csv", index=False)
            findings = [{"code": "divergences", "message": f"{divergences} divergent transition(s)", "remedy": "raise --target-accept",
                         "params": [], "value": float(divergences), "severity": "warning"}] if divergences else []
            runinfo.write(stage / "run.json", {  # the fit's writer (schema_version, checksums)
                "config": fit.spec, "data": {"sha256": fit.entry.sha256},
                "timings": {"load": 0.1, "build": 0.2, "compile": 0.3, "sample": 0.4, "total": 1.0},
                "diagnostics": {"ok": not findings, "findings": findings},
                "checksums": runinfo.checksums(stage, ("summary.csv",)),
            })
        status = "diagnostics-warning" if findings else "ok"
        return {"run_dir": fit.entry.run_dir, "input": fit.entry.input, "model": fit.entry.model,
                "sha256": fit.entry.sha256, "fingerprint": fit.entry.fingerprint, "attempted_at": "2026-01-01T00:00:00+00:00",
                "worker": "test:1", "status": status, "error": "", "hint": "", "timings": {}}

    return fit_one


# --------------------------------------------------------------------------
# inputs and names
# --------------------------------------------------------------------------


def test_glob_directory_file_and_manifest(tmp_path):
    a, b, c = write_inputs(tmp_path / "d")
    (tmp_path / "d" / "notes.md").write_text("x")
    assert wb.resolve_inputs([str(tmp_path / "d" / "*.csv")]) == [str(a), str(b), str(c)]
    assert wb.resolve_inputs([str(tmp_path / "d")]) == [str(a), str(b), str(c)]
    man = tmp_path / "d" / "list.txt"
    man.write_text("# inputs\nb.csv\n\n c.csv  # trailing comment\nb.csv\n")
    # relative to the manifest's folder; the repeated b.csv is kept once
    assert wb.resolve_inputs([], man) == [str(tmp_path / "d" / "b.csv"), str(tmp_path / "d" / "c.csv")]
    # a file named explicitly is kept even when missing: it fails on its own row
    assert wb.resolve_inputs([str(tmp_path / "nope.csv")]) == [str(tmp_path / "nope.csv")]


def test_inputs_under_out_are_left_out(tmp_path):
    a, b = write_inputs(tmp_path / "d", ("a", "b"))
    out = tmp_path / "d" / "results"
    write_inputs(out / "a", ("summary",))
    got = wb.resolve_inputs([str(tmp_path / "d" / "**" / "*.csv")], exclude=out)
    assert got == [str(a), str(b)]


@pytest.mark.parametrize("pattern, fragment", [
    ("*.nothing", "no files match"),
    ("emptydir", "has no .csv"),
])
def test_inputs_that_match_nothing(tmp_path, pattern, fragment):
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(InputError, match=fragment):
        wb.resolve_inputs([str(tmp_path / pattern)])


def test_missing_manifest(tmp_path):
    with pytest.raises(InputError, match="cannot read the manifest"):
        wb.resolve_inputs([], tmp_path / "list.txt")


def test_duplicate_stems_are_disambiguated_independently_of_order():
    paths = ["x/ko.csv", "y/ko.csv", "z/other.csv", "w/x/ko.tsv"]
    names = wb.unique_names(paths)
    assert len(set(names)) == 4 and names[2] == "other"
    assert names[1] == "ko-y"
    # x/ko.csv and w/x/ko.tsv share stem and parent name: both get a hash of the path
    assert names[0].startswith("ko-x-") and names[3].startswith("ko-x-") and names[0] != names[3]
    assert wb.unique_names(paths[::-1]) == names[::-1]


# --------------------------------------------------------------------------
# fingerprints, records, the output directory
# --------------------------------------------------------------------------


def test_fingerprint_ignores_per_input_and_thread_settings(tmp_path):
    s = spec_for(tmp_path)
    fp = batch_out.fingerprint(s.model_dump(mode="json"))
    same = s.model_copy(update={"data": Path("other.csv"), "out": Path("elsewhere"), "force": True, "quiet": True,
                                "sampler": s.sampler.model_copy(update={"cores": 1})})
    assert batch_out.fingerprint(same.model_dump(mode="json")) == fp
    for change in ({"formula": "y ~ 1 + (1|h)"}, {"sampler": s.sampler.model_copy(update={"seed": 8})},
                   {"sampler": s.sampler.model_copy(update={"draws": 101})}, {"priors": {"sigma": "HalfNormal(1)"}}):
        assert batch_out.fingerprint(s.model_copy(update=change).model_dump(mode="json")) != fp
    assert batch_out.fingerprint({"formula": "y ~ 1", "bogus": 1}) is None


def test_out_must_be_a_batch_directory(tmp_path):
    layout = {"formulas": [FORMULA], "nested": False}
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        batch_out.prepare_out(tmp_path / "file", layout)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    with pytest.raises(OutputError, match="not written by hlm batch"):
        batch_out.prepare_out(tmp_path / "mine", layout)
    batch_out.prepare_out(tmp_path / "b", layout)
    batch_out.prepare_out(tmp_path / "b", layout)  # a resume
    with pytest.raises(OutputError, match="holds a batch with 1 formula"):
        batch_out.prepare_out(tmp_path / "b", {"formulas": ["a", "b"], "nested": True})


def test_lock_refuses_a_second_batch(tmp_path):
    batch_out.prepare_out(tmp_path / "b", {"formulas": [FORMULA], "nested": False})
    with batch_out.locked(tmp_path / "b"):
        with pytest.raises(OutputError, match="another hlm batch"):
            with batch_out.locked(tmp_path / "b"):
                pass
    with batch_out.locked(tmp_path / "b"):  # released
        pass


def test_leftover_staging_dirs_are_removed(tmp_path):
    for name in (".a.tmp-x1", ".a.old-12", "a", ".hlm_batch"):
        (tmp_path / name).mkdir()
    (tmp_path / "a" / ".m1.tmp-zz").mkdir()
    assert batch_out.remove_leftovers(tmp_path, ["a"]) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hlm_batch", "a"] and not list((tmp_path / "a").iterdir())


# --------------------------------------------------------------------------
# plan, resume and the tables (fake fits)
# --------------------------------------------------------------------------


def test_batch_fits_skips_and_refits(tmp_path, monkeypatch):
    inputs = write_inputs(tmp_path / "d")
    calls: list[str] = []
    monkeypatch.setattr(wb, "fit_one", fake_fit_one(calls))
    res = wb.run_batch(batch_spec(tmp_path, inputs))
    assert calls == ["a", "b", "c"] and res.exit_code == 0 and res.fitted == 3
    status = pd.read_csv(res.status_path, keep_default_na=False)
    assert list(status.columns) == batch_out.STATUS_COLUMNS and set(status["status"]) == {"ok"}
    summary = pd.read_csv(res.summary_path, keep_default_na=False)
    assert list(summary.columns) == batch_out.SUMMARY_COLUMNS and len(summary) == 9
    assert summary.groupby("run_dir")["parameter"].apply(list).to_dict()["b"] == ["Intercept", "1|g_sigma", "sigma"]

    calls.clear()  # the same command again: nothing to do
    res = wb.run_batch(batch_spec(tmp_path, inputs))
    assert calls == [] and res.skipped == 3 and res.exit_code == 0

    inputs[1].write_text(inputs[1].read_text() + "9,u\n")  # new data: refit that input only
    res = wb.run_batch(batch_spec(tmp_path, inputs))
    assert calls == ["b"] and res.skipped == 2

    calls.clear()  # new settings: every run directory is stale
    spec = batch_spec(tmp_path, inputs)
    spec = wb.BatchSpec(**{**spec.__dict__, "specs": [spec_for(tmp_path, sampler={"draws": 50, "seed": 7})]})
    wb.run_batch(spec)
    assert calls == ["a", "b", "c"]

    calls.clear()
    wb.run_batch(wb.BatchSpec(**{**spec.__dict__, "force": True}))
    assert calls == ["a", "b", "c"]


def test_failures_are_isolated_and_rerun_on_request(tmp_path, monkeypatch):
    write_inputs(tmp_path / "d", ("a", "b"))
    empty = tmp_path / "d" / "empty.csv"
    empty.write_text("")
    nocol = tmp_path / "d" / "nocol.csv"
    nocol.write_text("y,h\n1,a\n2,b\n")
    text = tmp_path / "d" / "text.csv"
    text.write_text("y,g\n1,a\n#VALUE!,b\n3,a\n")
    real_fit_one = wb.fit_one
    calls: list[str] = []
    fake = fake_fit_one(calls)
    # good files get the fake fit; broken ones the real one (they fail before any PyMC)
    monkeypatch.setattr(wb, "fit_one", lambda fit: fake(fit) if Path(fit.entry.input).stem in "ab" else real_fit_one(fit))
    res = wb.run_batch(batch_spec(tmp_path, [tmp_path / "d"]))
    assert res.exit_code == 4 and res.count("failed") == 3 and res.count("ok") == 2
    st = pd.read_csv(res.status_path, keep_default_na=False).set_index("run_dir")
    assert st.loc["empty", "error"] == "empty.csv is empty"
    assert st.loc["nocol", "error"] == "column 'g' is not in nocol.csv" and st.loc["nocol", "hint"] == "columns: y, h"
    assert "CSV line 3 has '#VALUE!'" in st.loc["text", "error"]
    assert st.loc["empty", "data_sha256"] and st.loc["empty", "attempted_at"] and st.loc["empty", "total_s"] != ""
    assert not (tmp_path / "out" / "empty").exists()  # a failed fit leaves no run directory
    summary = pd.read_csv(res.summary_path)
    assert set(summary["run_dir"]) == {"a", "b"}

    calls.clear()  # a re-run skips failed inputs too ...
    res = wb.run_batch(batch_spec(tmp_path, [tmp_path / "d"]))
    assert res.fitted == 0 and res.exit_code == 4
    text.write_text("y,g\n1,a\n2,b\n3,a\n")  # ... unless their data changed
    monkeypatch.setattr(wb, "fit_one", lambda fit: fake(fit) if fit.entry.run_dir != "empty" else real_fit_one(fit))
    res = wb.run_batch(batch_spec(tmp_path, [tmp_path / "d"]))
    assert calls == ["text"] and res.count("failed") == 2
    calls.clear()
    res = wb.run_batch(batch_spec(tmp_path, [tmp_path / "d"], rerun_failed=True))
    assert calls == ["nocol"] and res.fitted == 2 and res.count("failed") == 1 and res.exit_code == 4


def test_exit_code_none_fitted(tmp_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    (d / "x.csv").write_text("")
    (d / "y.csv").write_text("")
    code = main(["batch", str(d), "--formula", FORMULA, "--out", str(tmp_path / "out"), "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 1
    assert "failed: x (" in err and "error: no input was fitted (2 failed); first: x.csv is empty" in err


def test_diagnostics_warnings_count_as_success_unless_strict(tmp_path, monkeypatch):
    inputs = write_inputs(tmp_path / "d", ("a",))
    monkeypatch.setattr(wb, "fit_one", fake_fit_one(divergences=3))
    res = wb.run_batch(batch_spec(tmp_path, inputs))
    assert res.count("diagnostics-warning") == 1 and res.exit_code == 0
    st = pd.read_csv(res.status_path, keep_default_na=False)
    assert st.loc[0, "error"] == "3 divergent transition(s)" and st.loc[0, "findings"] == "divergences"
    assert set(pd.read_csv(res.summary_path)["divergences"]) == {3}
    res = wb.run_batch(batch_spec(tmp_path, inputs, strict=True))
    assert res.exit_code == 1


def test_half_written_or_stale_runs_are_not_done(tmp_path, monkeypatch):
    inputs = write_inputs(tmp_path / "d", ("a", "b"))
    monkeypatch.setattr(wb, "fit_one", fake_fit_one())
    res = wb.run_batch(batch_spec(tmp_path, inputs))
    out = tmp_path / "out"
    (out / "a" / "run.json").unlink()  # as if the process died before run.json
    (out / "b" / "run.json").write_text((out / "b" / "run.json").read_text()[:20])  # torn write
    (out / ".b.tmp-abc").mkdir()  # a staging dir of a killed fit
    entries = wb.plan(batch_spec(tmp_path, inputs)).entries
    status, summary = batch_out.rebuild(out, entries)
    assert list(status["status"]) == ["pending", "pending"] and summary.empty
    calls: list[str] = []
    monkeypatch.setattr(wb, "fit_one", fake_fit_one(calls))
    res = wb.run_batch(batch_spec(tmp_path, inputs))
    assert calls == ["a", "b"] and res.exit_code == 0 and not (out / ".b.tmp-abc").exists()


def test_several_formulas_nest_run_dirs(tmp_path, monkeypatch):
    inputs = write_inputs(tmp_path / "d", ("a", "b"))
    calls: list[str] = []
    monkeypatch.setattr(wb, "fit_one", fake_fit_one(calls))
    compared: list = []
    monkeypatch.setattr(wb, "compare_unit", lambda unit: compared.append(unit.compare) or "ok")
    res = wb.run_batch(batch_spec(tmp_path, inputs, formulas=(FORMULA, "y ~ 1")))
    assert calls == ["a/m1", "a/m2", "b/m1", "b/m2"] and compared == [["a/m1", "a/m2"], ["b/m1", "b/m2"]]
    st = pd.read_csv(res.status_path, keep_default_na=False)
    assert list(st["model"]) == ["m1", "m2", "m1", "m2"] and set(st["compare"]) == {"ok"}
    assert list(st["formula"]) == [FORMULA, "y ~ 1"] * 2
    assert (tmp_path / "out" / "a" / "m2" / "run.json").exists()


def test_progress_counts(tmp_path, monkeypatch):
    inputs = write_inputs(tmp_path / "d", ("a", "b"))
    (tmp_path / "d" / "z.csv").write_text("")
    real = wb.fit_one
    fake = fake_fit_one()
    monkeypatch.setattr(wb, "fit_one", lambda f: real(f) if f.entry.input.endswith("z.csv") else fake(f))
    seen: list[wb.BatchProgress] = []
    wb.run_batch(batch_spec(tmp_path, [*inputs, tmp_path / "d" / "z.csv"]),
                 on_progress=lambda p: seen.append(wb.BatchProgress(**p.__dict__)))
    last = seen[-1]
    assert (last.total, last.done, last.failed, last.running) == (3, 2, 1, 0)
    assert last.last == "z: failed"


def test_cli_options_reach_the_spec(tmp_path, monkeypatch, capsys):
    got = {}

    def fake_run_batch(spec, on_progress=None):
        got["spec"] = spec
        status = pd.DataFrame({"status": ["ok"], "run_dir": ["a"], "input": ["a.csv"], "error": [""], "hint": [""]})
        return wb.BatchResult(spec.out, status, spec.out / "batch_status.csv", spec.out / "batch_summary.csv", 1, 0, 0.5, 2)

    monkeypatch.setattr(wb, "run_batch", fake_run_batch)
    cfg = tmp_path / "c.toml"
    cfg.write_text('family = "t"\n[sampler]\ndraws = 300\n')
    code = main(["batch", "data/*.csv", "more/", "--formula", "y ~ 1", "--formula", "y ~ x", "--out", str(tmp_path / "o"),
                 "--config", str(cfg), "--workers", "3", "--seed", "5", "--rerun-failed", "--no-plots",
                 "--scheduler", "tcp://127.0.0.1:8786", "--prior", "sigma=HalfNormal(1)", "--quiet"])
    assert code == 0
    spec = got["spec"]
    assert spec.inputs == ["data/*.csv", "more/"] and spec.workers == 3 and spec.rerun_failed and not spec.force
    assert spec.scheduler == "tcp://127.0.0.1:8786"
    assert [s.formula for s in spec.specs] == ["y ~ 1", "y ~ x"]
    assert all(s.family == "t" and s.sampler.draws == 300 and s.sampler.seed == 5 and not s.plots for s in spec.specs)
    assert spec.specs[0].priors == {"sigma": "HalfNormal(1)"}


@pytest.mark.parametrize("args, fragment", [
    (["in.csv", "--formula", FORMULA], "hlm batch needs --out"),
    (["--formula", FORMULA, "--out", "o"], "no input files given"),
    (["in.csv", "--out", "o"], "formula is required"),
])
def test_cli_usage_errors(args, fragment, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["batch", *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err and "Traceback" not in err


def test_help_shows_an_example():
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "hlm_cli", "batch", "--help"], capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "200"})
    assert res.returncode == 0 and 'hlm batch "data/*.csv" --formula' in res.stdout


def test_a_glob_that_matches_nothing_creates_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["batch", str(tmp_path / "*.csvv"), "--formula", FORMULA, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: no files match") and "hint:  check the pattern" in err
    assert not out.exists()


def test_tables_are_written_while_the_batch_runs(tmp_path, monkeypatch):
    inputs = write_inputs(tmp_path / "d")
    clock = FakeClock()  # a fit takes 1 s of the batch's clock, rebuilding the tables none
    monkeypatch.setattr(wb, "time", clock)
    monkeypatch.setattr(wb, "fit_one", fake_fit_one(clock=clock, seconds=1.0))
    snapshots = []

    def peek(p):
        path = tmp_path / "out" / batch_out.STATUS_FILE
        if p.done and path.exists():
            snapshots.append(list(pd.read_csv(path)["status"]))

    wb.run_batch(batch_spec(tmp_path, inputs), on_progress=peek, flush_every=0)
    assert snapshots[0] == ["ok", "pending", "pending"] and snapshots[1] == ["ok", "ok", "pending"]


def test_the_batch_status_names_the_worst_finding_first():
    """Issue 18: 61 divergences were hidden behind an R-hat message in batch_status.csv."""
    from hlm_cli.diagnostics import Finding, worst

    rhat = Finding("rhat", "R-hat above 1.01 for 1 parameter(s)", "run longer")
    div = Finding("divergences", "61 divergent transition(s)", "raise --target-accept")
    tail = Finding("ess_tail", "tail ESS below 400", "run longer")
    note = Finding("data", "period enters as a number", "", severity="note")
    assert worst([rhat, tail, div, note]) is div
    assert worst([tail, rhat]) is rhat
    assert worst([note]) is None


def test_fit_one_records_the_worst_finding_and_counts_the_rest(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from hlm_cli.diagnostics import Finding
    from hlm_cli.workflows import fit as wf

    findings = [Finding("rhat", "R-hat above 1.01 for 1 parameter(s)", "run longer"),
                Finding("divergences", "61 divergent transition(s) after warm-up", "raise --target-accept to 0.95")]
    monkeypatch.setattr(wf, "run_fit", lambda spec, **kw: SimpleNamespace(findings=findings, timings={"total": 1.0}))
    entry = batch_out.Entry("a.csv", "m1", "y ~ 1", "a", "sha", "fp")
    spec = FitSpec(data=tmp_path / "a.csv", formula="y ~ 1", out=tmp_path / "out" / "a").model_dump(mode="json")
    rec = wb.fit_one(wb.Fit(entry, spec))
    assert rec["status"] == "diagnostics-warning"
    assert rec["error"] == "61 divergent transition(s) after warm-up (and 1 more: rhat)"
    assert rec["hint"] == "raise --target-accept to 0.95"
