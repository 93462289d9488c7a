"""Reading the data table and checking it against the formula before any modelling.

:func:`load_table` reads every input format (delimited text, optionally compressed, and
parquet/feather) into a :class:`Table`; every reading problem becomes an InputError that
names the file and, where it can, the line. The check functions below it refuse values
that would otherwise be modelled silently wrong.
"""

from __future__ import annotations

import bz2
import csv
import dataclasses
import difflib
import gzip
import hashlib
import io
import lzma
import re
import unicodedata
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hlm_cli.errors import ConfigError, InputError, closest_match

# Values of this size overflow float64 when squared (sums of squares, prior scales).
HUGE = 1e150

_SEPARATORS = (",", "\t", ";", "|")
_SEP_NAMES = {",": "','", "\t": "tab", ";": "';'", "|": "'|'"}
_SEP_ALIASES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
_DEFAULT_SEP = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": "\t"}
_OPENERS = {".gz": gzip.decompress, ".bz2": bz2.decompress, ".xz": lzma.decompress}
_ARROW = {".parquet": "parquet", ".pq": "parquet", ".feather": "feather", ".arrow": "feather"}
_EXCEL = (".xlsx", ".xlsm", ".xls", ".ods")
# Magic numbers of files that are not text, whatever they are named.
_MAGIC = {
    b"PAR1": "a parquet file: name it .parquet",
    b"ARROW1": "an Arrow/feather file: name it .feather",
    b"PK\x03\x04": "a zip archive or an Excel workbook: export the sheet as CSV (UTF-8)",
    b"\xd0\xcf\x11\xe0": "an old Excel (.xls) workbook: export the sheet as CSV (UTF-8)",
    b"%PDF": "a PDF document",
}


@dataclass
class Table:
    """A data file as read: the frame, where it came from, and what was dropped.

    ``frame.index`` holds each row's CSV line minus 2 (header = line 1), so
    :func:`csv_lines` names the right line even after blank lines or quoted newlines.
    ``sep`` is the separator used (None for parquet/feather) and ``decimal`` the decimal
    mark (',' when a ';'- or tab-separated file wrote decimals with commas).
    """

    frame: pd.DataFrame
    source: Path
    sha256: str
    rows_read: int
    dropped: int = 0
    dropped_by_column: dict[str, int] = field(default_factory=dict)
    sep: str | None = ","
    decimal: str = "."

    @property
    def rows_used(self) -> int:
        return len(self.frame)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_csv(path: Path, sep: str | None = None) -> Table:
    """Read a data file into a :class:`Table` (the historical name of :func:`load_table`)."""
    return load_table(path, sep=sep)


def load_table(path: Path, sep: str | None = None) -> Table:
    """Read a data file into a :class:`Table`, turning every reading problem into an InputError.

    Parameters
    ----------
    path : Path
        ``.csv``, ``.tsv``/``.tab``/``.txt`` (tab by default), any of those compressed
        (``.gz``, ``.bz2``, ``.xz``), or ``.parquet``/``.feather`` (needs pyarrow). Other
        names are read as delimited text.
    sep : str, optional
        The field separator (``','``, ``';'``, ``'\\t'`` or ``'tab'``, ``'|'``). None detects
        it from the header line: the extension's separator (',' for .csv), unless the header
        holds none of it but does hold ';', tab or '|', then that one (``Table.sep`` records it).

    Returns
    -------
    Table
        ``sha256`` covers the file as given (compressed bytes for .gz).

    Notes
    -----
    Text must be UTF-8 (a byte-order mark is dropped) or UTF-16 with a byte-order mark.
    Latin-1/Windows-1252 files are refused, naming the first non-UTF-8 byte and its line,
    rather than guessed at: a wrong guess silently changes names and factor levels, and
    re-saving as UTF-8 takes one step. Column names keep their exact characters (spaces,
    non-ASCII letters); only surrounding whitespace is removed. An empty column name (as R's
    ``write.csv`` writes for row names) becomes ``Unnamed: N``; duplicate names, rows with
    more non-empty fields than the header, and a first line that looks like data are refused.
    With a ';' or tab separator, a column whose every value is a number with a decimal comma
    ('1,5') is read as numbers (``Table.decimal`` = ',').
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"data file {str(path)!r} does not exist", hint="check the path")
    if path.is_dir():
        raise InputError(f"{str(path)!r} is a directory, not a CSV file", hint="give the path of a .csv file")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise InputError(f"cannot read {str(path)!r}: {err.strerror}", hint="check the file's permissions") from None
    digest = hashlib.sha256(raw).hexdigest()  # the file as given, before any decompression
    suffixes = [s.lower() for s in path.suffixes]
    compression = suffixes.pop() if suffixes and suffixes[-1] in _OPENERS else None
    ext = suffixes[-1] if suffixes else ""
    if ext in _EXCEL:
        raise InputError(f"{path.name} is a spreadsheet workbook, which hlm does not read",
                         hint="export the sheet as CSV (UTF-8) and give that file")
    if ext in _ARROW and compression is None:
        frame, used_sep, decimal = _read_arrow(path, _ARROW[ext]), None, "."
    else:
        if compression is None and raw[:2] == b"\x1f\x8b":
            compression = ".gz"  # a gzipped file named .csv: read it as what it is
        if compression is not None:
            raw = _decompress(raw, compression, path.name)
        text = _decode(raw, path.name)
        frame, used_sep, decimal = _read_text(text, path.name, sep, _DEFAULT_SEP.get(ext, ","))
    if frame.empty:
        raise InputError(f"{path.name} has a header but no data rows", hint="the model needs at least a few rows")
    return Table(frame=frame, source=path, sha256=digest, rows_read=len(frame), sep=used_sep, decimal=decimal)


def column_names(path: Path, sep: str | None = None) -> list[str]:
    """The column names :func:`load_table` would give, reading only the start of the file.

    Raises an InputError (or ConfigError for a bad ``sep``) where the header cannot be read.
    """
    path = Path(path)
    suffixes = [s.lower() for s in path.suffixes]
    compression = suffixes.pop() if suffixes and suffixes[-1] in _OPENERS else None
    ext = suffixes[-1] if suffixes else ""
    if ext in _ARROW and compression is None or ext in _EXCEL:
        return list(load_table(path, sep=sep).frame.columns)
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 20)
        if compression is not None or head[:2] == b"\x1f\x8b":
            opener = {".bz2": bz2.open, ".xz": lzma.open}.get(compression or ".gz", gzip.open)
            with opener(path, "rb") as fh:
                head = fh.read(1 << 20)
    except (OSError, EOFError, lzma.LZMAError) as err:
        raise InputError(f"cannot read the header of {path.name}: {err}", hint="check the file") from None
    cut = max(head.rfind(b"\n"), head.rfind(b"\r"))
    text = _decode(head if cut < 0 or len(head) < 1 << 20 else head[:cut + 1], path.name)
    header_line = _first_line(text)
    if not header_line:
        raise InputError(f"{path.name} is empty", hint="the file has no header and no rows")
    fields = _fields(header_line, _choose_sep(header_line, sep, _DEFAULT_SEP.get(ext, ",")))
    _check_names(fields, path.name)
    return [f.strip() or f"Unnamed: {i}" for i, f in enumerate(fields)]


def parse_sep(sep: str) -> str:
    """The one-character separator that ``--sep`` names ('tab' and a typed '\\t' mean a tab)."""
    value = _SEP_ALIASES.get(sep.lower() if len(sep) > 1 else sep, sep)
    if len(value) != 1 or value in "\"\r\n" or value.isalnum():
        raise ConfigError(f"--sep must be one separator character such as ',' ';' or tab (got {sep!r})",
                          hint="e.g. --sep ';' or --sep tab")
    return value


def _decompress(raw: bytes, compression: str, name: str) -> bytes:
    try:
        return _OPENERS[compression](raw)
    except (OSError, EOFError, ValueError, lzma.LZMAError, gzip.BadGzipFile) as err:
        raise InputError(f"{name} is not a readable {compression} file: {err}",
                         hint="check the file, or decompress it and give the plain CSV") from None


def _read_arrow(path: Path, kind: str) -> pd.DataFrame:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise InputError(f"reading {path.suffix} files needs pyarrow, which is not installed",
                         hint="pip install 'hlm[parquet]' (or save the table as .csv)") from None
    try:
        frame = pd.read_parquet(path) if kind == "parquet" else pd.read_feather(path)
    except Exception as err:  # noqa: BLE001 - pyarrow raises many kinds for a damaged file
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{path.name} is not a readable {kind} file: {first}",
                         hint="check the file, or save the table as .csv") from None
    if not isinstance(frame.index, pd.RangeIndex) or frame.index.name is not None:
        frame = frame.reset_index(drop=all(n is None for n in frame.index.names))
    frame = frame.reset_index(drop=True)
    _check_names([str(c) for c in frame.columns], path.name)
    frame.columns = [str(c).strip() for c in frame.columns]
    for col in frame.columns:  # nullable/arrow dtypes -> numpy, as the CSV reader gives
        dtype = frame[col].dtype
        if isinstance(dtype, pd.api.extensions.ExtensionDtype) and pd.api.types.is_numeric_dtype(dtype) \
                and not pd.api.types.is_bool_dtype(dtype):
            frame[col] = frame[col].to_numpy(dtype=float, na_value=np.nan)
    return frame


def _decode(raw: bytes, name: str) -> str:
    """UTF-8 (with or without BOM) or BOM-marked UTF-16/32 text; anything else refused."""
    for magic, what in _MAGIC.items():
        if raw.startswith(magic):
            raise InputError(f"{name} is not a text file: it looks like {what.split(':')[0]}",
                             hint=what.split(": ", 1)[1] if ": " in what else "give a CSV file")
    for bom, codec in ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
                       (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if raw.startswith(bom):
            try:
                text = raw.decode(codec)
            except UnicodeDecodeError:
                raise InputError(f"{name} starts with a {codec.upper()} byte-order mark but is not {codec.upper()} text",
                                 hint="re-save it as CSV UTF-8") from None
            break
    else:
        if b"\x00" in raw[:65536]:
            raise InputError(f"{name} does not look like a text file (it contains NUL bytes)",
                             hint="give a CSV file saved as UTF-8 text")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            line = raw.count(b"\n", 0, err.start) + 1
            byte = raw[err.start]
            if _control_share(raw[:65536].decode("latin-1")) > 0.01:
                raise InputError(f"{name} does not look like a text file (byte 0x{byte:02x} on line {line})",
                                 hint="give a CSV file saved as UTF-8 text") from None
            raise InputError(
                f"{name} is not UTF-8 text: byte 0x{byte:02x} on line {line} (Latin-1 or Windows-1252?)",
                hint="re-save it as UTF-8 (Excel: 'CSV UTF-8'; or iconv -f cp1252 -t utf-8 IN > OUT)",
            ) from None
    if "\x00" in text[:65536] or _control_share(text[:65536]) > 0.01:
        raise InputError(f"{name} does not look like a text file (it contains control characters)",
                         hint="give a CSV file saved as UTF-8 text")
    return text.lstrip("\ufeff").rstrip("\x1a")  # a DOS end-of-file mark is not a row


def _control_share(text: str) -> float:
    if not text:
        return 0.0
    n = sum(1 for ch in text if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\x1a\x0c")
    return n / len(text)


def _first_line(text: str) -> str:
    """The first line that is not blank (pandas skips blank lines before the header too)."""
    m = re.search(r"\S", text)
    if m is None:
        return ""
    begin = max(text.rfind("\n", 0, m.start()), text.rfind("\r", 0, m.start())) + 1
    end = min((i for i in (text.find("\n", begin), text.find("\r", begin)) if i >= 0), default=len(text))
    return text[begin:end]


def _fields(line: str, sep: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=sep), [])
    except csv.Error:
        return [line]


def _choose_sep(header: str, sep: str | None, default: str) -> str:
    if sep is not None:
        return parse_sep(sep)
    if len(_fields(header, default)) > 1:
        return default
    counts = {c: len(_fields(header, c)) for c in _SEPARATORS}
    best = max(_SEPARATORS, key=lambda c: counts[c])
    return best if counts[best] > 1 else default


def _read_text(text: str, name: str, sep: str | None, default: str) -> tuple[pd.DataFrame, str, str]:
    header_line = _first_line(text)
    if not header_line:
        raise InputError(f"{name} is empty", hint="the file has no header and no rows")
    sep = _choose_sep(header_line, sep, default)
    _check_names(_fields(header_line, sep), name)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            frame = pd.read_csv(io.StringIO(text), sep=sep, index_col=False, low_memory=False)
    except pd.errors.EmptyDataError:
        raise InputError(f"{name} is empty", hint="the file has no header and no rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OverflowError, csv.Error) as err:
        _scan(text, name, sep)  # names the CSV line of a row longer than the header, if that is it
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{name} is not a readable CSV file: {first}",
                         hint=f"check the quoting (the separator used was {_SEP_NAMES.get(sep, repr(sep))})") from None
    frame.columns = [str(c).strip() or f"Unnamed: {i}" for i, c in enumerate(frame.columns)]
    # One physical line per row and none blank: the CSV lines are index + 2 as they stand.
    # Otherwise (blank lines, quoted newlines, rows longer than the header) ask the csv module.
    physical = text.count("\n") + (not text.endswith("\n"))  # CR-only files miscount: then scanned
    if caught or physical != len(frame) + 1:
        header, starts = _scan(text, name, sep)
        if header is not None:
            _check_names(header, name)
        if starts is not None and len(starts) == len(frame):
            frame.index = pd.Index(np.asarray(starts, dtype=np.int64) - 2)
    decimal = "."
    if sep != ",":
        frame, decimal = _decimal_commas(frame)
    return frame, sep, decimal


def _scan(text: str, name: str, sep: str) -> tuple[list[str] | None, list[int] | None]:
    """The header's fields and each record's first CSV line, as pandas reads them.

    Refuses a row with more non-empty fields than the header (pandas would silently take
    the first column as the row index, or drop the extra values). Blank lines are skipped,
    as pandas does. Returns (None, None) where the csv module cannot follow the file.
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    header: list[str] | None = None
    starts: list[int] = []
    prev = 0
    try:
        for rec in reader:
            start, prev = prev + 1, reader.line_num
            if not rec or (len(rec) == 1 and not rec[0].strip()):
                continue
            if header is None:
                header = rec
                continue
            if len(rec) > len(header) and any(f.strip() for f in rec[len(header):]):
                raise InputError(
                    f"{name}: CSV line {start} has {len(rec)} fields but the header has {len(header)}",
                    hint=f"a value may contain the separator {_SEP_NAMES.get(sep, repr(sep))} (quote it), "
                         "or the header is missing a column name",
                )
            starts.append(start)
    except csv.Error:
        return None, None
    return header, starts


def _check_names(header: list[str], name: str) -> None:
    names = [h.strip() for h in header]
    seen: set[str] = set()
    for n in names:
        if n and n in seen:
            raise InputError(f"{name} has two columns named {n!r}",
                             hint="rename one of them in the header line (pandas would have renamed it silently)")
        seen.add(n)
    if names and all(_is_number(n) for n in names):
        raise InputError(f"the first line of {name} looks like data, not column names: {', '.join(names[:5])}",
                         hint="add a header line naming the columns (e.g. y,x,group)")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


_DECIMAL_COMMA = r"[-+]?(\d+,\d*|,\d+)([eE][-+]?\d+)?"


def _decimal_commas(frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Text columns whose every value is a number with a decimal comma, as numbers."""
    converted = False
    for col in frame.columns:
        s = frame[col]
        if pd.api.types.is_numeric_dtype(s) or isinstance(s.dtype, pd.CategoricalDtype):
            continue
        codes, uniques = pd.factorize(s)
        kind = _number_kind(uniques)
        if (kind == 2).any() and (kind[kind >= 0] > 0).all():
            values = pd.to_numeric(pd.Series(uniques).astype(str).str.strip().str.replace(",", ".", regex=False),
                                   errors="coerce").to_numpy(dtype=float)
            frame[col] = np.where(codes >= 0, values[codes], np.nan)
            converted = True
    return frame, ("," if converted else ".")


def _number_kind(values) -> np.ndarray:
    """Per value: -1 empty, 0 text, 1 a number, 2 a number with a decimal comma ('1,5')."""
    text = pd.Series(values, dtype=object).astype(str).str.strip()
    number = pd.to_numeric(text, errors="coerce").notna().to_numpy()
    comma = text.str.fullmatch(_DECIMAL_COMMA).to_numpy(dtype=bool)
    kind = np.where(number, 1, np.where(comma, 2, 0))
    return np.where((text == "").to_numpy(), -1, kind)


def _needs_backticks(name: str) -> bool:
    return not name.isascii() or not name.replace(".", "_").isidentifier()


def require_columns(table: Table, names: Iterable[str]) -> None:
    """Raise an InputError naming the first missing column and listing those that exist."""
    cols = list(table.frame.columns)
    for name in sorted(names):
        if name not in cols:
            hint = closest_match(name, cols)
            nfc = {unicodedata.normalize("NFC", c): c for c in cols}
            same = nfc.get(unicodedata.normalize("NFC", name))
            if same is not None:
                hint = (f"the file's column {same!r} looks the same but is written with other Unicode code points; "
                        "re-type the name in the header or the formula")
            elif len(cols) == 1 and (seps := [c for c in _SEPARATORS if c in cols[0]]):
                hint = (f"{table.source.name} was read as one column {cols[0]!r}: it looks "
                        f"{_SEP_NAMES[seps[0]]}-separated, so give --sep {_SEP_NAMES[seps[0]]}")
            else:
                close = difflib.get_close_matches(name, [str(c) for c in cols], n=1, cutoff=0.5)
                if _needs_backticks(name) or any(_needs_backticks(c) for c in close):
                    hint += "; in a formula, write a name with spaces or non-ASCII letters in backticks, e.g. `Größe (cm)`"
            raise InputError(f"column {name!r} is not in {table.source.name}", hint=hint)


def handle_missing(table: Table, columns: Iterable[str], *, dropna: bool) -> Table:
    """Drop rows with NaN in the model's columns (recording counts), or refuse under --no-dropna."""
    cols = [c for c in table.frame.columns if c in set(columns)]
    sub = table.frame[cols]
    na = sub.isna()
    if not na.values.any():
        return table
    if not dropna:
        col = next(c for c in cols if na[c].any())
        row = int(na[col].to_numpy().argmax())
        raise InputError(
            f"{table.source.name} has {int(na[col].sum())} missing value(s) in column {col!r} "
            f"(first on CSV line {csv_lines(table)[row]})",
            hint="fill them in, or drop those rows with --dropna (the default)",
        )
    by_col = {c: int(na[c].sum()) for c in cols if na[c].any()}
    keep = ~na.any(axis=1)
    frame = table.frame.loc[keep]  # keeps the original index: csv_lines() still names CSV lines
    dropped = int((~keep).sum())
    if frame.empty:
        raise InputError(
            f"every row of {table.source.name} has a missing value in a model column",
            hint="missing per column: " + ", ".join(f"{k}={v}" for k, v in by_col.items()),
        )
    return dataclasses.replace(table, frame=frame, dropped=dropped, dropped_by_column=by_col)


def make_categorical(table: Table, columns: Iterable[str]) -> Table:
    """Treat numeric columns such as ``cell_line`` = 0..9 as factors (--categorical)."""
    frame = table.frame.copy()
    for col in columns:
        if col not in frame.columns:
            raise InputError(
                f"--categorical names column {col!r}, which is not in {table.source.name}",
                hint=closest_match(col, frame.columns),
            )
        values = frame[col]
        if pd.api.types.is_float_dtype(values) and (values.dropna() % 1 == 0).all():
            values = values.astype("Int64")
        frame[col] = pd.Categorical(values.astype(str), categories=sorted(values.dropna().unique().astype(str), key=_natural))
    return dataclasses.replace(table, frame=frame)


def _natural(s: str):
    try:
        return (0, float(s), s)
    except ValueError:
        return (1, 0.0, s)


def csv_lines(table: Table):
    """CSV line number (header = line 1) of each row of ``table.frame``."""
    return table.frame.index.to_numpy() + 2


def check_columns(table: Table, columns: Iterable[str], categorical: Iterable[str] = ()) -> None:
    """Refuse predictor columns that mix numbers and text, or hold infinite or huge numbers.

    Parameters
    ----------
    table : Table
    columns : iterable of str
        The model's numeric-predictor candidates: every column the formula names except the
        response and the grouping factors (text is fine there).
    categorical : iterable of str
        ``--categorical`` columns: factors by request, so neither check applies.
    """
    cats = set(categorical or ())
    cols = [c for c in table.frame.columns if c in set(columns) and c not in cats]
    check_mixed_columns(table, cols)
    check_finite(table, cols)


def check_mixed_columns(table: Table, columns: Iterable[str], categorical: Iterable[str] = ()) -> None:
    """Refuse a text column whose values are nearly all numbers (one typo makes it a factor).

    A column is refused when it is not numeric but at least 80% of its non-empty values are
    numbers, or when 5+ distinct numbers sit beside at most 2 distinct texts (placeholders
    such as '?' or '-'); the error names the first CSV line with a non-number. A column of
    numbers with decimal commas is refused too. Genuine text ('g1', 'ctrl') passes.
    """
    cats = set(categorical or ())
    lines = csv_lines(table)
    for col in [c for c in table.frame.columns if c in set(columns) and c not in cats]:
        s = table.frame[col]
        if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s) or isinstance(s.dtype, pd.CategoricalDtype):
            continue
        codes, uniques = pd.factorize(s)  # classify each distinct value once
        kind_u = _number_kind(uniques)
        if not (kind_u > 0).any():
            continue
        kind = np.where(codes >= 0, kind_u[np.maximum(codes, 0)], -1)
        n, k = int((kind >= 0).sum()), int((kind > 0).sum())
        other = kind == 0
        mostly = k >= 0.8 * n or (int((kind_u > 0).sum()) >= 5 and int((kind_u == 0).sum()) <= 2)
        if other.any() and mostly:
            i = int(np.argmax(other))
            raise InputError(
                f"column {col!r} mixes numbers and text: CSV line {lines[i]} has {s.iloc[i]!r}",
                hint=f"fix that value (leave a missing value empty); if {col} is a factor, give --categorical {col}",
            )
        if not other.any() and (kind == 2).any():
            i = int(np.argmax(kind == 2))
            raise InputError(
                f"column {col!r} has numbers with a decimal comma: CSV line {lines[i]} has {s.iloc[i]!r}",
                hint="write decimals with a point (1.5), or if the file is ';'-separated give --sep ';'",
            )


def check_finite(table: Table, columns: Iterable[str]) -> None:
    """Refuse infinite numbers, and numbers beyond 1e150 (their squares overflow), in numeric columns."""
    lines = csv_lines(table)
    for col in [c for c in table.frame.columns if c in set(columns)]:
        s = table.frame[col]
        if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            continue
        values = s.to_numpy(dtype=float, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            inf, huge = np.isinf(values), np.abs(values) > HUGE
        if inf.any():
            i = int(np.argmax(inf))
            raise InputError(
                f"column {col!r} has an infinite value on CSV line {lines[i]}: {values[i]:g}",
                hint="replace it with a finite number (beyond ±1.8e308 reads as infinite), or leave the cell empty to drop the row",
            )
        if huge.any():
            i = int(np.argmax(huge))
            raise InputError(
                f"column {col!r} has a value too large to model on CSV line {lines[i]}: {values[i]:g}",
                hint="rescale the column (e.g. in units of 1e6); values beyond 1e150 overflow when squared",
            )


def check_se(table: Table, column: str):
    """Known standard errors must be numeric, finite and positive; name the first bad row."""
    values = pd.to_numeric(table.frame[column], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values) | (values <= 0)
    if bad.any():
        i = int(np.argmax(bad))
        raw = table.frame[column].iloc[i]
        raise InputError(
            f"standard error column {column!r} must be positive numbers; CSV line {csv_lines(table)[i]} has {str(raw) if str(raw) != 'nan' else 'no value'}",
            hint="se(COL) gives each row's known standard error: fix or remove that row",
        )
    return values
