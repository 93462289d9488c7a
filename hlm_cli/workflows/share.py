"""``hlm batch --share``: empirical-Bayes moderation across inputs (limma-style), in two passes.

1. **Pass 1** fits every input with the usual priors (into ``OUT/_pass1/``, without figures).
2. **Hyperpriors** are estimated from the per-input posteriors of pass 1
   (:func:`estimate_hyperpriors`), by the method of moments corrected for each input's own
   posterior uncertainty (the between-input variance of the estimates, minus the average
   within-input posterior variance, as limma's and DerSimonian-Laird's moment estimators do):

   * the residual SD ``sigma`` and every group-level SD: ``LogNormal(mu, tau)`` with ``mu`` the
     mean over inputs of the posterior mean of ``log sd``, and ``tau^2`` the variance of those
     means minus the mean posterior variance of ``log sd`` (floored at ``TAU_FLOOR_LOG``);
   * every population-level slope (not the intercept): ``Normal(0, tau)`` with ``tau^2`` the
     mean of the squared posterior means minus the mean posterior variance (the prior is
     centred at 0, so its second moment about 0, not the variance about the mean), floored at
     ``SLOPE_FLOOR`` times the typical posterior SD.

   They are written to ``OUT/shared_priors.json``.
3. **Pass 2** refits every input with those priors into ``OUT/`` (the batch's result). A
   prior the user named exactly with ``--prior`` is kept.

Hyperparameter values are data of the compiled model (``hlm_cli.model.build._prior_arg``),
but the compile-cache key includes each prior's distribution: sigma and the SDs go from
HalfNormal/HalfStudentT to LogNormal, so pass 2 compiles once more (once per model
structure); the slopes stay Normal. See docs/screens-share.md.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hlm_cli.errors import ConfigError, InputError

SHARED_PRIORS = "shared_priors.json"
PASS1 = "_pass1"
MIN_INPUTS = 3
TAU_FLOOR_LOG = 0.1  # a hyperprior on log sd is never narrower than this (10% either way)
SLOPE_FLOOR = 0.1  # a slope hyperprior's SD is at least this times the typical posterior SD
GOOD = ("ok", "diagnostics-warning")


@dataclass
class SharedResult:
    pass1: object  # hlm_cli.workflows.batch.BatchResult of the first pass (OUT/_pass1)
    result: object  # BatchResult of the second pass (OUT): what the batch reports
    table: pd.DataFrame  # parameter, kind, prior, n_inputs, mean_of_means, between_var, within_var
    priors: dict[str, str]  # parameter -> "Dist(args)" as passed to pass 2
    path: Path  # OUT/shared_priors.json
    refit: bool  # the hyperpriors changed since the last run into OUT (every input is refitted)

    @property
    def exit_code(self) -> int:
        return self.result.exit_code


def posterior_moments(tree, params: dict) -> pd.DataFrame:
    """Per-parameter posterior mean and variance of one run, on the scale the hyperprior uses.

    ``params`` is run.json's ``parameters``. Rows: ``parameter`` (the name ``--prior`` takes),
    ``kind`` (``sigma``, ``sd``, ``b``), ``mean`` and ``var`` (of ``log`` for sigma and SDs)."""
    post = tree["posterior"]
    rows = []

    def add(name: str, kind: str, draws: np.ndarray) -> None:
        x = np.log(np.maximum(draws, 1e-300)) if kind != "b" else draws
        rows.append((name, kind, float(np.mean(x)), float(np.var(x, ddof=1))))

    if "sigma" in params.get("family", []) and "sigma" in post and post["sigma"].ndim == 2:
        add("sigma", "sigma", np.asarray(post["sigma"]).ravel())
    for names in params.get("group_sds", {}).values():
        for name in names:
            if name in post and post[name].ndim == 2:
                add(name, "sd", np.asarray(post[name]).ravel())
    for name in params.get("population", []):
        if name == "Intercept" or name not in post:
            continue
        da = post[name]
        if da.ndim == 2:
            add(name, "b", np.asarray(da).ravel())
            continue
        dim = da.dims[2]
        for coord in da[dim].values:
            add(f"{name}[{coord}]", "b", np.asarray(da.sel({dim: coord})).ravel())
    return pd.DataFrame(rows, columns=["parameter", "kind", "mean", "var"])


def estimate_hyperpriors(moments: pd.DataFrame, *, min_inputs: int = MIN_INPUTS) -> pd.DataFrame:
    """Hyperpriors from per-input posterior moments (one row per input and parameter).

    Parameters
    ----------
    moments : DataFrame
        Columns ``input, parameter, kind, mean, var`` (:func:`posterior_moments` per input).
    min_inputs : int
        Parameters seen in fewer inputs keep their usual prior.

    Returns
    -------
    DataFrame
        ``parameter, kind, prior, n_inputs, center, between_var, within_var, scale``, where
        ``prior`` is the ``Dist(args)`` text pass 2 uses.
    """
    rows = []
    for (param, kind), g in moments.groupby(["parameter", "kind"], sort=False):
        m = g["mean"].to_numpy(dtype=float)
        v = g["var"].to_numpy(dtype=float)
        ok = np.isfinite(m) & np.isfinite(v)
        m, v = m[ok], v[ok]
        if len(m) < min_inputs:
            continue
        within = float(np.mean(v))
        if kind == "b":
            center = 0.0
            between = float(np.mean(m**2))
            scale = float(np.sqrt(max(between - within, (SLOPE_FLOOR**2) * within)))
            prior = f"Normal(0, {scale:.6g})"
        else:
            center = float(np.mean(m))
            between = float(np.var(m, ddof=1))
            scale = float(np.sqrt(max(between - within, TAU_FLOOR_LOG**2)))
            prior = f"LogNormal({center:.6g}, {scale:.6g})"
        rows.append((param, kind, prior, len(m), center, between, within, scale))
    return pd.DataFrame(rows, columns=["parameter", "kind", "prior", "n_inputs", "center", "between_var", "within_var", "scale"])


def _pass1_moments(result, pass1_dir: Path) -> pd.DataFrame:
    from hlm_cli.outputs import runinfo
    from hlm_cli.workflows.runs import open_tree

    frames = []
    for _, row in result.status.iterrows():
        if row["status"] not in GOOD:
            continue
        run = Path(str(row["run_dir"]))
        run = run if run.is_absolute() else pass1_dir / run
        params = runinfo.read(run).get("parameters") or {}
        m = posterior_moments(open_tree(run), params)
        m.insert(0, "input", str(row["input"]))
        frames.append(m)
    cols = ["input", "parameter", "kind", "mean", "var"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def _read_previous(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_shared_batch(spec, *, on_progress: Callable | None = None, on_stage: Callable[[str], None] | None = None) -> SharedResult:
    """``hlm batch --share``: pass 1, hyperpriors, pass 2 (see the module docstring).

    Parameters
    ----------
    spec : hlm_cli.workflows.batch.BatchSpec
        One formula. Pass 2 writes where a plain batch would (``spec.out``).
    on_progress : callable, optional
        As :func:`hlm_cli.workflows.batch.run_batch` (called by both passes).
    on_stage : callable, optional
        Receives ``"pass 1"``, ``"hyperpriors"`` and ``"pass 2"`` as each starts.

    Raises
    ------
    ConfigError
        Several formulas (the hyperpriors are per model).
    InputError
        Fewer than :data:`MIN_INPUTS` inputs fitted in pass 1.
    """
    from hlm_cli.outputs import batch_out
    from hlm_cli.workflows.batch import run_batch

    if len(spec.specs) != 1:
        raise ConfigError("--share takes one --formula (the shared priors are per model)", hint="run one batch per formula")
    stage = on_stage or (lambda s: None)
    out = Path(spec.out)
    batch_out.prepare_out(out, {"formulas": [s.formula for s in spec.specs], "nested": False})
    pass1_dir = out / PASS1
    stage("pass 1")
    first = [s.model_copy(update={"plots": False, "out": pass1_dir / "INPUT"}) for s in spec.specs]
    pass1 = run_batch(dataclasses.replace(spec, out=pass1_dir, specs=first), on_progress=on_progress)
    stage("hyperpriors")
    moments = _pass1_moments(pass1, pass1_dir)
    n_fitted = moments["input"].nunique() if len(moments) else pass1.succeeded
    if pass1.succeeded < MIN_INPUTS:
        raise InputError(f"--share needs at least {MIN_INPUTS} fitted inputs to learn shared priors; {pass1.succeeded} fitted in pass 1",
                         hint=f"add inputs, or drop --share (pass 1's fits are in {pass1_dir})")
    table = estimate_hyperpriors(moments)
    user = dict(spec.specs[0].priors or {})
    priors = {r.parameter: r.prior for r in table.itertuples() if r.parameter not in user}
    path = out / SHARED_PRIORS
    payload = {
        "method": "empirical Bayes, method of moments over pass-1 posteriors (docs/screens-share.md)",
        "inputs_fitted": int(n_fitted),
        "priors": priors,
        "kept_user_priors": sorted(k for k in user if k in set(table["parameter"])),
        "table": json.loads(table.to_json(orient="records")),
    }
    previous = _read_previous(path)
    refit = previous is not None and previous.get("priors") != priors
    batch_out.write_json_atomic(path, payload)
    stage("pass 2")
    second = [s.model_copy(update={"priors": {**s.priors, **priors}}) for s in spec.specs]
    # the priors are part of each run's settings fingerprint: changed hyperpriors refit every input
    result = run_batch(dataclasses.replace(spec, specs=second), on_progress=on_progress)
    return SharedResult(pass1, result, table, priors, path, refit)
