"""Reading a run directory back: the one door the commands after ``hlm fit`` go through.

``hlm loo``, ``contrast``, ``hypothesis``, ``predict``, ``pooling`` and ``report`` open a run
with :func:`load_run`: ``run.json`` gives the resolved spec, the model is rebuilt from the
original data file (its sha256 must match) by :func:`hlm_cli.workflows.fit.prepare`, and
``posterior.nc`` gives the draws (:func:`open_tree`). The result is a
:class:`~hlm_cli.model.run.RunContext`, which the model layer (predictions) and the outputs
(the report) take as it is, without reading anything back themselves.
"""

from __future__ import annotations

from pathlib import Path

from hlm_cli.errors import InputError
from hlm_cli.model.run import RunContext

__all__ = ["RunContext", "load_run", "open_tree"]


def open_tree(run_dir: Path):
    """posterior.nc of a run directory, or an InputError saying what is wrong (a missing,
    truncated or foreign file is named; run.json is checked by ``runinfo.read``)."""
    from hlm_cli.outputs import runinfo

    run_dir = Path(run_dir)
    path = run_dir / "posterior.nc"
    if not (run_dir / "run.json").exists() or not path.exists():
        raise InputError(
            f"{str(run_dir)!r} is not an hlm run directory (no run.json/posterior.nc)",
            hint="give the --out directory of an 'hlm fit' run",
        )
    info = runinfo.read(run_dir)  # damaged or newer run.json: say so before reading the draws
    runinfo.verify(run_dir, "posterior.nc", info, hash_limit=64 << 20)
    from xarray import open_datatree

    from hlm_cli.sampling import defer_duck_arrays

    defer_duck_arrays()  # a run's draws are numpy arrays: no dask.array/sparse import (0.4-0.9 s) to check
    try:
        tree = open_datatree(path, engine="h5netcdf")
        tree = tree.load()
    except MemoryError:
        raise
    except Exception as err:  # noqa: BLE001 - h5py/xarray raise many kinds for a damaged file
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(
            f"{str(path)!r} is damaged or not an hlm posterior ({first[:160]})",
            hint="the run was cut short or the file was replaced; refit with 'hlm fit ... --force'",
        ) from None
    if "posterior" not in tree.children:
        raise InputError(f"{str(path)!r} has no posterior group", hint="refit with 'hlm fit ... --force'")
    return tree


def load_run(run_dir: Path, *, data: Path | None = None, check_hash: bool = True) -> RunContext:
    """Open a run directory and rebuild its model (no sampling).

    Parameters
    ----------
    run_dir : Path
        An ``hlm fit --out`` directory.
    data : Path, optional
        The data file, if it moved since the fit (its sha256 must still match).
    check_hash : bool
        Refuse a data file whose sha256 differs from the one in run.json.
    """
    from hlm_cli import data as data_mod
    from hlm_cli.outputs import runinfo
    from hlm_cli.spec import FitSpec
    from hlm_cli.workflows.fit import prepare

    run_dir = Path(run_dir)
    tree = open_tree(run_dir)
    info = runinfo.read(run_dir)
    cfg = dict(info["config"])
    data_info = info.get("data") if isinstance(info.get("data"), dict) else {}
    if not isinstance(data_info.get("file"), str) or not isinstance(data_info.get("sha256"), str):
        raise InputError(f"{str(run_dir / 'run.json')!r} is damaged (no data file or sha256)", hint="refit with 'hlm fit ... --force'")
    path = Path(data) if data is not None else Path(data_info["file"])
    if not path.exists():
        raise InputError(
            f"the data file of {run_dir.name}, {str(path)!r}, no longer exists",
            hint="pass the moved file with --data PATH",
        )
    table = data_mod.read_csv(path, sep=data_info.get("sep"))
    if check_hash and table.sha256 != data_info["sha256"]:
        raise InputError(
            f"{path.name} changed since {run_dir.name} was fitted (sha256 differs)",
            hint="refit the model, or pass the original file with --data",
        )
    cfg["data"] = str(path)
    from pydantic import ValidationError

    try:
        spec = FitSpec.model_validate(cfg)
    except ValidationError as err:
        raise InputError(
            f"{str(run_dir / 'run.json')!r} has a config this hlm cannot read ({err.errors()[0]['loc']}: {err.errors()[0]['msg']})",
            hint="refit the model with this version of hlm",
        ) from None
    prepared = prepare(spec, table=table)
    return RunContext(run_dir, info, tree, prepared)
