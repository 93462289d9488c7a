"""hlm sbc with real refits: the files and their columns, resuming, and (slow) planted bugs
that SBC must detect: a generator with a 4x wider sigma prior, and a simulator whose sigma is
doubled."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hlm_cli.cli.app import main

ROOT = Path(__file__).resolve().parents[2]
FORMULA = "y ~ 1 + (1|g)"
PRIORS = ["--prior", "Intercept=Normal(0, 2)", "--prior", "sd=HalfNormal(1)", "--prior", "sigma=HalfNormal(1)"]


def _design(path: Path, groups: int = 6, per: int = 5) -> Path:
    rng = np.random.default_rng(0)
    g = np.repeat([f"g{i}" for i in range(groups)], per)
    pd.DataFrame({"g": g, "y": rng.normal(size=g.size).round(4)}).to_csv(path, index=False)
    return path


def test_sbc_writes_ranks_summary_plot_and_resumes(tmp_path, capsys):
    data = _design(tmp_path / "d.csv")
    out = tmp_path / "sbc"
    args = ["sbc", str(data), "--formula", FORMULA, *PRIORS, "--sims", "10", "--draws", "100", "--tune", "100",
            "--chains", "2", "--workers", "1", "--seed", "3", "--quiet", "--out", str(out)]
    code = main(args)
    cap = capsys.readouterr()
    assert code in (0, 3), cap.err
    for name in ("sbc_ranks.csv", "sbc_summary.csv", "sbc_ecdf.png", "sbc_report.html", "sbc.json"):
        assert (out / name).is_file(), name
    ranks = pd.read_csv(out / "sbc_ranks.csv")
    assert list(ranks.columns) == ["sim", "parameter", "rank", "max_rank", "thin"]
    quantities = ["Intercept", "1|g_sigma", "sigma", "log_lik"]
    assert sorted(ranks["parameter"].unique()) == sorted(quantities)
    assert len(ranks) == 10 * 4 and sorted(ranks["sim"].unique()) == list(range(10))
    assert (ranks["rank"] >= 0).all() and (ranks["rank"] <= ranks["max_rank"]).all()
    assert (ranks["max_rank"] <= 200).all() and (ranks["max_rank"] * ranks["thin"] <= 200 + 2 * ranks["thin"]).all()
    summary = pd.read_csv(out / "sbc_summary.csv")
    assert list(summary["parameter"]) == quantities
    assert set(summary["verdict"]) <= {"pass", "fail"} and (summary["n_sims"] == 10).all()
    state = json.loads((out / "sbc.json").read_text())
    assert state["ok"] + state["failed"] == 10 and state["ok"] >= 9
    assert state["divergent_sims"] == len(state["divergent_sim_ids"])
    assert state["fit_priors"]["sigma"] == "HalfNormal(sigma=1)"
    assert "Simulation-based calibration" in cap.out and "Intercept" in cap.out
    # a rerun of the same command fits nothing again: the simulation files are untouched
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "sims").iterdir()}
    assert len(stamps) == 10
    assert main(args) == code
    capsys.readouterr()
    assert {p.name: p.stat().st_mtime_ns for p in (out / "sims").iterdir()} == stamps
    assert pd.read_csv(out / "sbc_ranks.csv").equals(ranks)


@pytest.mark.slow
def test_sbc_detects_a_generator_with_a_wider_sigma_prior(tmp_path):
    import hlm

    data = _design(tmp_path / "d.csv", groups=8, per=6)
    res = hlm.sbc(data, FORMULA, tmp_path / "sbc", sims=120, priors={"Intercept": "Normal(0, 2)", "sd": "HalfNormal(1)", "sigma": "HalfNormal(1)"},
                  simulate_priors={"sigma": "HalfNormal(4)"}, draws=200, tune=200, workers=2, seed=5)
    verdict = res.summary.set_index("parameter")["verdict"]
    assert verdict["sigma"] == "fail"
    assert not res.passed


@pytest.mark.slow
def test_sbc_detects_a_simulator_with_sigma_doubled(tmp_path, monkeypatch):
    import hlm
    from hlm_cli.model import linpred

    real = linpred.simulate

    def doubled(fam, tree, eta, **kw):  # the planted bug: the generator's noise is twice sigma
        S = eta.shape[0]
        return real(fam, tree, eta, **{**kw, "sigma": 2.0 * linpred.aux_draws(tree, "sigma", S)})

    monkeypatch.setattr(linpred, "simulate", doubled)
    data = _design(tmp_path / "d.csv", groups=8, per=6)
    res = hlm.sbc(data, FORMULA, tmp_path / "sbc", sims=100, priors={"Intercept": "Normal(0, 2)", "sd": "HalfNormal(1)", "sigma": "HalfNormal(1)"},
                  draws=200, tune=200, workers=1, seed=6)
    verdict = res.summary.set_index("parameter")["verdict"]
    assert verdict["sigma"] == "fail"


@pytest.mark.slow
def test_sbc_passes_a_calibrated_model_and_reuses_a_run(tmp_path):
    import hlm

    data = _design(tmp_path / "d.csv", groups=8, per=6)
    fit = hlm.fit(data, FORMULA, priors={"Intercept": "Normal(0, 2)", "sd": "HalfNormal(1)", "sigma": "HalfNormal(1)"},
                  draws=200, tune=200, chains=2)
    res = hlm.sbc(fit, sims=100, draws=200, tune=200, workers=2)  # no out: RUN/sbc
    assert res.passed, res.summary.to_string()
    assert Path(res.out) == Path(fit.run_dir) / "sbc"
    state = json.loads((Path(fit.run_dir) / "sbc" / "sbc.json").read_text())
    assert state["fit_priors"]["sigma"] == "HalfNormal(sigma=1)"
    assert main(["report", str(fit.run_dir)]) == 0  # report.html gains the SBC section
    text = (Path(fit.run_dir) / "report.html").read_text()
    assert '<h2 id="sbc">Calibration (SBC)</h2>' in text and "<b>pass</b>" in text
