"""A large run end to end (docs/scale.md), with the rows x draws budget forced low so that tiny
data takes the large-run path: fit (no log_likelihood, thinned predictive on a subset of
rows, report.html), then loo (subsampled), predict, contrast and hypothesis from it. tests/unit/test_scale.py checks the numbers without sampling."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import xarray as xr

from hlm_cli.cli.app import main
from tests.conftest import FAST, SAMPLE


def test_large_run_every_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HLM_POINTWISE_BUDGET", "1000")
    monkeypatch.setenv("HLM_PPC_ROWS", "20")
    monkeypatch.setenv("HLM_LOO_SUBSAMPLE", "15")
    monkeypatch.setenv("HLM_SUFFSTAT", "on")  # and the sampler's gaussian density from cross-products, as at 1M rows
    run = tmp_path / "mice"
    code = main(["fit", str(SAMPLE / "mice_wake.csv"), "--formula", "WAKE ~ Treatment * Genotype + (1|mouse)",
                 "--categorical", "Treatment", "--categorical", "Genotype", "--out", str(run), *FAST])
    assert code == 0, capsys.readouterr().err
    tree = xr.open_datatree(run / "posterior.nc", engine="h5netcdf")
    assert "log_likelihood" not in tree.children
    assert tree["posterior_predictive"]["WAKE"].sizes["__obs__"] == 20
    assert tree["observed_data"]["WAKE"].sizes["__obs__"] == 33
    info = json.loads((run / "run.json").read_text())
    assert info["storage"]["large"] and info["storage"]["budget"] == 1000
    assert info["likelihood"] == "cross-products"
    assert (run / "report.html").exists() and (run / "plots" / "ppc.png").exists() and (run / "plots" / "pred_vs_obs.png").exists()
    capsys.readouterr()

    assert main(["loo", str(run), "--out", str(tmp_path / "loo")]) == 0
    out = capsys.readouterr().out
    assert "subsampled (15 of 33 observations" in out and "subsampling SE" in out
    table = pd.read_csv(tmp_path / "loo" / "loo.csv")
    assert table.loc[0, "method"] == "subsample" and table.loc[0, "subsample_size"] == 15 and table.loc[0, "subsampling_se"] > 0

    assert main(["predict", str(run), str(SAMPLE / "mice_new.csv"), "--out", str(tmp_path / "pred.csv")]) == 0
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert len(pred) == len(pd.read_csv(SAMPLE / "mice_new.csv")) and pred["mean"].notna().all()
    assert main(["contrast", str(run), "--term", "Treatment"]) == 0
    assert main(["hypothesis", str(run), "sd(Intercept|mouse) > 0"]) == 0
    # hlm report RUN and hlm sensitivity RUN: tests/unit/test_scale.py (figures, sensitivity) on the recorded run


@pytest.mark.slow  # 30 s on a busy machine; its density twin (tests/unit/test_suffstat.py) runs by default
def test_cross_products_and_rows_give_the_same_posterior(tmp_path, monkeypatch):
    """The same seed and model, the density summed over rows or from cross-products: the
    posterior means agree to a small fraction of their SDs (the densities differ by rounding)."""
    means = {}
    for mode in ("off", "on"):
        monkeypatch.setenv("HLM_SUFFSTAT", mode)
        run = tmp_path / mode
        assert main(["fit", str(SAMPLE / "cell_lines.csv"), "--formula", "logfc ~ 1 + (1|gene) + (1|cell_line)",
                     "--out", str(run), "--no-plots", *FAST]) == 0
        assert json.loads((run / "run.json").read_text())["likelihood"] == ("cross-products" if mode == "on" else "rows")
        means[mode] = pd.read_csv(run / "summary.csv").set_index("parameter")[["mean", "sd"]]
    diff = (means["on"]["mean"] - means["off"]["mean"]).abs() / means["off"]["sd"]
    assert len(diff) > 10 and diff.max() < 0.25, diff.sort_values().tail()
