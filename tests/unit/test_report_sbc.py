"""The "Calibration (SBC)" section of a run's report.html (from RUN/sbc, which ``hlm sbc RUN``
writes by default), with a fabricated sbc.json: no sampling."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pandas as pd

from hlm_cli.cli.app import main
from hlm_cli.outputs.report import html as html_mod
from hlm_cli.workflows import sbc

STATE = {"verdict": "fail", "sims": 200, "ok": 198, "failed": 2, "divergent_sims": 7, "alpha": 0.05,
         "simulate_priors": {"sigma": "HalfNormal(4)"}, "formula": "logfc ~ 1 + (1|gene) + (1|cell_line)"}
SUMMARY = pd.DataFrame({"parameter": ["Intercept", "sigma", "log_lik"], "n_sims": [198, 198, 198],
                        "max_ecdf_diff": [0.041, 0.213, 0.05], "p_value": [0.6, 0.001, 0.5],
                        "p_adjusted": [1.0, 0.003, 1.0], "outside_band": [False, True, False],
                        "band_level": [0.9833] * 3, "verdict": ["pass", "fail", "pass"]})


def _png(path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 0])
    fig.savefig(path)
    plt.close(fig)
    return path


def _fabricate(run: Path) -> Path:
    d = run / "sbc"
    d.mkdir()
    (d / "sbc.json").write_text(json.dumps(STATE))
    SUMMARY.to_csv(d / "sbc_summary.csv", index=False)
    _png(d / "sbc_ecdf.png")
    return d


def test_section_shows_verdict_counts_table_and_mismatch(tmp_path):
    text = html_mod.section_sbc(STATE, SUMMARY, _png(tmp_path / "sbc_ecdf.png"))
    assert text.startswith('<h2 id="sbc">Calibration (SBC)</h2>')
    assert "<b>fail</b>" in text and "198 fitted, 2 failed, 7 with divergent transitions" in text
    rows = re.findall(r"<tr><td>([^<]+)</td><td>198</td><td>([^<]+)</td><td>([^<]+)</td><td class='(\w+)'>(\w+)</td></tr>", text)
    assert rows == [("Intercept", "0.041", "1.000", "ok", "pass"), ("sigma", "0.213", "0.003", "bad", "fail"),
                    ("log_lik", "0.050", "1.000", "ok", "pass")]
    assert "--simulate-prior sigma=HalfNormal(4)" in text and "a failure is expected" in text
    src = re.search(r"<img src='data:image/png;base64,([^']+)'", text).group(1)
    assert base64.b64decode(src)[:8] == b"\x89PNG\r\n\x1a\n"


def test_section_is_empty_without_sbc_results_and_has_no_figure_without_png():
    assert html_mod.section_sbc(None, None) == ""
    assert html_mod.section_sbc(STATE, SUMMARY.iloc[:0]) == ""
    text = html_mod.section_sbc({**STATE, "verdict": "pass", "simulate_priors": {}}, SUMMARY, None)
    assert "<img" not in text and "<b>pass</b>" in text and "a failure is expected" not in text


def test_default_out_is_run_sbc_for_a_run_directory(recorded_run, tmp_path):
    assert sbc.default_out(recorded_run, None) == recorded_run / "sbc"
    assert sbc.default_out(recorded_run, tmp_path / "elsewhere") == tmp_path / "elsewhere"
    csv = tmp_path / "d.csv"
    csv.write_text("y\n1\n")
    assert sbc.default_out(csv, None) is None
    assert sbc.default_out(tmp_path, None) is None  # a directory without run.json


def test_cli_sbc_on_a_run_needs_no_out(recorded_run, capsys):
    # without the default, this stops at "hlm sbc needs --out"; with it, at the next check (--sims)
    code = main(["sbc", str(recorded_run), "--sims", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "--sims must be at least 2" in err and "needs --out" not in err
    assert not (recorded_run / "sbc").exists()


def test_hlm_report_run_includes_the_sbc_section(recorded_run, capsys):
    code = main(["report", str(recorded_run)])
    capsys.readouterr()
    assert code == 0
    before = (recorded_run / "report.html").read_text()
    assert "Calibration (SBC)" not in before
    _fabricate(recorded_run)
    assert main(["report", str(recorded_run)]) == 0
    capsys.readouterr()
    text = (recorded_run / "report.html").read_text()
    assert text.count('<h2 id="sbc">Calibration (SBC)</h2>') == 1
    assert "data-file='sbc/sbc_ecdf.png'" in text and "<td>sigma</td>" in text
    assert text.index("Calibration (SBC)") < text.index("<footer>")


def test_an_unreadable_sbc_json_leaves_the_report_without_the_section(recorded_run, capsys):
    d = _fabricate(recorded_run)
    (d / "sbc.json").write_text("{not json")
    assert main(["report", str(recorded_run)]) == 0
    capsys.readouterr()
    assert "Calibration (SBC)" not in (recorded_run / "report.html").read_text()
