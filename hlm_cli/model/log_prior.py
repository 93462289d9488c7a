"""The log prior density of every posterior draw, for power-scaling sensitivity.

``arviz_stats.psense_summary`` (Kallioinen et al. 2024; R's priorsense) reweights the
posterior draws by ``p(theta)^(alpha - 1)`` for alpha near 1 and measures how much each
parameter's posterior moves: it needs ``log p(theta_s)`` for every draw ``s``. As in brms's
``lprior``, that is the sum of the priors hlm puts on the model's top-level parameters (the
population coefficients, the centered intercept, group SDs, correlation matrices and family
parameters, each prior exactly as run.json records it), not the group-level effects'
``N(0, sd)`` (they are part of the hierarchical model, not a choice of prior). The densities
are written in numpy up to their constants (milliseconds; compiling PyMC's log prior would
cost a second per fit, importing scipy.stats most of one). Each prior gives one variable of
the ``log_prior`` group, named like its run.json key, so a user can power-scale one prior at
a time.

Priors are placed where the model places them (:mod:`hlm_cli.model.build`): the intercept's on
the *centered* intercept (``Intercept + sum_j mean(x_j) b_j``), a slope's on its coefficient,
``LKJ(eta)`` on the correlation matrix (``(eta - 1) log det R`` up to a constant), flat priors
contribute nothing (power-scaling them changes nothing).
"""

from __future__ import annotations

import numpy as np

from hlm_cli.model.build import column_means
from hlm_cli.model.priors import Prior


def prior_logpdf(prior: Prior, x: np.ndarray) -> np.ndarray:
    """log density of ``prior`` at ``x`` (any shape) up to an additive constant, in numpy.

    PyMC's parameterizations; the normalizing constants are left out (power-scaling weights
    are normalized, so only differences between draws matter), which keeps this free of
    scipy.stats (seconds to import in a fitting process). -inf outside the support.
    """
    kw = prior.kwargs
    d = prior.dist
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if d in ("Flat", "HalfFlat"):
            out = np.zeros_like(x)
        elif d in ("Normal", "HalfNormal"):
            out = -0.5 * ((x - kw.get("mu", 0.0)) / kw["sigma"]) ** 2
        elif d in ("StudentT", "HalfStudentT"):
            nu = kw["nu"]
            out = -0.5 * (nu + 1.0) * np.log1p(((x - kw.get("mu", 0.0)) / kw["sigma"]) ** 2 / nu)
        elif d == "Cauchy":
            out = -np.log1p(((x - kw["alpha"]) / kw["beta"]) ** 2)
        elif d == "HalfCauchy":
            out = -np.log1p((x / kw["beta"]) ** 2)
        elif d == "Laplace":
            out = -np.abs(x - kw["mu"]) / kw["b"]
        elif d == "Uniform":
            out = np.where((x >= kw["lower"]) & (x <= kw["upper"]), 0.0, -np.inf)
        elif d == "Exponential":
            out = -kw["lam"] * x
        elif d == "Gamma":
            out = (kw["alpha"] - 1.0) * np.log(x) - kw["beta"] * x
        elif d == "InverseGamma":
            out = -(kw["alpha"] + 1.0) * np.log(x) - kw["beta"] / x
        elif d == "LogNormal":
            out = -np.log(x) - 0.5 * ((np.log(x) - kw["mu"]) / kw["sigma"]) ** 2
        elif d == "Beta":
            out = (kw["alpha"] - 1.0) * np.log(x) + (kw["beta"] - 1.0) * np.log1p(-x)
        else:
            raise ValueError(f"no log density for prior {d}")  # every prior the parser accepts is above
        if d in POSITIVE:
            out = np.where(x >= 0, out, -np.inf)
        if d == "Beta":
            out = np.where((x >= 0) & (x <= 1), out, -np.inf)
    return np.where(np.isnan(out), -np.inf, out)


POSITIVE = frozenset({"HalfFlat", "HalfNormal", "HalfStudentT", "HalfCauchy", "Exponential", "Gamma",
                      "InverseGamma", "LogNormal"})


def _draws(post, name: str) -> np.ndarray:
    """(chain, draw, ...) values of posterior variable ``name``."""
    return np.asarray(post[name].values, dtype=float)


def _population(post, design) -> dict[str, np.ndarray]:
    """label -> (chain, draw) draws of every population coefficient, by its prior's key."""
    out: dict[str, np.ndarray] = {}
    for term, sl in design.fixed_slices.items():
        labels = design.x_labels[sl]
        for j, lab in enumerate(labels):
            if lab in post:
                out[lab] = _draws(post, lab)
            elif term in post:
                v = _draws(post, term)
                out[lab] = v if v.ndim == 2 else v[..., j]
    return out


def _centered(values: dict[str, np.ndarray], X: np.ndarray, labels: list[str], prefix: str = "") -> np.ndarray | None:
    """The centered intercept's draws: intercept + sum_j mean(x_j) b_j (None: not centered)."""
    means = column_means(X, labels)
    key = f"{prefix}Intercept"
    if key not in values:
        return None
    out = values[key].copy()
    if means is None:
        return out
    for j, lab in enumerate(labels):
        if lab != "Intercept" and f"{prefix}{lab}" in values:
            out = out + means[j] * values[f"{prefix}{lab}"]
    return out


def _lkj(post, g, eta: float) -> np.ndarray:
    """(chain, draw) log LKJ(eta) density of group term ``g``'s correlation matrix, up to a constant."""
    K = len(g.columns)
    first = None
    R = None
    for a in range(K):
        for b in range(a + 1, K):
            v = _draws(post, f"cor({g.columns[a]},{g.columns[b]}|{g.factor})")
            if R is None:
                first = v
                R = np.broadcast_to(np.eye(K), v.shape + (K, K)).copy()
            R[..., a, b] = R[..., b, a] = v
    if R is None:
        return np.zeros((1, 1))
    sign, logdet = np.linalg.slogdet(R)
    with np.errstate(invalid="ignore"):
        return np.where(sign > 0, (eta - 1.0) * logdet, -np.inf) + 0.0 * first


def log_prior(tree, built) -> dict[str, np.ndarray]:
    """Prior name (run.json's key) -> (chain, draw) log prior density of the draws.

    Priors whose parameter is not in the posterior (none, for a complete run) are skipped.
    """
    post = tree["posterior"]
    design = built.design
    priors = built.priors
    pop = _population(post, design)
    out: dict[str, np.ndarray] = {}
    for name, prior in priors.items():
        if prior.dist in ("Flat", "HalfFlat"):
            continue
        if name == "Intercept" and "Intercept" in pop:
            x = _centered(pop, design.X, design.x_labels)
        elif name in pop:
            x = pop[name]
        elif name.startswith("cor("):
            g = next((g for g in design.groups if f"cor({g.factor})" == name), None)
            if g is not None:
                out[name] = _lkj(post, g, float(prior.kwargs["eta"]))
            continue
        elif (sub := _regression_of(design, name)) is not None:
            x = _regression_coef(post, sub, name)
        elif name in post:
            x = _draws(post, name)
        else:
            x = None
        if x is None or x.ndim < 2:
            continue
        lp = prior_logpdf(prior, x)  # a vector (an ordinal model's thresholds): one prior per element
        out[name] = lp.reshape(lp.shape[0], lp.shape[1], -1).sum(axis=2)
    return out


def _regression_of(design, name: str):
    """The --sigma-formula or --zi/--hu-formula design whose coefficient ``name`` is, or None."""
    for sub in (design.sigma, getattr(design, "dpar", None)):
        if sub is not None and name.startswith(f"{sub.prefix}_"):
            return sub
    return None


def _regression_coef(post, sub, name: str) -> np.ndarray | None:
    """Draws of a distributional-regression coefficient ``PREFIX_LABEL`` (``sigma_x``,
    ``zi_Intercept``); the intercept is the centered one, where build.py puts its prior."""
    values: dict[str, np.ndarray] = {}
    for var, labels in sub.names().items():
        if var not in post:
            continue
        v = _draws(post, var)
        for j, lab in enumerate(labels):
            values[f"{sub.prefix}_{lab}"] = v if v.ndim == 2 else v[..., j]
    if name == f"{sub.prefix}_Intercept":
        return _centered(values, sub.X, list(sub.labels), prefix=f"{sub.prefix}_")
    return values.get(name)


def log_prior_dataset(tree, built):
    """The ``log_prior`` group as an xarray Dataset (one variable per prior)."""
    import xarray as xr

    post = tree["posterior"]
    coords = {"chain": post["chain"].values, "draw": post["draw"].values}
    return xr.Dataset({k: (("chain", "draw"), v) for k, v in log_prior(tree, built).items()}, coords=coords)
