"""batch_report.html laid out for a 1280 px window (issue 18): the table sits in a scroll box with
a sticky header row and input column, inputs lose their shared directory, several models' formulas
are listed once above the table, estimates put the interval under the mean, long texts wrap.
Structure only; tests/e2e/test_batch_report_layout_e2e.py measures it in Chromium."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from hlm_cli.outputs.report import write_batch_report

LONG = "logfc ~ 1 + treatment + Days + (1 + Days|Subject) + (1|gene) + (1|cell_line)"
SHORT = "logfc ~ 1 + (1|gene) + (1|cell_line)"


def make_batch(root: Path, n: int = 10) -> Path:
    """A batch directory of ``n`` inputs x 2 models (no sampling): status, summary, reports."""
    rows, summ = [], []
    params = ["Intercept", "treatment[drug]", "1|cell_line_sigma", "Days|Subject_sigma", "sigma"]
    for i in range(1, n + 1):
        name = f"screen_{i:02d}_very_long_experiment_name" if i % 4 == 0 else f"screen_{i:02d}"
        for m, f in (("m1", LONG), ("m2", SHORT)):
            rd = f"{name}/{m}"
            (root / rd).mkdir(parents=True)
            (root / rd / "report.html").write_text("<html></html>")
            failed = i == 7
            rows.append({"input": f"sample_data/batch/{name}.csv", "model": m, "formula": f, "run_dir": rd,
                         "status": "failed" if failed else ("diagnostics-warning" if i % 3 == 0 else "ok"),
                         "error": "column 'logfc' is not in sample_data/batch/screen_07.csv (columns: gene, cell_line, value)" if failed else "",
                         "hint": "check the response name in --formula" if failed else "",
                         "findings": "61 divergent transitions;r_hat 1.02 for 1|gene_sigma" if i % 3 == 0 else "",
                         "total_s": f"{3.5 * i:.2f}"})
            if not failed:
                for j, p in enumerate(params[: 5 if m == "m1" else 2]):
                    summ.append({"run_dir": rd, "parameter": p, "kind": "population" if j < 2 else "group_sd",
                                 "mean": 1.5 * (j + 1) + i, "hdi94_lb": -1.25 * i, "hdi94_ub": 2.5 * i})
    pd.DataFrame(rows).to_csv(root / "batch_status.csv", index=False)
    pd.DataFrame(summ).to_csv(root / "batch_summary.csv", index=False)
    return root


def test_table_sits_in_a_scroll_box_with_sticky_header(tmp_path):
    text = write_batch_report(make_batch(tmp_path)).read_text()
    assert re.search(r"<div class='tablewrap'><table class='sortable'>.*</table></div>", text, re.S)
    css = re.search(r"<style>(.*?)</style>", text, re.S).group(1)
    assert re.search(r"\.tablewrap\{[^}]*overflow:auto", css)
    assert re.search(r"\.tablewrap thead th\{[^}]*position:sticky;top:0", css)
    assert re.search(r"\.tablewrap td:first-child\{[^}]*position:sticky;left:0", css)
    assert "body{max-width:none}" in css
    # long texts may wrap (findings and messages), with a bounded width
    assert re.search(r"td\.wrap\{white-space:normal;[^}]*max-width:\d+em", css)
    assert "name='viewport'" in text


def test_inputs_lose_their_shared_directory(tmp_path):
    text = write_batch_report(make_batch(tmp_path)).read_text()
    assert "title='sample_data/batch/screen_01.csv'" in text  # the full path as tooltip
    assert "data-v='screen_01.csv'>screen_<wbr>01.<wbr>csv</td>" in text
    assert ">sample_data/batch/screen_01.csv<" not in text
    assert "Inputs are in <code>sample_data/batch</code>" in text


def test_formulas_listed_once_when_models_differ(tmp_path):
    text = write_batch_report(make_batch(tmp_path)).read_text()
    assert text.count(LONG) == 1 + 10  # the legend, and each m1 row's model tooltip
    assert "<p class='models'>Models: <b>m1</b> <code>" in text
    assert ">formula</th>" not in text and ">model</th>" in text
    assert "<td class='l wrap'><code>" not in text


def test_one_model_keeps_a_formula_column_when_formulas_differ(tmp_path):
    root = make_batch(tmp_path, n=3)
    status = pd.read_csv(root / "batch_status.csv", dtype=str, keep_default_na=False)
    status["model"] = "m1"
    status.to_csv(root / "batch_status.csv", index=False)
    text = write_batch_report(root).read_text()
    assert ">formula</th>" in text and "<td class='l wrap'><code>" in text
    assert "class='models'" not in text


def test_estimates_put_the_interval_under_the_mean(tmp_path):
    text = write_batch_report(make_batch(tmp_path, n=2)).read_text()
    assert "2.5<span class='ci'>[-1.25, 2.5]</span>" in text
    assert re.search(r"\.ci\{display:block", text)
    # long parameter names may break after | and _, and keep their name as a tooltip
    assert "<th class='est' title='1|cell_line_sigma'>1|<wbr>cell_<wbr>line_<wbr>sigma</th>" in text
    assert "title='Intercept'>Intercept</th>" in text


def test_findings_one_per_line(tmp_path):
    text = write_batch_report(make_batch(tmp_path, n=3)).read_text()
    assert "61 divergent transitions<br>r_hat 1.02 for 1|gene_sigma" in text
