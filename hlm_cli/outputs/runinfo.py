"""run.json: everything needed to understand and reproduce a fit."""

from __future__ import annotations

import json
import platform
import sys
from importlib import metadata
from pathlib import Path

STACK = ("pymc", "pytensor", "nutpie", "bambi", "formulae", "arviz-base", "arviz-stats", "arviz-plots", "numpy", "pandas", "xarray")
SCHEMA_VERSION = 1


def versions() -> dict[str, str]:
    from hlm_cli import __version__

    out = {"hlm": __version__, "python": platform.python_version()}
    for pkg in STACK:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def write(path: Path, info: dict) -> None:
    info = {"schema_version": SCHEMA_VERSION, **info, "versions": versions(), "argv": sys.argv}
    Path(path).write_text(json.dumps(info, indent=2, default=_default) + "\n")


def read(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "run.json").read_text())


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
