"""Data files as users have them: ';'-separated .csv, gzipped TSV, column names with spaces
(backtick-quoted in the formula), --sep, and --force on the several-formula layout."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest

from hlm_cli.cli.app import main
from tests.conftest import FAST


def fit(args, capsys):
    code = main(args)
    cap = capsys.readouterr()
    return code, cap.err


def test_semicolon_csv_with_a_spaced_column(tmp_path, tiny_df, capsys):
    df = tiny_df.rename(columns={"g": "cell line"})
    data = tmp_path / "ko.csv"
    df.to_csv(data, index=False, sep=";")
    out = tmp_path / "run"
    code, err = fit(["fit", str(data), "--formula", "y ~ x + (1|`cell line`)", "--out", str(out), "--no-plots", *FAST], capsys)
    assert code == 0, err
    info = json.loads((out / "run.json").read_text())
    assert info["data"]["sep"] == ";" and info["data"]["rows_used"] == len(df)
    summary = pd.read_csv(out / "summary.csv")
    assert "1|cell line_sigma" in set(summary["parameter"])
    # the same file with --sep given explicitly reads the same rows; a wrong --sep is refused
    code, err = fit(["fit", str(data), "--formula", "y ~ x + (1|`cell line`)", "--out", str(tmp_path / "r2"), "--sep", "ab", *FAST], capsys)
    assert code == 1 and "--sep" in err and "hint:" in err and not (tmp_path / "r2").exists()


def test_gzipped_tsv(tmp_path, tiny_df, capsys):
    data = tmp_path / "ko.tsv.gz"
    with gzip.open(data, "wt") as fh:
        tiny_df.to_csv(fh, index=False, sep="\t")
    out = tmp_path / "run"
    code, err = fit(["fit", str(data), "--formula", "y ~ x + (1|g)", "--out", str(out), "--no-plots", *FAST], capsys)
    assert code == 0, err
    assert json.loads((out / "run.json").read_text())["data"]["rows_used"] == len(tiny_df)
    # a later command re-reads the same file through run.json
    code, err = fit(["hypothesis", str(out), "x > 0"], capsys)
    assert code == 0, err


def test_force_on_a_compare_dir_refuses_foreign_files(tmp_path, tiny_csv, capsys):
    out = tmp_path / "cmp"
    (out / "m1").mkdir(parents=True)
    (out / "m1" / "notes.txt").write_text("keep")
    code, err = fit(["fit", str(tiny_csv), "--formula", "y ~ x + (1|g)", "--formula", "y ~ 1 + (1|g)", "--out", str(out), "--force", *FAST], capsys)
    assert code == 1 and "m1/" in err and (out / "m1" / "notes.txt").read_text() == "keep"


@pytest.mark.parametrize("sep", [";", "tab", "\\t"])
def test_sep_values_are_accepted_by_the_spec(sep):
    from hlm_cli.spec import load_fit_spec

    spec = load_fit_spec(None, data="d.csv", formula="y ~ 1", out="o", sep=sep)
    assert spec.sep in (";", "\t")


@pytest.mark.parametrize("suffix", [".tsv", ".txt", ".csv.gz", ".parquet", ".feather"])
def test_every_input_format_fits_end_to_end(tmp_path, tiny_df, capsys, suffix):
    """Issue 18: .csv, .tsv/.txt (tab), .csv.gz/.tsv.gz, .parquet and .feather, by extension,
    with a backtick-quoted column whose name has a space."""
    df = tiny_df.rename(columns={"g": "cell line"})
    data = tmp_path / f"ko{suffix}"
    if suffix in (".tsv", ".txt"):
        df.to_csv(data, index=False, sep="\t")
    elif suffix == ".csv.gz":
        df.to_csv(data, index=False, compression="gzip")
    elif suffix == ".parquet":
        pytest.importorskip("pyarrow")
        df.to_parquet(data, index=False)
    else:
        pytest.importorskip("pyarrow")
        df.reset_index(drop=True).to_feather(data)
    out = tmp_path / "run"
    code, err = fit(["fit", str(data), "--formula", "y ~ x + (1|`cell line`)", "--out", str(out), "--no-plots", *FAST], capsys)
    assert code == 0, err
    info = json.loads((out / "run.json").read_text())
    assert info["data"]["rows_used"] == len(df)
    summary = pd.read_csv(out / "summary.csv")
    assert "1|cell line_sigma" in set(summary["parameter"])
    code, err = fit(["hypothesis", str(out), "x > 0"], capsys)  # read back through run.json
    assert code == 0, err
