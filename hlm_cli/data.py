"""Reading the CSV and checking it against the formula before any modelling."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from hlm_cli.errors import InputError, closest_match


@dataclass
class Table:
    """A CSV as read: the frame, where it came from, and what was dropped."""

    frame: pd.DataFrame
    source: Path
    sha256: str
    rows_read: int
    dropped: int = 0
    dropped_by_column: dict[str, int] = field(default_factory=dict)

    @property
    def rows_used(self) -> int:
        return len(self.frame)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_csv(path: Path) -> Table:
    """Read a CSV file into a :class:`Table`, turning every reading problem into an InputError."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"data file {str(path)!r} does not exist", hint="check the path")
    if path.is_dir():
        raise InputError(f"{str(path)!r} is a directory, not a CSV file", hint="give the path of a .csv file")
    try:
        digest = file_sha256(path)
    except OSError as err:
        raise InputError(f"cannot read {str(path)!r}: {err.strerror}", hint="check the file's permissions") from None
    try:
        frame = pd.read_csv(path, sep=None, engine="python") if path.suffix in (".tsv", ".txt") else pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise InputError(f"{path.name} is empty", hint="the file has no header and no rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{path.name} is not a readable CSV file: {first}", hint="check the delimiter and quoting") from None
    if frame.empty:
        raise InputError(f"{path.name} has a header but no data rows", hint="the model needs at least a few rows")
    frame.columns = [str(c).strip() for c in frame.columns]
    return Table(frame=frame, source=path, sha256=digest, rows_read=len(frame))


def require_columns(table: Table, names: Iterable[str]) -> None:
    """Raise an InputError naming the first missing column and listing those that exist."""
    cols = list(table.frame.columns)
    for name in sorted(names):
        if name not in cols:
            raise InputError(
                f"column {name!r} is not in {table.source.name}",
                hint=closest_match(name, cols),
            )


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
            f"(first on CSV line {row + 2})",
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
    return Table(frame, table.source, table.sha256, table.rows_read, dropped, by_col)


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
    return Table(frame, table.source, table.sha256, table.rows_read, table.dropped, table.dropped_by_column)


def _natural(s: str):
    try:
        return (0, float(s), s)
    except ValueError:
        return (1, 0.0, s)


def csv_lines(table: Table):
    """CSV line number (header = line 1) of each row of ``table.frame``."""
    return table.frame.index.to_numpy() + 2


def check_se(table: Table, column: str):
    """Known standard errors must be numeric, finite and positive; name the first bad row."""
    import numpy as np

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
