"""Shared fixtures: tiny CSVs (20-50 rows), golden files, a recorded run directory for the unit
tests (tests/data/cell_lines_run, never sampled here) and a real fitted run for e2e tests."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden"
DATA = Path(__file__).parent / "data"
UNIT = Path(__file__).parent / "unit"
SAMPLE = ROOT / "sample_data"

# keep compiled-model caches of the test run away from the user's ~/.cache/hlm, and the key
# that signs its entries away from ~/.config/hlm/cache.key; one cache per checkout, so that
# test runs of two checkouts (other code) on one machine never read each other's entries
_CACHE = Path(os.environ.get("TMPDIR", "/tmp")) / f"hlm-test-cache-{hashlib.sha256(str(ROOT).encode()).hexdigest()[:10]}"
os.environ.setdefault("HLM_CACHE_DIR", str(_CACHE))
os.environ.setdefault("HLM_CACHE_KEY_FILE", f"{_CACHE}.key")
# Most structures the suite fits are fitted once or twice with few draws: take the quick first
# fit (no C callbacks compiled, as a user's first fit of a small model) and start no detached
# background compiles. Measured on the e2e tests (quiet, empty cache): 274 s against 338 s
# compiling every structure first. The API path (hlm.fit) still compiles and memoizes;
# tests/unit/test_cache_security.py and tests/e2e/test_compile_cache_e2e.py set both switches
# where they test them.
os.environ.setdefault("HLM_QUICK_COMPILE", "1")
os.environ.setdefault("HLM_BACKGROUND_COMPILE", "0")


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", help="rewrite tests/golden/*.txt from the current output")


@pytest.fixture
def golden(request):
    """golden('name.txt', text): compare with tests/golden/name.txt (or rewrite it)."""
    update = request.config.getoption("--update-golden")

    def check(name: str, text: str) -> None:
        path = GOLDEN / name
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        assert path.exists(), f"tests/golden/{name} is missing (write it with pytest --update-golden and review it)"
        assert text == path.read_text(), f"output differs from tests/golden/{name} (run pytest --update-golden and read the diff)"

    return check


@pytest.fixture(autouse=True)
def _unit_tests_never_sample(request, monkeypatch):
    """tests/unit runs in seconds: nutpie.sample and pymc.sample raise there (a test may still
    monkeypatch them with a fake of its own). Read a recorded run (``recorded_run``) instead,
    or put the test in tests/e2e."""
    if UNIT not in request.path.parents:
        return
    import nutpie
    import pymc

    def refuse(*args, **kwargs):
        raise AssertionError("tests/unit never samples: use the recorded_run fixture (tests/data) or move the test to tests/e2e")

    monkeypatch.setattr(nutpie, "sample", refuse)
    monkeypatch.setattr(pymc, "sample", refuse)


@pytest.fixture
def tiny_df() -> pd.DataFrame:
    """36 rows: 6 groups x 2 conditions x 3 replicates, a numeric predictor and a group factor."""
    rng = np.random.default_rng(1)
    g = np.repeat([f"g{i}" for i in range(6)], 6)
    cond = np.tile(np.repeat(["a", "b"], 3), 6)
    x = rng.normal(size=36)
    u = rng.normal(0, 0.8, 6)[np.repeat(np.arange(6), 6)]
    y = 1.0 + 0.5 * x + 0.7 * (cond == "b") + u + rng.normal(0, 0.3, 36)
    return pd.DataFrame({"y": y, "x": x, "cond": cond, "g": g, "count": rng.poisson(np.exp(0.5 + 0.3 * x)), "flag": (y > 1.3).astype(int)})


@pytest.fixture
def tiny_csv(tmp_path, tiny_df) -> Path:
    path = tmp_path / "tiny.csv"
    tiny_df.to_csv(path, index=False)
    return path


FAST = ["--draws", "150", "--tune", "150", "--chains", "2", "--seed", "1", "--quiet"]


def copy_recorded_run(dest: Path, name: str = "cell_lines_run") -> Path:
    """Copy tests/data/NAME and its data file into DEST; point run.json at the copied file.

    The recorded run.json names its data file relative to tests/data (make_recorded_run.py);
    the copy gets an absolute path, as a fit writes it. posterior.nc and summary.csv are
    copied byte for byte, so their checksums in run.json still hold.
    """
    run = dest / name
    shutil.copytree(DATA / name, run)
    info = json.loads((run / "run.json").read_text())
    csv = dest / Path(info["data"]["file"]).name
    shutil.copyfile(DATA / info["data"]["file"], csv)
    info["data"]["file"] = info["config"]["data"] = str(csv)
    info["config"]["out"] = str(run)
    (run / "run.json").write_text(json.dumps(info, indent=2) + "\n")
    return run


@pytest.fixture
def recorded_run(tmp_path) -> Path:
    """A fitted run directory of the cell-line model (2 chains x 200 draws, 90 rows) recorded
    by tests/data/make_recorded_run.py: unit tests read it instead of sampling."""
    return copy_recorded_run(tmp_path)


@pytest.fixture(scope="session")
def fitted_run(tmp_path_factory) -> Path:
    """One real fit of the cell-line sample data (e2e tests only: tests/unit never samples)."""
    from hlm_cli.cli.app import main

    out = tmp_path_factory.mktemp("runs") / "cell_lines"
    code = main(["fit", str(SAMPLE / "cell_lines.csv"), "--formula", "logfc ~ 1 + (1|gene) + (1|cell_line)",
                 "--out", str(out), "--draws", "300", "--tune", "300", "--chains", "2", "--seed", "1", "--quiet"])
    assert code == 0
    return out
