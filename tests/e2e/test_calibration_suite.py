"""A reduced calibration suite (slow): three cells of validation/calibration/run_suite.py (a count
family with crossed intercepts, correlated slopes, a sigma regression), each with 100
simulations instead of 200, must pass. The full suite's results are in
validation/calibration.md; the planted bugs that SBC must detect are in tests/e2e/test_sbc.py
(a 4x wider sigma prior in the generator, a simulator with sigma doubled)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CELLS = ["poisson-crossed-auto", "gaussian-slopes-auto", "gaussian-sigma_formula-auto"]


def _suite(tmp_path: Path):
    spec = importlib.util.spec_from_file_location("run_suite", ROOT / "validation" / "calibration" / "run_suite.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.DATA = tmp_path / "data"
    mod.write_designs()
    return mod


@pytest.mark.slow
@pytest.mark.parametrize("name", CELLS)
def test_reduced_suite_cell_passes(tmp_path, capsys, name):
    from hlm_cli.cli.app import main

    suite = _suite(tmp_path)
    cell = next(c for c in suite.cells() if c["name"] == name)
    args = suite.command(cell, sims=100)
    args[2] = str(suite.DATA / cell["data"])
    out = tmp_path / "sbc"
    args[args.index("--out") + 1] = str(out)
    args[args.index("--workers") + 1] = "2"
    code = main(args[1:])
    cap = capsys.readouterr()
    state = json.loads((out / "sbc.json").read_text())
    assert state["ok"] >= 98 and state["sims"] == 100, state.get("failures")
    assert code == 0 and state["verdict"] == "pass", cap.out
