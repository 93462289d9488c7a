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
        if name == "Intercept" and "Intercept" not in built.design.fixed_slices:
            continue  # a cumulative model's intercept column is dropped (hlm_cli.model.ordinal)
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
        elif g.cov == "ar1":
            labels = level_labels(frame, g.term.factor).to_numpy()
            eta = eta + _ar1_contribution(tree, g, frame, labels, new_levels, rng, draws)
        else:
            Z = np.asarray(g.common.evaluate_new_data(frame).design_matrix, dtype=float)
            labels = level_labels(frame, g.term.factor).to_numpy()
            eta = eta + _group_contribution(tree, g, Z, labels, new_levels, rng, draws)
    for sm in design.smooths:  # s(): the penalized part, on the fit's basis
        b = stacked(tree, sm.label)
        if draws is not None:
            b = b[draws]
        Z = sm.Z if frame is None else sm.basis(frame)
        eta = eta + b @ Z.T
    return eta


def structured_cov(tree, g, draws: slice | None = None) -> np.ndarray | None:
    """(S, K, K) covariance of an ar1() or cs() term's effects, or None for other terms."""
    if not g.cov or len(g.columns) < 2:
        return None

    def get(name):
        x = stacked(tree, name)
        return x if draws is None else x[draws]

    rho = get(g.rho_name)[:, None, None]
    if g.cov == "ar1":
        sd = get(g.sd_names[0])
        d = np.abs(g.times[:, None] - g.times[None, :]) / g.unit
        corr = _rho_power(rho, d[None])
        return sd[:, None, None] ** 2 * corr
    sds = np.stack([get(n) for n in g.sd_names], axis=-1)
    K = len(g.columns)
    corr = (1.0 - rho) * np.eye(K) + rho
    return sds[:, :, None] * corr * sds[:, None, :]


def _rho_power(rho: np.ndarray, lag: np.ndarray) -> np.ndarray:
    """rho ** lag; a negative rho only at whole-number lags (nan otherwise)."""
    whole = np.abs(lag - np.round(lag)) < 1e-8
    with np.errstate(invalid="ignore"):
        out = np.where(whole, np.sign(rho) ** np.round(lag) * np.abs(rho) ** lag, np.power(rho, lag))
    return out


def _ar1_contribution(tree, g, frame, labels, new_levels, rng, draws: slice | None = None) -> np.ndarray:
    """ar1(time | id) at new rows: the fitted effect at a fitted time; at a time between or
    beyond the fitted ones, a draw from the AR(1) given the nearest fitted times on each side
    (the process is Markov, so those neighbours are all that matter); a new group gets a whole
    series drawn from the fitted AR(1)."""
    t = pd.to_numeric(frame[g.term.expr], errors="coerce").to_numpy(dtype=float)
    if not np.all(np.isfinite(t)):
        i = int(np.argmax(~np.isfinite(t)))
        raise InputError(f"the new rows need a numeric {g.term.expr!r} for {g.term.label}; row {i + 1} has {frame[g.term.expr].iloc[i]!r}",
                         hint="give each row its time as a number")
    effects = np.stack([stacked(tree, n) for n in g.effect_names], axis=-1)  # (S, L, K)
    if draws is not None:
        effects = effects[draws]
    S, _, K = effects.shape
    level_index = {lev: i for i, lev in enumerate(g.levels)}
    idx = np.array([level_index.get(lab, -1) for lab in labels])
    series = np.zeros((S, len(labels), K))
    series[:, idx >= 0, :] = effects[:, idx[idx >= 0], :]
    unseen = idx < 0
    if unseen.any():
        if new_levels == "error":
            raise InputError(f"level {labels[unseen][0]!r} of {g.factor!r} was not in the fitted data", hint="use new_levels='sample' to predict for new groups")
        if new_levels == "sample":
            chol = np.linalg.cholesky(structured_cov(tree, g, draws) + 1e-12 * np.eye(K))
            for lab in sorted(set(labels[unseen])):
                draw = np.einsum("skj,sj->sk", chol, rng.standard_normal((S, K)))
                series[:, labels == lab, :] = draw[:, None, :]
    sd = stacked(tree, g.sd_names[0]) if draws is None else stacked(tree, g.sd_names[0])[draws]
    rho = stacked(tree, g.rho_name) if draws is None else stacked(tree, g.rho_name)[draws]
    T = g.times
    out = np.zeros((S, len(labels)))
    for i in range(len(labels)):
        if unseen[i] and new_levels == "zero":
            continue
        k = int(np.searchsorted(T, t[i]))
        if k < K and np.isclose(T[k], t[i]):
            out[:, i] = series[:, i, k]
            continue
        # off the fitted grid: condition on the neighbours a (before) and b (after)
        a, b = (k - 1 if k > 0 else None), (k if k < K else None)
        r_a = _rho_power(rho, (t[i] - T[a]) / g.unit) if a is not None else None
        r_b = _rho_power(rho, (T[b] - t[i]) / g.unit) if b is not None else None
        if a is not None and b is not None:
            r_ab = _rho_power(rho, (T[b] - T[a]) / g.unit)
            det = 1.0 - r_ab**2
            w_a = (r_a - r_ab * r_b) / det
            w_b = (r_b - r_ab * r_a) / det
            mean = w_a * series[:, i, a] + w_b * series[:, i, b]
            var = sd**2 * (1.0 - (w_a * r_a + w_b * r_b))
        else:
            r, j = (r_a, a) if a is not None else (r_b, b)
            mean, var = r * series[:, i, j], sd**2 * (1.0 - r**2)
        if not np.all(np.isfinite(mean)):
            raise InputError(f"{g.term.label}: time {t[i]:g} is a fraction of a step ({g.unit:g}) away from the fitted times, "
                             "and some posterior draws of the correlation are negative",
                             hint=f"predict at times a whole number of steps of {g.unit:g} from the fitted ones")
        out[:, i] = mean + np.sqrt(np.maximum(var, 0.0)) * rng.standard_normal(S)
    return out


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
        if new_levels == "sample" and g.cov and K > 1:  # cs(): the structured covariance
            chol = np.linalg.cholesky(structured_cov(tree, g, draws) + 1e-12 * np.eye(K))
            for lab in sorted(set(labels[unseen])):
                draw = np.einsum("skj,sj->sk", chol, rng.standard_normal((S, K)))
                b[:, labels == lab, :] = draw[:, None, :]
        elif new_levels == "sample":
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
    if formula.response is not None:  # cens(), trunc(), weights() columns: not predictors
        needed -= formula.response.term_columns
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


def inverse_link(family, eta: np.ndarray, tree=None, draws: slice | None = None) -> np.ndarray:
    """Mean of the response given the linear predictor (lognormal: the median exp(eta)).

    Never overflows: the logistic function is scipy's expit, and log-link rates are computed
    from eta clipped at :data:`~hlm_cli.model.families.MAX_LOG_RATE` (about 1e300).
    A cumulative (ordinal) family's mean is the expected category code E[y] (1..K), which
    needs the thresholds: pass the posterior ``tree`` (and the ``draws`` slice of ``eta``)."""
    if family.mean_aux is not None:
        if tree is None:
            raise ValueError(f"the {family.name} family's mean needs the posterior draws (tree=)")
        return family.mean_aux(eta, lambda name: aux_draws(tree, name, eta.shape[0], draws))
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
    terms = new_row_terms(ctx.built.design, frame, eta.shape[1])
    dpar = None
    if getattr(ctx.built.design, "dpar", None) is not None:
        if frame is None and eta.shape[1] != ctx.built.design.n:
            raise ValueError("response_draws needs the new rows (frame=) for a model with a zi/hu formula")
        dpar = {ctx.built.design.dpar.prefix: dpar_draws(ctx.tree, ctx.built, None if frame is None else _prepare_new(ctx, frame))}
    return simulate(ctx.built.family, ctx.tree, eta, trials=trials, se=se, seed=seed, sigma=sigma, terms=terms, dpar=dpar)


def new_row_terms(design, frame: pd.DataFrame | None, n: int):
    """Response terms for predicting ``n`` rows: the fitted rows' own, or for new rows the
    truncation bounds (numbers, or columns present in ``frame``) and precision weights (a
    column present in ``frame``, else 1: a unit-weight observation). Censoring and
    log-likelihood weights do not change a prediction (draws are of the uncensored response)."""
    from dataclasses import replace

    from hlm_cli.formula.response_terms import ResponseTerms

    terms = getattr(design, "terms", None)
    if terms is None:
        return None
    if frame is None and n == design.n:
        return replace(terms, cens=None, y2=None)
    resp = design.formula.response

    def column(spec, fill):
        if spec is None:
            return None
        try:
            return np.full(n, float(spec))
        except ValueError:
            pass
        if frame is not None and spec in frame.columns:
            return pd.to_numeric(frame[spec], errors="coerce").fillna(fill).to_numpy(dtype=float)
        return None

    lb, ub = column(resp.trunc_lb, -np.inf), column(resp.trunc_ub, np.inf)
    w = column(resp.weights, 1.0) if resp.weights_type == "precision" else None
    if lb is None and ub is None and w is None:
        return None
    if lb is not None or ub is not None:
        lb = np.full(n, -np.inf) if lb is None else lb
        ub = np.full(n, np.inf) if ub is None else ub
    return ResponseTerms(lb=lb, ub=ub, weights=w, weights_type="precision")


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
             terms=None, dpar=None) -> np.ndarray:
    """Draws from the likelihood given linear-predictor draws (the posterior predictive).

    ``sigma`` overrides the residual SD draws (per-row SDs of a sigma formula for new rows);
    ``dpar`` ({"zi": (S, n)}) those of a zi/hu formula.
    ``terms`` (:class:`~hlm_cli.formula.response_terms.ResponseTerms` of the rows): precision
    weights divide sigma by sqrt(w), truncation bounds truncate the draws; censoring does not
    apply (the draws are of the uncensored response), nor do log-likelihood weights.
    """
    rng = rng if rng is not None else np.random.default_rng(seed)
    S = eta.shape[0]

    def aux(name):
        if name == "sigma" and sigma is not None:
            return sigma
        if dpar and name in dpar:
            return dpar[name]
        return aux_draws(tree, name, S, draws)

    mu = None if fam.mean_aux is not None else inverse_link(fam, eta)  # an ordinal simulator uses the thresholds
    sigma = aux("sigma")
    if se is not None:
        sigma = np.sqrt(se[None, :] ** 2 + (sigma**2 if sigma is not None else 0.0))
    if terms is not None and terms.precision_weights is not None and sigma is not None:
        sigma = sigma / np.sqrt(np.asarray(terms.precision_weights, dtype=float))[None, :]
    if terms is not None and (terms.lb is not None or terms.ub is not None):
        from hlm_cli.model.censoring import truncate_draws

        return truncate_draws(rng, lambda: fam.simulate(rng, eta, mu, sigma, aux, trials), terms.lb, terms.ub)
    return fam.simulate(rng, eta, mu, sigma, aux, trials)


__all__ = ["RunContext", "stacked", "beta_draws", "linear_predictor", "eta_draws", "inverse_link", "response_draws", "simulate", "aux_draws", "dpar_draws", "poisson"]
