"""Property tests for the table reader: any file content gives a Table or an HlmError.

Whatever bytes a user's file holds, ``data.read_csv`` and the column checks either return
or raise an HlmError (one line, exit 1): never a pandas, csv, codec or numpy exception.
"""

import gzip
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hlm_cli import data
from hlm_cli.errors import HlmError

# Bytes that make CSV-like files: separators, quotes, line ends, digits, words, a BOM,
# Latin-1 and UTF-8 letters, NUL and other control bytes.
PIECES = [b",", b";", b"\t", b"|", b'"', b"\n", b"\r\n", b"\r", b" ", b"", b"1", b"-2.5", b"1e400",
          b"inf", b"NA", b"nan", b"1,5", b"y", b"x", b"g", b"a b", b"\xef\xbb\xbf", b"\xff\xfe",
          b"\xf6", "Größe".encode(), b"\x00", b"\x01", b"\x1a", b"\x1f\x8b", b"PAR1", b"#", b"'", b"=", b"\\"]
csv_like = st.lists(st.sampled_from(PIECES), max_size=60).map(b"".join)
SUFFIXES = [".csv", ".tsv", ".txt", ".dat", ".csv.gz", ".parquet"]


def _check(raw: bytes, suffix: str, sep: str | None = None) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"f{suffix}"
        p.write_bytes(gzip.compress(raw) if suffix.endswith(".gz") else raw)
        try:  # the cheap header read is total as well
            data.column_names(p, sep=sep)
        except HlmError:
            pass
        try:
            table = data.load_table(p, sep=sep)
        except HlmError as err:
            assert str(err) and "\n" not in str(err)
            return
        assert len(table.frame) >= 1 and len(data.csv_lines(table)) == len(table.frame)
        assert len(set(table.frame.columns)) == len(table.frame.columns)
        cols = list(table.frame.columns)
        try:  # the checks after reading are total too
            data.check_columns(table, cols)
            data.require_columns(table, cols[:1] + ["no such column"])
        except HlmError:
            pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(csv_like, st.sampled_from(SUFFIXES), st.sampled_from([None, None, ",", ";", "\t"]))
@example(b'y,x\n1,"2\n', ".csv", None)
@example(b"y,x\n1,2,3\n", ".csv", None)
@example(b"\xef\xbb\xbf\n\n", ".csv", None)
@example(b"y;x\n1,5;2\n", ".csv", None)
def test_csv_like_bytes_read_or_raise_a_clean_error(raw, suffix, sep):
    _check(raw, suffix, sep)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.sampled_from(SUFFIXES))
def test_any_bytes_read_or_raise_a_clean_error(raw, suffix):
    _check(raw, suffix)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_any_text_read_or_raise_a_clean_error(text):
    _check(text.encode("utf-8", "surrogatepass"), ".csv")


def test_the_property_can_fail(monkeypatch):
    """The property catches a stray exception (guards against a test that cannot fail)."""
    monkeypatch.setattr(data, "_read_text", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        _check(b"y,x\n1,2\n", ".csv")
