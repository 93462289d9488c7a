"""Atomic run directories: results are written to a staging directory beside ``--out`` and
renamed onto it only when complete, so a failed or interrupted run leaves nothing behind.

``--force`` replaces an existing ``--out`` only when it is an hlm run directory: it holds a
``run.json`` written by hlm and nothing but the files hlm writes there (:data:`RUN_FILES`,
``plots/`` with figures). Anything else (a folder of the user's, the current directory, the
folder holding the data) is refused, so ``--force`` can never delete what hlm did not create.
"""

from __future__ import annotations

import errno
import fnmatch
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from hlm_cli.errors import OutputError

#: Top-level files of an ``hlm fit`` run directory.
RUN_FILES = frozenset({"run.json", "summary.csv", "posterior.nc", "report.html", "sensitivity.csv"})
#: Files that later commands (hypothesis, contrast, pooling, predict) write into a run directory.
RUN_PATTERNS = ("hypothesis.csv", "contrast_*.csv", "contrast_*.png", "pooling_*.csv", "pooling_*.png", "predict_*.csv")
#: Sub-directories of a run directory, and the file suffixes they may hold.
RUN_DIRS = {"plots": (".png", ".svg")}
_NO_SPACE = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def respect_umask(path: Path, *, directory: bool) -> None:
    """Give ``path`` the mode a plain ``mkdir``/``open`` would have under the user's umask
    (``tempfile`` creates 0700 directories and 0600 files)."""
    try:
        os.chmod(path, (0o777 if directory else 0o666) & ~_umask())
    except OSError:
        pass


def foreign_entries(out: Path, *, require_runinfo: bool = True) -> list[str]:
    """What in ``out`` hlm did not write: empty for an hlm run directory (or an empty one).

    ``require_runinfo=False`` accepts a missing or torn run.json (a run directory of a batch
    that was killed mid-write; the batch knows the directory is its own)."""
    out = Path(out)
    entries = sorted(out.iterdir(), key=lambda p: p.name)
    if not entries:
        return []
    foreign: list[str] = []
    if require_runinfo and not _is_hlm_runinfo(out / "run.json"):
        foreign.append("run.json (missing or not written by hlm)" if (out / "run.json").exists() else "no run.json")
    for p in entries:
        if p.is_symlink():
            foreign.append(p.name)
        elif p.is_dir() and p.name in RUN_DIRS:
            for q in p.iterdir():
                if q.is_symlink() or not q.is_file() or q.suffix not in RUN_DIRS[p.name]:
                    foreign.append(f"{p.name}/{q.name}")
        elif not (p.is_file() and (p.name in RUN_FILES or any(fnmatch.fnmatchcase(p.name, pat) for pat in RUN_PATTERNS))):
            foreign.append(p.name + ("/" if p.is_dir() else ""))
    return foreign


def remove_stale(out: Path) -> bool:
    """Delete a run directory that a batch is about to refit, when it holds nothing but hlm's
    files (its run.json may be missing or torn); anything else is left for the fit to refuse."""
    out = Path(out)
    if not out.is_dir() or out.is_symlink() or foreign_entries(out, require_runinfo=False):
        return False
    shutil.rmtree(out)
    return True


def _is_hlm_runinfo(path: Path) -> bool:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and "schema_version" in info and "config" in info


def _contains(parent: Path, child: Path) -> bool:
    try:
        child.relative_to(parent)
        return True
    except ValueError:
        return False


def check_out(out: Path, *, force: bool, protect: tuple[Path, ...] = (), foreign_of=None) -> None:
    """Validate --out before anything expensive runs.

    ``protect`` are paths (the data file, a config) that must never lie inside a directory
    that ``--force`` would replace.
    """
    out = Path(out)
    if out.is_symlink() and force:
        raise OutputError(f"--out {str(out)!r} is a symbolic link", hint="give the real directory, or a new path")
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {str(out)!r} exists and is a file", hint="give a directory path")
    if out.exists():
        try:
            nonempty = any(out.iterdir())
        except OSError as err:
            raise OutputError(f"cannot read --out {str(out)!r}: {err.strerror}", hint="check the permissions, or choose another --out") from None
        if nonempty and not force:
            raise OutputError(
                f"output directory {str(out)!r} exists and is not empty",
                hint="choose another --out, or add --force to replace an earlier hlm run there",
            )
        if nonempty:
            _check_replaceable(out, protect, foreign_of)
    ensure_parent_writable(out)


def _check_replaceable(out: Path, protect: tuple[Path, ...], foreign_of=None) -> None:
    real = out.resolve()
    cwd = Path.cwd().resolve()
    if _contains(real, cwd):
        raise OutputError(
            f"--force would replace {str(out)!r}, which holds the current directory",
            hint="give a new --out, e.g. --out results/run1",
        )
    for p in protect:
        if p is not None and _contains(real, Path(p).resolve()):
            raise OutputError(
                f"--force would replace {str(out)!r}, which holds the input {str(p)!r}",
                hint="write results to another directory, e.g. --out results/run1",
            )
    foreign = (foreign_of or foreign_entries)(out)
    if foreign:
        shown = ", ".join(foreign[:4]) + (" ..." if len(foreign) > 4 else "")
        raise OutputError(
            f"--force replaces only an earlier hlm run directory; {str(out)!r} also holds {shown}",
            hint="choose another --out (hlm never deletes files it did not write)",
        )


def ensure_parent_writable(path: Path) -> None:
    """The folder that will hold ``path`` must exist (or be creatable) and accept new entries.

    Checked by creating (and removing) a probe directory: ``os.access`` says yes for root on
    read-only or virtual file systems such as /proc.
    """
    parent = Path(path).resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create {str(parent)!r}: {err.strerror}", hint="check the path and permissions") from None
    try:
        probe = tempfile.mkdtemp(prefix=".hlm-probe-", dir=parent)
        os.rmdir(probe)
    except OSError as err:
        raise OutputError(f"cannot write in {str(parent)!r}: {err.strerror or err}", hint="check the permissions, or choose another --out") from None


def device_of(path: Path) -> str:
    """The mount point holding ``path`` (for "no space left on ..." messages)."""
    p = Path(path).resolve()
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return str(p)


def is_no_space(err: BaseException) -> bool:
    if isinstance(err, OSError) and err.errno in _NO_SPACE:
        return True
    text = str(err)
    return "No space left" in text or "[Errno 28]" in text or "errno = 28" in text


@contextmanager
def writing(path: Path, what: str | None = None):
    """Turn a full disk while writing ``path`` into one OutputError naming the device and file."""
    try:
        yield
    except OutputError:
        raise
    except Exception as err:
        if is_no_space(err):
            raise OutputError(
                f"no space left on {device_of(Path(path).parent)} while writing {what or Path(path).name}",
                hint="free some space (or choose another --out) and run again; nothing was kept",
            ) from None
        raise


def write_atomic(path: Path, write, *, newline: str | None = None, binary: bool = False) -> None:
    """Write one file atomically: ``write(fh)`` fills a temporary file beside ``path``, which is
    flushed, fsynced and renamed onto ``path``; on any failure the temporary file is removed,
    so readers see the old file or the complete new one, never half of it. The file gets the
    mode the user's umask gives new files. ``fh`` is a UTF-8 text file, or a binary one with
    ``binary`` (figures)."""
    path = Path(path)
    with writing(path):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.resolve().parent)
        try:
            opened = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline=newline)
            with opened as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            respect_umask(Path(tmp), directory=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


@contextmanager
def staged(out: Path, *, force: bool, protect: tuple[Path, ...] = (), foreign_of=None):
    """Yield a temporary directory; on success move it onto ``out`` (replacing it under force,
    and only when it still holds nothing but hlm's files: ``foreign_of(out)`` lists the
    others, :func:`foreign_entries` by default)."""
    out = Path(out).resolve()
    with writing(out, f"the run directory {out.name}"):
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    respect_umask(stage, directory=True)
    try:
        with writing(out, f"the run directory {out.name}"):
            yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    try:
        if out.exists():
            if any(out.iterdir()):
                if not force:
                    raise OutputError(f"output directory {str(out)!r} appeared while fitting", hint="add --force to replace it")
                _check_replaceable(out, protect, foreign_of)  # it may have changed while we sampled
            trash = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, trash)
            os.replace(stage, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
