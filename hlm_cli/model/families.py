"""Response families as rows of one table (as Bambi's ``defaults/families.py``), not ``match`` chains.

Everything hlm does differently per family is a field of its :class:`Family` row:

==============  ==========================================================================
``link``        the link's name (identity, logit, log), recorded in run.json
``mean``        inverse link in numpy: the response's mean (lognormal: its median) from eta
``params``      auxiliary (family) parameters, each with its default prior (:class:`Aux`)
``pymc``        the PyMC likelihood (used by :mod:`hlm_cli.model.build`)
``logpdf``      the numpy log density, for LOO (:mod:`hlm_cli.model.likelihood`)
``simulate``    draws of new responses, for PPC and predictions (:mod:`hlm_cli.model.linpred`)
``support``     the values the response may take, and how to say that it does not
``scaled``      whether priors scale with sd(y) (gaussian, t), as Bambi's PriorScaler
``trials``      whether it takes a number of trials (binomial, beta_binomial)
``dpar``        the parameter ``--zi-formula`` / ``--hu-formula`` models (zi, hu), if any
==============  ==========================================================================

Another link (``--link``, :func:`with_link`) is the same row with its functions given eta
mapped onto the default link's scale (:data:`LINK_MAPS`).

A new family is one more row: the model builder, the log-likelihood, the simulator and the
response check look the family up here and never branch on its name. The names a user may
write (and their aliases) are :mod:`hlm_cli.formula.families`, below the spec; a unit test
keeps the two in step.

Parameterizations follow PyMC: NegativeBinomial(mu, alpha) = NB(n = alpha, p = alpha /
(alpha + mu)); Gamma(mu, alpha) has shape alpha and scale mu / alpha; Beta(mu, kappa) =
Beta(mu * kappa, (1 - mu) * kappa). Log-link log densities are written in eta itself rather
than ``exp(eta)``, so a draw with a huge rate (an observation-level effect in its tail, eta
= 50 or 800) gives a finite (very negative) value instead of an overflow or an error.

The functions of a row take the pieces every family shares, computed once by their caller:

- ``pymc(pm, pt, name, eta, par, **kw)``: ``par`` maps ``"sigma"`` (the residual SD, with
  known standard errors already added), each auxiliary parameter and ``"trials"`` (a tensor,
  or None) to what the likelihood needs; ``kw`` holds ``observed`` and ``dims``.
- ``logpdf(y, eta, sigma, aux, trials)``: ``y`` (1, n), ``eta`` (S, n), ``sigma`` (S, 1) or
  (S, n) or None, ``aux(name)`` the (S, 1) draws of an auxiliary parameter.
- ``simulate(rng, eta, mu, sigma, aux, trials)``: ``mu`` is ``mean(eta)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hlm_cli.errors import ConfigError, InputError
from hlm_cli.formula.families import ALIASES, LINKS, NAMES, check_link, family_key, family_link  # noqa: F401 (re-exported)
from hlm_cli.model.priors import Prior, Scale

# Log-rates above this are simulated at exp(MAX_LOG_RATE) (~1e300): exp() would overflow to
# inf. Such a draw is the model's own statement (an observation-level effect far in the
# tail), not an error; the log-likelihood uses eta itself.
MAX_LOG_RATE = 690.0
# numpy's Poisson sampler refuses rates above ~9.2e18 ("lam value too large"); from this rate
# on counts are drawn from the normal approximation N(lam, lam), rounded and floored at 0,
# whose error (relative skewness 1/sqrt(lam) <= 1e-4) is far below Monte Carlo error.
NORMAL_APPROX_RATE = 1e8


@dataclass(frozen=True)
class Aux:
    """An auxiliary (family) parameter and its default prior, given the response's scale."""

    name: str
    default: Callable[[Scale], Prior]


@dataclass(frozen=True)
class Support:
    """The values a response may take: ``bad(y)`` marks those outside (None: any finite number)."""

    name: str  # real, positive, unit, binary, count, binomial
    bad: Callable[[np.ndarray], np.ndarray] | None = None
    need: str = ""  # what the family needs, for the error message
    hint: str = ""  # what to do instead
    discrete: bool = False


@dataclass(frozen=True)
class Family:
    """One response family: a row of :data:`FAMILIES` (see the module docstring)."""

    name: str
    link: str  # identity, logit, log
    mean: Callable[[np.ndarray], np.ndarray]  # inverse link in numpy (never overflows)
    params: tuple[Aux, ...]  # auxiliary parameters with their default priors
    pymc: Callable  # (pm, pt, name, eta, par, **kw) -> the observed PyMC variable
    logpdf: Callable  # (y, eta, sigma, aux, trials) -> (S, n) log density
    simulate: Callable  # (rng, eta, mu, sigma, aux, trials) -> (S, n) draws
    domain: Support
    scaled: bool  # True: priors scale with sd(y) (gaussian, t), as Bambi's PriorScaler
    description: str
    trials: bool = False  # takes a number of trials (cbind(), p(), trials())
    # ordinal (cumulative) rows: no population intercept, K - 1 ordered thresholds named
    # "Intercept" (summary rows Intercept[1], ...); the mean needs them: mean_aux(eta, aux)
    ordinal: bool = False
    mean_aux: Callable | None = None

    # the distributional parameter that --zi-formula / --hu-formula models (logit scale), if any
    dpar: str | None = None

    def __reduce__(self):
        # rows hold functions (lambdas among them): a row travels to another process (the
        # figure helper, batch workers) by name (and link) and is looked up in the table there
        return (get_family, (self.name, self.link))

    @property
    def aux(self) -> tuple[str, ...]:
        """The auxiliary parameters' names, e.g. ``("sigma",)``."""
        return tuple(a.name for a in self.params)

    @property
    def support(self) -> str:
        return self.domain.name

    @property
    def discrete(self) -> bool:
        return self.domain.discrete

    def default_prior(self, name: str, scale: Scale) -> Prior:
        """The default prior of auxiliary parameter ``name`` for a response of this ``scale``."""
        return next(a.default for a in self.params if a.name == name)(scale)


# --------------------------------------------------------------------------- shared pieces


def poisson(rng, lam: np.ndarray) -> np.ndarray:
    """Poisson draws (as floats) that never fail on a large or infinite rate.

    Rates below :data:`NORMAL_APPROX_RATE` use numpy's exact sampler; larger ones the normal
    approximation (rounded, >= 0); non-finite rates give inf (nan rates give nan).
    """
    lam = np.asarray(lam, dtype=float)
    big = ~(lam < NORMAL_APPROX_RATE)  # also nan and inf
    if not big.any():
        return rng.poisson(lam).astype(float)
    out = rng.poisson(np.where(big, 0.0, lam)).astype(float)
    with np.errstate(invalid="ignore", over="ignore"):
        lb = lam[big]
        approx = np.maximum(np.floor(lb + np.sqrt(lb) * rng.standard_normal(lb.shape) + 0.5), 0.0)
        out[big] = np.where(np.isposinf(lb), np.inf, approx)
    return out


def _identity(eta: np.ndarray) -> np.ndarray:
    return eta


def _expit(eta: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(eta)


def _rate(eta: np.ndarray) -> np.ndarray:
    """exp(eta), clipped at exp(MAX_LOG_RATE) (~1e300) so that it never overflows."""
    return np.exp(np.minimum(eta, MAX_LOG_RATE))


def _trials(trials, fallback):
    return fallback if trials is None else trials


SIGMA = Aux("sigma", lambda scale: Prior("HalfStudentT", (("nu", 4.0), ("sigma", scale.sigma))))
NU = Aux("nu", lambda scale: Prior("Gamma", (("alpha", 2.0), ("beta", 0.1))))
ALPHA = Aux("alpha", lambda scale: Prior("HalfCauchy", (("beta", 1.0),)))
KAPPA = Aux("kappa", lambda scale: Prior("HalfCauchy", (("beta", 1.0),)))


ZI = Aux("zi", lambda scale: Prior("Beta", (("alpha", 1.0), ("beta", 1.0))))
HU = Aux("hu", lambda scale: Prior("Beta", (("alpha", 1.0), ("beta", 1.0))))
# beta-binomial precision: wide on the log scale (median 10, 95% within 0.5-190); brms's Gamma(0.01, 0.01)
# piles its mass near 0 and pulls a well-identified precision down (docs/families.md)
PHI = Aux("phi", lambda scale: Prior("LogNormal", (("mu", 2.3), ("sigma", 1.5))))
# Weibull shape: 95% within 0.05-19, median 1 (the exponential); brms: Gamma(0.01, 0.01)
SHAPE = Aux("shape", lambda scale: Prior("LogNormal", (("mu", 0.0), ("sigma", 1.5))))


def _whole(y: np.ndarray) -> np.ndarray:
    return ~((y >= 0) & (np.mod(y, 1) == 0))


REAL = Support("real")
POSITIVE = Support("positive", lambda y: ~(y > 0), "values > 0", "use --family gaussian, or shift/transform the response")
UNIT = Support("unit", lambda y: ~((y > 0) & (y < 1)), "values strictly between 0 and 1",
               "use bernoulli for 0/1 data, or squeeze the values into (0, 1)")
BINARY = Support("binary", lambda y: ~np.isin(y, (0, 1)), "only 0 and 1", "use --family binomial for counts of successes", True)
COUNT = Support("count", _whole, "non-negative whole numbers", "use --family gaussian for continuous data", True)
SUCCESSES = Support("binomial", _whole, "non-negative whole numbers of successes",
                    "write the response as cbind(successes, failures) or p(successes, trials)", True)


# --------------------------------------------------------------------------- the rows' functions
# log densities: y (1, n), eta (S, n); scipy.stats is imported only where needed (0.7 s)


def _gaussian_logpdf(y, eta, sigma, aux, trials):
    z = (y - eta) / sigma
    return -0.5 * z * z - np.log(sigma) - 0.5 * np.log(2 * np.pi)


def _t_logpdf(y, eta, sigma, aux, trials):
    from scipy import stats

    return stats.t.logpdf(y, aux("nu"), eta, sigma)


def _lognormal_logpdf(y, eta, sigma, aux, trials):
    from scipy import stats

    return stats.norm.logpdf(np.log(y), eta, sigma) - np.log(y)


def _bernoulli_logpdf(y, eta, sigma, aux, trials):
    from scipy.special import log_expit

    return y * log_expit(eta) + (1 - y) * log_expit(-eta)


def _binomial_logpdf(y, eta, sigma, aux, trials):
    from scipy.special import gammaln, log_expit

    n = np.asarray(trials, dtype=float)[None, :] if trials is not None else 1.0
    return (gammaln(n + 1) - gammaln(y + 1) - gammaln(n - y + 1)
            + y * log_expit(eta) + (n - y) * log_expit(-eta))


def _poisson_logpdf(y, eta, sigma, aux, trials):  # y eta - exp(eta) - log y!
    from scipy.special import gammaln

    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(y > 0, y * eta, 0.0) - np.exp(eta) - gammaln(y + 1)


def _negativebinomial_logpdf(y, eta, sigma, aux, trials):  # log(alpha + mu) = logaddexp(log alpha, eta)
    from scipy.special import gammaln

    alpha = aux("alpha")
    log_am = np.logaddexp(np.log(alpha), eta)
    return (gammaln(y + alpha) - gammaln(alpha) - gammaln(y + 1)
            + alpha * (np.log(alpha) - log_am) + y * (eta - log_am))


def _gamma_logpdf(y, eta, sigma, aux, trials):  # shape alpha, rate alpha exp(-eta)
    from scipy.special import gammaln

    alpha = aux("alpha")
    with np.errstate(over="ignore"):
        return (alpha * np.log(alpha) - alpha * eta + (alpha - 1) * np.log(y)
                - alpha * y * np.exp(-eta) - gammaln(alpha))


def _beta_logpdf(y, eta, sigma, aux, trials):
    from scipy import stats

    kappa = aux("kappa")
    mu = _expit(eta)
    return stats.beta.logpdf(y, mu * kappa, (1 - mu) * kappa)


# simulators: draws of new responses given eta (S, n) and mu = mean(eta)


def _gaussian_sim(rng, eta, mu, sigma, aux, trials):
    return rng.normal(eta, sigma)


def _t_sim(rng, eta, mu, sigma, aux, trials):
    return eta + sigma * rng.standard_t(aux("nu"), size=eta.shape)


def _lognormal_sim(rng, eta, mu, sigma, aux, trials):
    return np.exp(rng.normal(eta, sigma))


def _bernoulli_sim(rng, eta, mu, sigma, aux, trials):
    return rng.binomial(1, mu).astype(float)


def _binomial_sim(rng, eta, mu, sigma, aux, trials):
    n = _trials(trials, np.ones(eta.shape[1]))
    return rng.binomial(np.asarray(n).astype(np.int64)[None, :], mu).astype(float)


def _poisson_sim(rng, eta, mu, sigma, aux, trials):
    return poisson(rng, mu)


def _negativebinomial_sim(rng, eta, mu, sigma, aux, trials):
    alpha = aux("alpha")
    return poisson(rng, rng.gamma(alpha, mu / alpha))


def _gamma_sim(rng, eta, mu, sigma, aux, trials):
    alpha = aux("alpha")
    return rng.gamma(alpha, mu / alpha)


def _beta_sim(rng, eta, mu, sigma, aux, trials):
    kappa = aux("kappa")
    return rng.beta(mu * kappa, (1 - mu) * kappa)


# PyMC likelihoods: par holds "sigma" (with known SEs added), the auxiliary parameters, "trials"


def _gaussian_pymc(pm, pt, name, eta, par, **kw):
    return pm.Normal(name, mu=eta, sigma=par["sigma"], **kw)


def _t_pymc(pm, pt, name, eta, par, **kw):
    return pm.StudentT(name, nu=par["nu"], mu=eta, sigma=par["sigma"], **kw)


def _lognormal_pymc(pm, pt, name, eta, par, **kw):
    return pm.LogNormal(name, mu=eta, sigma=par["sigma"], **kw)


def _bernoulli_pymc(pm, pt, name, eta, par, **kw):
    return pm.Bernoulli(name, logit_p=eta, **kw)


def _binomial_pymc(pm, pt, name, eta, par, **kw):
    return pm.Binomial(name, n=_trials(par.get("trials"), 1), logit_p=eta, **kw)


def _poisson_pymc(pm, pt, name, eta, par, **kw):
    return pm.Poisson(name, mu=pt.exp(eta), **kw)


def _negativebinomial_pymc(pm, pt, name, eta, par, **kw):
    return pm.NegativeBinomial(name, mu=pt.exp(eta), alpha=par["alpha"], **kw)


def _gamma_pymc(pm, pt, name, eta, par, **kw):
    mu = pt.exp(eta)
    return pm.Gamma(name, mu=mu, sigma=mu / pt.sqrt(par["alpha"]), **kw)


def _beta_pymc(pm, pt, name, eta, par, **kw):
    mu = pm.math.invlogit(eta)
    return pm.Beta(name, alpha=mu * par["kappa"], beta=(1 - mu) * par["kappa"], **kw)


# --------------------------------------------------------------------------- ordinal (cumulative)
# P(y <= k) = F(c_k - eta), k = 1..K-1, as ordinal::clmm and brms's cumulative(); y is coded
# 1..K (hlm_cli.model.ordinal maps the user's levels to these codes); the K - 1 thresholds
# are the posterior variable "Intercept" (ordered), so the summary reads Intercept[1], ...

# The thresholds' default prior: StudentT(3, 0, 2.5) for each (brms's default too). On the
# logit scale 2.5 is wide: thresholds of +-5 put < 1% of the mass beyond them; a heavy tail
# lets a rare extreme category sit far out. The ordered transform makes them increasing.
CUTPOINTS = Aux("Intercept", lambda scale: Prior("StudentT", (("nu", 3.0), ("mu", 0.0), ("sigma", 2.5))))
CUT_BIG = 1e4  # stands in for -inf/+inf as c_0 and c_K (finite values keep gradients finite)


def _ordinal_codes_bad(y: np.ndarray) -> np.ndarray:
    return ~((y >= 1) & (np.mod(y, 1) == 0))


ORDERED = Support("ordinal", _ordinal_codes_bad, "ordered categories coded 1..K",
                  "give the order of text levels with --levels y=low,mid,high", True)


def _log_cdf(link: str):
    from scipy.special import log_expit, log_ndtr

    return log_expit if link == "logit" else log_ndtr


def _log1mexp(x):
    """log(1 - exp(x)) for x <= 0 (Maechler's two branches)."""
    x = np.minimum(x, 0.0)
    with np.errstate(divide="ignore"):
        return np.where(x > -0.693, np.log(-np.expm1(x)), np.log1p(-np.exp(x)))


def _padded(cut: np.ndarray) -> np.ndarray:
    S = cut.shape[0]
    return np.concatenate([np.full((S, 1), -CUT_BIG), cut, np.full((S, 1), CUT_BIG)], axis=1)


def ordinal_logp(link: str, y, eta, cut) -> np.ndarray:
    """log P(y | eta, cut) = log(F(c_y - eta) - F(c_{y-1} - eta)); y (1, n) codes 1..K,
    eta (S, n), cut (S, K-1). Computed on the side of F's symmetry where it does not cancel."""
    logF = _log_cdf(link)
    c = _padded(np.asarray(cut, dtype=float))
    k = np.asarray(y, dtype=float).astype(np.int64)
    k = np.broadcast_to(k, eta.shape)
    hi = np.take_along_axis(c, k, axis=1) - eta
    lo = np.take_along_axis(c, k - 1, axis=1) - eta
    with np.errstate(divide="ignore", invalid="ignore"):
        upper = logF(hi) + _log1mexp(logF(lo) - logF(hi))  # F(hi) - F(lo)
        lower = logF(-lo) + _log1mexp(logF(-hi) - logF(-lo))  # (1 - F(lo)) - (1 - F(hi))
    return np.where(lo > 0, lower, upper)


def ordinal_probs(link: str, eta, cut) -> np.ndarray:
    """(S, n, K) category probabilities."""
    from scipy.special import expit, ndtr

    F = expit if link == "logit" else ndtr
    c = _padded(np.asarray(cut, dtype=float))
    cdf = F(c[:, None, :] - eta[:, :, None])  # (S, n, K + 1)
    return np.clip(np.diff(cdf, axis=2), 0.0, 1.0)


def _ordinal_pymc_logp(link: str):
    def logp(value, eta, cut):
        import pytensor.tensor as pt
        from pymc.distributions.dist_math import normal_lcdf

        def logF(x):
            return -pt.softplus(-x) if link == "logit" else normal_lcdf(0.0, 1.0, x)

        big = pt.as_tensor_variable(np.array([CUT_BIG]))
        c = pt.concatenate([-big, cut, big])
        k = pt.cast(value, "int64")
        hi = c[k] - eta
        lo = c[k - 1] - eta
        upper = logF(hi) + pt.log1mexp(pt.minimum(logF(lo) - logF(hi), -1e-300))
        lower = logF(-lo) + pt.log1mexp(pt.minimum(logF(-hi) - logF(-lo), -1e-300))
        return pt.switch(lo > 0, lower, upper)

    return logp


def _ordinal_pymc_dist(link: str):
    def dist(eta, cut, size):
        import pymc as pm
        import pytensor.tensor as pt

        F = pt.sigmoid if link == "logit" else (lambda x: 0.5 * pt.erfc(-x / np.sqrt(2.0)))
        c = pt.concatenate([pt.as_tensor_variable(np.array([-CUT_BIG])), cut, pt.as_tensor_variable(np.array([CUT_BIG]))])
        cdf = F(c[None, :] - eta[:, None])
        p = pt.clip(cdf[:, 1:] - cdf[:, :-1], 0.0, 1.0)
        return pm.Categorical.dist(p=p / p.sum(axis=1, keepdims=True), size=size) + 1

    return dist


def _ordinal_row(link: str) -> Family:
    def pymc(pm, pt, name, eta, par, **kw):
        return pm.CustomDist(name, eta, par["Intercept"], logp=_ordinal_pymc_logp(link),
                             dist=_ordinal_pymc_dist(link), **kw)

    def logpdf(y, eta, sigma, aux, trials):
        return ordinal_logp(link, y, eta, aux("Intercept"))

    def mean_aux(eta, aux):  # the expected category score E[y] on the codes 1..K
        p = ordinal_probs(link, eta, aux("Intercept"))
        return (p * np.arange(1, p.shape[2] + 1)).sum(axis=2)

    def simulate(rng, eta, mu, sigma, aux, trials):
        p = ordinal_probs(link, eta, aux("Intercept"))
        cum = np.cumsum(p, axis=2)
        u = rng.random(eta.shape)[:, :, None]
        return 1.0 + np.minimum((u > cum).sum(axis=2), p.shape[2] - 1).astype(float)

    return Family("cumulative", link, _identity, (CUTPOINTS,), pymc, logpdf, simulate, ORDERED, False,
                  f"Cumulative {link}: ordered categories, P(y <= k) = F(Intercept[k] - eta)",
                  ordinal=True, mean_aux=mean_aux)


# zero-inflated and hurdle counts (brms: zi / hu is the probability of an extra / structural
# zero); PyMC's psi is the probability of the count component, 1 - zi (1 - hu)


def _nb_log0(eta, alpha):
    """log NB(0 | mu = exp(eta), alpha) = alpha (log alpha - log(alpha + mu))."""
    return alpha * (np.log(alpha) - np.logaddexp(np.log(alpha), eta))


def _zi_logpdf(count, log0):
    def logpdf(y, eta, sigma, aux, trials):
        zi = aux("zi")
        with np.errstate(divide="ignore"):
            log_zi, log_1mzi = np.log(zi), np.log1p(-zi)
        lp = log_1mzi + count(y, eta, sigma, aux, trials)
        return np.where(y == 0, np.logaddexp(log_zi, log_1mzi + log0(eta, aux)), lp)
    return logpdf


def _hurdle_logpdf(count, log0):
    def logpdf(y, eta, sigma, aux, trials):
        hu = aux("hu")
        with np.errstate(divide="ignore", invalid="ignore"):
            lp = np.log1p(-hu) + count(y, eta, sigma, aux, trials) - _log1mexp(log0(eta, aux))
            return np.where(y == 0, np.log(hu) + 0.0 * eta, lp)
    return logpdf


def _pois_log0(eta, aux):
    with np.errstate(over="ignore"):
        return -np.exp(eta)


def _negb_log0(eta, aux):
    return _nb_log0(eta, aux("alpha"))


def _zi_sim(count):
    def sim(rng, eta, mu, sigma, aux, trials):
        y = count(rng, eta, mu, sigma, aux, trials)
        zero = rng.random(eta.shape) < aux("zi")
        return np.where(zero, 0.0, y)
    return sim


def _positive_counts(rng, mu, alpha=None):
    """Zero-truncated Poisson (alpha None) or negative binomial draws, by inversion of the
    CDF above P(0); rates so large that a zero is impossible in float use plain draws."""
    from scipy import stats

    mu = np.asarray(mu, dtype=float)
    if alpha is None:
        dist = stats.poisson(np.minimum(mu, 1e8))
        plain = lambda: poisson(rng, mu)  # noqa: E731
    else:
        alpha = np.broadcast_to(alpha, mu.shape)
        dist = stats.nbinom(alpha, alpha / (alpha + mu))
        plain = lambda: poisson(rng, rng.gamma(alpha, mu / alpha))  # noqa: E731
    p0 = dist.cdf(0)
    u = p0 + (1.0 - p0) * rng.random(mu.shape)
    with np.errstate(invalid="ignore"):
        y = dist.ppf(np.minimum(u, 1.0 - 1e-16))
    y = np.where(np.isfinite(y), y, 0.0)
    big = p0 < 1e-12
    if big.any():
        y = np.where(big, np.maximum(plain(), 1.0), y)
    return np.maximum(y, 1.0)


def _hurdle_poisson_sim(rng, eta, mu, sigma, aux, trials):
    y = _positive_counts(rng, mu)
    return np.where(rng.random(eta.shape) < aux("hu"), 0.0, y)


def _hurdle_negbinomial_sim(rng, eta, mu, sigma, aux, trials):
    y = _positive_counts(rng, mu, aux("alpha"))
    return np.where(rng.random(eta.shape) < aux("hu"), 0.0, y)


def _zip_pymc(pm, pt, name, eta, par, **kw):
    return pm.ZeroInflatedPoisson(name, psi=1 - par["zi"], mu=pt.exp(eta), **kw)


def _zinb_pymc(pm, pt, name, eta, par, **kw):
    return pm.ZeroInflatedNegativeBinomial(name, psi=1 - par["zi"], mu=pt.exp(eta), alpha=par["alpha"], **kw)


def _hurdle_poisson_pymc(pm, pt, name, eta, par, **kw):
    return pm.HurdlePoisson(name, psi=1 - par["hu"], mu=pt.exp(eta), **kw)


def _hurdle_negbinomial_pymc(pm, pt, name, eta, par, **kw):
    return pm.HurdleNegativeBinomial(name, psi=1 - par["hu"], mu=pt.exp(eta), alpha=par["alpha"], **kw)


# beta-binomial (brms: mu on the logit scale, precision phi: a = mu phi, b = (1 - mu) phi)


def _beta_binomial_logpdf(y, eta, sigma, aux, trials):
    from scipy.special import betaln, gammaln

    phi = aux("phi")
    n = np.asarray(trials, dtype=float)[None, :] if trials is not None else 1.0
    mu = _expit(eta)
    a, b = mu * phi, (1 - mu) * phi
    return gammaln(n + 1) - gammaln(y + 1) - gammaln(n - y + 1) + betaln(y + a, n - y + b) - betaln(a, b)


def _beta_binomial_sim(rng, eta, mu, sigma, aux, trials):
    phi = aux("phi")
    n = _trials(trials, np.ones(eta.shape[1]))
    p = rng.beta(np.maximum(mu * phi, 1e-300), np.maximum((1 - mu) * phi, 1e-300))
    return rng.binomial(np.asarray(n).astype(np.int64)[None, :], p).astype(float)


def _beta_binomial_pymc(pm, pt, name, eta, par, **kw):
    mu = pm.math.invlogit(eta)
    return pm.BetaBinomial(name, n=_trials(par.get("trials"), 1), alpha=mu * par["phi"], beta=(1 - mu) * par["phi"], **kw)


# Weibull (brms: mu = exp(eta) is the mean; scale = mu / Gamma(1 + 1 / shape)) and exponential
# (mean exp(eta), rate exp(-eta))


def _weibull_logpdf(y, eta, sigma, aux, trials):
    from scipy.special import gammaln

    k = aux("shape")
    log_s = eta - gammaln(1 + 1 / k)
    z = np.log(y) - log_s
    with np.errstate(over="ignore"):
        return np.log(k) - log_s + (k - 1) * z - np.exp(k * z)


def _weibull_sim(rng, eta, mu, sigma, aux, trials):
    from scipy.special import gammaln

    k = aux("shape")
    s = np.exp(np.minimum(eta - gammaln(1 + 1 / k), MAX_LOG_RATE))
    return s * rng.weibull(np.broadcast_to(k, eta.shape))


def _weibull_pymc(pm, pt, name, eta, par, **kw):
    k = par["shape"]
    return pm.Weibull(name, alpha=k, beta=pt.exp(eta - pt.gammaln(1 + 1 / k)), **kw)


def _exponential_logpdf(y, eta, sigma, aux, trials):
    with np.errstate(over="ignore"):
        return -eta - y * np.exp(-eta)


def _exponential_sim(rng, eta, mu, sigma, aux, trials):
    return rng.exponential(mu)


def _exponential_pymc(pm, pt, name, eta, par, **kw):
    return pm.Exponential(name, lam=pt.exp(-eta), **kw)


# --------------------------------------------------------------------------- the table

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("gaussian", "identity", _identity, (SIGMA,), _gaussian_pymc, _gaussian_logpdf, _gaussian_sim,
               REAL, True, "Normal(mu, sigma)"),
        Family("t", "identity", _identity, (SIGMA, NU), _t_pymc, _t_logpdf, _t_sim,
               REAL, True, "StudentT(nu, mu, sigma): robust to outliers"),
        Family("bernoulli", "logit", _expit, (), _bernoulli_pymc, _bernoulli_logpdf, _bernoulli_sim,
               BINARY, False, "Bernoulli(p): 0/1 outcomes"),
        Family("binomial", "logit", _expit, (), _binomial_pymc, _binomial_logpdf, _binomial_sim,
               SUCCESSES, False, "Binomial(n, p): successes out of trials", trials=True),
        Family("poisson", "log", _rate, (), _poisson_pymc, _poisson_logpdf, _poisson_sim,
               COUNT, False, "Poisson(mu): counts"),
        Family("negativebinomial", "log", _rate, (ALPHA,), _negativebinomial_pymc, _negativebinomial_logpdf,
               _negativebinomial_sim, COUNT, False, "NegativeBinomial(mu, alpha): overdispersed counts"),
        Family("gamma", "log", _rate, (ALPHA,), _gamma_pymc, _gamma_logpdf, _gamma_sim,
               POSITIVE, False, "Gamma(mu, alpha): positive, right-skewed"),
        Family("beta", "logit", _expit, (KAPPA,), _beta_pymc, _beta_logpdf, _beta_sim,
               UNIT, False, "Beta(mu, kappa): proportions in (0, 1)"),
        # mu and sigma on the log scale; its "mean" is the median exp(eta)
        Family("lognormal", "identity", np.exp, (SIGMA,), _lognormal_pymc, _lognormal_logpdf, _lognormal_sim,
               POSITIVE, False, "LogNormal(mu, sigma): mu and sigma on the log scale"),
        # the "mean" of a zero-inflated or hurdle row is mu, the mean of its count component (brms's mu)
        Family("zero_inflated_poisson", "log", _rate, (ZI,), _zip_pymc, _zi_logpdf(_poisson_logpdf, _pois_log0),
               _zi_sim(_poisson_sim), COUNT, False, "zi + (1 - zi) Poisson(mu): counts with extra zeros", dpar="zi"),
        Family("zero_inflated_negbinomial", "log", _rate, (ALPHA, ZI), _zinb_pymc,
               _zi_logpdf(_negativebinomial_logpdf, _negb_log0), _zi_sim(_negativebinomial_sim), COUNT, False,
               "zi + (1 - zi) NegativeBinomial(mu, alpha): overdispersed counts with extra zeros", dpar="zi"),
        Family("hurdle_poisson", "log", _rate, (HU,), _hurdle_poisson_pymc, _hurdle_logpdf(_poisson_logpdf, _pois_log0),
               _hurdle_poisson_sim, COUNT, False, "zero with probability hu, else zero-truncated Poisson(mu)", dpar="hu"),
        Family("hurdle_negbinomial", "log", _rate, (ALPHA, HU), _hurdle_negbinomial_pymc,
               _hurdle_logpdf(_negativebinomial_logpdf, _negb_log0), _hurdle_negbinomial_sim, COUNT, False,
               "zero with probability hu, else zero-truncated NegativeBinomial(mu, alpha)", dpar="hu"),
        Family("beta_binomial", "logit", _expit, (PHI,), _beta_binomial_pymc, _beta_binomial_logpdf, _beta_binomial_sim,
               SUCCESSES, False, "BetaBinomial(n, mu, phi): successes out of trials, overdispersed", trials=True),
        Family("weibull", "log", _rate, (SHAPE,), _weibull_pymc, _weibull_logpdf, _weibull_sim,
               POSITIVE, False, "Weibull(mean mu, shape): positive times"),
        Family("exponential", "log", _rate, (), _exponential_pymc, _exponential_logpdf, _exponential_sim,
               POSITIVE, False, "Exponential(mean mu): positive times, constant hazard"),
        _ordinal_row("logit"),
    )
}

# Other links of a row: (family, link) -> the row with that link. The first link of each is
# the row in FAMILIES (its default).
_LINKED: dict[tuple[str, str], Family] = {("cumulative", "probit"): _ordinal_row("probit")}


def get_family(name: str, link: str | None = None) -> Family:
    """The family row for ``name`` (any case, or an alias; see :mod:`hlm_cli.formula.families`),
    with ``link`` (``--link``, or brms's spelling ``cumulative(probit)`` in ``name``) instead of
    its default link when given: the ordinal rows have their own row per link, every other
    family maps eta onto its default link's scale (:func:`with_link`)."""
    key = family_key(name)
    written = family_link(name)
    if link is not None and written is not None and link.lower() != written:
        raise ConfigError(f"--link {link} conflicts with the link in --family {name}", hint="give the link once")
    link = check_link(key, link or written)
    row = FAMILIES[key]
    if link == row.link:
        return row
    if (key, link) in _LINKED:
        return _LINKED[(key, link)]
    return with_link(row, link)


# --------------------------------------------------------------------------- other links
# A row's functions take eta on its default link's scale (logit, log, identity). Another link is
# a map of the user's eta onto that scale, in numpy and in PyTensor, so every row serves every
# link it allows (formula/families.LINKS) without a second set of densities:
#   probit -> logit:   logit(Phi(eta)) = log Phi(eta) - log Phi(-eta)
#   cloglog -> logit:  logit(1 - exp(-exp(eta))) = log(-expm1(-exp(eta))) + exp(eta)
#   softplus -> log:   log(log(1 + exp(eta)))
#   log -> identity:   exp(eta)


def _probit_np(eta):
    from scipy.special import log_ndtr

    return log_ndtr(eta) - log_ndtr(-eta)


def _probit_pt(pt, eta):
    from pymc.distributions.dist_math import normal_lcdf

    return normal_lcdf(0.0, 1.0, eta) - normal_lcdf(0.0, 1.0, -eta)


def _cloglog_np(eta):
    e = np.exp(np.clip(eta, -700.0, 30.0))  # P(y = 1) is 1 in float from eta = 4 on; exp(-700) > 0
    return np.log(-np.expm1(-e)) + e


def _cloglog_pt(pt, eta):
    e = pt.exp(pt.clip(eta, -700.0, 30.0))
    return pt.log(-pt.expm1(-e)) + e


def _softplus_np(eta):
    with np.errstate(divide="ignore"):
        return np.where(eta < -30.0, eta, np.log(np.logaddexp(0.0, np.maximum(eta, -30.0))))


def _softplus_pt(pt, eta):
    return pt.switch(eta < -30.0, eta, pt.log(pt.softplus(pt.maximum(eta, -30.0))))


def _exp_np(eta):
    return _rate(eta)


def _exp_pt(pt, eta):
    return pt.exp(pt.minimum(eta, MAX_LOG_RATE))


LINK_MAPS: dict[str, tuple[Callable, Callable]] = {  # link -> (numpy, pytensor) map onto the default scale
    "probit": (_probit_np, _probit_pt), "cloglog": (_cloglog_np, _cloglog_pt),
    "softplus": (_softplus_np, _softplus_pt), "log": (_exp_np, _exp_pt),
}


def with_link(fam: Family, link: str) -> Family:
    """``fam`` with another link: its functions get eta mapped onto the default link's scale."""
    import dataclasses

    to_np, to_pt = LINK_MAPS[link]
    base = fam

    def mean(eta):
        return base.mean(to_np(eta))

    def pymc(pm, pt, name, eta, par, **kw):
        return base.pymc(pm, pt, name, to_pt(pt, eta), par, **kw)

    def logpdf(y, eta, sigma, aux, trials):
        return base.logpdf(y, to_np(eta), sigma, aux, trials)

    def simulate(rng, eta, mu, sigma, aux, trials):
        return base.simulate(rng, to_np(eta), mu, sigma, aux, trials)

    return dataclasses.replace(fam, link=link, mean=mean, pymc=pymc, logpdf=logpdf, simulate=simulate)


def check_response(family: Family, y: np.ndarray, name: str, trials: np.ndarray | None = None, lines=None) -> np.ndarray:
    """Return y as float, or raise an InputError naming the first value outside the support."""

    def line(i: int) -> int:
        return int(lines[i]) if lines is not None else i + 2

    try:
        y = np.asarray(y, dtype=float)
    except (TypeError, ValueError):
        if family.support == "binary":
            raise InputError(
                f"response {name!r} is not numeric; the bernoulli family needs 0/1 values",
                hint="recode it as 0/1 (e.g. 1 = event)",
            ) from None
        raise InputError(
            f"response {name!r} is not numeric, but the {family.name} family needs numbers",
            hint="check the column (text such as 'NA ' or '1,5' makes it non-numeric)",
        ) from None
    _check_finite_response(y, name, line)
    domain = family.domain
    if domain.bad is not None:
        bad = domain.bad(y)
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(
                f"response {name!r} has {int(bad.sum())} value(s) outside the {family.name} family's "
                f"support ({domain.need}); first on CSV line {line(i)}: {y[i]:g}",
                hint=domain.hint,
            )
    if trials is not None:
        trials = np.asarray(trials, dtype=float)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(trials) | (trials < y) | (np.mod(trials, 1) != 0) | (trials < 1)
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(
                f"number of trials is below the successes or not a whole number on CSV line {line(i)}",
                hint="cbind(successes, failures) needs failures >= 0; p(successes, trials) needs trials >= successes",
            )
    return y


# Squares of values beyond this overflow float64 (residual sums, default prior scales).
_HUGE = 1e150


def _check_finite_response(y: np.ndarray, name: str, line) -> None:
    """Refuse a response that is infinite, NaN after a transformation, or too large to square."""
    bad = ~np.isfinite(y)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(
            f"response {name!r} has {int(bad.sum())} value(s) that are not finite numbers; first on CSV line {line(i)}: {y[i]:g}",
            hint="replace it with a finite number or leave the cell empty to drop the row "
                 "(a number beyond ±1.8e308 reads as infinite; log(0) gives -inf)",
        )
    with np.errstate(over="ignore"):
        big = np.abs(y) > _HUGE
    if big.any():
        i = int(np.argmax(big))
        raise InputError(
            f"response {name!r} has {int(big.sum())} value(s) too large to model (beyond 1e150); first on CSV line {line(i)}: {y[i]:g}",
            hint="rescale the response (e.g. in units of 1e6, or model log(y)): squares of such values overflow",
        )
