"""Structured covariances end to end (issue 19): one tiny residual-AR fit through every command in
the default suite; recovery of the truth on simulated panels (rho, SDs) marked slow."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hlm_cli.cli.app import main
from tests.conftest import FAST


def ar_panel(n_id: int, n_t: int, rho: float, sd: float, *, seed: int, latent: bool = False) -> pd.DataFrame:
    """Series of n_t equally spaced times per id with stationary AR(1) noise (marginal SD sd)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_id):
        e = rng.normal(0, sd)
        for t in range(1, n_t + 1):
            if t > 1:
                e = rho * e + rng.normal(0, sd * np.sqrt(1 - rho**2))
            x = rng.normal()
            row = dict(id=f"p{i:02d}", week=t, x=x)
            if latent:
                row["count"] = int(rng.poisson(np.exp(1.0 + 0.3 * x + e)))
            else:
                row["y"] = 2.0 + 0.5 * x + e
            rows.append(row)
    return pd.DataFrame(rows)


def test_residual_ar_fits_and_every_command_runs(tmp_path, capsys):
    data = tmp_path / "panel.csv"
    ar_panel(8, 5, 0.6, 1.0, seed=3).to_csv(data, index=False)
    out = tmp_path / "ar"
    assert main(["fit", str(data), "--formula", "y ~ x + ar(time = week, gr = id)", "--out", str(out), *FAST]) == 0
    info = json.loads((out / "run.json").read_text())
    assert info["priors"]["ar[1]"]["dist"] == "Uniform" and "ar[1]" in info["parameters"]["family"]
    s = pd.read_csv(out / "summary.csv").set_index("parameter")
    # sigma is the marginal SD; brms's (innovation) SD is stored beside it
    assert np.allclose(s.loc["sigma_innovation", "mean"], s.loc["sigma", "mean"] * np.sqrt(1 - s.loc["ar[1]", "mean"] ** 2), rtol=0.15)
    assert (out / "plots" / "ppc.png").exists() and (out / "report.html").exists()
    assert main(["loo", str(out)]) == 0
    assert "elpd_loo" in capsys.readouterr().out
    new = tmp_path / "new.csv"
    pd.DataFrame({"id": ["p00", "new"], "week": [6, 1], "x": [0.0, 1.0]}).to_csv(new, index=False)
    assert main(["predict", str(out), str(new), "--out", str(tmp_path / "pred.csv")]) == 0
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert len(pred) == 2 and pred["mean"].notna().all()
    assert main(["hypothesis", str(out), "ar[1] > 0"]) == 0


def test_residual_ar_refused_for_poisson(tmp_path, capsys):
    data = tmp_path / "panel.csv"
    ar_panel(3, 3, 0.5, 0.5, seed=1, latent=True).to_csv(data, index=False)
    assert main(["fit", str(data), "--formula", "count ~ x + ar(time = week, gr = id)", "--family", "poisson",
                 "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "needs --family gaussian, not poisson" in err and "ar1(week | id)" in err and not (tmp_path / "o").exists()


@pytest.mark.slow
@pytest.mark.parametrize("formula", ["y ~ x + ar1(week | id)", "y ~ x + ar(time = week, gr = id)"])
def test_gaussian_residual_ar_recovers_rho_and_sigma(tmp_path, formula):
    data = tmp_path / "panel.csv"
    ar_panel(40, 8, 0.6, 1.2, seed=11).to_csv(data, index=False)
    out = tmp_path / "fit"
    assert main(["fit", str(data), "--formula", formula, "--out", str(out), "--draws", "600", "--tune", "600",
                 "--chains", "2", "--seed", "2", "--quiet", "--no-plots"]) == 0
    s = pd.read_csv(out / "summary.csv").set_index("parameter")
    rho = "ar[1]" if "ar(" in formula else "cor(ar1(week)|id)"
    assert s.loc[rho, "hdi94_lb"] < 0.6 < s.loc[rho, "hdi94_ub"]
    assert s.loc["sigma", "hdi94_lb"] < 1.2 < s.loc["sigma", "hdi94_ub"]
    assert s.loc["x", "hdi94_lb"] < 0.5 < s.loc["x", "hdi94_ub"]


@pytest.mark.slow
def test_poisson_latent_ar1_recovers_rho_and_sd(tmp_path):
    data = tmp_path / "panel.csv"
    ar_panel(40, 8, 0.7, 0.7, seed=5, latent=True).to_csv(data, index=False)
    out = tmp_path / "fit"
    assert main(["fit", str(data), "--formula", "count ~ x + ar1(week | id)", "--family", "poisson", "--out", str(out),
                 "--draws", "600", "--tune", "600", "--chains", "2", "--seed", "2", "--quiet", "--no-plots"]) == 0
    s = pd.read_csv(out / "summary.csv").set_index("parameter")
    assert s.loc["cor(ar1(week)|id)", "hdi94_lb"] < 0.7 < s.loc["cor(ar1(week)|id)", "hdi94_ub"]
    assert s.loc["ar1(week)|id_sigma", "hdi94_lb"] < 0.7 < s.loc["ar1(week)|id_sigma", "hdi94_ub"]
    new = tmp_path / "new.csv"
    pd.DataFrame({"id": ["p00", "p00", "zz"], "week": [8, 9, 3], "x": [0.0, 0.0, 0.0]}).to_csv(new, index=False)
    assert main(["predict", str(out), str(new), "--out", str(tmp_path / "pred.csv")]) == 0
    assert pd.read_csv(tmp_path / "pred.csv")["mean"].gt(0).all()
