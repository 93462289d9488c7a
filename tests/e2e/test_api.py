"""The Python API (hlm_cli.api, ``import hlm``): docs/python.md runs as written, save/load
round-trips, errors are HlmError kinds, the notebook view names the parameters.

One small real fit (module fixture) serves the direct tests; the walk-through makes its own.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest

import hlm
from hlm_cli import api
from hlm_cli.errors import ConfigError, FormulaError, HlmError, InputError, OutputError, PriorError
from tests.conftest import ROOT, SAMPLE

FORMULA = "logfc ~ 1 + (1|gene) + (1|cell_line)"
SMALL = dict(draws=200, tune=200, chains=2, seed=3)


def python_blocks(text: str) -> list[str]:
    """The ```python blocks of a markdown page, in order (```py blocks are not run)."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return pd.read_csv(SAMPLE / "cell_lines.csv")


@pytest.fixture(scope="module")
def fitted(frame):
    return hlm.fit(frame, FORMULA, **SMALL)


def test_docs_walkthrough_runs(tmp_path, monkeypatch, capsys):
    blocks = python_blocks((ROOT / "docs" / "python.md").read_text(encoding="utf-8"))
    assert len(blocks) >= 8
    (tmp_path / "sample_data").mkdir()
    shutil.copy(SAMPLE / "cell_lines.csv", tmp_path / "sample_data" / "cell_lines.csv")
    monkeypatch.chdir(tmp_path)
    scope: dict = {"__name__": "__docs__"}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"docs/python.md block {i + 1}", "exec"), scope)
        except Exception as err:  # name the block that failed
            raise AssertionError(f"docs/python.md block {i + 1} failed: {type(err).__name__}: {err}\n{block}") from err
    out = capsys.readouterr().out
    assert "FormulaError" in out and "gen" in out  # the error block printed the error, not a traceback
    assert (tmp_path / "results" / "cell_lines" / "run.json").is_file()
    assert (tmp_path / "results" / "cell_lines.data.csv").is_file()
    assert (tmp_path / "results" / "cell_lines" / "report.html").is_file()
    assert "random genes" in out and "fixed genes" in out


def test_fit_from_frame_is_a_run_directory(fitted, frame):
    assert fitted.temporary
    run = fitted.run_dir
    assert {"run.json", "summary.csv", "posterior.nc"} <= {p.name for p in run.iterdir()}
    info = json.loads((run / "run.json").read_text())
    assert info["command"].startswith("hlm.fit(<DataFrame>, 'logfc ~")
    assert info["sampler"]["draws"] == 200 and info["sampler"]["chains"] == 2
    assert info["data"]["rows_used"] == len(frame)
    summ = fitted.summary()
    assert list(summ["parameter"][:4]) == ["Intercept", "1|gene_sigma", "1|cell_line_sigma", "sigma"]
    assert fitted.posterior["posterior"].sizes["draw"] == 200
    assert isinstance(fitted.diagnostics, list)
    # the API path never takes the quick first fit (which schedules a background compile)
    assert fitted.result.compile_mode in ("compiled", "cache")


def test_save_load_round_trip(fitted, tmp_path):
    dest = fitted.save(tmp_path / "kept")
    assert dest == tmp_path / "kept"
    data_copy = tmp_path / "kept.data.csv"
    assert data_copy.is_file()
    assert sorted(p.name for p in dest.iterdir()) == sorted(p.name for p in fitted.run_dir.iterdir())
    info = json.loads((dest / "run.json").read_text())
    assert info["data"]["file"] == str(data_copy.resolve()) == info["config"]["data"]
    loaded = hlm.load(dest)
    assert not loaded.temporary
    pd.testing.assert_frame_equal(loaded.summary(), fitted.summary())
    assert (dest / "posterior.nc").read_bytes() == (fitted.run_dir / "posterior.nc").read_bytes()
    # the saved run is usable by the commands: the model is rebuilt from DIR.data.csv (sha256 checked)
    assert list(loaded.pooling("gene")["level"]) == ["KRAS", "MYC", "TP53"]
    # saving again over it needs force; force replaces it
    with pytest.raises(OutputError, match="not empty"):
        fitted.save(dest)
    fitted.save(dest, force=True)
    pd.testing.assert_frame_equal(hlm.load(dest).summary(), fitted.summary())


def test_save_of_a_path_fit_keeps_its_data_path(tmp_path):
    src = tmp_path / "cells.csv"
    shutil.copy(SAMPLE / "cell_lines.csv", src)
    f = hlm.fit(src, FORMULA, **SMALL)
    assert f.temporary and f.data_file == src.resolve()
    f.save(tmp_path / "r")
    assert not (tmp_path / "r.data.csv").exists()
    assert json.loads((tmp_path / "r" / "run.json").read_text())["data"]["file"] == str(src.resolve())


def test_fit_frame_to_out_writes_data_beside(frame, tmp_path):
    f = hlm.fit(frame, FORMULA, out=tmp_path / "ko", **SMALL)
    assert not f.temporary and f.run_dir == tmp_path / "ko"
    assert f.data_file == (tmp_path / "ko.data.csv").resolve()
    assert hlm.load(tmp_path / "ko").summary().equals(f.summary())
    # another file at DIR.data.csv is refused before anything is fitted, and nothing is written
    (tmp_path / "ko2.data.csv").write_text("someone else's file\n")
    with pytest.raises(OutputError, match="ko2.data.csv"):
        hlm.fit(frame, FORMULA, out=tmp_path / "ko2", **SMALL)
    assert not (tmp_path / "ko2").exists()
    assert (tmp_path / "ko2.data.csv").read_text() == "someone else's file\n"


def test_repr_html_names_parameters_and_diagnostics(fitted):
    page = fitted._repr_html_()
    for name in ("Intercept", "1|gene_sigma", "1|cell_line_sigma", "sigma", "r_hat"):
        assert f"<td>{name}</td>" in page or f"<th>{name}</th>" in page
    assert "1|gene[KRAS]" not in page
    assert "13 group-level effects not shown" in page  # 3 genes + 10 cell lines
    assert "diagnostics:" in page
    assert "logfc ~ 1 + (1|gene) + (1|cell_line)" in page
    assert "Fit 'logfc" in repr(fitted)


def test_methods_return_tables(fitted):
    h = fitted.hypothesis("Intercept < 0")
    assert len(h) == 1 and 0 <= float(h.iloc[0]["post_prob"] if "post_prob" in h else h.iloc[0, -1]) <= 1
    p = fitted.predict(pd.DataFrame({"gene": ["KRAS"], "cell_line": [0]}))
    assert list(p.columns[-4:]) == ["mean", "sd", "lower", "upper"] and p.iloc[0]["lower"] < p.iloc[0]["upper"]
    assert not list(fitted.run_dir.glob("predict_*")) and not (fitted.run_dir / "hypothesis.csv").exists()
    m = fitted.loo()
    assert m.n_obs == 90 and m.elpd < 200


def test_errors_are_hlm_errors(frame, fitted, tmp_path):
    with pytest.raises(FormulaError):
        hlm.fit(frame, "logfc ~ 1 + (1|gen)", **SMALL)
    with pytest.raises(PriorError):
        hlm.fit(frame, FORMULA, priors={"Intercept": "Normal(0"}, **SMALL)
    with pytest.raises(PriorError, match="dict"):
        hlm.fit(frame, FORMULA, priors=["Intercept=Normal(0, 1)"], **SMALL)
    with pytest.raises(ConfigError, match="draws"):
        hlm.fit(frame, FORMULA, draws=0)
    with pytest.raises(ConfigError, match="no_such_setting"):
        hlm.fit(frame, FORMULA, no_such_setting=1)
    with pytest.raises(ConfigError, match="DataFrame or a file path"):
        hlm.fit(42, FORMULA)
    with pytest.raises(InputError, match="does not exist"):
        hlm.fit(tmp_path / "missing.csv", FORMULA)
    with pytest.raises(InputError, match="empty"):
        hlm.fit(frame.head(0), FORMULA)
    with pytest.raises(InputError, match="not an hlm run directory"):
        hlm.load(tmp_path)
    with pytest.raises(ConfigError, match="two or more"):
        hlm.compare(fitted)
    with pytest.raises(ConfigError, match="Fit objects"):
        hlm.compare(fitted, "results/x")
    with pytest.raises(HlmError):
        fitted.hypothesis("no_such_parameter > 0")
    with pytest.raises(HlmError):
        fitted.contrast("gene")  # not a population-level predictor of this model
    with pytest.raises(ConfigError, match="no input files"):
        hlm.batch([], FORMULA, tmp_path / "b")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("x")
    with pytest.raises(OutputError, match="not empty"):
        fitted.save(tmp_path / "busy")
    assert (tmp_path / "busy" / "mine.txt").read_text() == "x"


def test_imports_stay_instant():
    code = "import sys, hlm, hlm_cli; bad = [m for m in ('pandas', 'numpy', 'pymc', 'pydantic') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert hlm.fit is api.fit and hlm.Fit is api.Fit
    with pytest.raises(AttributeError):
        hlm.no_such_name  # noqa: B018
