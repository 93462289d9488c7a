"""Censored, truncated and weighted likelihoods (the response terms ``cens()``, ``trunc()``,
``weights()``; docs/response-terms.md).

brms's definitions (Stan code of brms 2.18, ``stan_log_lik_cens`` and ``stan_log_lik_trunc``),
with F the family's CDF given the row's linear predictor and family parameters:

==========================  ==============================================================
uncensored (0, "none")      log f(y)
right-censored (1)          log(1 - F(y))          P(Y > y)
left-censored (-1)          log F(y)               P(Y <= y)
interval-censored (2)       log(F(y2) - F(y))      P(y < Y <= y2)
trunc(lb =, ub =)           minus log(F(ub) - F(lb)); for counts F(lb - 1), so that lb and
                            ub themselves can be observed
weights(w, type="loglik")   w times the row's log-likelihood (brms, glmmTMB)
weights(w) (precision)      sigma_i = sigma / sqrt(w_i): Var(y_i) = sigma^2 / w_i (lme4)
==========================  ==============================================================

For continuous families "<" and "<=" are the same; for counts these are brms's (Stan's
``lccdf`` is P(Y > y)). A right-censored count y = 5 says "more than 5".

:data:`CDFS` is the table of numpy log-CDFs and log-survival functions keyed by family
name, for the pointwise log-likelihood (LOO); the PyMC model uses PyMC's own ``logcdf`` /
``logccdf`` of the family's distribution, so every family whose row here exists can be
censored or truncated (:func:`supports`). Families without a row (bernoulli, binomial, beta)
are refused with a hint. ``tests/unit/test_censoring.py`` checks each row against PyMC.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hlm_cli.errors import InputError


@dataclass(frozen=True)
class Cdf:
    """log F and log(1 - F) of a family, in numpy: ``(x, eta, sigma, aux) -> (S, n)``."""

    logcdf: Callable
    logsf: Callable
    lower: float = -np.inf  # the support's lower end: a bound at or below it truncates nothing
    discrete: bool = False


def _norm(fn):
    def f(x, eta, sigma, aux):
        from scipy import stats

        return getattr(stats.norm, fn)(x, eta, sigma)
    return f


def _t(fn):
    def f(x, eta, sigma, aux):
        from scipy import stats

        return getattr(stats.t, fn)(x, aux("nu"), eta, sigma)
    return f


def _lognormal(fn):
    def f(x, eta, sigma, aux):
        from scipy import stats

        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = getattr(stats.norm, fn)(np.log(np.where(x > 0, x, 1.0)), eta, sigma)
        return np.where(x > 0, out, -np.inf if fn == "logcdf" else 0.0)
    return f


def _gamma(fn):  # shape alpha, scale exp(eta) / alpha (hlm_cli.model.families)
    def f(x, eta, sigma, aux):
        from scipy import stats

        alpha = aux("alpha")
        return getattr(stats.gamma, fn)(x, alpha, scale=np.exp(eta) / alpha)
    return f


def _poisson(fn):
    def f(x, eta, sigma, aux):
        from scipy import stats

        return getattr(stats.poisson, fn)(x, np.exp(eta))
    return f


def _negbinomial(fn):  # NB(n = alpha, p = alpha / (alpha + mu))
    def f(x, eta, sigma, aux):
        from scipy import stats

        alpha = aux("alpha")
        return getattr(stats.nbinom, fn)(x, alpha, alpha / (alpha + np.exp(eta)))
    return f


def _weibull(fn):  # shape k, scale exp(eta) / Gamma(1 + 1/k) (brms: exp(eta) is the mean)
    def f(x, eta, sigma, aux):
        from scipy.special import gammaln

        k = aux("shape")
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            h = np.exp(k * (np.log(np.where(x > 0, x, 1.0)) - eta + gammaln(1 + 1 / k)))  # (x / scale)^k
            out = -h if fn == "logsf" else np.log(-np.expm1(-h))
        return np.where(x > 0, out, 0.0 if fn == "logsf" else -np.inf)
    return f


def _exponential(fn):  # rate exp(-eta)
    def f(x, eta, sigma, aux):
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            h = np.maximum(x, 0.0) * np.exp(-eta)
            out = -h if fn == "logsf" else np.log(-np.expm1(-h))
        return np.where(x > 0, out, 0.0 if fn == "logsf" else -np.inf)
    return f


def _pair(make, **kw) -> Cdf:
    return Cdf(make("logcdf"), make("logsf"), **kw)


# Keyed by family name. weibull and exponential follow the rows of the families branch
# (issue 19: exp(eta) is the mean; weibull's parameter is ``shape``); a row whose family is
# not in hlm_cli.model.families.FAMILIES is inert (supports() needs both).
CDFS: dict[str, Cdf] = {
    "gaussian": _pair(_norm),
    "t": _pair(_t),
    "lognormal": _pair(_lognormal, lower=0.0),
    "gamma": _pair(_gamma, lower=0.0),
    "poisson": _pair(_poisson, lower=0.0, discrete=True),
    "negativebinomial": _pair(_negbinomial, lower=0.0, discrete=True),
    "weibull": _pair(_weibull, lower=0.0),
    "exponential": _pair(_exponential, lower=0.0),
}

# families whose residual SD is a scale that precision weights divide (Var = sigma^2 / w)
PRECISION_FAMILIES = ("gaussian", "t", "lognormal")


def supports(family_name: str) -> bool:
    from hlm_cli.model.families import FAMILIES

    return family_name in CDFS and family_name in FAMILIES


def supported() -> list[str]:
    """The families that can be censored or truncated."""
    return sorted(f for f in CDFS if supports(f))


def check_family(resp, family) -> None:
    """Refuse response terms the family cannot take, before any data is read."""
    name = family.name
    if (resp.cens is not None or resp.trunc_lb is not None or resp.trunc_ub is not None) and not supports(name):
        what = "cens()" if resp.cens is not None else "trunc()"
        raise InputError(
            f"{what} needs the family's CDF, and hlm has none for the {name} family",
            hint="censoring and truncation work with " + ", ".join(supported()),
        )
    if resp.weights is not None and resp.weights_type == "precision" and name not in PRECISION_FAMILIES:
        raise InputError(
            f"weights({resp.weights}) are precision weights (Var(y) = sigma^2 / w, as in lme4), "
            f"which the {name} family has no residual SD to divide",
            hint=f'for frequency-like weights that multiply each row\'s log-likelihood (brms, glmmTMB) write '
                 f'weights({resp.weights}, type = "loglik")',
        )
    if resp.weights is not None and resp.se is not None:
        raise InputError("se() and weights() cannot be combined", hint="use one of them")


def logdiffexp(a, b):
    """log(exp(a) - exp(b)) for a >= b, without overflow; -inf where a == b."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return a + np.log(-np.expm1(np.minimum(b - a, 0.0)))


@dataclass(frozen=True)
class Bounds:
    """Numpy arrays the likelihood needs, with safe values where a case does not apply
    (so that an unused branch of a ``switch`` never has an infinite or NaN gradient)."""

    cens: np.ndarray | None  # codes -1, 0, 1, 2
    y2: np.ndarray | None
    lb: np.ndarray | None  # lb (lb - 1 for counts) where lb_on, else y
    lb_on: np.ndarray | None
    ub: np.ndarray | None
    ub_on: np.ndarray | None
    loglik_w: np.ndarray | None

    @property
    def active(self) -> bool:
        return any(a is not None for a in (self.cens, self.lb_on, self.ub_on, self.loglik_w))


def bounds(terms, y: np.ndarray, family_name: str) -> Bounds:
    """The :class:`Bounds` of a design's :class:`~hlm_cli.formula.response_terms.ResponseTerms`."""
    y = np.asarray(y, dtype=float)
    if terms is None:
        return Bounds(None, None, None, None, None, None, None)
    cdf = CDFS.get(family_name)
    cens = y2 = lb = lb_on = ub = ub_on = None
    if terms.censored:
        cens = np.asarray(terms.cens, dtype=np.int64)
        y2 = np.asarray(terms.y2, dtype=float) if terms.y2 is not None else y + 1.0
    if terms.lb is not None and cdf is not None:
        raw = np.asarray(terms.lb, dtype=float) - (1.0 if cdf.discrete else 0.0)
        on = np.isfinite(raw) & (raw > cdf.lower - (1.0 if cdf.discrete else 0.0))
        if on.any():
            lb, lb_on = np.where(on, raw, y), on.astype(float)
    if terms.ub is not None and cdf is not None:
        raw = np.asarray(terms.ub, dtype=float)
        on = np.isfinite(raw)
        if on.any():
            ub, ub_on = np.where(on, raw, y), on.astype(float)
    return Bounds(cens, y2, lb, lb_on, ub, ub_on, terms.loglik_weights)


def adjust(base: np.ndarray, y: np.ndarray, family_name: str, b: Bounds, eta, sigma, aux) -> np.ndarray:
    """The row log-likelihoods ``base`` (S, n) = log f(y) with censoring, truncation and
    log-likelihood weights applied (numpy; see the module table)."""
    if not b.active:
        return base
    out = base
    cdf = CDFS.get(family_name)
    if b.cens is not None:
        c = b.cens[None, :]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out = np.where(c == 1, cdf.logsf(y, eta, sigma, aux), out)
            out = np.where(c == -1, cdf.logcdf(y, eta, sigma, aux), out)
            if np.any(c == 2):
                y2 = b.y2[None, :]
                out = np.where(c == 2, logdiffexp(cdf.logcdf(y2, eta, sigma, aux), cdf.logcdf(y, eta, sigma, aux)), out)
    if b.lb_on is not None or b.ub_on is not None:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            top = np.zeros_like(out) if b.ub_on is None else np.where(b.ub_on[None, :] > 0, cdf.logcdf(b.ub[None, :], eta, sigma, aux), 0.0)
            low = np.full_like(out, -np.inf) if b.lb_on is None else np.where(b.lb_on[None, :] > 0, cdf.logcdf(b.lb[None, :], eta, sigma, aux), -np.inf)
            if b.ub_on is None:  # lb only: log(1 - F(lb)) is more accurate in the upper tail
                norm = np.where(b.lb_on[None, :] > 0, cdf.logsf(b.lb[None, :], eta, sigma, aux), 0.0)
            else:
                norm = logdiffexp(top, low)
        out = out - norm
    if b.loglik_w is not None:
        out = out * b.loglik_w[None, :]
    return out


# ------------------------------------------------------------------------------ the PyMC side


class _Unregistered:
    """``pm`` for a family row's ``pymc`` function, whose distributions come back unregistered
    (``pm.Normal.dist(...)``): the row's own parameterization, without a second observed
    variable, so that its ``logcdf`` / ``logccdf`` can be taken."""

    def __init__(self, pm):
        self._pm = pm

    def __getattr__(self, name):
        obj = getattr(self._pm, name)
        if isinstance(obj, type) and issubclass(obj, self._pm.Distribution):
            return lambda _name, *args, observed=None, dims=None, **kw: obj.dist(*args, **kw)
        return obj


def correction(pm, pt, family, eta, par, y, data, b: Bounds):
    """A PyTensor (n,) term that turns the family's log density at y (already in the model as
    the observed variable) into the censored / truncated / weighted log-likelihood."""
    dist = family.pymc(_Unregistered(pm), pt, "_unregistered", eta, par)
    logp = pm.logp(dist, y)
    lp = logp
    if b.cens is not None:
        c = data("_cens", b.cens)
        codes = set(np.unique(b.cens).tolist())
        if 1 in codes:
            lp = pt.switch(pt.eq(c, 1), pm.logccdf(dist, y), lp)
        if -1 in codes:
            lp = pt.switch(pt.eq(c, -1), pm.logcdf(dist, y), lp)
        if 2 in codes:
            y2 = data("_cens_y2", b.y2)
            lp = pt.switch(pt.eq(c, 2), pm.math.logdiffexp(pm.logcdf(dist, y2), pm.logcdf(dist, y)), lp)
    if b.lb_on is not None or b.ub_on is not None:
        if b.ub_on is None:
            lb_on = data("_trunc_lb_on", b.lb_on)
            norm = pt.switch(lb_on > 0, pm.logccdf(dist, data("_trunc_lb", b.lb)), 0.0)
        else:
            ub_on = data("_trunc_ub_on", b.ub_on)
            top = pt.switch(ub_on > 0, pm.logcdf(dist, data("_trunc_ub", b.ub)), 0.0)
            if b.lb_on is None:
                norm = top
            else:
                lb_on = data("_trunc_lb_on", b.lb_on)
                low = pt.switch(lb_on > 0, pm.logcdf(dist, data("_trunc_lb", b.lb)), -np.inf)
                norm = pm.math.logdiffexp(top, low)
        lp = lp - norm
    if b.loglik_w is not None:
        lp = lp * data("_weights", b.loglik_w)
    return lp - logp


# ------------------------------------------------------------------------------ simulation


def truncate_draws(rng, draw: Callable[[], np.ndarray], lb: np.ndarray | None, ub: np.ndarray | None,
                   tries: int = 200) -> np.ndarray:
    """Draws from a truncated distribution by redrawing those outside [lb, ub] (rejection);
    after ``tries`` rounds the rest are clipped to the bounds (a truncation that leaves almost
    no mass; the fit's log-likelihood is exact regardless)."""
    out = draw()
    lo = -np.inf if lb is None else np.asarray(lb, dtype=float)[None, :]
    hi = np.inf if ub is None else np.asarray(ub, dtype=float)[None, :]
    bad = (out < lo) | (out > hi)
    for _ in range(tries):
        if not bad.any():
            break
        new = draw()
        out = np.where(bad, new, out)
        bad = (out < lo) | (out > hi)
    return np.clip(out, lo, hi) if bad.any() else out
