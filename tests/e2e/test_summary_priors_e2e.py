"""--ci end to end: a real fit at 0.9 writes hdi90/eti90 columns, narrower than at 0.94, and
`hlm summary` re-prints it."""

from __future__ import annotations

import pandas as pd

from tests.conftest import SAMPLE


def test_fit_ci_0_9_names_and_narrows_every_interval(tmp_path, capsys):
    from hlm_cli.cli.app import main

    runs = {}
    for ci in ("0.9", "0.94"):
        out = tmp_path / f"ci{ci}"
        code = main(["fit", str(SAMPLE / "cell_lines.csv"), "--formula", "logfc ~ 1 + (1|gene) + (1|cell_line)", "--out", str(out),
                     "--draws", "200", "--tune", "200", "--chains", "2", "--seed", "3", "--ci", ci,
                     *(["--no-plots"] if ci == "0.94" else [])])  # the report follows --ci too
        assert code == 0
        printed = capsys.readouterr().out
        assert f"l-{round(float(ci) * 100)}% HDI" in printed
        runs[ci] = pd.read_csv(out / "summary.csv").set_index("parameter")
    narrow, wide = runs["0.9"], runs["0.94"]
    assert {"hdi90_lb", "hdi90_ub", "eti90_lb", "eti90_ub"} <= set(narrow.columns)
    assert not {"hdi94_lb", "eti94_lb"} & set(narrow.columns)
    for k in ("hdi", "eti"):
        assert ((narrow[f"{k}90_ub"] - narrow[f"{k}90_lb"]) < (wide[f"{k}94_ub"] - wide[f"{k}94_lb"])).all()
    assert "l-90% HDI" in (tmp_path / "ci0.9" / "report.html").read_text()
    assert main(["summary", str(tmp_path / "ci0.9")]) == 0
    assert "l-90% HDI" in capsys.readouterr().out
