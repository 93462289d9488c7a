"""hlm fit end to end through main(): bad input (one line, exit 1, nothing written) and real fits."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hlm_cli.cli.app import main
from tests.conftest import FAST, SAMPLE


def run(args, capsys):
    code = main(args)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def bad(args, capsys, out: Path):
    code, _, err = run(args, capsys)
    assert code == 1, err
    lines = err.strip().splitlines()
    assert lines[0].startswith("error: ") and "Traceback" not in err
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.tmp-*"))
    return err


@pytest.mark.parametrize("name, csv_text, formula, extra, fragment", [
    ("missing_column", None, "y ~ 1 + (1|gen)", [], "column 'gen' is not in tiny.csv"),
    ("missing_response", None, "yy ~ 1 + (1|g)", [], "column 'yy' is not in tiny.csv"),
    ("syntax", None, "y ~ 1 + (1|g", [], "formula syntax error"),
    ("hostile", None, "y ~ os.system('echo hi')", [], "'os.system' is not allowed"),
    ("single_level", "y,g\n1,a\n2,a\n3,a\n", "y ~ 1 + (1|g)", [], "single level"),
    ("text_response", "y,g\n1,a\n2,b\nabc,a\n4,b\n", "y ~ 1 + (1|g)", [], "CSV line 4 has 'abc'"),
    ("negative_counts", "y,g\n1,a\n-2,b\n3,a\n4,b\n", "y ~ 1 + (1|g)", ["--family", "poisson"], "outside the poisson family's support"),
    ("bernoulli_range", "y,g\n0,a\n1,b\n2,a\n1,b\n", "y ~ 1 + (1|g)", ["--family", "bernoulli"], "only 0 and 1"),
    ("no_dropna", "y,g\n1,a\n,b\n3,a\n4,b\n", "y ~ 1 + (1|g)", ["--no-dropna"], "missing value(s) in column 'y'"),
    ("unknown_prior_dist", None, "y ~ x + (1|g)", ["--prior", "x=Nomal(0, 1)"], "unknown prior distribution 'Nomal'"),
    ("unknown_prior_term", None, "y ~ x + (1|g)", ["--prior", "z=Normal(0, 1)"], "not a parameter of this model"),
    ("unknown_family", None, "y ~ x", ["--family", "gausian"], "unknown family 'gausian'"),
    ("empty_csv", "", "y ~ 1", [], "is empty"),
    ("header_only", "y,g\n", "y ~ 1", [], "no data rows"),
])
def test_bad_input(name, csv_text, formula, extra, fragment, tmp_path, tiny_csv, capsys, golden):
    data = tiny_csv
    if csv_text is not None:
        data = tmp_path / "tiny.csv"
        data.write_text(csv_text)
    out = tmp_path / "run"
    err = bad(["fit", str(data), "--formula", formula, "--out", str(out), *extra, *FAST], capsys, out)
    assert fragment in err
    golden(f"fit_error_{name}.txt", err.replace(str(tmp_path), "TMP"))


def test_missing_data_file(tmp_path, capsys):
    out = tmp_path / "run"
    err = bad(["fit", str(tmp_path / "nope.csv"), "--formula", "y ~ 1", "--out", str(out)], capsys, out)
    assert "does not exist" in err


def test_non_empty_out_without_force(tmp_path, tiny_csv, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, err = run(["fit", str(tiny_csv), "--formula", "y ~ 1 + (1|g)", "--out", str(out), *FAST], capsys)
    assert code == 1 and "exists and is not empty" in err and "--force" in err
    assert (out / "keep.txt").read_text() == "mine"


def test_usage_errors_exit_2(capsys, tiny_csv, tmp_path):
    assert main(["fit", str(tiny_csv), "--formula", "y ~ 1", "--out", str(tmp_path / "o"), "--draws", "0"]) == 2
    assert main(["fit", "--bogus"]) == 2


def test_config_error_is_one_line(tmp_path, tiny_csv, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('formula = "y ~ 1 + (1|g)"\n[sampler]\ndraw = 5\n')
    out = tmp_path / "run"
    err = bad(["fit", str(tiny_csv), "--config", str(cfg), "--out", str(out)], capsys, out)
    assert "unknown setting 'sampler.draw'" in err


def test_real_fit_writes_the_contract(tmp_path, tiny_csv, capsys):
    """A real (tiny) fit: every file of the output contract, readable and consistent."""
    out = tmp_path / "run"
    code, stdout, err = run(["fit", str(tiny_csv), "--formula", "y ~ x + cond + (1|g)", "--out", str(out),
                             "--draws", "200", "--tune", "200", "--chains", "2", "--seed", "3", "--prior", "sigma=HalfNormal(2)"], capsys)
    assert code == 0, err
    assert "Population-level effects" in stdout and "Group-level effects" in stdout
    for f in ("summary.csv", "posterior.nc", "run.json", "plots/trace.png", "plots/ppc.png", "plots/forest.png"):
        assert (out / f).exists(), f
    s = pd.read_csv(out / "summary.csv")
    assert {"parameter", "mean", "sd", "hdi94_lb", "hdi94_ub", "eti94_lb", "eti94_ub", "mcse_mean", "ess_bulk", "ess_tail", "r_hat"} <= set(s.columns)
    assert {"Intercept", "x", "cond[b]", "1|g_sigma", "sigma", "1|g[g0]"} <= set(s.parameter)
    info = json.loads((out / "run.json").read_text())
    assert info["priors"]["sigma"]["text"] == "HalfNormal(sigma=2)" and info["priors"]["sigma"]["source"] == "user"
    assert info["data"]["rows_used"] == 36 and len(info["data"]["sha256"]) == 64
    assert {"load", "build", "compile", "sample", "write"} <= set(info["timings"])
    assert info["versions"]["pymc"] and info["seed"] == 3
    assert not [k for k, v in info["plots"].items() if str(v).startswith("failed")], info["plots"]
    assert (out / "report.html").exists()
    from xarray import open_datatree

    tree = open_datatree(out / "posterior.nc", engine="h5netcdf")
    assert {"posterior", "posterior_predictive", "log_likelihood", "sample_stats", "observed_data", "log_prior"} <= set(tree.children)
    # power-scaling sensitivity: the log prior of each prior, and sensitivity.csv by printed names
    assert set(tree["log_prior"].data_vars) == {"Intercept", "x", "cond[b]", "1|g_sigma", "sigma"}
    sens = pd.read_csv(out / "sensitivity.csv")
    assert list(sens.columns) == ["parameter", "prior", "likelihood", "diagnosis"]
    assert set(sens.parameter) == {"Intercept", "x", "cond[b]", "sd(Intercept|g)", "sigma"}
    assert sens[["prior", "likelihood"]].notna().all().all()
    assert "Prior sensitivity" in (out / "report.html").read_text()
    assert tree["posterior"].sizes["chain"] == 2 and tree["posterior"].sizes["draw"] == 200
    # the slope used to simulate (0.5) is recovered
    x = s.set_index("parameter").loc["x"]
    assert x.hdi94_lb < 0.5 < x.hdi94_ub


def test_same_seed_same_numbers(tmp_path, tiny_csv, capsys, monkeypatch):
    # a seed reproduces a fit on the same path (README "Compiled-model cache"): pin the compiled
    # path, since another test (or an xdist worker) may fill the shared cache between the two
    # fits, which would send a quick first fit and a cached second one down different paths
    monkeypatch.setenv("HLM_QUICK_COMPILE", "0")
    outs = []
    for i in range(2):
        out = tmp_path / f"r{i}"
        assert main(["fit", str(tiny_csv), "--formula", "y ~ x + (1|g)", "--out", str(out), *FAST, "--no-plots"]) == 0
        outs.append(pd.read_csv(out / "summary.csv"))
    pd.testing.assert_frame_equal(outs[0], outs[1])


def test_strict_exit_code_keeps_results(tmp_path, tiny_csv, capsys):
    out = tmp_path / "run"
    code = main(["fit", str(tiny_csv), "--formula", "y ~ x + (1|g)", "--out", str(out), "--draws", "10", "--tune", "10",
                 "--chains", "2", "--strict", "--quiet", "--no-plots"])
    assert code == 3
    assert (out / "summary.csv").exists()
    assert json.loads((out / "run.json").read_text())["diagnostics"]["ok"] is False


def test_force_replaces_and_nan_rows_are_dropped(tmp_path, capsys):
    """--force replaces an earlier run (and the files later commands added to it), never a
    directory holding anything else (issue 15: it used to delete whatever --out named)."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "old.txt").write_text("x")
    args = ["fit", str(SAMPLE / "mice_wake_missing.csv"), "--formula", "WAKE ~ Treatment * Genotype + (1|mouse)",
            "--out", str(out), "--force", *FAST, "--no-plots"]
    assert main(args) == 1
    assert (out / "old.txt").read_text() == "x"
    (out / "old.txt").unlink()
    assert main(args) == 0
    (out / "hypothesis.csv").write_text("from hlm hypothesis\n")
    code = main(args)
    assert code == 0
    assert not (out / "hypothesis.csv").exists()
    info = json.loads((out / "run.json").read_text())
    assert info["data"]["rows_read"] == 36 and info["data"]["rows_used"] == 33 and info["data"]["rows_dropped"] == 3


def test_help_and_version_are_instant_and_import_no_stack():
    code = ("import sys; from hlm_cli.cli.app import main; rc = main(['--help']); "
            "bad = [m for m in ('pymc', 'bambi', 'pytensor', 'arviz_stats', 'matplotlib') if m in sys.modules]; "
            "sys.exit(10 if bad else rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "fit" in r.stdout
    r = subprocess.run([sys.executable, "-m", "hlm_cli", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("hlm ")


@pytest.mark.parametrize("cmd", [["fit", "--help"], ["batch", "--help"]])
def test_subcommand_help_has_examples(cmd, capsys):
    assert main(cmd) == 0
    out = capsys.readouterr().out
    for opt in ("--formula", "--family", "--prior", "--draws", "--tune", "--chains", "--cores", "--seed", "--target-accept",
                "--sampler", "--categorical", "--dropna", "--prior-predictive", "--force", "--quiet", "--config", "--strict",
                "--max-treedepth", "--parameterization", "--adaptation", "--se", "--sep", "--no-plots", "--no-cache"):
        assert opt in out, opt
    assert "e.g." in out


COMMANDS = ["fit", "loo", "batch", "report", "contrast", "hypothesis", "predict", "pooling", "varpart", "sensitivity", "sbc"]


def test_every_command_is_registered_in_order(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("  ") and line.split() and line.split()[0] in COMMANDS]
    assert listed == COMMANDS


def test_a_command_that_fails_to_import_is_an_error_not_a_missing_command():
    # before issue 17, cli/app.py skipped a command whose module raised ImportError
    code = ("import sys; sys.modules['hlm_cli.cli.pooling'] = None\n"
            "try:\n    import hlm_cli.cli.app\nexcept ImportError as e:\n    print('ImportError', e); sys.exit(3)\n"
            "sys.exit(0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "hlm_cli.cli.pooling" in r.stdout


def _options(command) -> dict:
    import typer

    from hlm_cli.cli import app as app_mod

    group = typer.main.get_command(app_mod.app)
    return {p.name: p for p in group.commands[command].params}


SHARED = ["config", "sep", "family", "prior", "categorical", "se", "draws", "tune", "chains", "seed", "target_accept",
          "max_treedepth", "sampler", "parameterization", "adaptation", "dropna", "prior_predictive", "no_plots", "no_cache",
          "link", "levels", "zi_formula", "hu_formula", "ess", "ess_all"]


@pytest.mark.parametrize("name", SHARED)
def test_fit_and_batch_share_one_definition_of_each_sampler_and_model_option(name):
    fit, batch = _options("fit")[name], _options("batch")[name]
    assert (fit.opts, fit.secondary_opts, fit.default, fit.help, fit.multiple) == \
        (batch.opts, batch.secondary_opts, batch.default, batch.help, batch.multiple)
    assert getattr(fit, "rich_help_panel", None) == getattr(batch, "rich_help_panel", None)


def test_fit_and_batch_keep_their_option_names():
    assert sorted(_options("fit")) == sorted([
        "data", "formula", "out", "config", "family", "prior", "prior_preset", "reference", "categorical", "se", "sep",
        "sigma_formula", "ci", "draws", "link", "levels", "zi_formula", "hu_formula",
        "tune", "chains", "cores", "seed", "target_accept", "max_treedepth", "sampler", "parameterization",
        "adaptation", "ess", "ess_all", "dropna", "prior_predictive", "force", "quiet", "strict", "color_by", "svg", "no_plots", "no_cache"])
    assert sorted(_options("batch")) == sorted([
        "inputs", "formula", "out", "manifest", "config", "workers", "scheduler", "rerun_failed", "force", "no_compare",
        "by", "lfsr", "full_features", "ci", "share",
        "family", "link", "levels", "zi_formula", "hu_formula", "prior", "prior_preset", "reference", "categorical", "se", "sep", "draws", "tune", "chains", "cores", "seed", "target_accept",
        "max_treedepth", "sampler", "parameterization", "adaptation", "ess", "ess_all", "dropna", "prior_predictive", "quiet", "strict",
        "no_plots", "no_cache"])


def test_family_help_lists_exactly_the_known_families():
    from hlm_cli.cli.options import FAMILY_HELP
    from hlm_cli.formula.families import NAMES

    assert FAMILY_HELP == ", ".join(NAMES) + " [default: gaussian]"


@pytest.mark.slow
def test_cell_lines_recovers_truth(tmp_path, capsys):
    """Acceptance (issue 2): gene and cell-line effects recover the simulation truth within 94% intervals."""
    out = tmp_path / "ko"
    assert main(["fit", str(SAMPLE / "cell_lines.csv"), "--formula", "logfc ~ 1 + (1|gene) + (1|cell_line)", "--out", str(out), "--quiet"]) == 0
    s = pd.read_csv(out / "summary.csv").set_index("parameter")
    truth = pd.read_csv(SAMPLE / "cell_lines_truth.csv").set_index("parameter")["value"]
    checked = 0
    for name, value in truth.items():
        if name.startswith("1|") and "[" in name or name in ("Intercept", "sigma"):
            row = s.loc[name]
            assert row.hdi94_lb <= value <= row.hdi94_ub, (name, value, row.hdi94_lb, row.hdi94_ub)
            checked += 1
    assert checked == 15
    assert np.isfinite(s["r_hat"]).all()


@pytest.mark.parametrize("name", ["family", "link", "levels", "zi_formula", "hu_formula", "sigma_formula", "prior",
                                  "prior_preset", "reference", "categorical", "se", "sep"])
def test_sbc_and_priors_take_fits_model_options(name):
    """hlm sbc and hlm priors describe the same models as hlm fit: one definition per option."""
    fit = _options("fit")[name]
    for command in ("sbc", "priors"):
        other = _options(command).get(name)
        assert other is not None, f"hlm {command} has no --{name.replace('_', '-')}"
        assert (fit.opts, fit.help, fit.multiple) == (other.opts, other.help, other.multiple), (command, name)
