"""Runs too large to hold rows x draws arrays: what posterior.nc stores, and the pointwise
log-likelihood computed on demand (docs/scale.md).

A fit keeps the pointwise log-likelihood and the posterior predictive, one value per row and
posterior draw each. At 1,024,000 rows x 4,000 draws that is 33 GB per array, so above a
budget (:func:`budget`, ``rows x chains x draws`` values, :data:`DEFAULT_BUDGET` unless the
environment variable :data:`ENV_BUDGET` says otherwise) a run is *large* and posterior.nc
stores

* no ``log_likelihood`` group: the commands that need it (``hlm loo``) compute it from the
  posterior and the data, in chunks (:func:`rows_loglik`, :func:`lazy_loglik`);
* a thinned ``posterior_predictive``: at most :data:`PPC_DRAWS` draws (evenly spaced in each
  chain) of at most :data:`PPC_ROWS` rows (a seeded random subset, in row order; the
  ``__obs__`` coordinate holds their row numbers), float32 -- enough for the predictive
  check figures, which read the observed rows by that coordinate (:func:`ppc_rows`);
* the posterior and the observed data as usual.

The log-likelihood of a subset of rows is the same numpy density as the full one
(:func:`hlm_cli.model.likelihood.logpdf`) on the rows' linear predictor, gathered from the
group effects by index (never a dense Z): ``tests/unit/test_scale.py`` checks it equals
:func:`hlm_cli.model.likelihood.pointwise` column for column.
"""

from __future__ import annotations

import math
import os

import numpy as np

from hlm_cli.errors import ConfigError

#: Environment variable: the rows x draws budget (values) above which a fit is large.
ENV_BUDGET = "HLM_POINTWISE_BUDGET"
#: 400 million values: 3.2 GB per float64 rows x draws array (InstEval, 73k rows x 4,000 draws,
#: stays below it; a 1M-row screen is 10 times above it).
DEFAULT_BUDGET = 400_000_000
#: Posterior predictive draws a large run stores (all chains together).
PPC_DRAWS = 200
#: Posterior predictive rows a large run stores.
PPC_ROWS = 50_000
#: Environment variable: observations ``hlm loo`` evaluates exactly when it subsamples.
ENV_LOO_SUBSAMPLE = "HLM_LOO_SUBSAMPLE"
#: Default subsample size of PSIS-LOO with subsampling (Magnusson et al. 2019).
LOO_SUBSAMPLE = 2_000
#: Most values one request of the lazy log-likelihood may compute at once (about 1.6 GB).
MAX_VALUES_PER_REQUEST = 200_000_000


def _env_int(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(float(raw))
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise ConfigError(f"{name}={raw!r} is not a whole number >= {minimum}", hint=f"unset {name}, or set e.g. {name}={default}")
    return value


def budget() -> int:
    """The rows x draws budget in values (:data:`ENV_BUDGET`, default :data:`DEFAULT_BUDGET`)."""
    return _env_int(ENV_BUDGET, DEFAULT_BUDGET, 1)


def loo_subsample_size() -> int:
    """Observations evaluated exactly by subsampled PSIS-LOO (:data:`ENV_LOO_SUBSAMPLE`)."""
    return _env_int(ENV_LOO_SUBSAMPLE, LOO_SUBSAMPLE, 2)


def is_large(n_rows: int, n_draws: int) -> bool:
    """Whether ``n_rows`` x ``n_draws`` (all chains) values exceed the budget."""
    return int(n_rows) * int(n_draws) > budget()


def n_draws_of(tree) -> int:
    post = tree["posterior"]
    return int(post.sizes["chain"] * post.sizes["draw"])


def stores_loglik(tree) -> bool:
    """Whether a run's posterior tree holds its pointwise log-likelihood."""
    children = getattr(tree, "children", tree)
    return "log_likelihood" in children and bool(tree["log_likelihood"].data_vars)


# -- the log-likelihood of some rows ------------------------------------------------------


def rows_supported(design) -> bool:
    """Whether rows can be evaluated on their own (an AR(1) residual needs the row before)."""
    return getattr(design, "autocor", None) is None


def _take(x: np.ndarray, draws) -> np.ndarray:
    return x if draws is None else x[draws]


def eta_rows(tree, built, rows: np.ndarray, draws=None) -> np.ndarray:
    """(S, m) linear predictor of the fitted ``rows`` (index gathers of the group effects).

    Equals ``eta_draws(tree, built)[draws][:, rows]`` without the (S, n) array."""
    from hlm_cli.model.linpred import beta_draws, stacked

    d = built.design
    rows = np.asarray(rows, dtype=np.int64)
    beta = _take(beta_draws(tree, built), draws)
    X = np.asarray(d.X)[rows]
    eta = beta @ X.T if X.shape[1] else np.zeros((beta.shape[0], len(rows)))
    if d.offset is not None:
        eta = eta + np.asarray(d.offset)[rows]
    for g in d.groups:
        idx = np.asarray(g.index)[rows]
        Z = np.asarray(g.Z)[rows]
        for k, name in enumerate(g.effect_names):
            eta = eta + _take(stacked(tree, name), draws)[:, idx] * Z[:, k]
    for sm in d.smooths:
        eta = eta + _take(stacked(tree, sm.label), draws) @ np.asarray(sm.Z)[rows].T
    return eta


def _row_aux(tree, S: int, rows: np.ndarray, n: int, draws):
    """aux(name) for a subset of rows: (S, 1) draws, or (S, m) where the posterior holds a value
    per row (a --sigma-formula or --zi-formula model's per-row parameter)."""
    from hlm_cli.model.linpred import stacked

    def aux(name):
        if name not in tree["posterior"]:
            return None
        x = _take(stacked(tree, name), draws).reshape(S, -1)
        if x.shape[1] == n and n > 1:
            return x[:, rows]
        return x

    return aux


def rows_loglik(tree, built, rows, *, chunk_values: int = 20_000_000) -> np.ndarray:
    """(S, m) log-likelihood of the fitted ``rows`` (chains stacked), in chunks of draws.

    Equal to ``likelihood.pointwise(tree, built)[:, rows]``; an AR(1) residual model (whose rows
    depend on the row before) computes every row in chunks of draws and keeps ``rows``."""
    from hlm_cli.model import likelihood

    d = built.design
    rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
    S = n_draws_of(tree)
    out = np.empty((S, len(rows)))
    if not rows_supported(d):
        step = max(1, chunk_values // max(d.n, 1))
        for start in range(0, S, step):
            sl = slice(start, min(S, start + step))
            part = _pointwise_slice(tree, built, sl)
            out[sl] = part[:, rows]
        return out
    y = np.asarray(d.y, dtype=float)[rows]
    trials = None if d.trials is None else np.asarray(d.trials)[rows]
    se = None if d.se is None else np.asarray(d.se)[rows]
    terms = getattr(d, "terms", None)
    terms = None if terms is None else terms.pick(rows)
    step = max(1, chunk_values // max(len(rows), 1))
    for start in range(0, S, step):
        sl = slice(start, min(S, start + step))
        eta = eta_rows(tree, built, rows, sl)
        aux = _row_aux(tree, eta.shape[0], rows, d.n, sl)
        out[sl] = likelihood.logpdf(built.family, y, eta, aux, trials=trials, se=se, terms=terms)
    return out


def _pointwise_slice(tree, built, sl: slice) -> np.ndarray:
    """All rows' log-likelihood for the draws ``sl`` (the AR(1) fallback)."""
    from hlm_cli.model import likelihood
    from hlm_cli.model.linpred import aux_draws, eta_draws

    d = built.design
    eta = eta_draws(tree, built, draws=sl)
    m = eta.shape[0]

    def aux(name):
        return aux_draws(tree, name, m, sl)

    if d.autocor is not None:
        eta, aux = likelihood.conditional_ar(tree, d, eta, aux, sl)
    return likelihood.logpdf(built.family, d.y, eta, aux, trials=d.trials, se=d.se, terms=getattr(d, "terms", None))


def point_loglik(tree, built) -> np.ndarray:
    """(n,) log p(y_i | posterior mean of the parameters): the cheap approximation of every
    row's predictive density that subsampled LOO corrects (``method="plpd"``)."""
    post = tree["posterior"]
    means = post.to_dataset() if hasattr(post, "to_dataset") else post
    if "chain" in means.dims:
        means = means.mean(("chain", "draw"))
    point = {"posterior": means.expand_dims(chain=[0], draw=[0])}
    n = built.design.n
    out = np.empty(n)
    step = 200_000
    for start in range(0, n, step):
        rows = np.arange(start, min(n, start + step))
        out[rows] = rows_loglik(point, built, rows)[0]
    return out


def total_loglik_dataset(tree, built, rows_per_chunk: int | None = None):
    """A log_likelihood group holding each draw's total over the rows (one ``__obs__``): all
    that power-scaling prior sensitivity (``arviz_stats.psense``) uses, which sums the
    pointwise values anyway. Computed in chunks of rows (bounded memory)."""
    import xarray as xr

    post = tree["posterior"]
    C, D, n = int(post.sizes["chain"]), int(post.sizes["draw"]), int(built.design.n)
    S = C * D
    step = rows_per_chunk or max(1, 20_000_000 // max(S, 1))
    total = np.zeros(S)
    for start in range(0, n, step):
        total += rows_loglik(tree, built, np.arange(start, min(n, start + step))).sum(axis=1)
    da = xr.DataArray(total.reshape(C, D, 1), dims=("chain", "draw", "__obs__"),
                      coords={"chain": post["chain"].values, "draw": post["draw"].values, "__obs__": [0]})
    return xr.Dataset({built.response_name: da})


# -- the lazy log_likelihood group ---------------------------------------------------------


def lazy_loglik(tree, built, var: str, obs_dim: str = "__obs__"):
    """The pointwise log-likelihood as a lazily indexed (chain, draw, obs) DataArray.

    Nothing is computed until values are read; selecting some observations (``isel``) and
    then reading them computes only those columns (:func:`rows_loglik`). A read of more than
    :data:`MAX_VALUES_PER_REQUEST` values at once is refused instead of exhausting memory."""
    import xarray as xr
    from xarray.backends import BackendArray
    from xarray.core import indexing

    post = tree["posterior"]
    C, D, n = int(post.sizes["chain"]), int(post.sizes["draw"]), int(built.design.n)

    class _LazyLogLik(BackendArray):
        def __init__(self):
            self.shape = (C, D, n)
            self.dtype = np.dtype("float64")

        def __getitem__(self, key):
            return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.OUTER, self._raw)

        def _raw(self, key):
            idx = [np.arange(s)[k] for k, s in zip(key, self.shape, strict=True)]
            scalar = [np.ndim(i) == 0 for i in idx]
            ci, di, rows = (np.atleast_1d(i) for i in idx)
            if len(rows) * C * D > MAX_VALUES_PER_REQUEST:
                raise MemoryError(f"reading the log-likelihood of {len(rows)} rows x {C * D} draws at once is refused "
                                  f"(over {MAX_VALUES_PER_REQUEST} values); read fewer rows at a time")
            ll = rows_loglik(tree, built, rows).reshape(C, D, len(rows))
            out = ll[np.ix_(ci, di, np.arange(len(rows)))]
            squeeze = tuple(a for a, s in enumerate(scalar) if s)
            return out.squeeze(axis=squeeze) if squeeze else out

    var_ = xr.Variable(("chain", "draw", obs_dim), indexing.LazilyIndexedArray(_LazyLogLik()))
    coords = {"chain": post["chain"].values, "draw": post["draw"].values, obs_dim: np.arange(n)}
    return xr.DataArray(var_, coords=coords, name=var)


# -- what a large fit stores ---------------------------------------------------------------


def ppc_selection(C: int, D: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(draw positions per chain, rows) of the thinned posterior predictive (at most
    :data:`PPC_DRAWS` draws and :data:`PPC_ROWS` rows; environment ``HLM_PPC_ROWS`` overrides
    the rows, for tests)."""
    per_chain = max(1, min(D, PPC_DRAWS // max(C, 1)))
    draws = np.unique(np.linspace(0, D - 1, per_chain).round().astype(int))
    max_rows = _env_int("HLM_PPC_ROWS", PPC_ROWS, 2)
    if n > max_rows:
        rng = np.random.default_rng([int(seed), 22])
        rows = np.sort(rng.choice(n, size=max_rows, replace=False))
    else:
        rows = np.arange(n)
    return draws, rows


def complete_large(built, tree, *, seed: int):
    """posterior_predictive (thinned, :func:`ppc_selection`) and observed_data groups for a large
    run; no log_likelihood group (see the module docstring)."""
    import xarray as xr

    from hlm_cli.model.linpred import simulate

    post = tree["posterior"]
    C, D = int(post.sizes["chain"]), int(post.sizes["draw"])
    d = built.design
    name = built.response_name
    draw_pos, rows = ppc_selection(C, D, d.n, seed)
    flat = (np.arange(C)[:, None] * D + draw_pos[None, :]).ravel()  # stacked draw numbers
    rng = np.random.default_rng(seed)
    if rows_supported(d) and d.sigma is None and getattr(d, "dpar", None) is None:
        eta = eta_rows(tree, built, rows, flat)
        terms = getattr(d, "terms", None)
        terms = None if terms is None else terms.pick(rows)
        if terms is not None:
            from dataclasses import replace

            terms = replace(terms, cens=None, y2=None)
        sims = simulate(built.family, tree, eta, trials=None if d.trials is None else np.asarray(d.trials)[rows],
                        se=None if d.se is None else np.asarray(d.se)[rows], draws=flat, rng=rng, terms=terms)
    else:  # every row, then keep the chosen ones (per-row parameters, AR(1) residuals)
        from hlm_cli.model.linpred import eta_draws

        rows = np.arange(d.n)
        eta = eta_draws(tree, built, draws=flat)
        sims = simulate(built.family, tree, eta, trials=d.trials, se=d.se, draws=flat, rng=rng, terms=getattr(d, "terms", None))
    dims = ("chain", "draw", "__obs__")
    coords = {"chain": post["chain"].values, "draw": post["draw"].values[draw_pos], "__obs__": rows}
    tree["posterior_predictive"] = xr.Dataset({name: (dims, np.asarray(sims, dtype=np.float32).reshape(C, len(draw_pos), len(rows)))},
                                              coords=coords)
    tree["posterior_predictive"].attrs.update(hlm_thinned=1, hlm_rows=int(d.n))
    return tree


def ppc_rows(tree, n_observed: int, group: str = "posterior_predictive") -> np.ndarray | None:
    """Row numbers of the stored posterior predictive when it holds a subset of the observed
    rows (a large run), else None."""
    if group not in getattr(tree, "children", tree):
        return None
    ppc = tree[group]
    if "__obs__" not in ppc.dims or int(ppc.sizes["__obs__"]) == int(n_observed):
        return None
    return np.asarray(ppc["__obs__"].values, dtype=np.int64)


def storage_json(tree, n_rows: int) -> dict:
    """run.json's ``storage`` record: what posterior.nc holds and why."""
    S = n_draws_of(tree)
    large = not stores_loglik(tree)
    out = {"large": large, "rows_x_draws": int(n_rows) * S, "budget": budget(), "budget_env": ENV_BUDGET}
    if large and "posterior_predictive" in tree.children:
        ppc = tree["posterior_predictive"]
        out["log_likelihood"] = "not stored: computed from the posterior and the data when needed (hlm loo)"
        out["posterior_predictive"] = {"draws": int(ppc.sizes["chain"] * ppc.sizes["draw"]), "rows": int(ppc.sizes["__obs__"]),
                                       "dtype": "float32"}
    return out


def memory_rows(n_rows: int, n_draws: int) -> int:
    """Rows that count for the rows x draws arrays in :func:`hlm_cli.spec.check_memory`: all of
    them for a normal run, for a large one the stored predictive's share (no log-likelihood)."""
    if not is_large(n_rows, n_draws):
        return int(n_rows)
    return int(math.ceil(min(PPC_DRAWS, n_draws) * min(PPC_ROWS, n_rows) / max(2 * n_draws, 1)))
