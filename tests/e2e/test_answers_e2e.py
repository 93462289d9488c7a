"""contrast, hypothesis and predict on real fits of the sample data (the issue's acceptance).

The mice fit (33 rows, one real fit shared by the module) runs by default; the drug-knockout
fit with correlated group slopes is ``slow``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hlm_cli.cli.app import main

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
FAST = ["--draws", "300", "--tune", "300", "--chains", "2", "--seed", "1", "--quiet", "--no-plots"]


@pytest.fixture(scope="module")
def mice_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("answers") / "mice"
    code = main(["fit", str(SAMPLE / "mice_wake.csv"), "--formula", "WAKE ~ Treatment * Genotype + (1|mouse)", "--out", str(out), "--prior-predictive", *FAST])
    assert code == 0
    return out


def test_hypothesis_on_mice(mice_run, tmp_path):
    csv = tmp_path / "h.csv"
    assert main(["hypothesis", str(mice_run), "Treatment > 0", "Treatment:Genotype = 0", "--out", str(csv)]) == 0
    t = pd.read_csv(csv).set_index("hypothesis")
    assert t.loc["Treatment > 0", "post_prob"] > 0.99
    inter = t.loc["Treatment:Genotype = 0"]
    assert inter["lower"] < 0 < inter["upper"]
    # fitted with --prior-predictive: a Savage-Dickey Bayes factor, favouring "no interaction"
    assert inter["evidence"] == "Savage-Dickey BF01" and inter["evid_ratio"] > 1


def test_hostile_hypothesis_is_refused_on_a_real_run(mice_run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for text in ("__import__('os').system('touch pwned') > 0", "Treatment.__class__ > 0", "undefined_name > 0"):
        assert main(["hypothesis", str(mice_run), text, "--out", str(tmp_path / "h.csv")]) == 1
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 2 and err[0].startswith("error: hypothesis") and err[1].startswith("hint:")
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "h.csv").exists()


def test_predict_unseen_mouse_is_wider_than_a_seen_one(mice_run, tmp_path, capsys):
    new = pd.DataFrame({"mouse": ["m01", "m_new", "m01", "m_new"], "Genotype": [0, 0, 1, 1], "Treatment": [3, 3, 10, 10]})
    new.to_csv(tmp_path / "new.csv", index=False)
    for kind in ("mean", "response"):
        out = tmp_path / f"pred_{kind}.csv"
        assert main(["predict", str(mice_run), str(tmp_path / "new.csv"), "--out", str(out), "--kind", kind]) == 0
        p = pd.read_csv(out)
        assert list(p.columns) == ["mouse", "Genotype", "Treatment", "mean", "sd", "lower", "upper"]
        width = (p["upper"] - p["lower"]).to_numpy()
        assert width[1] > width[0] and width[3] > width[2]
        assert (p["lower"] < p["mean"]).all() and (p["mean"] < p["upper"]).all()
    assert "m_new" in capsys.readouterr().out  # the note names the unseen level


def test_predict_refuses_an_unknown_column(mice_run, tmp_path, capsys):
    pd.DataFrame({"mouse": ["m01"], "Genotyp": [0], "Treatment": [3]}).to_csv(tmp_path / "new.csv", index=False)
    assert main(["predict", str(mice_run), str(tmp_path / "new.csv"), "--out", str(tmp_path / "p.csv")]) == 1
    err = capsys.readouterr().err
    assert "new.csv has no column 'Genotype'" in err and "did you mean 'Genotyp'" in err
    assert not (tmp_path / "p.csv").exists()


def test_contrast_on_mice_numeric_dose_by_genotype(mice_run, tmp_path):
    out = tmp_path / "c.csv"
    assert main(["contrast", str(mice_run), "--term", "Treatment", "--by", "Genotype", "--out", str(out)]) == 0
    t = pd.read_csv(out)
    t = t[t["scale"] == "response"].set_index("level")
    assert list(t.index) == ["overall", "0", "1"]
    # +1 mg/kg: the simulated slope is 3.1 (wild type) and 2.9 (knock-out)
    for level, truth in (("0", 3.1), ("1", 2.9)):
        assert t.loc[level, "lower"] < truth < t.loc[level, "upper"]
    assert t.loc["overall", "pd"] > 0.99
    assert out.with_suffix(".png").exists()


# --------------------------------------------------------------------------------------------
# drug knock-out (seed 003): recover the overall and per-group drug effects


@pytest.mark.slow
def test_contrast_recovers_the_drug_effects(tmp_path):
    data = pd.read_csv(SAMPLE / "drug_knockout.csv")
    truth = pd.read_csv(SAMPLE / "drug_knockout_truth.csv").set_index("parameter")["value"]
    if "treatment" in data.columns and not pd.api.types.is_numeric_dtype(data["treatment"]):
        formula, extra = "value ~ treatment + (1 + treatment | group) + (1 | unit)", ["--term", "treatment", "--contrast", "placebo,drug"]
    else:  # the arm as a 0/1 column named drug
        formula, extra = "value ~ drug + (1 + drug | group) + (1 | unit)", ["--term", "drug"]
    run = tmp_path / "drug"
    assert main(["fit", str(SAMPLE / "drug_knockout.csv"), "--formula", formula, "--out", str(run),
                 "--draws", "1000", "--tune", "1000", "--chains", "2", "--seed", "3", "--target-accept", "0.95", "--quiet", "--no-plots"]) == 0
    out = tmp_path / "contrast.csv"
    assert main(["contrast", str(run), *extra, "--by", "group", "--rope=-0.5,0.5", "--out", str(out)]) == 0
    t = pd.read_csv(out)
    t = t[t["scale"] == "response"].set_index("level")
    assert t.loc["overall", "lower"] < truth["drug_effect"] < t.loc["overall", "upper"]
    assert t.loc["overall", "pd"] > 0.95
    for g in ("ko_A", "ko_B", "ko_C", "WT"):
        effect = truth[f"drug_effect[{g}]"]
        assert t.loc[g, "lower"] < effect < t.loc[g, "upper"], g
        if abs(effect) >= 1.0:  # clearly non-zero next to sigma = 0.7
            assert t.loc[g, "pd"] > 0.95, g
    assert np.isfinite(t["es_mean"]).all()  # gaussian: BEST effect sizes
