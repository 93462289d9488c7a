"""``hlm loo``: compare fitted runs by their expected log predictive density (ELPD).

Each run directory gives PSIS-LOO (``arviz_stats.loo``) from the pointwise log-likelihood
saved in ``posterior.nc``. Where Pareto smoothed importance sampling is unreliable for some
observations (Pareto k above ``min(1 - 1/log10(S), 0.7)``, S = posterior draws), the
estimate is repaired by refitting the model:

* **reloo** (``arviz_stats.reloo``): one exact leave-one-out refit per flagged observation,
  used automatically when there are at most :data:`MAX_RELOO` of them;
* **K-fold** (``arviz_stats.loo_kfold``): K refits, each leaving out a fold; with a group
  column the folds hold whole groups (brms's ``kfold(group = )``).

Both refit through :class:`RefitWrapper`, an ``arviz_stats`` ``SamplingWrapper``: the run's
model is rebuilt on the data without the held-out rows (:func:`hlm_cli.workflows.fit.prepare`)
and sampled with the run's sampler settings (:func:`hlm_cli.sampling.sample`, whose compile
cache makes every refit after the first cheap). The held-out rows' log-likelihood is
evaluated from the refit's posterior through :func:`hlm_cli.model.linpred.linear_predictor`
and the family's log density (:func:`hlm_cli.model.likelihood.logpdf`); a held-out group level absent from the
refit (grouped K-fold) gets effects drawn from the fitted group-level distribution.

WAIC (``--criterion waic``) is computed here, as arviz-stats 1.x no longer provides it.
Two or more models are compared with ``arviz_stats.compare`` (stacking weights).

References
----------
Vehtari, Gelman and Gabry (2017), Practical Bayesian model evaluation using leave-one-out
cross-validation and WAIC, Statistics and Computing 27, 1413-1432.
Vehtari et al. (2024), Pareto smoothed importance sampling, JMLR 25(72).
Yao et al. (2018), Using stacking to average Bayesian predictive distributions, Bayesian
Analysis 13(3).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hlm_cli.errors import ConfigError, HlmError, InputError, closest_match

#: Most flagged observations that ``--fix auto`` repairs with exact refits.
MAX_RELOO = 10
#: Folds when K-fold is asked for without ``--kfold K``.
DEFAULT_K = 10
CRITERIA = ("loo", "waic", "kfold")
FIXES = ("auto", "reloo", "kfold", "none")
#: Lower edge of "ok" Pareto k values, as R's loo prints (good: k <= 0.5).
K_OK = 0.5
#: WAIC's pointwise p_waic above which R's loo warns that WAIC is unreliable.
P_WAIC_WARN = 0.4

Progress = Callable[[str], None]
#: Observation dimension of the log-likelihood handed to arviz_stats.
OBS = "obs"


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------


@dataclass
class KTable:
    """Counts of Pareto k values by band (R's loo table), with the thresholds used.

    ``good_k = min(1 - 1/log10(S), 0.7)`` (Vehtari et al. 2024): at or below it PSIS is
    reliable. Bands: good (-Inf, 0.5], ok (0.5, good_k], bad (good_k, 1], very bad (1, Inf).
    """

    good_k: float
    n_samples: int
    counts: dict[str, int]  # good, ok, bad, very_bad
    max_k: float
    bad_obs: list[int]  # __obs__ positions with k > good_k

    @property
    def n_bad(self) -> int:
        return len(self.bad_obs)

    @property
    def bands(self) -> list[tuple[str, str, int]]:
        """(key, interval text, count) in table order."""
        lo = min(K_OK, self.good_k)
        return [
            ("good", f"(-Inf, {lo:.2f}]", self.counts["good"]),
            ("ok", f"({lo:.2f}, {self.good_k:.2f}]", self.counts["ok"]),
            ("bad", f"({self.good_k:.2f}, 1]", self.counts["bad"]),
            ("very_bad", "(1, Inf)", self.counts["very_bad"]),
        ]

    def to_json(self) -> dict:
        n = sum(self.counts.values()) or 1
        return {
            "good_k": self.good_k,
            "good_k_rule": "min(1 - 1/log10(S), 0.7)",
            "n_samples": self.n_samples,
            "bands": [{"label": key, "interval": text, "count": c, "pct": 100.0 * c / n} for key, text, c in self.bands],
            "max_k": self.max_k,
            "n_bad": self.n_bad,
            "bad_obs": self.bad_obs,
        }


@dataclass
class ModelLoo:
    """One run's ELPD estimate and how it was obtained."""

    name: str
    run_dir: Path
    formula: str
    criterion: str  # loo, waic, kfold
    method: str  # psis, reloo, kfold, waic
    elpd: float
    se: float
    p: float
    p_se: float
    n_obs: int
    n_samples: int
    elpd_i: np.ndarray
    p_i: np.ndarray
    ktable: KTable | None  # PSIS diagnostics of the original posterior (None for WAIC)
    pareto_k: np.ndarray | None  # PSIS k per observation, before any refit
    n_refits: int = 0
    refit_obs: list[int] = field(default_factory=list)  # reloo: __obs__ positions refitted
    refit_lines: list[int] = field(default_factory=list)  # and their CSV lines
    kfold: int | None = None
    group: str | None = None
    folds: np.ndarray | None = None  # K-fold: fold number (1..K) of each observation
    reused_refits: int = 0  # refits taken from the RefitStore instead of sampled again
    refit_store: str | None = None  # where refits are stored (None: not stored)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    recommendation: str | None = None
    data_sha256: str | None = None
    elpd_data: object = field(default=None, repr=False)  # arviz_stats ELPDData
    subsample: dict | None = None  # subsampled PSIS-LOO of a large run (docs/scale.md)

    @property
    def ic_name(self) -> str:
        return {"loo": "looic", "waic": "waic", "kfold": "kfoldic"}[self.criterion]

    @property
    def ic(self) -> float:
        return -2.0 * self.elpd

    @property
    def ic_se(self) -> float:
        return 2.0 * self.se

    @property
    def elpd_name(self) -> str:
        return {"loo": "elpd_loo", "waic": "elpd_waic", "kfold": "elpd_kfold"}[self.criterion]

    @property
    def p_name(self) -> str:
        return {"loo": "p_loo", "waic": "p_waic", "kfold": "p_kfold"}[self.criterion]

    @property
    def estimate(self) -> str:
        """Which estimate was used, in words: psis, reloo with n refits, kfold K."""
        reused = f", {self.reused_refits} reused" if self.reused_refits else ""
        if self.method == "reloo":
            return f"reloo ({self.n_refits} exact refit{'s' if self.n_refits != 1 else ''}{reused})"
        if self.method == "kfold":
            by = f", grouped by {self.group}" if self.group else ""
            return f"kfold (K = {self.kfold}{by}{reused})"
        if self.method == "waic":
            return "waic"
        if self.method == "subsample":
            sub = self.subsample or {}
            return (f"psis, subsampled ({sub.get('subsample_size')} of {self.n_obs} observations, "
                    f"subsampling SE {sub.get('subsampling_se', float('nan')):.2f})")
        return "psis"

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "run_dir": str(self.run_dir),
            "formula": self.formula,
            "criterion": self.criterion,
            "estimate": {
                "method": self.method,
                "text": self.estimate,
                "n_refits": self.n_refits,
                "reused_refits": self.reused_refits,
                "refit_store": self.refit_store,
                "refit_obs": self.refit_obs,
                "refit_csv_lines": self.refit_lines,
                "kfold": self.kfold,
                "group": self.group,
            },
            "n_obs": self.n_obs,
            "n_samples": self.n_samples,
            "seconds": round(self.seconds, 2),
            self.elpd_name: self.elpd,
            f"{self.elpd_name}_se": self.se,
            self.p_name: self.p,
            f"{self.p_name}_se": self.p_se,
            self.ic_name: self.ic,
            f"{self.ic_name}_se": self.ic_se,
            "pareto_k": self.ktable.to_json() if self.ktable else None,
            "warnings": self.warnings,
            "recommendation": self.recommendation,
            "data_sha256": self.data_sha256,
            **({"subsample": self.subsample} if self.subsample is not None else {}),
        }


@dataclass
class CompareResult:
    """Per-model estimates and, for two or more models, the comparison table."""

    criterion: str
    models: list[ModelLoo]
    table: pd.DataFrame | None  # index: model name, best first
    notes: list[str] = field(default_factory=list)

    @property
    def best(self) -> str:
        if self.table is not None:
            return str(self.table.index[0])
        return self.models[0].name

    def to_json(self) -> dict:
        rows = []
        if self.table is not None:
            for name, r in self.table.iterrows():
                rows.append({"model": name, **{k: _plain(v) for k, v in r.items()}})
        return _clean({
            "criterion": self.criterion,
            "k_thresholds": {"good": K_OK, "ok": "good_k = min(1 - 1/log10(S), 0.7)", "bad": 1.0},
            "models": [m.to_json() for m in self.models],
            "comparison": rows,
            "notes": self.notes,
        })


def _clean(obj):
    """JSON-safe: NaN and infinities become None, numpy scalars plain Python."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    return obj


def _plain(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return None if np.isnan(v) else float(v)
    return v


# --------------------------------------------------------------------------------------------
# reading runs
# --------------------------------------------------------------------------------------------


@dataclass
class _Run:
    path: Path
    name: str
    info: dict
    tree: object  # DataTree
    var_name: str
    loo_tree: object = None  # posterior + log_likelihood, observation dim renamed to OBS
    data: Path | None = None  # the data file, if it moved since the fit
    _ctx: object = None
    _raw: object = None
    lazy: bool = False  # a large run: no stored log-likelihood, computed from the posterior (docs/scale.md)
    subsampled: bool = False  # too large for the full (S, n) log-likelihood: subsampled PSIS-LOO

    @property
    def n_obs(self) -> int:
        return int(np.prod([s for d, s in self.loglik.sizes.items() if d not in ("chain", "draw")]))

    @property
    def loglik(self):
        return self.loo_tree["log_likelihood"][self.var_name]

    @property
    def sha256(self) -> str | None:
        return self.info.get("data", {}).get("sha256")

    def context(self):
        """The run rebuilt from its data file (for refits); loaded once."""
        if self._ctx is None:
            from hlm_cli import data as data_mod
            from hlm_cli.workflows.runs import load_run

            self._ctx = load_run(self.path, data=self.data)
            self._raw = data_mod.read_csv(self.data if self.data is not None else Path(self.info["data"]["file"]),
                                          sep=self.info["data"].get("sep"))
        return self._ctx


def _open_run(path: Path) -> _Run:
    from hlm_cli.outputs import runinfo
    from hlm_cli.workflows.runs import open_tree

    path = Path(path)
    tree = open_tree(path)
    info = runinfo.read(path)
    if ("log_likelihood" not in tree.children or not tree["log_likelihood"].data_vars) and (info.get("storage") or {}).get("large"):
        var = info.get("response")
        return _Run(path, path.name, info, tree, var, lazy=True)  # loo_tree: _attach_lazy, once the data file is known
    if "log_likelihood" not in tree.children or not tree["log_likelihood"].data_vars:
        raise InputError(
            f"{path.name}/posterior.nc has no log_likelihood group",
            hint="refit the model with the current hlm, which saves the pointwise log-likelihood",
        )
    names = list(tree["log_likelihood"].data_vars)
    var = info.get("response") if info.get("response") in names else names[0]
    return _Run(path, path.name, info, tree, var, loo_tree=_loo_tree(tree, var))


def _loo_tree(tree, var: str):
    """The log-likelihood of ``var`` with one observation dim named :data:`OBS`.

    arviz_stats.reloo stacks the observation dims into a new dim called ``__obs__``, which
    clashes with hlm's own ``__obs__`` dim; renaming here avoids it.
    """
    import xarray as xr

    ll = tree["log_likelihood"][var]
    obs = [d for d in ll.dims if d not in ("chain", "draw")]
    if len(obs) != 1:
        ll = ll.stack({OBS: obs}).reset_index(OBS, drop=True)
    else:
        ll = ll.rename({obs[0]: OBS})
    ll = ll.assign_coords({OBS: np.arange(ll.sizes[OBS])})
    return xr.DataTree.from_dict({
        "posterior": tree["posterior"].to_dataset(),
        "log_likelihood": xr.Dataset({var: ll}),
    })


def _attach_lazy(run: _Run) -> None:
    """A large run's loo_tree: the log-likelihood computed from the posterior and the data.

    Within the budget of :mod:`hlm_cli.model.scale` (rows x draws) the full (S, n) matrix is
    computed in chunks and PSIS-LOO proceeds as for a stored one; above it the log-likelihood
    stays lazy (only the rows that subsampled PSIS-LOO reads are computed)."""
    import xarray as xr

    from hlm_cli.model import scale

    ctx = run.context()
    built = ctx.built
    ll = scale.lazy_loglik(ctx.tree, built, run.var_name, obs_dim=OBS)
    S, n = int(ll.sizes["chain"] * ll.sizes["draw"]), int(ll.sizes[OBS])
    run.subsampled = scale.is_large(n, S)
    if not run.subsampled:
        full = np.empty((S, n))
        step = max(1, scale.MAX_VALUES_PER_REQUEST // (10 * S))
        for start in range(0, n, step):
            rows = np.arange(start, min(n, start + step))
            full[:, rows] = scale.rows_loglik(ctx.tree, built, rows)
        ll = xr.DataArray(full.reshape(ll.sizes["chain"], ll.sizes["draw"], n), dims=ll.dims, coords=ll.coords, name=run.var_name)
    obs = run.tree["observed_data"][run.var_name].to_dataset().rename({"__obs__": OBS}) if "observed_data" in run.tree.children else None
    groups = {"posterior": run.tree["posterior"].to_dataset(), "log_likelihood": xr.Dataset({run.var_name: ll})}
    if obs is not None:
        groups["observed_data"] = obs.assign_coords({OBS: np.arange(n)})
    run.loo_tree = xr.DataTree.from_dict(groups)


def _model_loo_subsample(run: _Run, *, criterion: str, fix: str, seed: int, say: Progress) -> ModelLoo:
    """PSIS-LOO with subsampling (``arviz_stats.loo_subsample``, Magnusson et al. 2019) of a run
    too large for its full pointwise log-likelihood: every row's log density at the posterior
    mean (``method="plpd"``) is corrected by exact PSIS-LOO on a simple random subsample of
    rows (:func:`hlm_cli.model.scale.loo_subsample_size`), with the SE that subsampling adds."""
    import arviz_stats as azs

    from hlm_cli.model import scale

    S, n = int(run.loglik.sizes["chain"] * run.loglik.sizes["draw"]), run.n_obs
    if criterion != "loo":
        raise ConfigError(
            f"--criterion {criterion} needs every row's log-likelihood, which {run.name} ({n} rows x {S} draws) is too large for",
            hint=f"use the default --criterion loo (subsampled PSIS-LOO), or raise {scale.ENV_BUDGET} above {n * S} if memory allows")
    ctx = run.context()
    m = min(scale.loo_subsample_size(), n)
    say(f"{run.name}: PSIS-LOO, subsampling {m} of {n} observations")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = azs.loo_subsample(run.loo_tree, observations=m, var_name=run.var_name, method="plpd", seed=seed,
                                log_lik_fn=lambda observed, data: scale.point_loglik(data, ctx.built), pointwise=True)
    rows = np.asarray(res.loo_subsample_observations, dtype=np.int64)
    elpd_i = np.asarray(res.elpd_i, dtype=float).ravel()
    pareto_k = np.asarray(res.pareto_k, dtype=float).ravel()
    lpd_sub = _lpd_i(scale.rows_loglik(ctx.tree, ctx.built, rows))
    p_i = np.full(n, np.nan)
    p_i[rows] = lpd_sub - elpd_i[rows]
    ktable = pareto_k_table(pareto_k[rows], S)
    ktable.bad_obs = [int(i) for i in rows[pareto_k[rows] > ktable.good_k]]
    sub = {"subsample_size": int(res.subsample_size), "subsampling_se": float(res.subsampling_se), "method": "plpd",
           "approximation": "log p(y_i | posterior mean) for every row, corrected by exact PSIS-LOO on the subsample",
           "reference": "Magnusson et al. (2019), Bayesian leave-one-out cross-validation for large data, ICML"}
    mod = ModelLoo(name=run.name, run_dir=run.path, formula=run.info.get("formula", ""), criterion="loo",
                   method="subsample", elpd=float(res.elpd), se=float(res.se), p=float(res.p),
                   p_se=float(np.sqrt(n * np.var(p_i[rows], ddof=1))) if len(rows) > 1 else float("nan"),
                   n_obs=n, n_samples=S, elpd_i=elpd_i, p_i=p_i, ktable=ktable, pareto_k=pareto_k,
                   data_sha256=run.sha256, elpd_data=res, subsample=sub)
    if ktable.n_bad:
        mod.warnings.append(f"{ktable.n_bad} of the {len(rows)} subsampled observation(s) have Pareto k > {ktable.good_k:.2f}: "
                            "the PSIS-LOO estimate is unreliable for them (a large run is not refitted)")
        mod.recommendation = "compare with care; a model with fewer parameters per observation has fewer high k"
    return mod


def _unique_names(paths: list[Path]) -> list[str]:
    """Short labels: the directory name, or more of the path where names repeat."""
    parts = [Path(p).resolve().parts for p in paths]
    depth = 1
    while depth < max(len(p) for p in parts):
        names = ["/".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names):
            return names
        depth += 1
    return [str(Path(p)) for p in paths]


def check_same_data(runs: list[_Run], *, force: bool) -> list[str]:
    """Refuse to compare runs fit to different data; under ``force``, warn instead.

    Runs must agree on ``data.sha256`` in run.json and on the observed response values
    (the same file can give different rows or responses). Different numbers of observations
    are refused even under ``force``: the pointwise ELPD differences need the same rows.

    Returns
    -------
    list of str
        Warnings to show (only under ``force``).
    """
    notes: list[str] = []
    if len(runs) < 2:
        return notes
    ref = runs[0]
    for other in runs[1:]:
        if other.n_obs != ref.n_obs:
            raise InputError(
                f"{ref.name} and {other.name} have different numbers of observations "
                f"({ref.n_obs} vs {other.n_obs}); LOO compares predictions of the same rows",
                hint="refit both models on the same rows (missing values in a model's columns drop rows)",
            )
        why = None
        if ref.sha256 != other.sha256:
            why = f"data.sha256 differs: {_data_name(ref)} vs {_data_name(other)}"
        else:
            y_ref = _observed(ref)
            y_other = _observed(other)
            if y_ref is not None and y_other is not None and not np.array_equal(y_ref, y_other, equal_nan=True):
                why = f"the observed responses differ ({ref.info.get('response')} vs {other.info.get('response')})"
        if why is None:
            continue
        if not force:
            raise InputError(
                f"{ref.name} and {other.name} were fit to different data ({why})",
                hint="compare runs fit to the same data, or add --force to compare anyway",
            )
        notes.append(f"{ref.name} and {other.name} were fit to different data ({why}); compared anyway (--force)")
    return notes


def _data_name(run: _Run) -> str:
    f = run.info.get("data", {}).get("file")
    sha = (run.sha256 or "?")[:12]
    return f"{Path(f).name if f else '?'} ({sha})"


def _observed(run: _Run) -> np.ndarray | None:
    if "observed_data" not in run.tree.children or run.var_name not in run.tree["observed_data"]:
        return None
    return np.asarray(run.tree["observed_data"][run.var_name], dtype=float).ravel()


# --------------------------------------------------------------------------------------------
# PSIS diagnostics, WAIC
# --------------------------------------------------------------------------------------------


def good_k_threshold(n_samples: int) -> float:
    """``min(1 - 1/log10(S), 0.7)``: the sample-size-dependent Pareto k threshold."""
    return float(min(1.0 - 1.0 / np.log10(n_samples), 0.7))


def pareto_k_table(pareto_k: np.ndarray, n_samples: int) -> KTable:
    """Count Pareto k values by band, with ``good_k`` from the number of draws."""
    k = np.asarray(pareto_k, dtype=float).ravel()
    good_k = good_k_threshold(n_samples)
    lo = min(K_OK, good_k)
    counts = {
        "good": int(np.sum(k <= lo)),
        "ok": int(np.sum((k > lo) & (k <= good_k))),
        "bad": int(np.sum((k > good_k) & (k <= 1.0))),
        "very_bad": int(np.sum(k > 1.0)),
    }
    bad = [int(i) for i in np.flatnonzero(k > good_k)]
    return KTable(good_k, int(n_samples), counts, float(np.nanmax(k)) if k.size else float("nan"), bad)


def _loglik_matrix(run: _Run) -> np.ndarray:
    """(S, n) pointwise log-likelihood, chains stacked."""
    ll = run.loglik
    obs = [d for d in ll.dims if d not in ("chain", "draw")]
    arr = ll.transpose("chain", "draw", *obs).values
    return arr.reshape(arr.shape[0] * arr.shape[1], -1)


def _lpd_i(ll: np.ndarray) -> np.ndarray:
    """log mean_s p(y_i | theta_s): the in-sample log pointwise predictive density."""
    from scipy.special import logsumexp

    return logsumexp(ll, axis=0) - np.log(ll.shape[0])


def waic(run: _Run):
    """WAIC as an ``arviz_stats`` ELPDData (kind ``"waic"``).

    ``elpd_waic_i = lpd_i - p_waic_i`` with ``p_waic_i`` the posterior variance of the
    log-likelihood of observation i (Vehtari, Gelman and Gabry 2017, eqs. 11-12).
    """
    import xarray as xr

    ll = _loglik_matrix(run)
    p_i = np.var(ll, axis=0, ddof=1)
    elpd_i = _lpd_i(ll) - p_i
    n = elpd_i.size
    obs_dim = [d for d in run.loglik.dims if d not in ("chain", "draw")][0]
    return _waic_class()(
        elpd=float(elpd_i.sum()),
        se=float(np.sqrt(n * np.var(elpd_i, ddof=1))),
        p=float(p_i.sum()),
        n_samples=ll.shape[0],
        n_data_points=n,
        scale="log",
        warning=bool(np.any(p_i > P_WAIC_WARN)),
        good_k=None,
        elpd_i=xr.DataArray(elpd_i, dims=[obs_dim]),
        p_waic_i=p_i,
    )


_WAIC_CLS = None


def _waic_class():
    global _WAIC_CLS
    if _WAIC_CLS is None:
        from dataclasses import dataclass as _dc
        from typing import ClassVar

        from arviz_stats.utils import ELPDData

        @_dc(kw_only=True, repr=False)
        class ELPDDataWAIC(ELPDData):
            _kind: ClassVar[str] = "waic"
            p_waic_i: np.ndarray = None

        _WAIC_CLS = ELPDDataWAIC
    return _WAIC_CLS


def _psis(run: _Run):
    import arviz_stats as azs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # high-k warnings are reported through KTable
        return azs.loo(run.loo_tree, var_name=run.var_name, pointwise=True)


# --------------------------------------------------------------------------------------------
# held-out log-likelihood
# --------------------------------------------------------------------------------------------


def heldout_log_lik(ctx, rows: pd.DataFrame, obs: np.ndarray, *, design=None, seed: int = 0,
                    prev_rows: pd.DataFrame | None = None) -> np.ndarray:
    """Log-likelihood (S, m) of data rows under the posterior in ``ctx``.

    Parameters
    ----------
    ctx : hlm_cli.model.run.RunContext
        A run (or a refit) whose posterior is used.
    rows : DataFrame
        The rows as read from the CSV (before the fit's column handling).
    obs : ndarray (m,)
        Their positions in ``design`` (the response, trials and se come from there).
    design : Design, optional
        The design of the full data; default ``ctx.built.design``.
    seed : int
        For effects of group levels that the posterior has not seen.
    prev_rows : DataFrame, optional
        A residual AR(1) model's rows before each of ``rows`` in its series (any row for a
        series' first): each held-out row is scored given the observed row before it, as in
        :func:`hlm_cli.model.likelihood.conditional_ar` (docs/covariance.md).
    """
    from hlm_cli.model.likelihood import logpdf
    from hlm_cli.model.linpred import aux_draws, linear_predictor

    design = design if design is not None else ctx.built.design
    eta = linear_predictor(ctx, rows, new_levels="sample", seed=seed)
    S = eta.shape[0]

    def pick(arr):
        return None if arr is None else np.asarray(arr)[obs]

    per_row = {}  # a sigma or zi/hu formula: the held-out rows' own values, not the refit's rows'
    if ctx.built.design.sigma is not None or getattr(ctx.built.design, "dpar", None) is not None:
        from hlm_cli.model.linpred import _prepare_new, dpar_draws, sigma_draws

        frame = _prepare_new(ctx, rows)
        if ctx.built.design.sigma is not None:
            per_row["sigma"] = sigma_draws(ctx.tree, ctx.built, frame)
        if getattr(ctx.built.design, "dpar", None) is not None:
            per_row[ctx.built.design.dpar.prefix] = dpar_draws(ctx.tree, ctx.built, frame)
    if design.autocor is not None and prev_rows is not None:  # residual AR(1): given the previous row
        ar = design.autocor
        eta_prev = linear_predictor(ctx, prev_rows, new_levels="sample", seed=seed)
        phi = ar.phi(aux_draws(ctx.tree, ar.rho_name, S))[:, obs]
        y_prev = np.asarray(design.y, dtype=float)[np.maximum(ar.prev[obs], 0)]
        eta = eta + phi * (y_prev[None, :] - eta_prev)
        per_row["sigma"] = aux_draws(ctx.tree, "sigma", S) * np.sqrt(1.0 - phi**2)

    def aux(name):
        return per_row[name] if name in per_row else aux_draws(ctx.tree, name, S)

    return logpdf(ctx.built.family, design.y[obs], eta, aux, trials=pick(design.trials), se=pick(design.se),
                  terms=None if getattr(design, "terms", None) is None else design.terms.pick(obs))


# --------------------------------------------------------------------------------------------
# refits: an arviz_stats SamplingWrapper around prepare() + sample()
# --------------------------------------------------------------------------------------------


def assign_folds(n: int, k: int, *, groups=None, seed: int = 0) -> np.ndarray:
    """Fold numbers 1..k for n rows, balanced; with ``groups`` every group stays in one fold.

    As loo's ``kfold_split_random`` / ``kfold_split_grouped`` (used by brms's ``kfold``):
    fold sizes differ by at most one row (or one group).

    Parameters
    ----------
    n : int
        Number of rows.
    k : int
        Number of folds, 2 <= k <= n (or <= the number of groups).
    groups : array-like (n,), optional
        Group label of each row.
    seed : int

    Returns
    -------
    ndarray of int (n,)
    """
    rng = np.random.default_rng(seed)
    if groups is None:
        if not 2 <= k <= n:
            raise ConfigError(f"--kfold must be between 2 and the number of observations ({n}), got {k}", hint="e.g. --kfold 10")
        return rng.permutation(np.arange(n) % k + 1)
    groups = np.asarray(groups)
    if len(groups) != n:
        raise ValueError(f"groups has {len(groups)} entries for {n} rows")
    levels, inverse = np.unique(groups.astype(str), return_inverse=True)
    if not 2 <= k <= len(levels):
        raise ConfigError(
            f"--kfold {k} with grouped folds needs between 2 and {len(levels)} folds (the number of groups)",
            hint=f"e.g. --kfold {min(DEFAULT_K, len(levels))}",
        )
    fold_of_level = rng.permutation(np.arange(len(levels)) % k + 1)
    return fold_of_level[inverse]


# --------------------------------------------------------------------------------------------
# stored refits: what `hlm fit --formula A --formula B` refitted, `hlm loo` reuses
# --------------------------------------------------------------------------------------------

#: Directory (under the compiled-model cache, ``$HLM_CACHE_DIR`` or ~/.cache/hlm) of stored refits.
REFIT_SUBDIR = "loo-refits"
#: Stored refits older than this are deleted when the store is opened.
MAX_AGE_DAYS = 60


def run_identity(info: dict, path: Path | None = None) -> dict | None:
    """What makes two runs the same for a refit: the run directory (absolute), the sha256 of
    the posterior the fit wrote, the data file's sha256 and the resolved config (sampler
    settings, priors, formula...). None for a run without a recorded posterior checksum
    (never reused)."""
    sums = info.get("checksums") if isinstance(info.get("checksums"), dict) else {}
    post = (sums.get("posterior.nc") or {}).get("sha256") if isinstance(sums.get("posterior.nc"), dict) else None
    data = info.get("data", {}).get("sha256") if isinstance(info.get("data"), dict) else None
    if not isinstance(post, str) or not isinstance(data, str):
        return None
    return {"path": str(Path(path).resolve()) if path is not None else None, "posterior": post, "data": data,
            "config": info.get("config"), "formula": info.get("formula")}


def refit_key(identity: dict, method: str, held, seed: int) -> str:
    """The stored name of one refit: run identity + method (reloo, kfold) + held-out
    observations + the refit's seed (+ this hlm's version)."""
    import hashlib
    import json

    from hlm_cli import __version__

    body = {"v": 1, "hlm": __version__, "run": identity, "method": method,
            "held": sorted(int(i) for i in np.atleast_1d(held)), "seed": int(seed)}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:40]


class RefitStore:
    """Held-out log-likelihood of each refit, one signed ``.npz`` per :func:`refit_key`.

    An entry holds only numbers (``ll``: chains x draws x held rows, ``divergent``), read with
    ``allow_pickle=False`` and authenticated with the compiled-model cache's per-user key
    (HMAC-SHA256 over the key and the bytes), so a file that was edited or moved to another
    key is ignored and the refit is run again. Best effort: an unusable directory means no
    store (every refit is run).
    """

    def __init__(self, root: Path, secret: bytes):
        self.root = root
        self._secret = secret

    @classmethod
    def open(cls, root: Path | None = None) -> RefitStore | None:
        from hlm_cli.sampling import cache

        try:
            base = cache.default_cache_dir() if root is None else Path(root)
            if root is None:
                cache._private_dir(base)
                base = base / REFIT_SUBDIR
            cache._private_dir(base)
            store = cls(base, cache._secret())
        except Exception:  # noqa: BLE001 - untrusted or unusable directory: no reuse, no storing
            return None
        store.prune()
        return store

    def prune(self, max_age_days: float = MAX_AGE_DAYS) -> None:
        """Delete entries not written for ``max_age_days`` (a run refitted since has new keys)."""
        cutoff = time.time() - max_age_days * 86400
        try:
            for p in self.root.glob("*.npz"):
                if p.stat().st_mtime < cutoff:
                    p.unlink(missing_ok=True)
        except OSError:
            pass

    def _tag(self, key: str, body: bytes) -> bytes:
        import hashlib
        import hmac

        return hmac.new(self._secret, b"hlm-loo-refit\x00" + key.encode() + b"\x00" + body, hashlib.sha256).digest()

    def get(self, key: str) -> tuple[np.ndarray, bool] | None:
        import hmac
        import io

        try:
            blob = (self.root / f"{key}.npz").read_bytes()
        except OSError:
            return None
        tag, body = blob[:32], blob[32:]
        if len(blob) <= 32 or not hmac.compare_digest(tag, self._tag(key, body)):
            return None
        try:
            with np.load(io.BytesIO(body), allow_pickle=False) as z:
                return np.asarray(z["ll"], dtype=float), bool(z["divergent"])
        except Exception:  # noqa: BLE001 - damaged entry: refit
            return None

    def put(self, key: str, ll: np.ndarray, divergent: bool) -> None:
        import io

        from hlm_cli.sampling import cache

        buf = io.BytesIO()
        np.savez(buf, ll=np.asarray(ll, dtype=float), divergent=np.bool_(divergent))
        body = buf.getvalue()
        try:
            cache._atomic_write(self.root / f"{key}.npz", self._tag(key, body) + body)
        except OSError:
            pass


@dataclass
class _Reused:
    """What ``RefitWrapper.sample`` returns for a refit found in the store."""

    ll: np.ndarray
    chains: int
    draws: int


def _wrapper_class():
    from arviz_stats.loo import SamplingWrapper

    class RefitWrapper(SamplingWrapper):
        """Refit a run without some of its rows, for ``arviz_stats.reloo`` and ``loo_kfold``.

        ``sel_observations(idx)`` takes ``__obs__`` positions; ``sample`` rebuilds the model on
        the CSV rows minus the held-out ones and samples it with the run's sampler settings;
        ``log_likelihood__i`` evaluates the held-out rows under the refit posterior.
        """

        def __init__(self, run: _Run, *, seed: int, say: Progress, what: str, total: int,
                     method: str = "reloo", store: RefitStore | None = None):
            super().__init__(model=None, idata_orig=run.loo_tree)
            self.run = run
            self.ctx = run.context()
            self.raw = run._raw
            self.seed = seed
            self.say = say
            self.what = what
            self.total = total
            self.n_refits = 0
            self.divergent_refits = 0
            self._prep = None
            self._held: np.ndarray | None = None
            self.method = method
            identity = run_identity(run.info, run.path) if store is not None and run.context().spec.cache else None
            self.store = store if identity is not None else None
            self.identity = identity
            self.reused = 0
            self._key: str | None = None
            self._divergent = False

        def sel_observations(self, idx):
            held = np.atleast_1d(np.asarray(idx, dtype=int))
            return held, held

        def sample(self, modified_observed_data):
            from hlm_cli import data as data_mod
            from hlm_cli import sampling
            from hlm_cli.workflows.fit import prepare

            held = modified_observed_data
            self.n_refits += 1
            lines = data_mod.csv_lines(self.ctx.prepared.table)[held]
            where = f"CSV line {lines[0]}" if len(held) == 1 else f"{len(held)} rows"
            self._key = None
            if self.store is not None:
                self._key = refit_key(self.identity, self.method, held, self.seed + self.n_refits)
                hit = self.store.get(self._key)
                if hit is not None and hit[0].ndim == 3 and hit[0].shape[2] == len(held):
                    self.reused += 1
                    self.divergent_refits += int(hit[1])
                    self.say(f"{self.run.name}: {self.what} {self.n_refits}/{self.total} (without {where}): reused")
                    return _Reused(hit[0], int(hit[0].shape[0]), int(hit[0].shape[1]))
            self.say(f"{self.run.name}: {self.what} {self.n_refits}/{self.total} (without {where})")
            labels = self.ctx.prepared.table.frame.index[held]
            raw = self.raw
            table = data_mod.Table(raw.frame.drop(index=labels), raw.source, raw.sha256, raw.rows_read - len(held))
            spec = self.ctx.spec
            prep = prepare(spec, table=table)
            sampler = spec.sampler.model_copy(update={"seed": int(self.seed + self.n_refits)})
            posterior = sampling.sample(prep.built, sampler, use_cache=spec.cache)
            self._prep = prep
            self._held = held
            stats = posterior.tree["sample_stats"] if "sample_stats" in posterior.tree.children else None
            self._divergent = stats is not None and "diverging" in stats and int(np.asarray(stats["diverging"]).sum()) > 0
            if self._divergent:
                self.divergent_refits += 1
            return posterior.tree

        def get_inference_data(self, fitted_model):
            return fitted_model

        def log_likelihood__i(self, excluded_obs, idata__i):
            import xarray as xr

            from hlm_cli.workflows.runs import RunContext

            held = np.atleast_1d(np.asarray(excluded_obs, dtype=int))
            if isinstance(idata__i, _Reused):
                return xr.DataArray(idata__i.ll, dims=["chain", "draw", OBS], coords={OBS: held})
            refit = RunContext(self.run.path, self.ctx.info, idata__i, self._prep)
            rows = self.raw.frame.loc[self.ctx.prepared.table.frame.index[held]]
            ar = self.ctx.built.design.autocor
            prev_rows = None if ar is None else self.raw.frame.loc[self.ctx.prepared.table.frame.index[np.maximum(ar.prev[held], 0)]]
            try:
                ll = heldout_log_lik(refit, rows, held, design=self.ctx.built.design, seed=self.seed + self.n_refits,
                                     prev_rows=prev_rows)
            except HlmError as err:
                raise InputError(
                    f"{self.run.name}: cannot predict the held-out rows from a refit: {err}",
                    hint="a population-level factor level appears only in the held-out rows; use --fix none, or K-fold with other folds",
                ) from None
            post = idata__i["posterior"]
            chains, draws = post.sizes["chain"], post.sizes["draw"]
            if self.store is not None and self._key is not None:
                self.store.put(self._key, ll.reshape(chains, draws, len(held)), self._divergent)
            return xr.DataArray(
                ll.reshape(chains, draws, len(held)),
                dims=["chain", "draw", OBS],
                coords={OBS: held},
            )

    return RefitWrapper


def _reloo(run: _Run, psis, ktable: KTable, *, seed: int, say: Progress, store: RefitStore | None = None):
    import arviz_stats as azs

    wrapper = _wrapper_class()(run, seed=seed, say=say, what="exact refit", total=ktable.n_bad, method="reloo", store=store)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = azs.reloo(wrapper, loo_orig=psis, var_name=run.var_name, k_threshold=ktable.good_k, pointwise=True)
    return result, wrapper


def _kfold(run: _Run, k: int, group: str | None, *, seed: int, say: Progress, store: RefitStore | None = None):
    import arviz_stats as azs

    ctx = run.context()
    groups = None
    if group is not None:
        frame = ctx.prepared.table.frame
        if group not in frame.columns:
            raise InputError(f"--group {group!r} is not a column of {Path(ctx.info['data']['file']).name}", hint=closest_match(group, frame.columns))
        groups = frame[group].astype(str).to_numpy()
    folds = assign_folds(run.n_obs, k, groups=groups, seed=seed)
    wrapper = _wrapper_class()(run, seed=seed, say=say, what="fold", total=int(folds.max()), method="kfold", store=store)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = azs.loo_kfold(run.loo_tree, wrapper, pointwise=True, var_name=run.var_name, folds=folds)
    return result, wrapper, folds


# --------------------------------------------------------------------------------------------
# one model, and the comparison
# --------------------------------------------------------------------------------------------


def _validate(criterion: str, fix: str, kfold: int | None, group: str | None) -> tuple[str, str, int | None]:
    if criterion not in CRITERIA:
        raise ConfigError(f"--criterion must be one of {', '.join(CRITERIA)}, got {criterion!r}", hint="e.g. --criterion waic")
    if fix not in FIXES:
        raise ConfigError(f"--fix must be one of {', '.join(FIXES)}, got {fix!r}", hint="e.g. --fix reloo")
    if kfold is not None and kfold < 2:
        raise ConfigError(f"--kfold must be at least 2, got {kfold}", hint="e.g. --kfold 10")
    if kfold is not None and criterion == "waic":
        raise ConfigError("--kfold and --criterion waic exclude each other", hint="K-fold is its own criterion: drop --criterion waic")
    if kfold is not None and criterion == "loo" and fix != "kfold":
        criterion = "kfold"  # --kfold K alone asks for K-fold cross-validation of every model
    if criterion == "kfold" and kfold is None:
        kfold = DEFAULT_K
    if fix == "kfold" and kfold is None:
        kfold = DEFAULT_K
    if group is not None and criterion != "kfold" and fix != "kfold":
        raise ConfigError("--group only applies to K-fold cross-validation", hint="add --kfold K (e.g. --kfold 10 --group Subject)")
    return criterion, fix, kfold


def _p_se(p_i: np.ndarray) -> float:
    return float(np.sqrt(p_i.size * np.var(p_i, ddof=1))) if p_i.size > 1 else float("nan")


def _model_loo(run: _Run, *, criterion: str, fix: str, kfold: int | None, group: str | None, seed: int, say: Progress,
               store: RefitStore | None = None) -> ModelLoo:
    if run.subsampled:
        return _model_loo_subsample(run, criterion=criterion, fix=fix, seed=seed, say=say)
    ll = _loglik_matrix(run)
    lpd_i = _lpd_i(ll)
    common = {
        "name": run.name, "run_dir": run.path, "formula": run.info.get("formula", ""), "criterion": criterion,
        "n_obs": run.n_obs, "n_samples": ll.shape[0], "data_sha256": run.sha256,
    }
    if criterion == "waic":
        say(f"{run.name}: WAIC")
        w = waic(run)
        m = ModelLoo(**common, method="waic", elpd=w.elpd, se=w.se, p=w.p, p_se=_p_se(w.p_waic_i),
                     elpd_i=np.asarray(w.elpd_i), p_i=w.p_waic_i, ktable=None, pareto_k=None, elpd_data=w)
        n_warn = int(np.sum(w.p_waic_i > P_WAIC_WARN))
        if n_warn:
            m.warnings.append(f"{n_warn} observation(s) have p_waic > {P_WAIC_WARN}: WAIC is unreliable here")
            m.recommendation = "use PSIS-LOO instead (drop --criterion waic), which diagnoses and repairs such observations"
        return m

    say(f"{run.name}: PSIS-LOO")
    psis = _psis(run)
    pareto_k = np.asarray(psis.pareto_k).ravel()
    ktable = pareto_k_table(pareto_k, ll.shape[0])
    elpd_i = np.asarray(psis.elpd_i).ravel()
    m = ModelLoo(**common, method="psis", elpd=float(psis.elpd), se=float(psis.se), p=float(psis.p),
                 p_se=_p_se(lpd_i - elpd_i), elpd_i=elpd_i, p_i=lpd_i - elpd_i, ktable=ktable,
                 pareto_k=pareto_k, elpd_data=psis)
    if criterion == "kfold":
        return _apply_kfold(m, run, kfold, group, seed, say, store)
    if ktable.n_bad == 0:
        return m
    bad_text = f"{ktable.n_bad} observation(s) have Pareto k > {ktable.good_k:.2f}"
    if fix == "none":
        m.warnings.append(f"{bad_text}: the PSIS-LOO estimate is unreliable for them")
        m.recommendation = "rerun with --fix reloo (exact refits of those observations) or --fix kfold"
        return m
    if fix == "auto" and ktable.n_bad <= MAX_RELOO:
        try:
            run.context()
        except InputError as err:  # auto is best effort: keep PSIS, say why and what to do
            m.warnings.append(f"{bad_text}, but they cannot be refitted: {err}")
            m.recommendation = f"{err.hint}, then rerun (the default --fix auto refits them)" if err.hint else None
            return m
    if fix == "reloo" or (fix == "auto" and ktable.n_bad <= MAX_RELOO):
        return _apply_reloo(m, run, psis, seed, say, store)
    if fix == "kfold":
        m.warnings.append(f"{bad_text}: replaced PSIS-LOO by K-fold cross-validation")
        return _apply_kfold(m, run, kfold, group, seed, say, store)
    m.warnings.append(f"{bad_text}: the PSIS-LOO estimate is unreliable, and more than {MAX_RELOO} exact refits would be needed")
    m.recommendation = (
        "rerun with --fix kfold (K-fold cross-validation, 10 refits; add --group COL to leave out whole groups), "
        f"or --fix reloo to refit all {ktable.n_bad} observations"
    )
    return m


def _apply_reloo(m: ModelLoo, run: _Run, psis, seed: int, say: Progress, store: RefitStore | None = None) -> ModelLoo:
    from hlm_cli import data as data_mod

    result, wrapper = _reloo(run, psis, m.ktable, seed=seed, say=say, store=store)
    elpd_i = np.asarray(result.elpd_i).ravel()
    p_i = np.asarray(result.p_loo_i).ravel()
    m.method = "reloo"
    m.elpd, m.se, m.p = float(result.elpd), float(result.se), float(result.p)
    m.elpd_i, m.p_i, m.p_se = elpd_i, p_i, _p_se(p_i)
    m.n_refits = wrapper.n_refits
    m.refit_obs = list(m.ktable.bad_obs)
    m.refit_lines = [int(v) for v in data_mod.csv_lines(wrapper.ctx.prepared.table)[m.refit_obs]]
    m.elpd_data = result
    _note_reuse(m, wrapper)
    if wrapper.divergent_refits:
        m.warnings.append(f"{wrapper.divergent_refits} of {wrapper.n_refits} refits had divergent transitions")
    return m


def _note_reuse(m: ModelLoo, wrapper) -> None:
    m.reused_refits = int(wrapper.reused)
    m.refit_store = str(wrapper.store.root) if wrapper.store is not None else None


def _apply_kfold(m: ModelLoo, run: _Run, k: int, group: str | None, seed: int, say: Progress,
                 store: RefitStore | None = None) -> ModelLoo:
    result, wrapper, folds = _kfold(run, k, group, seed=seed, say=say, store=store)
    elpd_i = np.asarray(result.elpd_i).ravel()
    p_i = np.asarray(result.p_kfold_i).ravel()
    m.criterion = "kfold"
    m.method = "kfold"
    m.elpd, m.se, m.p = float(result.elpd), float(result.se), float(result.p)
    m.elpd_i, m.p_i, m.p_se = elpd_i, p_i, _p_se(p_i)
    m.n_refits = wrapper.n_refits
    m.kfold = int(result.n_folds)
    m.group = group
    m.folds = folds
    m.elpd_data = result
    _note_reuse(m, wrapper)
    if wrapper.divergent_refits:
        m.warnings.append(f"{wrapper.divergent_refits} of {wrapper.n_refits} fold refits had divergent transitions")
    return m


def _run_seed(run: _Run) -> int:
    """The sampler seed recorded in a run's config (0 if none)."""
    cfg = run.info.get("config") if isinstance(run.info.get("config"), dict) else {}
    seed = (cfg.get("sampler") or {}).get("seed") if isinstance(cfg.get("sampler"), dict) else None
    return int(seed) if isinstance(seed, int) and not isinstance(seed, bool) else 0


def compare_models(models: list[ModelLoo]) -> tuple[pd.DataFrame, list[str]]:
    """``arviz_stats.compare`` of the models' ELPDs: rank (1 = best), elpd_diff and its SE
    against the best model, stacking weights.

    Returns
    -------
    (DataFrame, list of str)
        The table indexed by model name, best first, and warnings raised on the way.
    """
    import arviz_stats as azs

    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            table = azs.compare({m.name: m.elpd_data for m in models}, method="stacking", round_to="none")
        except ValueError as err:
            raise InputError(f"cannot compare these runs: {str(err).splitlines()[0]}", hint="estimate every model the same way (e.g. --kfold 10 for all)") from None
    for w in caught:
        if issubclass(w.category, UserWarning):
            notes.append(str(w.message).splitlines()[0])
    by_name = {m.name: m for m in models}
    out = pd.DataFrame(
        {
            "rank": table["rank"].astype(int) + 1,
            "elpd_diff": table["elpd_diff"].astype(float),
            "dse": table["dse"].astype(float),
            "elpd": table["elpd"].astype(float),
            "se": table["se"].astype(float),
            "p": table["p"].astype(float),
            "weight": table["weight"].astype(float),
            "estimate": [by_name[n].estimate for n in table.index],
        },
        index=pd.Index([str(n) for n in table.index], name="model"),
    )
    return out, notes


def compare_runs(
    run_dirs: list[Path],
    *,
    criterion: str = "loo",
    fix: str = "auto",
    kfold: int | None = None,
    group: str | None = None,
    force: bool = False,
    seed: int | None = None,
    on_progress: Progress | None = None,
    data: Path | None = None,
    reuse: bool = True,
) -> CompareResult:
    """Estimate each run's ELPD and, for two or more runs, compare them.

    Parameters
    ----------
    run_dirs : list of Path
        ``hlm fit --out`` directories.
    criterion : {"loo", "waic", "kfold"}
        PSIS-LOO (default), WAIC, or K-fold cross-validation of every model.
    fix : {"auto", "reloo", "kfold", "none"}
        What to do where Pareto k exceeds ``good_k``: ``auto`` refits the flagged
        observations exactly when there are at most :data:`MAX_RELOO` (otherwise recommends
        K-fold), ``reloo`` always refits them, ``kfold`` replaces PSIS-LOO by K-fold for that
        model, ``none`` only warns.
    kfold : int, optional
        Number of folds. Given alone it asks for K-fold cross-validation of every model.
    group : str, optional
        Column whose groups are kept together in a fold (leave-group-out), as brms's
        ``kfold(group = )``.
    force : bool
        Compare runs fit to different data (with a warning) instead of refusing.
    seed : int, optional
        Seed of the fold assignment and of the refits' samplers (refit i samples with seed + i);
        default: the first run's sampler seed, as ``hlm fit --formula A --formula B`` uses.
    reuse : bool
        Take refits from the :class:`RefitStore` when the same run was refitted without the
        same observations, by the same method, with the same seed (and store new ones);
        anything different is refitted. Runs fitted with ``--no-cache`` are never stored.
    on_progress : callable, optional
        Receives short progress messages (one per model and per refit).
    data : Path, optional
        The data file for refits, if it moved since the fits (its sha256 must match
        run.json's).

    Returns
    -------
    CompareResult

    Raises
    ------
    InputError
        A directory is not a run, or the runs were fit to different data (without ``force``).
    ConfigError
        Incompatible options.
    """
    say = on_progress or (lambda msg: None)
    criterion, fix, kfold = _validate(criterion, fix, kfold, group)
    if not run_dirs:
        raise ConfigError("give at least one run directory", hint="e.g. hlm loo results/m1 results/m2")
    paths = [Path(p) for p in run_dirs]
    if len({p.resolve() for p in paths}) != len(paths):
        raise ConfigError("the same run directory is given twice", hint="give each run once")
    runs = [_open_run(p) for p in paths]
    for run, name in zip(runs, _unique_names(paths), strict=True):
        run.name = name
        run.data = Path(data) if data is not None else None
        if run.lazy:
            _attach_lazy(run)
    notes = check_same_data(runs, force=force)
    if seed is None:
        seed = _run_seed(runs[0])
    store = RefitStore.open() if reuse else None
    models = []
    for run in runs:
        t0 = time.perf_counter()
        m = _model_loo(run, criterion=criterion, fix=fix, kfold=kfold, group=group, seed=seed, say=say, store=store)
        m.seconds = time.perf_counter() - t0
        models.append(m)
        if m.reused_refits:
            notes.append(f"{m.name}: reused {m.reused_refits} of {m.n_refits} refit{'s' if m.n_refits != 1 else ''} from "
                         f"{m.refit_store} (the same run, method, held-out rows and seed {seed}); the rest were sampled")
    table = None
    if len(models) > 1:
        table, more = compare_models(models)
        notes.extend(more)
    return CompareResult(criterion=criterion, models=models, table=table, notes=notes)


__all__ = [
    "CompareResult", "ModelLoo", "KTable", "compare_runs", "compare_models", "check_same_data", "pareto_k_table",
    "good_k_threshold", "assign_folds", "waic", "heldout_log_lik", "MAX_RELOO",
]
