"""Issue 19: the cumulative (ordinal) family end to end from the CLI.

The default-suite test is one small fit with text levels and the commands that read it back;
the recovery of known thresholds and effects (and report + batch) is marked slow.
"""

import json

import numpy as np
import pandas as pd
import pytest

from hlm_cli.cli.app import main

LEVELS = ["none", "mild", "severe", "extreme"]


def _simulate(path, n_groups=10, per=12, beta=(1.0, 0.8), cut=(-1.0, 0.4, 1.8), sd=0.6, seed=2):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per)
    x = rng.normal(size=g.size)
    f = rng.choice(["ctl", "trt"], size=g.size)
    eta = beta[0] * x + beta[1] * (f == "trt") + rng.normal(0, sd, n_groups)[g]
    y = 1 + ((eta + rng.logistic(size=g.size))[:, None] > np.asarray(cut)[None, :]).sum(axis=1)
    pd.DataFrame({"score": np.array(LEVELS)[y - 1], "x": x, "f": f, "site": [f"s{i}" for i in g]}).to_csv(path, index=False)
    return path


def test_ordinal_fit_predict_hypothesis(tmp_path, capsys):
    data = _simulate(tmp_path / "scores.csv")
    out = tmp_path / "run"
    assert main(["fit", str(data), "-f", "score ~ x + f + (1|site)", "--family", "cumulative", "--levels", "score=" + ",".join(LEVELS),
                 "--draws", "150", "--tune", "150", "--chains", "2", "--seed", "3", "--out", str(out), "--quiet", "--no-plots"]) == 0
    summary = pd.read_csv(out / "summary.csv").set_index("parameter")
    cuts = summary.loc[["Intercept[1]", "Intercept[2]", "Intercept[3]"], "mean"].to_numpy()
    assert np.all(np.diff(cuts) > 0) and "Intercept" not in summary.index
    assert summary.loc["x", "mean"] > 0.3 and summary.loc["Intercept[1]", "kind"] == "family"
    info = json.loads((out / "run.json").read_text())
    assert info["family"] == {"name": "cumulative", "link": "logit"} and info["response_levels"] == {"1": "none", "2": "mild", "3": "severe", "4": "extreme"}
    ppc = __import__("xarray").open_datatree(out / "posterior.nc", engine="h5netcdf")["posterior_predictive"]["score"].values
    assert set(np.unique(ppc)) <= {1.0, 2.0, 3.0, 4.0}

    new = tmp_path / "new.csv"
    pd.DataFrame({"x": [-2.0, 2.0], "f": ["ctl", "trt"], "site": ["s0", "s0"]}).to_csv(new, index=False)
    assert main(["predict", str(out), str(new)]) == 0
    pred = pd.read_csv(out / "predict_new.csv")
    probs = pred[[f"p_{lev}" for lev in LEVELS]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    assert pred["mean"].iloc[0] < pred["mean"].iloc[1] and probs[0, 0] > probs[1, 0] and probs[1, 3] > probs[0, 3]
    assert main(["hypothesis", str(out), "Intercept[2] > Intercept[1]"]) == 0
    assert "latent (link) scale" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("link", ["logit", "probit"])
def test_ordinal_recovers_the_truth_and_runs_every_command(tmp_path, capsys, link):
    data = _simulate(tmp_path / "scores.csv", n_groups=20, per=25, seed=5)
    out = tmp_path / "run"
    assert main(["fit", str(data), "-f", "score ~ x + f + (1|site)", "--family", f"cumulative({link})", "--levels", "score=" + ",".join(LEVELS),
                 "--draws", "500", "--tune", "500", "--chains", "2", "--seed", "1", "--out", str(out), "--quiet"]) in (0, 3)
    s = pd.read_csv(out / "summary.csv").set_index("parameter")
    scale = 1.0 if link == "logit" else 1 / 1.6  # logistic data: probit coefficients are ~1/1.6 of the logit ones
    truth = {"x": 1.0 * scale, "f[trt]": 0.8 * scale, "Intercept[1]": -1.0 * scale, "Intercept[2]": 0.4 * scale, "Intercept[3]": 1.8 * scale}
    for name, value in truth.items():
        assert abs(s.loc[name, "mean"] - value) < 3 * s.loc[name, "sd"] + 0.1, (name, s.loc[name, "mean"], value)
    assert (out / "plots" / "ppc.png").exists() and not (out / "plots" / "ppc_rootogram.png").exists()
    assert main(["loo", str(out)]) == 0
    assert main(["contrast", str(out), "-t", "f"]) == 0
    assert "expected category" in capsys.readouterr().out
    assert main(["report", str(out)]) == 0
    batch = tmp_path / "batch"
    assert main(["batch", str(data), "-f", "score ~ x + f + (1|site)", "--family", "cumulative", "--link", link,
                 "--levels", "score=" + ",".join(LEVELS), "--draws", "200", "--tune", "200", "--chains", "2", "--out", str(batch),
                 "--quiet", "--no-plots"]) == 0
    assert "Intercept[3]" in pd.read_csv(batch / "batch_summary.csv").to_string()
