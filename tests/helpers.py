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


def tree_from_points(model, points, *, mode=None):
    """A posterior DataTree (1 chain, one draw per point) of a PyMC model's constrained values
    and deterministics at unconstrained ``points`` (dicts of value-variable arrays): what a
    sampler would have stored, without sampling. Extra dims are named ``NAME_d0``, ..."""
    import numpy as np
    import xarray as xr

    names = [v.name for v in model.unobserved_value_vars]
    value_fn = model.compile_fn(list(model.unobserved_value_vars), inputs=model.value_vars,
                                on_unused_input="ignore", mode=mode)
    post: dict[str, list] = {}
    for p in points:
        for n, v in zip(names, value_fn(p), strict=True):
            post.setdefault(n, []).append(np.asarray(v))
    data_vars = {}
    for n, vals in post.items():
        arr = np.stack(vals)[None]  # (chain=1, draw, ...)
        data_vars[n] = (["chain", "draw"] + [f"{n}_d{i}" for i in range(arr.ndim - 2)], arr)
    return xr.DataTree.from_dict({"posterior": xr.Dataset(data_vars)})
