"""run.json: everything needed to understand and reproduce a fit."""

from __future__ import annotations

import functools
import json
import platform
import sys
from importlib import metadata
from pathlib import Path

STACK = ("pymc", "pytensor", "nutpie", "formulae", "arviz-base", "arviz-stats", "arviz-plots", "numpy", "pandas", "xarray")
SCHEMA_VERSION = 1


def versions() -> dict[str, str]:
    return dict(_versions())


@functools.lru_cache(maxsize=1)
def _versions() -> dict[str, str]:  # metadata lookups cost ~40 ms, per fit in a batch worker
    from hlm_cli import __version__

    out = {"hlm": __version__, "python": platform.python_version()}
    for pkg in STACK:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def write(path: Path, info: dict) -> None:
    """Write run.json atomically (readers see the old file or the whole new one)."""
    from hlm_cli.outputs.rundir import write_atomic

    info = {"schema_version": SCHEMA_VERSION, **info, "versions": versions(), "argv": sys.argv}
    text = json.dumps(info, indent=2, default=_default) + "\n"
    write_atomic(Path(path), lambda fh: fh.write(text))


def update(path: Path, **changes) -> None:
    """Change top-level keys of an existing run.json, atomically."""
    from hlm_cli.outputs.rundir import write_atomic

    info = json.loads(Path(path).read_text(encoding="utf-8"))
    info.update(changes)
    text = json.dumps(info, indent=2, default=_default) + "\n"
    write_atomic(Path(path), lambda fh: fh.write(text))


def checksums(run_dir: Path, names=("summary.csv", "posterior.nc")) -> dict:
    """Sizes and sha256 of a run's data files, recorded in run.json so that a later command
    can tell a truncated or replaced file from the one the fit wrote."""
    from hlm_cli.data import file_sha256

    out = {}
    for name in names:
        path = Path(run_dir) / name
        if path.is_file():
            out[name] = {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
    return out


def verify(run_dir: Path, name: str, info: dict, *, hash_limit: int = 256 << 20) -> None:
    """Refuse ``name`` when it differs from what run.json recorded (size always; sha256 for
    files up to ``hash_limit`` bytes). Runs written before checksums existed pass."""
    from hlm_cli.data import file_sha256
    from hlm_cli.errors import InputError

    rec = (info.get("checksums") or {}).get(name) if isinstance(info.get("checksums"), dict) else None
    if not isinstance(rec, dict):
        return
    path = Path(run_dir) / name
    size = path.stat().st_size
    same = size == rec.get("bytes")
    if same and size <= hash_limit and isinstance(rec.get("sha256"), str):
        same = file_sha256(path) == rec["sha256"]
    if not same:
        raise InputError(
            f"{str(path)!r} is damaged or was changed after the fit ({size} bytes; the fit wrote {rec.get('bytes')})",
            hint="refit with 'hlm fit ... --force' (hlm reads only the files it wrote)",
        )


def read(run_dir: Path) -> dict:
    """run.json of a run directory, checked: a damaged file or one written by a newer hlm
    (a higher ``schema_version``) is an InputError naming the file, never a traceback."""
    from hlm_cli.errors import InputError

    path = Path(run_dir) / "run.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{str(Path(run_dir))!r} has no run.json", hint="give the --out directory of an 'hlm fit' run") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read {str(path)!r}: {getattr(err, 'strerror', None) or err}", hint="check the file's permissions") from None
    try:
        info = json.loads(text)
    except ValueError as err:
        raise InputError(
            f"{str(path)!r} is damaged (not valid JSON: {err.msg} at line {err.lineno})",
            hint="the run was cut short or the file was edited; refit with 'hlm fit ... --force'",
        ) from None
    if not isinstance(info, dict) or not isinstance(info.get("config"), dict) or "schema_version" not in info:
        raise InputError(f"{str(path)!r} is not an hlm run.json (no schema_version/config)", hint="give the --out directory of an 'hlm fit' run")
    version = info["schema_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version > SCHEMA_VERSION:
        made_by = (info.get("versions") or {}).get("hlm", "a newer hlm") if isinstance(info.get("versions"), dict) else "a newer hlm"
        raise InputError(
            f"{str(path)!r} was written by hlm {made_by} (run.json schema {version!r}); this hlm reads schema {SCHEMA_VERSION} and older",
            hint="upgrade hlm (pip install -U hlm), or refit the model with this version",
        )
    return info


def _default(o):
    import numpy as np

    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)
