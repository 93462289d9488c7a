"""CSV reading and data checks, each bad input an InputError naming the problem."""

import bz2
import gzip
import hashlib
import lzma

import numpy as np
import pandas as pd
import pytest

from hlm_cli import data
from hlm_cli.errors import HlmError, InputError
from hlm_cli.model.families import check_response, get_family


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        data.read_csv(tmp_path / "nope.csv")


def test_directory(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        data.read_csv(tmp_path)


def test_empty_file(tmp_path):
    p = tmp_path / "e.csv"
    p.write_text("")
    with pytest.raises(InputError, match="is empty"):
        data.read_csv(p)


def test_header_only(tmp_path):
    p = tmp_path / "h.csv"
    p.write_text("y,x\n")
    with pytest.raises(InputError, match="no data rows"):
        data.read_csv(p)


def test_unreadable_csv(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text('y,x\n1,2\n3,"4\n5,6,7,8\n')
    with pytest.raises(InputError, match="not a readable CSV"):
        data.read_csv(p)


def test_binary_garbage(tmp_path):
    p = tmp_path / "bin.csv"
    p.write_bytes(b"\xff\xfe\x00\x01" * 50)
    with pytest.raises(InputError):
        data.read_csv(p)


def test_sha256_is_stable(tiny_csv):
    assert data.read_csv(tiny_csv).sha256 == data.read_csv(tiny_csv).sha256


def test_require_columns_lists_columns(tiny_csv):
    t = data.read_csv(tiny_csv)
    with pytest.raises(InputError) as ei:
        data.require_columns(t, ["gg"])
    assert "column 'gg' is not in tiny.csv" in str(ei.value)
    assert "did you mean 'g'" in ei.value.hint


def test_dropna_counts_and_no_dropna_refuses(tmp_path):
    p = tmp_path / "na.csv"
    pd.DataFrame({"y": [1.0, np.nan, 3.0, 4.0], "x": [1, 2, np.nan, 4], "other": [np.nan] * 4}).to_csv(p, index=False)
    t = data.read_csv(p)
    kept = data.handle_missing(t, ["y", "x"], dropna=True)
    assert kept.rows_used == 2 and kept.dropped == 2 and kept.dropped_by_column == {"y": 1, "x": 1}
    assert list(data.csv_lines(kept)) == [2, 5]
    with pytest.raises(InputError, match=r"missing value\(s\) in column 'y' \(first on CSV line 3\)"):
        data.handle_missing(t, ["y", "x"], dropna=False)


def test_all_rows_missing(tmp_path):
    p = tmp_path / "na.csv"
    pd.DataFrame({"y": [np.nan, np.nan], "x": [1, 2]}).to_csv(p, index=False)
    with pytest.raises(InputError, match="every row"):
        data.handle_missing(data.read_csv(p), ["y", "x"], dropna=True)


def test_categorical_numeric_column(tiny_df, tmp_path):
    p = tmp_path / "c.csv"
    tiny_df.assign(line=np.arange(36) % 10).to_csv(p, index=False)
    t = data.make_categorical(data.read_csv(p), ["line"])
    assert list(t.frame["line"].cat.categories) == [str(i) for i in range(10)]
    with pytest.raises(InputError, match="--categorical names column 'nope'"):
        data.make_categorical(t, ["nope"])


@pytest.mark.parametrize("family, y, fragment", [
    ("poisson", [1, 2, -1], "non-negative whole numbers"),
    ("poisson", [1, 2.5, 3], "non-negative whole numbers"),
    ("bernoulli", [0, 1, 2], "only 0 and 1"),
    ("gamma", [1.0, 0.0], "values > 0"),
    ("beta", [0.5, 1.0], "strictly between 0 and 1"),
    ("lognormal", [1.0, -2.0], "values > 0"),
])
def test_response_outside_support(family, y, fragment):
    with pytest.raises(InputError) as ei:
        check_response(get_family(family), np.array(y, dtype=float), "y")
    assert fragment in str(ei.value)


def test_non_numeric_response():
    with pytest.raises(InputError, match="not numeric"):
        check_response(get_family("gaussian"), np.array(["a", "b"], dtype=object), "y")


def test_se_checks_name_the_row(tmp_path):
    p = tmp_path / "se.csv"
    pd.DataFrame({"y": [1, 2, 3], "s": [1.0, 0.0, 2.0]}).to_csv(p, index=False)
    with pytest.raises(InputError, match="CSV line 3 has 0.0$"):
        data.check_se(data.read_csv(p), "s")


# --- issue 15: hostile data input -------------------------------------------------------

def _write(tmp_path, name, content):
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return p


@pytest.mark.parametrize("family", ["gaussian", "poisson", "gamma"])
@pytest.mark.parametrize("value, fragment", [(np.inf, "not finite numbers; first on CSV line 5: inf"),
                                             (-np.inf, "not finite numbers; first on CSV line 5: -inf"),
                                             (np.nan, "not finite numbers; first on CSV line 5: nan")])
def test_response_not_finite_names_line_and_value(family, value, fragment):
    y = np.array([1.0, 2.0, value, 3.0])
    with pytest.raises(InputError) as ei:
        check_response(get_family(family), y, "y", lines=np.array([2, 3, 5, 6]))
    assert fragment in str(ei.value) and "response 'y' has 1 value(s)" in str(ei.value)


def test_response_too_large_asks_to_rescale():
    with pytest.raises(InputError) as ei:
        check_response(get_family("gaussian"), np.array([1.0, -1e300, 2.0]), "y")
    assert "too large to model (beyond 1e150); first on CSV line 3: -1e+300" in str(ei.value)
    assert "rescale" in ei.value.hint
    assert check_response(get_family("gaussian"), np.array([1.0, 1e149]), "y")[1] == 1e149


def test_trials_must_be_finite():
    with pytest.raises(InputError, match="number of trials .* CSV line 3"):
        check_response(get_family("binomial"), np.array([1.0, 2.0]), "y", trials=np.array([3.0, np.inf]))


@pytest.mark.parametrize("cell, fragment", [
    ("inf", "column 'x' has an infinite value on CSV line 4: inf"),
    ("-Infinity", "column 'x' has an infinite value on CSV line 4: -inf"),
    ("1e400", "column 'x' has an infinite value on CSV line 4: inf"),
    ("2e300", "column 'x' has a value too large to model on CSV line 4: 2e+300"),
])
def test_predictor_not_finite(tmp_path, cell, fragment):
    t = data.read_csv(_write(tmp_path, "d.csv", f"y,x,g\n1,0.5,a\n2,1.5,b\n3,{cell},a\n4,2,b\n"))
    with pytest.raises(InputError) as ei:
        data.check_columns(t, ["x"])
    assert str(ei.value) == fragment


def test_check_finite_uses_csv_lines_after_dropping(tmp_path):
    t = data.read_csv(_write(tmp_path, "d.csv", "y,x\n,1\n2,2\n3,inf\n"))
    kept = data.handle_missing(t, ["y", "x"], dropna=True)
    with pytest.raises(InputError, match="CSV line 4: inf"):
        data.check_finite(kept, ["x"])


def test_one_text_cell_in_numeric_column_is_refused(tmp_path):
    rows = "".join(f"{i},{i * 0.5},g{i % 3}\n" for i in range(12))
    p = _write(tmp_path, "d.csv", "y,x,gene\n" + rows + "12,1.2.3,g0\n")
    t = data.read_csv(p)
    with pytest.raises(InputError) as ei:
        data.check_columns(t, ["x", "gene"])
    assert str(ei.value) == "column 'x' mixes numbers and text: CSV line 14 has '1.2.3'"
    assert "--categorical x" in ei.value.hint
    data.check_columns(t, ["x", "gene"], categorical=["x"])  # asked for: a factor, no refusal
    data.check_columns(t, ["gene"])  # genuine text ('g0', 'g1') passes


def test_placeholders_in_numeric_column_are_refused(tmp_path):
    rows = "".join(f"{i},{i}\n" for i in range(6))
    t = data.read_csv(_write(tmp_path, "d.csv", "y,x\n" + rows + "6,?\n7,-\n8,?\n9,?\n"))
    with pytest.raises(InputError, match=r"column 'x' mixes numbers and text: CSV line 8 has '\?'"):
        data.check_mixed_columns(t, ["x"])


@pytest.mark.parametrize("cells", [["g1", "g2", "ctrl", "g1"], ["1", "2", "ctrl", "ctrl"], ["low", "high", "low", "high"]])
def test_text_columns_pass(tmp_path, cells):
    t = data.read_csv(_write(tmp_path, "d.csv", "y,x\n" + "".join(f"{i},{c}\n" for i, c in enumerate(cells))))
    data.check_columns(t, ["x"])
    assert not pd.api.types.is_numeric_dtype(t.frame["x"])


def test_decimal_commas_in_comma_file_are_refused(tmp_path):
    t = data.read_csv(_write(tmp_path, "d.csv", 'y,x\n1,"1,5"\n2,"2,5"\n3,"3,0"\n'))
    with pytest.raises(InputError, match="column 'x' has numbers with a decimal comma: CSV line 2 has '1,5'") as ei:
        data.check_columns(t, ["x"])
    assert "--sep ';'" in ei.value.hint


@pytest.mark.parametrize("header", ["y,x,x", "y,x, x ", "x,y,x"])
def test_duplicate_column_names_refused(tmp_path, header):
    with pytest.raises(InputError) as ei:
        data.read_csv(_write(tmp_path, "d.csv", header + "\n1,2,3\n"))
    assert str(ei.value) == "d.csv has two columns named 'x'"


@pytest.mark.parametrize("name, content, sep", [
    ("semi.csv", "y;x;g\n1;2;a\n3;4;b\n", ";"),
    ("tab.csv", "y\tx\tg\n1\t2\ta\n3\t4\tb\n", "\t"),
    ("pipe.csv", "y|x|g\n1|2|a\n3|4|b\n", "|"),
    ("d.tsv", "y\tx\tg\n1\t2\ta\n3\t4\tb\n", "\t"),
    ("d.txt", "y\tx\tg\n1\t2\ta\n3\t4\tb\n", "\t"),
    ("comma.txt", "y,x,g\n1,2,a\n3,4,b\n", ","),
    ("comma.tsv", "y,x,g\n1,2,a\n3,4,b\n", ","),
])
def test_separator_detected(tmp_path, name, content, sep):
    t = data.read_csv(_write(tmp_path, name, content))
    assert list(t.frame.columns) == ["y", "x", "g"] and t.sep == sep
    assert t.frame["x"].tolist() == [2, 4]


def test_semicolon_file_with_decimal_commas(tmp_path):
    t = data.read_csv(_write(tmp_path, "de.csv", "y;x;g\n1,5;2;a\n-3,25;4;b\n"))
    assert t.sep == ";" and t.decimal == ","
    assert t.frame["y"].tolist() == [1.5, -3.25] and t.frame["g"].tolist() == ["a", "b"]


def test_explicit_sep_wins_and_is_validated(tmp_path):
    p = _write(tmp_path, "d.csv", "y;x\n1;2\n")
    t = data.load_table(p, sep=",")
    assert list(t.frame.columns) == ["y;x"]
    with pytest.raises(InputError) as ei:
        data.require_columns(t, ["y"])
    assert "read as one column 'y;x'" in ei.value.hint and "--sep ';'" in ei.value.hint
    assert data.load_table(_write(tmp_path, "t.csv", "y\tx\n1\t2\n"), sep="\\t").sep == "\t"
    assert data.load_table(_write(tmp_path, "t2.csv", "y\tx\n1\t2\n"), sep="tab").frame.shape == (1, 2)
    for bad in ("ab", "", "\n", "a"):
        with pytest.raises(HlmError, match="--sep must be one separator character"):
            data.load_table(p, sep=bad)


def test_compressed_files(tmp_path):
    body = b"y,x\n1,2\n3,4\n"
    for name, blob in (("d.csv.gz", gzip.compress(body)), ("d.csv.bz2", bz2.compress(body)),
                       ("d.csv.xz", lzma.compress(body)), ("gz_named.csv", gzip.compress(body)),
                       ("d.tsv.gz", gzip.compress(body.replace(b",", b"\t")))):
        p = _write(tmp_path, name, blob)
        t = data.read_csv(p)
        assert t.frame.to_dict("list") == {"y": [1, 3], "x": [2, 4]}, name
        assert t.sha256 == hashlib.sha256(blob).hexdigest()  # the file as given
    with pytest.raises(InputError, match=r"bad.csv.gz is not a readable .gz file"):
        data.read_csv(_write(tmp_path, "bad.csv.gz", b"\x1f\x8b\x08garbage"))


@pytest.mark.parametrize("ext", [".parquet", ".feather"])
def test_arrow_formats(tmp_path, tiny_df, ext):
    pytest.importorskip("pyarrow")
    p = tmp_path / f"d{ext}"
    df = tiny_df.assign(n=pd.array([1, None] * 18, dtype="Int64"))
    df.to_parquet(p) if ext == ".parquet" else df.to_feather(p)
    t = data.load_table(p)
    assert list(t.frame.columns) == list(df.columns) and t.sep is None
    assert np.allclose(t.frame["y"], tiny_df["y"]) and t.frame["n"].dtype == float and t.frame["n"].isna().sum() == 18
    assert list(data.csv_lines(t))[:3] == [2, 3, 4]
    with pytest.raises(InputError, match=f"bad{ext} is not a readable"):
        data.load_table(_write(tmp_path, f"bad{ext}", b"not arrow at all"))


def test_arrow_without_pyarrow(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow -> ImportError
    with pytest.raises(InputError, match=r"reading .parquet files needs pyarrow") as ei:
        data.load_table(_write(tmp_path, "d.parquet", b"PAR1"))
    assert "pip install 'hlm[parquet]'" in ei.value.hint  # the extra that brings pyarrow


def test_non_ascii_and_spaced_names_kept_exact(tmp_path):
    p = _write(tmp_path, "d.csv", "Gewicht_kg, Größe ,température,body weight,y\n1,2,3,4,5\n")
    t = data.read_csv(p)
    assert list(t.frame.columns) == ["Gewicht_kg", "Größe", "température", "body weight", "y"]
    data.require_columns(t, ["Größe", "body weight"])
    with pytest.raises(InputError) as ei:
        data.require_columns(t, ["body weigth"])
    assert "did you mean 'body weight'" in ei.value.hint and "backticks" in ei.value.hint
    with pytest.raises(InputError) as ei:
        data.require_columns(t, ["Gewicht"])
    assert "backticks" not in ei.value.hint  # neither 'Gewicht' nor its match 'Gewicht_kg' needs them
    with pytest.raises(InputError) as ei:
        data.require_columns(t, ["Größe".replace("ö", "o\u0308")])  # the same letters, decomposed (NFD)
    assert "other Unicode code points" in ei.value.hint


def test_ascii_hint_unchanged(tiny_csv):
    with pytest.raises(InputError) as ei:
        data.require_columns(data.read_csv(tiny_csv), ["gen"])
    assert ei.value.hint == "did you mean 'g'? columns: y, x, cond, g, count, flag"


HOSTILE = [
    ("bom.csv", "\ufeffy,x\n1,2\n3,4\n".encode(), ["y", "x"], [2, 3]),
    ("crlf.csv", b"y,x\r\n1,2\r\n3,4\r\n", ["y", "x"], [2, 3]),
    ("cr_only.csv", b"y,x\r1,2\r3,4\r", ["y", "x"], [2, 3]),
    ("utf16.csv", "y\tx\n1\t2\n3\t4\n".encode("utf-16"), ["y", "x"], [2, 3]),
    ("quoted_newline.csv", b'y,x,note\n1,2,"a\nb"\n3,4,c\n', ["y", "x", "note"], [2, 4]),
    ("blank_lines.csv", b"\ny,x\n\n1,2\n   \n3,4\n", ["y", "x"], [4, 6]),
    ("empty_name.csv", b",y,x\n0,1,2\n1,3,4\n", ["Unnamed: 0", "y", "x"], [2, 3]),
    ("trailing_seps.csv", b"y,x\n1,2,\n3,4,\n", ["y", "x"], [2, 3]),
    ("dos_eof.csv", b"y,x\n1,2\n3,4\n\x1a", ["y", "x"], [2, 3]),
    ("wide.csv", (",".join(f"c{i}" for i in range(3000)) + "\n" + ",".join(["1"] * 3000) + "\n1" + ",0" * 2999 + "\n").encode(),
     None, [2, 3]),
    ("long_field.csv", b"y,x\n1," + b"a" * 200_000 + b"\n2,b\n", ["y", "x"], [2, 3]),
]


@pytest.mark.parametrize("name, raw, columns, lines", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_but_readable(tmp_path, name, raw, columns, lines):
    t = data.read_csv(_write(tmp_path, name, raw))
    if columns is not None:
        assert list(t.frame.columns) == columns
    assert list(data.csv_lines(t)) == lines
    assert len(t.frame) == len(lines) and t.frame.iloc[:, 0].notna().all()


def test_quoted_newline_lines_reach_error_messages(tmp_path):
    t = data.read_csv(_write(tmp_path, "d.csv", 'y,x,note\n1,2,"a\nb"\n3,inf,c\n'))
    with pytest.raises(InputError, match="CSV line 4: inf"):
        data.check_columns(t, ["x"])


REFUSED = [
    ("latin1.csv", "y,Größe\n1,2\n".encode("latin-1"), "latin1.csv is not UTF-8 text: byte 0xf6 on line 1", "UTF-8"),
    ("cp1252.csv", "y,x\n1,2\n3,caf\u00e9\n".encode("cp1252"), "not UTF-8 text: byte 0xe9 on line 3", "re-save"),
    ("nul.csv", b"y,x\n1,2\x00\n", "does not look like a text file", "UTF-8"),
    ("random.csv", bytes(range(256)) * 8, "does not look like a text file", "UTF-8"),
    ("control.csv", b"y,x\n" + b"\x01\x02\x03\x04" * 50, "does not look like a text file", "UTF-8"),
    ("whitespace.csv", b"  \n\t\n   \n", "whitespace.csv is empty", "no header"),
    ("excel.csv", b"PK\x03\x04" + b"\x00" * 40, "looks like a zip archive or an Excel workbook", "export"),
    ("book.xlsx", b"PK\x03\x04", "spreadsheet workbook", "export the sheet as CSV"),
    ("parquet_named.csv", b"PAR1\x00\x00", "looks like a parquet file", ".parquet"),
    ("extra_field.csv", b"y,x\n1,2\n3,4,5\n", "CSV line 3 has 3 fields but the header has 2", "quote it"),
    ("index_shift.csv", b"y,x\n1,2,3\n4,5,6\n", "CSV line 2 has 3 fields but the header has 2", "missing a column name"),
    ("no_header.csv", b"1.5,2\n3,4\n", "first line of no_header.csv looks like data", "add a header line"),
    ("unterminated.csv", b'y,x\n1,"abc\n2,3\n', "not a readable CSV file", "quoting"),
]


@pytest.mark.parametrize("name, raw, fragment, hint", REFUSED, ids=[r[0] for r in REFUSED])
def test_hostile_refused(tmp_path, name, raw, fragment, hint):
    with pytest.raises(InputError) as ei:
        data.read_csv(_write(tmp_path, name, raw))
    assert fragment in str(ei.value) and hint in ei.value.hint
    assert "\n" not in str(ei.value)


@pytest.mark.parametrize("name, content, fragment", [
    ("dup.csv", "y,g,g\n1,a,b\n2,b,a\n", "dup.csv has two columns named 'g'"),
    ("semi_dup.csv", "y;g;g\n1;a;b\n2;b;a\n", "semi_dup.csv has two columns named 'g'"),
    ("big.csv", "y,g\n1,a\n1e300,b\n3,a\n4,b\n", "too large to model (beyond 1e150); first on CSV line 3: 1e+300"),
])
def test_refusals_through_the_cli(tmp_path, capsys, name, content, fragment):
    from hlm_cli.cli.app import main

    out = tmp_path / "run"
    code = main(["fit", str(_write(tmp_path, name, content)), "--formula", "y ~ 1 + (1|g)", "--out", str(out), "--no-plots", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: ") and fragment in " ".join(err.split()) and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".run.tmp-*"))


def test_semicolon_file_fits_the_same_columns(tmp_path):
    from hlm_cli.spec import FitSpec
    from hlm_cli.workflows.fit import prepare

    p = _write(tmp_path, "de.csv", "y;x;g\n" + "".join(f"{i},5;{i % 4};g{i % 3}\n" for i in range(12)))
    prep = prepare(FitSpec.model_validate({"data": str(p), "formula": "y ~ x + (1|g)", "out": str(tmp_path / "o")}))
    assert prep.built.design.n == 12 and np.allclose(prep.built.design.y, np.arange(12) + 0.5)


@pytest.mark.parametrize("name, raw", [
    ("d.csv", b"y,x, body weight ,\n1,2,3,\n"),
    ("d.csv.gz", gzip.compress(b"y;x;body weight;\n1;2;3;\n", mtime=0)),
    ("d.tsv", "\ufeffy\tx\tbody weight\t\n1\t2\t3\t\n".encode()),
])
def test_column_names_match_load_table(tmp_path, name, raw):
    p = _write(tmp_path, name, raw)
    assert data.column_names(p) == list(data.load_table(p).frame.columns) == ["y", "x", "body weight", "Unnamed: 3"]


def test_column_names_refuses_like_load_table(tmp_path):
    with pytest.raises(InputError, match="two columns named 'x'"):
        data.column_names(_write(tmp_path, "d.csv", b"x,x\n1,2\n"))
    with pytest.raises(InputError, match="not UTF-8"):
        data.column_names(_write(tmp_path, "l.csv", "Größe\n1\n".encode("latin-1")))
