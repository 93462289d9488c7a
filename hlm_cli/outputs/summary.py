"""The parameter table: arviz_stats.summary, labelled the way lme4/brms users read it."""

from __future__ import annotations

import numpy as np
import pandas as pd

CI_PROB = 0.94  #: the interval width of summary.csv (hdi94/eti94) and of every figure
KIND_ORDER = {"population": 0, "group_sd": 1, "correlation": 2, "family": 3, "group_effect": 4}
COLUMNS = [
    "parameter", "kind", "group", "mean", "sd", "hdi94_lb", "hdi94_ub", "eti94_lb", "eti94_ub",
    "mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat",
]


def _var_kinds(params) -> list[tuple[str, str, str]]:
    """(variable, kind, group) in report order."""
    rows = [(v, "population", "") for v in params.population]
    rows += [(v, "group_sd", f) for f, vs in params.group_sds.items() for v in vs]
    rows += [(v, "correlation", f) for f, vs in params.correlations.items() for v in vs]
    rows += [(v, "family", "") for v in params.family]
    rows += [(v, "group_effect", f) for f, vs in params.group_effects.items() for v in vs]
    return rows


def summarize(tree, params) -> pd.DataFrame:
    """One row per scalar parameter: mean, sd, 94% HDI and ETI, MCSE, ESS, R-hat.

    Parameters
    ----------
    tree : xarray.DataTree
    params : hlm_cli.model.build.ParamInfo

    Returns
    -------
    pandas.DataFrame indexed by parameter label (``Intercept``, ``1|gene[KRAS]``, ...).
    """
    import arviz_stats as azs

    rows = _var_kinds(params)
    names = [v for v, _, _ in rows]
    hdi = azs.summary(tree, var_names=names, ci_prob=CI_PROB, ci_kind="hdi", round_to="none")
    eti = stats(tree, names, ci_kind="eti")
    df = pd.DataFrame(hdi).copy()
    df.columns = [c.replace("hdi94_", "hdi94_") for c in df.columns]
    lb = [c for c in df.columns if c.endswith("_lb")][0]
    ub = [c for c in df.columns if c.endswith("_ub")][0]
    df = df.rename(columns={lb: "hdi94_lb", ub: "hdi94_ub"})
    e = pd.DataFrame(eti)
    elb = [c for c in e.columns if c.endswith("_lb")][0]
    eub = [c for c in e.columns if c.endswith("_ub")][0]
    df["eti94_lb"] = e[elb]
    df["eti94_ub"] = e[eub]
    kind_of, group_of = {}, {}
    for v, k, g in rows:
        kind_of[v], group_of[v] = k, g
    known = sorted(kind_of, key=len, reverse=True)

    def owner(label: str) -> str:
        """The posterior variable a summary row belongs to (longest name that prefixes it)."""
        return next((v for v in known if label == v or label.startswith(v + "[")), label)

    base = [owner(str(i)) for i in df.index]
    df["kind"] = [kind_of.get(b, "population") for b in base]
    df["group"] = [group_of.get(b, "") for b in base]
    df.index.name = "parameter"
    df = df.reset_index()
    df["_order"] = df["kind"].map(KIND_ORDER)
    df = df.sort_values("_order", kind="stable").drop(columns="_order")
    for c in ("ess_bulk", "ess_tail"):
        df[c] = df[c].astype(float)
    return df[COLUMNS].set_index("parameter")


def stats(tree, names: list[str], *, ci_kind: str = "hdi") -> pd.DataFrame:
    """mean, sd and the 94% interval (``hdi94_lb``/``hdi94_ub`` or ``eti94_...``) of every
    scalar of ``names``, from all draws: the same call and numbers as :func:`summarize`'s
    (figures print these, so a figure and summary.csv agree)."""
    import arviz_stats as azs

    return pd.DataFrame(azs.summary(tree, var_names=list(names), kind="stats", ci_prob=CI_PROB, ci_kind=ci_kind, round_to="none"))


def write(df: pd.DataFrame, path) -> None:
    out = df.reset_index()
    num = out.select_dtypes(include=[np.number]).columns
    out[num] = out[num].astype(float)
    out.to_csv(path, index=False, float_format="%.6g")


def write_posterior(tree, path) -> None:
    """``posterior.nc`` (HDF5 via h5netcdf).

    xarray asks dask which scheduler is running before every write, which imports
    dask.distributed when dask is installed (0.1-0.2 s per fit, hlm depends on dask for
    batch work). hlm's trees hold NumPy arrays only, so no scheduler is involved: answer
    "none" for this write. Should xarray move those functions, the write goes on unpatched.
    """
    import contextlib
    from unittest import mock

    from xarray.backends import locks, writers

    patches = contextlib.ExitStack()
    if not _has_dask_arrays(tree):
        for module in (locks, writers):
            if hasattr(module, "get_dask_scheduler"):
                patches.enter_context(mock.patch.object(module, "get_dask_scheduler", lambda *a, **k: None))
    with patches:
        tree.to_netcdf(path, engine="h5netcdf")


def _has_dask_arrays(tree) -> bool:
    for node in tree.subtree:
        for var in node.variables.values():
            if getattr(var, "chunks", None) is not None:
                return True
    return False
