"""The parameter table: arviz_stats.summary, labelled the way lme4/brms users read it."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

CI_PROB = 0.94  #: the default interval width of summary.csv (hdi94/eti94) and of every figure
KIND_ORDER = {"population": 0, "group_sd": 1, "correlation": 2, "family": 3, "group_effect": 4}
STAT_COLUMNS = ["mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat"]


def ci_tag(prob: float = CI_PROB) -> str:
    """The width as column names carry it: 0.94 -> ``"94"``, 0.95 -> ``"95"``, 0.975 -> ``"97.5"``."""
    return f"{round(float(prob) * 100, 6):g}"


def ci_names(prob: float = CI_PROB) -> dict[str, str]:
    """``{"hdi_lb": "hdi95_lb", "hdi_ub": ..., "eti_lb": ..., "eti_ub": ...}`` for width ``prob``."""
    t = ci_tag(prob)
    return {f"{k}_{e}": f"{k}{t}_{e}" for k in ("hdi", "eti") for e in ("lb", "ub")}


def columns(prob: float = CI_PROB) -> list[str]:
    """summary.csv's columns for interval width ``prob``."""
    n = ci_names(prob)
    return ["parameter", "kind", "group", "mean", "sd", n["hdi_lb"], n["hdi_ub"], n["eti_lb"], n["eti_ub"], *STAT_COLUMNS]


COLUMNS = columns(CI_PROB)

_CI_COLUMN = re.compile(r"^(hdi|eti)(\d+(?:\.\d+)?)_(lb|ub)$")


def ci_of(df: pd.DataFrame) -> float | None:
    """The interval width a summary table carries (from its ``hdiNN_lb`` column), or None."""
    for c in df.columns:
        m = _CI_COLUMN.match(str(c))
        if m and m.group(1) == "hdi":
            return float(m.group(2)) / 100
    return None


def _var_kinds(params) -> list[tuple[str, str, str]]:
    """(variable, kind, group) in report order."""
    rows = [(v, "population", "") for v in params.population]
    rows += [(v, "group_sd", f) for f, vs in params.group_sds.items() for v in vs]
    rows += [(v, "correlation", f) for f, vs in params.correlations.items() for v in vs]
    rows += [(v, "family", "") for v in params.family]
    rows += [(v, "group_effect", f) for f, vs in params.group_effects.items() for v in vs]
    return rows


def summarize_reference(tree, params, ci: float = CI_PROB) -> pd.DataFrame:
    """One row per scalar parameter: mean, sd, HDI and ETI of width ``ci``, MCSE, ESS, R-hat.

    Parameters
    ----------
    tree : xarray.DataTree
    params : hlm_cli.model.build.ParamInfo
    ci : float
        Interval probability; the columns carry it (``hdi94_lb`` for 0.94, ``hdi95_lb``...).

    Returns
    -------
    pandas.DataFrame indexed by parameter label (``Intercept``, ``1|gene[KRAS]``, ...).
    """
    import arviz_stats as azs

    rows = _var_kinds(params)
    names = [v for v, _, _ in rows]
    n = ci_names(ci)
    hdi = azs.summary(tree, var_names=names, ci_prob=ci, ci_kind="hdi", round_to="none")
    eti = stats(tree, names, ci_kind="eti", ci=ci)
    df = pd.DataFrame(hdi).copy()
    lb = [c for c in df.columns if c.endswith("_lb")][0]
    ub = [c for c in df.columns if c.endswith("_ub")][0]
    df = df.rename(columns={lb: n["hdi_lb"], ub: n["hdi_ub"]})
    df[n["eti_lb"]] = eti[n["eti_lb"]]
    df[n["eti_ub"]] = eti[n["eti_ub"]]
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
    return df[columns(ci)].set_index("parameter")


def summarize(tree, params, ci: float = CI_PROB) -> pd.DataFrame:
    """summary.csv's table: :func:`summarize_reference`'s numbers (``arviz_stats.summary``)
    computed from one stacked array with arviz_stats' array functions (the same estimators:
    mean, sd (ddof 1), HDI "nearest", ETI "linear", bulk/tail ESS, rank R-hat, MCSE of mean
    and sd), without xarray's per-variable loop: 0.2 s instead of 2.5 s for the cell-line
    model. ESS, MCSE, R-hat and the HDI come from :mod:`hlm_cli.outputs.diag_fast` (the same
    estimators on all parameters at once; arviz_stats' array functions loop over parameters in
    Python): 2.1 s instead of 11-12 s CPU for InstEval's 4,120 group effects x 2 x 683 draws
    (benchmarks/summary_diag.py). summary.csv is byte for byte the same
    (tests/unit/test_summary_fast.py, tests/unit/test_diag_fast.py)."""
    from arviz_stats.base import array_stats as a
    from arviz_stats.validate import validate_ci_prob

    from hlm_cli.outputs import diag_fast

    post = tree["posterior"]
    labels, kinds, groups, cols = [], [], [], []
    for var, kind, group in _var_kinds(params):
        if var not in post:
            continue
        da = post[var]
        other = [d for d in da.dims if d not in ("chain", "draw")]
        arr = np.asarray(da.transpose("chain", "draw", *other), dtype=float)
        arr = arr.reshape(arr.shape[0], arr.shape[1], -1)
        if other:
            coords = [[str(c) for c in np.asarray(da[d])] for d in other]
            names = [f"{var}[{', '.join(coords[k][i] for k, i in enumerate(idx))}]"
                     for idx in np.ndindex(*[len(c) for c in coords])]
        else:
            names = [var]
        labels += names
        kinds += [kind] * len(names)
        groups += [group] * len(names)
        cols.append(arr)
    x = np.moveaxis(np.concatenate(cols, axis=2), 2, 0)  # (K, chain, draw)
    flat = x.reshape(x.shape[0], -1)
    n = ci_names(ci)
    hdi = diag_fast.hdi_nearest(flat, ci)
    eti = np.asarray(a.eti(flat, ci, axis=-1))
    diag = diag_fast.summary_diagnostics(x, validate_ci_prob(None))
    df = pd.DataFrame({
        "parameter": labels, "kind": kinds, "group": groups,
        "mean": flat.mean(axis=1), "sd": flat.std(axis=1, ddof=1),
        n["hdi_lb"]: hdi[:, 0], n["hdi_ub"]: hdi[:, 1], n["eti_lb"]: eti[:, 0], n["eti_ub"]: eti[:, 1],
        **{c: diag[c] for c in STAT_COLUMNS},
    })
    df["_order"] = df["kind"].map(KIND_ORDER)
    df = df.sort_values("_order", kind="stable").drop(columns="_order")
    for c in ("ess_bulk", "ess_tail"):
        df[c] = df[c].astype(float)
    return df[columns(ci)].set_index("parameter")


def stats(tree, names: list[str], *, ci_kind: str = "hdi", ci: float = CI_PROB) -> pd.DataFrame:
    """mean, sd and the interval of width ``ci`` (``hdi94_lb``/``hdi94_ub`` or ``eti94_...``
    for 0.94) of every scalar of ``names``, from all draws: the same call and numbers as
    :func:`summarize`'s (figures print these, so a figure and summary.csv agree)."""
    import arviz_stats as azs

    df = pd.DataFrame(azs.summary(tree, var_names=list(names), kind="stats", ci_prob=ci, ci_kind=ci_kind, round_to="none"))
    n = ci_names(ci)
    lb = [c for c in df.columns if c.endswith("_lb")][0]
    ub = [c for c in df.columns if c.endswith("_ub")][0]
    return df.rename(columns={lb: n[f"{ci_kind}_lb"], ub: n[f"{ci_kind}_ub"]})


def write(df: pd.DataFrame, path) -> None:
    out = df.reset_index()
    num = out.select_dtypes(include=[np.number]).columns
    out[num] = out[num].astype(float)
    out.to_csv(path, index=False, float_format="%.6g")


def write_sensitivity(table: pd.DataFrame, path) -> None:
    """``sensitivity.csv``: parameter, prior, likelihood, diagnosis (:func:`hlm_cli.diagnostics.sensitivity`)."""
    table.to_csv(path, index=False, float_format="%.4g")


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
