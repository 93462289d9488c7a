"""hlm varpart on a tiny real fit, and hlm batch --share end to end (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hlm_cli.cli.app import main

FAST = ["--draws", "150", "--tune", "150", "--chains", "2", "--seed", "1"]


def _data(path: Path, seed: int, *, slope: float = 0.5, n_groups: int = 6, per: int = 5) -> Path:
    rng = np.random.default_rng(seed)
    idx = np.repeat(np.arange(n_groups), per)
    x = rng.normal(0, 1, len(idx))
    y = 1.0 + slope * x + rng.normal(0, 1.0, n_groups)[idx] + rng.normal(0, 0.5, len(idx))
    pd.DataFrame({"g": [f"g{k}" for k in idx], "x": x.round(5), "y": y.round(5)}).to_csv(path, index=False)
    return path


def test_varpart_cli_on_the_session_fit(fitted_run, tmp_path, capsys):
    """The shared cell-line fit (no extra sampling): report section, CLI table and CSV."""
    assert "Variance partition" in (fitted_run / "report.html").read_text()
    out = tmp_path / "vp.csv"
    assert main(["varpart", str(fitted_run), "--out", str(out)]) == 0
    assert "95% interval" in capsys.readouterr().out
    t = pd.read_csv(out)
    assert t["component"].tolist() == ["gene", "cell_line", "fixed", "residual"]
    assert t["mean"].sum() == pytest.approx(1.0, abs=1e-4)
    assert not (fitted_run / "varpart.csv").exists()  # --out elsewhere leaves the run alone


@pytest.mark.slow
def test_varpart_cli_on_a_fit(tmp_path, capsys):
    data = _data(tmp_path / "d.csv", 0)
    run = tmp_path / "run"
    assert main(["fit", str(data), "--formula", "y ~ x + (1|g)", "--out", str(run), *FAST, "--quiet"]) == 0
    assert "Variance partition" in (run / "report.html").read_text()
    capsys.readouterr()
    assert main(["varpart", str(run), "--ci", "0.8"]) == 0
    assert "80% interval" in capsys.readouterr().out
    t = pd.read_csv(run / "varpart.csv").set_index("component")
    assert t.index.tolist() == ["g", "fixed", "residual"]
    assert t["mean"].sum() == pytest.approx(1.0, abs=1e-4)
    assert (t["lower"] <= t["mean"]).all() and (t["mean"] <= t["upper"]).all()
    assert t.loc["fixed", "mean"] > 0  # the slope of x explains some variance


@pytest.mark.slow
def test_batch_share_two_passes(tmp_path, capsys):
    paths = [_data(tmp_path / f"in_{i}.csv", i + 10, slope=[0.0, 0.3, 1.0, -0.5][i]) for i in range(4)]
    out = tmp_path / "out"
    code = main(["batch", *map(str, paths), "--formula", "y ~ x + (1|g)", "--out", str(out), *FAST,
                 "--no-plots", "--share", "--workers", "1"])
    assert code in (0, 4)  # 4: a tiny fit may carry diagnostics warnings under --strict only
    printed = capsys.readouterr().out
    assert "Shared priors learned from pass 1" in printed
    shared = json.loads((out / "shared_priors.json").read_text())
    assert set(shared["priors"]) == {"sigma", "1|g_sigma", "x"}
    assert shared["priors"]["sigma"].startswith("LogNormal(") and shared["priors"]["x"].startswith("Normal(0, ")
    assert (out / "_pass1" / "batch_status.csv").exists()
    info = json.loads((out / "in_0" / "run.json").read_text())
    assert info["config"]["priors"]["1|g_sigma"] == shared["priors"]["1|g_sigma"]
    assert "Shared priors (--share)" in (out / "batch_report.html").read_text()
    status = pd.read_csv(out / "batch_status.csv")
    assert len(status) == 4 and status["status"].isin(["ok", "diagnostics-warning"]).all()
