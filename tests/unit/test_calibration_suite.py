"""The calibration suite's grid (validation/calibration/run_suite.py) covers what issue 20 asks:
every family, every gaussian term type, every parameterization, >= 200 simulations, and its
commands are valid hlm sbc command lines (no sampling here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from hlm_cli.formula.families import NAMES

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def suite():
    spec = importlib.util.spec_from_file_location("run_suite", ROOT / "validation" / "calibration" / "run_suite.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_grid_covers_every_family_term_and_parameterization(suite):
    cells = suite.cells()
    names = [c["name"] for c in cells]
    assert len(names) == len(set(names))
    assert {c["family"] for c in cells if c["term"] == "crossed" and c["param"] == "auto"} == set(NAMES)
    gauss = {(c["term"], c["param"]) for c in cells if c["family"] == "gaussian"}
    terms = {"crossed", "nested", "slopes", "uncorrelated", "se", "sigma_formula"}
    assert gauss == {(t, p) for t in terms for p in ("auto", "centered", "noncentered")}
    for fam in NAMES:
        assert {c["param"] for c in cells if c["family"] == fam} == {"auto", "centered", "noncentered"}
    # priority: (a) families x auto, then (b) gaussian terms x auto, then (c)
    first_c = next(i for i, c in enumerate(cells) if c["param"] != "auto")
    assert all(c["param"] == "auto" for c in cells[:first_c]) and all(c["param"] != "auto" for c in cells[first_c:])
    assert [c["family"] for c in cells[:len(NAMES)]] == list(suite.FAMILIES)


def test_every_command_is_an_hlm_sbc_run_with_200_sims_and_one_worker(suite):
    for cell in suite.cells():
        args = suite.command(cell)
        assert args[:2] == ["hlm", "sbc"]
        assert args[args.index("--sims") + 1] == "200" and args[args.index("--workers") + 1] == "1"
        assert args[args.index("--parameterization") + 1] == cell["param"]
        assert args[args.index("--out") + 1] == f"validation/calibration/results/{cell['name']}"
        priors = [args[i + 1] for i, a in enumerate(args) if a == "--prior"]
        assert all("Flat" not in p for p in priors)  # SBC draws from every prior: all proper
        assert any(p.startswith("sd=") for p in priors)


def test_every_auto_cell_builds_with_its_priors(suite, tmp_path, capsys):
    """Each auto cell's model, priors and options are valid (the gaussian term types and the
    families with their own options or family parameters): ``hlm priors`` with the cell's model
    options (the same options hlm sbc takes) builds the model and lists every prior it was given."""
    from hlm_cli.cli.app import main

    suite.DATA = tmp_path / "data"
    suite.write_designs()
    sbc_only = {"--parameterization", "--sims", "--draws", "--tune", "--chains", "--workers", "--seed", "--out"}
    special = {"t", "binomial", "cumulative", "hurdle_negbinomial"}  # the other families differ only in priors
    for cell in (c for c in suite.cells() if c["param"] == "auto" and (c["family"] == "gaussian" or c["family"] in special)):
        args = suite.command(cell)[2:]
        keep, i = [], 0
        while i < len(args):
            if args[i] in sbc_only:
                i += 2
            elif args[i] == "--quiet":
                i += 1
            else:
                keep.append(args[i])
                i += 1
        keep[0] = str(suite.DATA / cell["data"])
        code = main(["priors", *keep])
        cap = capsys.readouterr()
        assert code == 0, (cell["name"], cap.err)
        for p in cell["priors"]:
            term = p.split("=", 1)[0]
            if term not in ("b", "sd", "cor"):
                assert term in cap.out, (cell["name"], term)
