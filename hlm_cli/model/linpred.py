"""The linear predictor for new rows, and draws of new responses.

Later commands (``loo``, ``contrast``, ``hypothesis``, ``predict``, ``report``) open a run
with :func:`hlm_cli.workflows.runs.load_run` (a :class:`~hlm_cli.model.run.RunContext`).
Predictions are computed from the draws in numpy, per posterior draw:

    eta = X_new @ beta + sum_terms sum_k Z_new[:, k] * b_term[level, k] + offset

Rows whose group level was not in the fitted data get effects drawn from the fitted
group-level distribution (brms's ``allow_new_levels = TRUE, sample_new_levels =
"gaussian"``), including the correlation between intercept and slopes. The inverse link and
the simulator of each family are fields of its row in :data:`hlm_cli.model.families.FAMILIES`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hlm_cli.errors import InputError
from hlm_cli.model.families import MAX_LOG_RATE, NORMAL_APPROX_RATE, poisson  # noqa: F401 (re-exported)
from hlm_cli.model.run import RunContext


def stacked(tree, name: str) -> np.ndarray:
    """Draws of a posterior variable as (S, ...) with S = chains * draws."""
    arr = np.asarray(tree["posterior"][name])
    return arr.reshape((arr.shape[0] * arr.shape[1],) + arr.shape[2:])


def _fixed_design(built, new: pd.DataFrame):
    common = built.design.common
    try:
        nd = common.evaluate_new_data(new)
    except Exception as err:  # unknown categories, missing columns
        msg = str(err).splitlines()[0]
        raise InputError(f"cannot use the new rows for prediction: {msg}", hint="new rows need the fitted model's columns and known levels of population-level factors") from None
    X_all = np.asarray(nd.design_matrix, dtype=float)
    keep, offset = [], None
    for name, term in common.terms.items():
        sl = nd.slices[name] if hasattr(nd, "slices") and name in nd.slices else common.slices[name]
        if getattr(term, "kind", None) == "offset":
            col = X_all[:, sl].sum(axis=1)
            offset = col if offset is None else offset + col
        else:
            keep.extend(range(sl.start, sl.stop))
    return X_all[:, keep], offset


def beta_draws(tree, built) -> np.ndarray:
    """(S, p) population-level coefficients in design-column order."""
    parts = []
    post = tree["posterior"]
    for term, sl in built.design.fixed_slices.items():
        labels = built.design.x_labels[sl]
        if term in post:
            x = stacked(tree, term)
            parts.append(x.reshape(x.shape[0], -1))
        else:  # one variable per column (a user prior on a single factor level)
            parts.append(np.stack([stacked(tree, lab) for lab in labels], axis=1))
    if not parts:
        return np.zeros((stacked(tree, next(iter(post.data_vars))).shape[0], 0))
    return np.concatenate(parts, axis=1)


def linear_predictor(ctx: RunContext, new: pd.DataFrame | None = None, *, new_levels: str = "sample", seed: int = 0) -> np.ndarray:
    """Posterior draws of the linear predictor (link scale), shape (S, n).

    Parameters
    ----------
    ctx : RunContext
    new : DataFrame, optional
        Rows to predict; default: the fitted rows.
    new_levels : {"sample", "zero", "error"}
        Group levels not seen in fitting: draw effects from the group-level distribution
        (default), use 0 (the population-level prediction), or refuse.
    seed : int
    """
    frame = None if new is None else _prepare_new(ctx, new)
    return eta_draws(ctx.tree, ctx.built, frame, new_levels=new_levels, seed=seed)


def eta_draws(tree, built, frame: pd.DataFrame | None = None, *, new_levels: str = "sample", seed: int = 0, draws: slice | None = None) -> np.ndarray:
    """Linear predictor draws (S, n) from a posterior tree and a BuiltModel.

    ``frame`` None means the fitted rows (the design arrays are used directly); ``draws``
    selects a slice of the stacked draws (to bound memory on large data).
    """
    from hlm_cli.formula.design import level_labels

    design = built.design
    rng = np.random.default_rng(seed)
    if frame is None:
        X, offset = design.X, design.offset
    else:
        X, offset = _fixed_design(built, frame)
    beta = beta_draws(tree, built)
    if draws is not None:
        beta = beta[draws]
    n = X.shape[0]
    eta = beta @ X.T if X.shape[1] else np.zeros((beta.shape[0], n))
    if offset is not None:
        eta = eta + offset
    for g in design.groups:
        if frame is None:
            eta = eta + _fitted_group_contribution(tree, g, draws)
        else:
            Z = np.asarray(g.common.evaluate_new_data(frame).design_matrix, dtype=float)
            labels = level_labels(frame, g.term.factor).to_numpy()
            eta = eta + _group_contribution(tree, g, Z, labels, new_levels, rng, draws)
    return eta


def _fitted_group_contribution(tree, g, draws: slice | None) -> np.ndarray:
    out = 0.0
    for k, name in enumerate(g.effect_names):
        b = stacked(tree, name)
        if draws is not None:
            b = b[draws]
        out = out + b[:, g.index] * g.Z[:, k]
    return out


def _group_contribution(tree, g, Z, labels, new_levels, rng, draws: slice | None = None) -> np.ndarray:
    level_index = {lev: i for i, lev in enumerate(g.levels)}
    idx = np.array([level_index.get(lab, -1) for lab in labels])
    effects = np.stack([stacked(tree, n) for n in g.effect_names], axis=-1)  # (S, L, K)
    if draws is not None:
        effects = effects[draws]
    S, _, K = effects.shape
    unseen = idx < 0
    b = np.zeros((S, len(labels), K))
    b[:, ~unseen, :] = effects[:, idx[~unseen], :]
    if unseen.any():
        if new_levels == "error":
            bad = labels[unseen][0]
            raise InputError(f"level {bad!r} of {g.factor!r} was not in the fitted data", hint="use new_levels='sample' to predict for new groups")
        if new_levels == "sample":
            sds = np.stack([stacked(tree, f"{n}_sigma") for n in g.effect_names], axis=-1)  # (S, K)
            if draws is not None:
                sds = sds[draws]
            corr = np.broadcast_to(np.eye(K), (S, K, K)).copy()
            for a in range(K):
                for c in range(a + 1, K):
                    name = f"cor({g.columns[a]},{g.columns[c]}|{g.factor})"
                    if name in tree["posterior"]:
                        r = stacked(tree, name) if draws is None else stacked(tree, name)[draws]
                        corr[:, a, c] = corr[:, c, a] = r
            cov = sds[:, :, None] * corr * sds[:, None, :]
            chol = np.linalg.cholesky(cov + 1e-12 * np.eye(K))
            new_labels = sorted(set(labels[unseen]))
            for lab in new_labels:
                z = rng.standard_normal((S, K))
                draw = np.einsum("skj,sj->sk", chol, z)
                rows = np.where(labels == lab)[0]
                b[:, rows, :] = draw[:, None, :]
    return np.einsum("snk,nk->sn", b, Z)


def _prepare_new(ctx: RunContext, new: pd.DataFrame) -> pd.DataFrame:
    """Apply the fit's column handling (categorical columns) to new rows."""
    from hlm_cli.errors import closest_match

    frame = new.copy()
    formula = ctx.prepared.formula
    resp = {formula.response.expr} if formula.response else set()
    needed = set(formula.columns) - resp - ({formula.response.se} if formula.response and formula.response.se else set())
    if formula.response and formula.response.trials:
        needed.discard(formula.response.trials)
    if formula.response and formula.response.failures:
        needed -= set(formula.response.failures.replace("-", " ").split())
    missing = sorted(c for c in needed if c not in frame.columns)
    if missing:
        raise InputError(f"the new data has no column {missing[0]!r}", hint=closest_match(missing[0], list(frame.columns)))
    for col in ctx.spec.categorical:
        if col in frame.columns:
            frame[col] = frame[col].astype(str)
            fitted = ctx.prepared.table.frame[col]
            if isinstance(fitted.dtype, pd.CategoricalDtype):
                frame[col] = pd.Categorical(frame[col], categories=fitted.cat.categories)
    for c in frame.columns:  # formulae needs the fitted dtype for known factor levels
        if c in ctx.prepared.table.frame.columns:
            fitted = ctx.prepared.table.frame[c]
            if pd.api.types.is_numeric_dtype(fitted) and not pd.api.types.is_numeric_dtype(frame[c]):
                frame[c] = pd.to_numeric(frame[c], errors="coerce")
    return frame.reset_index(drop=True)


def inverse_link(family, eta: np.ndarray) -> np.ndarray:
    """Mean of the response given the linear predictor (lognormal: the median exp(eta)).

    Never overflows: the logistic function is scipy's expit, and log-link rates are computed
    from eta clipped at :data:`~hlm_cli.model.families.MAX_LOG_RATE` (about 1e300)."""
    return family.mean(eta)


def response_draws(ctx: RunContext, eta: np.ndarray, *, trials: np.ndarray | None = None, se: np.ndarray | None = None, seed: int = 0, frame: pd.DataFrame | None = None) -> np.ndarray:
    """Posterior predictive draws of new responses, shape (S, n).

    ``frame`` (the new rows) is needed when the model has a ``--sigma-formula``.
    """
    sigma = None
    if ctx.built.design.sigma is not None:
        if frame is None and eta.shape[1] != ctx.built.design.n:
            raise ValueError("response_draws needs the new rows (frame=) for a model with a sigma formula")
        sigma = sigma_draws(ctx.tree, ctx.built, None if frame is None else _prepare_new(ctx, frame))
    dpar = None
    if getattr(ctx.built.design, "dpar", None) is not None:
        if frame is None and eta.shape[1] != ctx.built.design.n:
            raise ValueError("response_draws needs the new rows (frame=) for a model with a zi/hu formula")
        dpar = {ctx.built.design.dpar.prefix: dpar_draws(ctx.tree, ctx.built, None if frame is None else _prepare_new(ctx, frame))}
    return simulate(ctx.built.family, ctx.tree, eta, trials=trials, se=se, seed=seed, sigma=sigma, dpar=dpar)


def dpar_draws(tree, built, frame: pd.DataFrame | None = None) -> np.ndarray:
    """(S, n) zi (or hu) per row for a ``--zi-formula`` / ``--hu-formula`` model."""
    from scipy.special import expit

    dp = built.design.dpar
    Xd = dp.X if frame is None else np.asarray(dp.common.evaluate_new_data(frame).design_matrix, dtype=float)
    gamma = np.concatenate([stacked(tree, var).reshape(-1, len(labels)) for var, labels in dp.names().items()], axis=1)
    return expit(gamma @ Xd.T)


def sigma_draws(tree, built, frame: pd.DataFrame | None = None) -> np.ndarray:
    """(S, n) residual SD per row for a ``--sigma-formula`` model (fitted rows by default)."""
    sd = built.design.sigma
    if frame is None:
        Xs = sd.X
    else:
        Xs = np.asarray(sd.common.evaluate_new_data(frame).design_matrix, dtype=float)
    gamma = np.concatenate([stacked(tree, var).reshape(-1, len(labels)) for var, labels in sd.names().items()], axis=1)
    return np.exp(gamma @ Xs.T)


def aux_draws(tree, name: str, S: int, draws: slice | None = None):
    """(S, 1) draws of a family parameter, or None when the model has none."""
    if name not in tree["posterior"]:
        return None
    x = stacked(tree, name)
    if draws is not None:
        x = x[draws]
    return x.reshape(S, -1)


def simulate(fam, tree, eta: np.ndarray, *, trials=None, se=None, seed: int = 0, draws: slice | None = None, rng=None, sigma=None,
             dpar=None) -> np.ndarray:
    """Draws from the likelihood given linear-predictor draws (the posterior predictive).

    ``sigma`` overrides the residual SD draws (per-row SDs of a sigma formula for new rows);
    ``dpar`` ({"zi": (S, n)}) those of a zi/hu formula.
    """
    rng = rng if rng is not None else np.random.default_rng(seed)
    S = eta.shape[0]

    def aux(name):
        if name == "sigma" and sigma is not None:
            return sigma
        if dpar and name in dpar:
            return dpar[name]
        return aux_draws(tree, name, S, draws)

    mu = inverse_link(fam, eta)
    sigma = aux("sigma")
    if se is not None:
        sigma = np.sqrt(se[None, :] ** 2 + (sigma**2 if sigma is not None else 0.0))
    return fam.simulate(rng, eta, mu, sigma, aux, trials)


__all__ = ["RunContext", "stacked", "beta_draws", "linear_predictor", "eta_draws", "inverse_link", "response_draws", "simulate", "aux_draws", "dpar_draws", "poisson"]
