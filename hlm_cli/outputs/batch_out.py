"""The files of an ``hlm batch`` output directory, and how they are rebuilt from disk.

Layout of ``--out`` (one run directory per input, the ``hlm fit`` contract inside)::

    OUT/batch_summary.csv        one row per input x parameter (see SUMMARY_COLUMNS)
    OUT/batch_status.csv         one row per input (x model): ok / diagnostics-warning / failed
    OUT/gene_0001/               a run directory (single formula), or
    OUT/gene_0001/m1, m2, ...    one run directory per --formula, plus compare.csv
    OUT/.hlm_batch/batch.json    what the batch is (formulas, layout), to refuse a mismatched resume
    OUT/.hlm_batch/records/*.json  one attempt record per run directory (failures, attempt times)
    OUT/.hlm_batch/lock          held (flock) while a batch writes into OUT

The two tables are never the source of truth: they are rebuilt from the committed run
directories (``run.json`` is written last, inside a staging directory that is renamed into
place) and from the attempt records, then written atomically. A run directory counts as done
only if its ``run.json`` names the same data hash and settings as the current batch, so
nothing half-written or stale is ever reported as done.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from hlm_cli.errors import OutputError
from hlm_cli.outputs.rundir import write_atomic

STATE_DIR = ".hlm_batch"
SUMMARY_FILE = "batch_summary.csv"
STATUS_FILE = "batch_status.csv"
COMPARE_FILE = "compare.csv"

SUMMARY_COLUMNS = [
    "input", "model", "formula", "run_dir", "parameter", "kind", "group", "mean", "sd",
    "hdi94_lb", "hdi94_ub", "r_hat", "ess_bulk", "ess_tail", "divergences",
]
STATUS_COLUMNS = [
    "input", "model", "formula", "run_dir", "status", "error", "hint", "findings",
    "load_s", "build_s", "compile_s", "sample_s", "total_s", "data_sha256", "attempted_at",
    "worker", "compare",
]

#: Settings that do not change a fit's numbers, or that differ per input by design: they are
#: left out of the fingerprint that decides whether a finished run can be reused.
_NOT_SETTINGS = ("data", "out", "force", "quiet", "command", "config_file", "cache")
_NOT_SAMPLER_SETTINGS = ("cores",)  # nutpie seeds each chain, so threads do not change draws


@dataclass(frozen=True)
class Entry:
    """One run directory the batch is responsible for (an input, or an input x formula).

    Attributes
    ----------
    input : str
        The CSV path as the user's glob/directory/manifest named it.
    model : str
        ``m1``, ``m2``, ... in ``--formula`` order.
    formula : str
    run_dir : str
        Relative to ``--out``: ``gene_0001`` (one formula) or ``gene_0001/m2``.
    sha256 : str
        Hash of the input file now ("" if it cannot be read).
    fingerprint : str
        :func:`fingerprint` of the settings the batch fits with.
    """

    input: str
    model: str
    formula: str
    run_dir: str
    sha256: str
    fingerprint: str


# --------------------------------------------------------------------------
# fingerprints and records
# --------------------------------------------------------------------------


def fingerprint(config: dict) -> str | None:
    """Hash of the settings that determine a fit's numbers (``run.json["config"]`` form).

    Parameters
    ----------
    config : dict
        A FitSpec as JSON (``FitSpec.model_dump(mode="json")``).

    Returns
    -------
    str or None
        ``None`` when ``config`` is not a valid FitSpec (e.g. written by an older hlm): such a
        run is never reused.
    """
    from pydantic import ValidationError

    from hlm_cli.spec import FitSpec

    try:
        spec = FitSpec.model_validate(config)
    except (ValidationError, TypeError, ValueError):
        return None
    data = spec.model_dump(mode="json")
    for key in _NOT_SETTINGS:
        data.pop(key, None)
    for key in ("group_levels", "lean"):  # only hlm batch --by sets them: other fingerprints unchanged
        if not data.get(key):
            data.pop(key, None)
    for key in _NOT_SAMPLER_SETTINGS:
        data["sampler"].pop(key, None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:24]


def record_path(out: Path, run_dir: str) -> Path:
    return Path(out) / STATE_DIR / "records" / (quote(run_dir, safe="") + ".json")


def write_json_atomic(path: Path, obj: dict) -> None:
    """Write JSON to a temporary file beside ``path``, fsync it, and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def dump(fh) -> None:
        json.dump(obj, fh, indent=1, default=str)
        fh.write("\n")

    write_atomic(path, dump)


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``, or None if it is missing or unreadable."""
    try:
        obj = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def write_record(out: Path, record: dict) -> None:
    """Save one attempt record (status, error, timings, hash, time) for ``record['run_dir']``."""
    write_json_atomic(record_path(out, record["run_dir"]), record)


def read_record(out: Path, run_dir: str) -> dict | None:
    return read_json(record_path(out, run_dir))


def done_info(out: Path, entry: Entry) -> dict | None:
    """``run.json`` of a committed run directory that matches the entry's data and settings.

    Returns None when the directory is missing, its run.json unreadable, or it was fitted to
    other data or with other settings (a stale result that must be refitted).
    """
    info = read_json(Path(out) / entry.run_dir / "run.json")
    if info is None:
        return None
    if info.get("data", {}).get("sha256") != entry.sha256 or not entry.sha256:
        return None
    if fingerprint(info.get("config") or {}) != entry.fingerprint:
        return None
    return info


def failed_record(out: Path, entry: Entry) -> dict | None:
    """The record of a failed attempt on the same data with the same settings, if any."""
    rec = read_record(out, entry.run_dir)
    if rec is None or rec.get("status") != "failed":
        return None
    if rec.get("sha256") != entry.sha256 or rec.get("fingerprint") != entry.fingerprint:
        return None
    return rec


# --------------------------------------------------------------------------
# the directory itself: marker, lock, leftovers
# --------------------------------------------------------------------------


def prepare_out(out: Path, layout: dict) -> None:
    """Create ``out`` for a batch, or check that it holds a batch of the same layout.

    Parameters
    ----------
    out : Path
    layout : dict
        ``{"formulas": [...], "nested": bool}``: a resume with other formulas would mix
        run directories of different shapes, so it is refused.

    Raises
    ------
    OutputError
        ``out`` is a file, a non-empty directory that no batch created, or a batch with
        another layout.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {str(out)!r} exists and is a file", hint="give a directory path")
    marker = out / STATE_DIR / "batch.json"
    if out.exists() and any(out.iterdir()) and not marker.exists():
        raise OutputError(
            f"output directory {str(out)!r} exists, is not empty, and was not written by hlm batch",
            hint="choose another --out (hlm batch resumes only into a directory it created)",
        )
    old = read_json(marker)
    if old is not None and old.get("nested") != layout["nested"]:
        raise OutputError(
            f"{str(out)!r} holds a batch with {len(old.get('formulas', []))} formula(s); this one has {len(layout['formulas'])}",
            hint="one formula writes OUT/INPUT/, several write OUT/INPUT/m1, m2, ...: choose another --out",
        )
    try:
        (out / STATE_DIR / "records").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create {str(out)!r}: {err.strerror}", hint="check the path and permissions") from None
    if not os.access(out, os.W_OK):
        raise OutputError(f"cannot write in {str(out)!r}", hint="check the permissions, or choose another --out")
    write_json_atomic(marker, layout)


@contextlib.contextmanager
def locked(out: Path):
    """Hold an exclusive lock on ``out`` for the length of a batch.

    The lock is an ``flock`` on ``OUT/.hlm_batch/lock``: the kernel drops it when the process
    dies, even under ``kill -9``, so a crashed batch never blocks the re-run.
    """
    path = Path(out) / STATE_DIR / "lock"
    fh = open(path, "a+")
    try:
        try:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - Windows: no advisory locks, run unlocked
            pass
        except OSError:
            raise OutputError(
                f"another hlm batch is writing into {str(out)!r}",
                hint="wait for it to finish, or choose another --out",
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        yield
    finally:
        fh.close()


def remove_leftovers(out: Path, parents: list[str]) -> int:
    """Delete staging directories left by a killed batch (``.NAME.tmp-*``, ``.NAME.old-*``).

    Only call this while holding :func:`locked`: no live fit of this batch is writing then.
    Returns the number of directories removed.
    """
    removed = 0
    for parent in {Path(out), *(Path(out) / p for p in parents)}:
        if not parent.is_dir():
            continue
        for child in parent.iterdir():
            if child.name.startswith(".") and (".tmp-" in child.name or ".old-" in child.name) and child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
                removed += 1
    return removed


# --------------------------------------------------------------------------
# rebuilding the two tables
# --------------------------------------------------------------------------


def status_row(out: Path, entry: Entry):
    """(status row, run.json or None) of one entry, from what is committed on disk."""
    info = done_info(out, entry)
    rec = read_record(out, entry.run_dir) or {}
    row = dict.fromkeys(STATUS_COLUMNS, "")
    row.update(input=entry.input, model=entry.model, formula=entry.formula, run_dir=entry.run_dir,
               data_sha256=entry.sha256)
    if info is not None:
        tm = info.get("timings", {})
        diag = info.get("diagnostics", {})
        warnings = [f for f in diag.get("findings", []) if f.get("severity", "warning") == "warning"]
        row.update(
            status="ok" if diag.get("ok", True) else "diagnostics-warning",
            error=warnings[0]["message"] if warnings else "",
            hint=warnings[0].get("remedy", "") if warnings else "",
            findings=";".join(f.get("code", "") for f in diag.get("findings", [])),
            load_s=tm.get("load", ""), build_s=tm.get("build", ""), compile_s=tm.get("compile", ""),
            sample_s=tm.get("sample", ""), total_s=tm.get("total", ""),
        )
        same_run = rec.get("status") in ("ok", "diagnostics-warning") and rec.get("sha256") == entry.sha256
        row["attempted_at"] = rec.get("attempted_at", "") if same_run else _mtime(Path(out) / entry.run_dir / "run.json")
        row["worker"] = rec.get("worker", "") if same_run else ""
    elif (failed := failed_record(out, entry)) is not None:
        tm = failed.get("timings", {})
        row.update(
            status="failed", error=failed.get("error", ""), hint=failed.get("hint", ""),
            load_s=tm.get("load", ""), build_s=tm.get("build", ""), compile_s=tm.get("compile", ""),
            sample_s=tm.get("sample", ""), total_s=tm.get("total", ""),
            attempted_at=failed.get("attempted_at", ""), worker=failed.get("worker", ""),
        )
    else:
        row["status"] = "pending"
    row["compare"] = rec.get("compare", "")
    return row, info


def _mtime(path: Path) -> str:
    from datetime import UTC, datetime

    try:
        return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).isoformat(timespec="seconds")
    except OSError:
        return ""


def _summary_rows(out: Path, entry: Entry, info: dict):
    import pandas as pd

    try:
        summ = pd.read_csv(Path(out) / entry.run_dir / "summary.csv", keep_default_na=False, na_values=[""])
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return None
    div = next((f.get("value") for f in info.get("diagnostics", {}).get("findings", []) if f.get("code") == "divergences"), 0)
    summ = summ.assign(input=entry.input, model=entry.model, formula=entry.formula, run_dir=entry.run_dir,
                       divergences=int(div or 0))
    if "group" in summ:
        summ["group"] = summ["group"].fillna("")
    return summ.reindex(columns=SUMMARY_COLUMNS)


def rebuild(out: Path, entries: list[Entry]):
    """Rebuild both tables from the run directories and records under ``out``.

    Parameters
    ----------
    out : Path
    entries : list of Entry
        Every run directory of the batch, in report order.

    Returns
    -------
    status : pandas.DataFrame
        One row per entry (STATUS_COLUMNS); ``status`` is ok, diagnostics-warning, failed, or
        pending (not attempted yet, or stale).
    summary : pandas.DataFrame
        One row per entry x parameter (SUMMARY_COLUMNS), for finished entries.
    """
    import pandas as pd

    rows, parts = [], []
    for entry in entries:
        row, info = status_row(out, entry)
        if info is not None:
            part = _summary_rows(out, entry, info)
            if part is None:  # committed but unreadable: refit rather than report it
                row["status"] = "pending"
            else:
                parts.append(part)
        rows.append(row)
    status = pd.DataFrame(rows, columns=STATUS_COLUMNS)
    parts = [p for p in parts if not p.empty]
    summary = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=SUMMARY_COLUMNS)
    return status, summary


def write_tables(out: Path, status, summary) -> tuple[Path, Path]:
    """Write batch_status.csv and batch_summary.csv atomically (temporary file + rename)."""
    paths = []
    for name, frame in ((STATUS_FILE, status), (SUMMARY_FILE, summary)):
        path = Path(out) / name
        write_atomic(path, lambda fh, frame=frame: frame.to_csv(fh, index=False, float_format="%.6g"), newline="")
        paths.append(path)
    return paths[0], paths[1]


def write_compare(path: Path, table) -> None:
    """Write a LOO comparison table (a pandas.DataFrame, one row per model) atomically."""
    write_atomic(Path(path), lambda fh: table.to_csv(fh, index=False, float_format="%.6g"), newline="")
