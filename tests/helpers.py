"""Writing run directories for tests that never sample.

Tests that need a fitted run build one from draws they choose (the numbers are then known) and
write it here, the way ``hlm fit`` writes it: ``posterior.nc`` (the inference-data groups, as
HDF5 through h5netcdf) and ``run.json`` through the fit's own writer, with the checksums a fit
records. A real (recorded) fit is the ``recorded_run`` fixture in tests/conftest.py.
"""

from __future__ import annotations

from pathlib import Path


def write_run(run: Path, groups: dict, info: dict) -> Path:
    """Write RUN/posterior.nc from ``groups`` and RUN/run.json from ``info``; return RUN.

    Parameters
    ----------
    run : Path
        The run directory; created if it does not exist.
    groups : dict
        Inference-data groups, e.g. ``{"posterior": xr.Dataset, "log_likelihood": ...}``.
    info : dict
        run.json's content (``config`` at least); ``schema_version``, versions, argv and the
        checksums of the files written here are added as a fit adds them.
    """
    import xarray as xr

    from hlm_cli.outputs import runinfo

    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    xr.DataTree.from_dict(groups).to_netcdf(run / "posterior.nc", engine="h5netcdf")
    runinfo.write(run / "run.json", {**info, "checksums": runinfo.checksums(run)})
    return run
