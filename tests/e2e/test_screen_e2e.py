"""hlm batch TABLE --by gene with real (tiny) fits: one compile for features with different
observed levels, features.csv / varpart.csv / selection / volcano / report table, lean runs,
resume. The acceptance simulation (400 genes) is validation/screens/; a 60-gene version is the
slow test below."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hlm_cli.cli.app import main

ROOT = Path(__file__).resolve().parents[2]
FORMULA = "expr ~ treatment + (1|cell_line)"
FAST = ["--draws", "150", "--tune", "150", "--chains", "2", "--seed", "1", "--workers", "1",
        "--parameterization", "noncentered"]


def tiny_screen(path: Path) -> pd.DataFrame:
    """6 genes x 16 rows; gene i is measured in 4 - (i % 3) of 4 cell lines (more replicates
    where fewer), so the features have 4, 3 or 2 observed levels and the same number of rows."""
    rng = np.random.default_rng(3)
    lines = ["CL1", "CL2", "CL3", "CL4"]
    rows = []
    for i in range(6):
        seen = lines[: 4 - i % 3]
        effect = [2.0, 0.0, -2.0, 0.0, 1.5, 0.0][i]
        for k in range(16):
            treated = k % 2
            rows.append((f"gene/{i}", seen[(k // 2) % len(seen)], "treated" if treated else "control",
                         effect * treated + rng.normal(0, 0.3)))
    df = pd.DataFrame(rows, columns=["gene", "cell_line", "treatment", "expr"])
    df.to_csv(path, index=False)
    return df


def test_batch_by_gene_end_to_end(tmp_path, capsys):
    from hlm_cli.sampling import cache

    tiny_screen(tmp_path / "screen.csv")
    out = tmp_path / "out"
    args = ["batch", str(tmp_path / "screen.csv"), "--by", "gene", "--formula", FORMULA, "--out", str(out),
            "--lfsr", "0.05", "--ci", "0.9", *FAST]
    before = cache.stats()["compiles"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert cache.stats()["compiles"] - before <= 1  # 4, 3 and 2 observed cell lines: one structure
    keys = {json.loads(p.read_text())["sampler"]["structure_key"] for p in out.glob("*/run.json")}
    assert len(keys) == 1 and len(list(out.glob("*/run.json"))) == 6
    assert "treatment[treated]: " in printed and "estimated false sign rate among them" in printed

    feats = pd.read_csv(out / "features.csv")
    assert feats.columns.tolist() == ["feature", "term", "mean", "sd", "lower", "upper", "p_direction", "lfsr",
                                      "status", "selected", "lfsr_ash", "mean_ash"]
    assert sorted(set(feats["feature"])) == [f"gene/{i}" for i in range(6)]  # original names
    t = feats[feats["term"] == "treatment[treated]"].set_index("feature")
    assert len(t) == 6 and set(t["status"]) <= {"ok", "diagnostics-warning"}
    assert t.loc["gene/0", "mean"] > 1 and t.loc["gene/2", "mean"] < -1
    assert bool(t.loc["gene/0", "selected"]) and bool(t.loc["gene/2", "selected"])
    assert (t["lower"] < t["mean"]).all() and (t["mean"] < t["upper"]).all()
    assert ((t["lfsr"] >= 0) & (t["lfsr"] <= 0.5)).all()
    sel = pd.read_csv(out / "features_selected.csv")
    assert sel["selected"].all() and "est_false_sign_rate" in sel.columns
    vp = pd.read_csv(out / "varpart.csv")
    assert set(vp["feature"]) == set(feats["feature"]) and {"cell_line", "residual"} <= set(vp["component"])
    assert (out / "volcano.png").read_bytes()[:4] == b"\x89PNG"
    page = (out / "batch_report.html").read_text()
    assert 'id="features-table"' in page and "gene/0" in page

    run = out / "gene_0"
    assert not (run / "plots").exists() and not (run / "report.html").exists()  # lean by default
    tree = xr.open_datatree(run / "posterior.nc")
    assert "log_likelihood" not in tree.children and "posterior_predictive" not in tree.children
    assert {"posterior", "observed_data"} <= set(tree.children)
    info = json.loads((run / "run.json").read_text())
    assert info["config"]["group_levels"] == {"cell_line": ["CL1", "CL2", "CL3", "CL4"]}

    # the same command again: nothing refitted, the same features.csv
    table = (out / "features.csv").read_text()
    assert main(args) == 0
    assert "0 run now, 6 already done" in capsys.readouterr().out
    assert (out / "features.csv").read_text() == table


@pytest.mark.slow
def test_screen_acceptance_small(tmp_path):
    """The acceptance checks of issue 21 on 60 genes (validation/screens/ runs 400)."""
    sys.path.insert(0, str(ROOT / "validation" / "screens"))
    import simulate_screen as sim

    res = sim.run(genes=60, out=tmp_path / "out", workers=2, seed=7)
    assert res["reported"] == 60
    assert res["selected"] >= 5
    assert res["false_sign_share"] <= 0.1
    assert res["large_selected_share"] >= 0.5
    assert res["fraction_correlation"] >= 0.8


@pytest.mark.slow
def test_batch_by_gene_with_share(tmp_path):
    """--by --share: pass 1 over every feature, shared priors from it, pass 2 into OUT with
    those priors (each feature's run.json), and the screen's tables from pass 2."""
    tiny_screen(tmp_path / "screen.csv")
    out = tmp_path / "out"
    args = ["batch", str(tmp_path / "screen.csv"), "--by", "gene", "--formula", FORMULA, "--out", str(out),
            "--share", "--quiet", *FAST]
    assert main(args) == 0
    shared = json.loads((out / "shared_priors.json").read_text())
    assert shared["inputs_fitted"] == 6 and "sigma" in shared["priors"]
    runs = sorted(out.glob("*/run.json"))
    assert len(runs) == 6 and (out / "_pass1").is_dir()
    for path in runs:  # pass 2 used the shared priors
        priors = json.loads(path.read_text())["config"]["priors"]
        assert priors.get("sigma") == shared["priors"]["sigma"]
    feats = pd.read_csv(out / "features.csv")
    assert feats["feature"].nunique() == 6
