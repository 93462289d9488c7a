"""Atomic run directories: results are written to a staging directory beside ``--out`` and
renamed onto it only when complete, so a failed or interrupted run leaves nothing behind."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from hlm_cli.errors import OutputError


def check_out(out: Path, *, force: bool) -> None:
    """Validate --out before anything expensive runs."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {str(out)!r} exists and is a file", hint="give a directory path")
    if out.exists() and any(out.iterdir()) and not force:
        raise OutputError(
            f"output directory {str(out)!r} exists and is not empty",
            hint="choose another --out, or add --force to replace it",
        )
    ensure_parent_writable(out)


def ensure_parent_writable(path: Path) -> None:
    """The folder that will hold ``path`` must exist (or be creatable) and be writable."""
    parent = Path(path).resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create {str(parent)!r}: {err.strerror}", hint="check the path and permissions") from None
    if not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write in {str(parent)!r}", hint="check the permissions, or choose another --out")


def write_atomic(path: Path, write, *, newline: str | None = None) -> None:
    """Write one file atomically: ``write(fh)`` fills a temporary file beside ``path``, which is
    flushed, fsynced and renamed onto ``path``; on any failure the temporary file is removed,
    so readers see the old file or the complete new one, never half of it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.resolve().parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def staged(out: Path, *, force: bool):
    """Yield a temporary directory; on success move it onto ``out`` (replacing it under force)."""
    out = Path(out).resolve()
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if out.exists():
        if not force and any(out.iterdir()):
            shutil.rmtree(stage, ignore_errors=True)
            raise OutputError(f"output directory {str(out)!r} appeared while fitting", hint="add --force to replace it")
        trash = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, trash)
        os.replace(stage, out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(stage, out)
