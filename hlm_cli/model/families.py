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
==============  ==========================================================================

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

from hlm_cli.errors import InputError
from hlm_cli.formula.families import ALIASES, NAMES, family_key  # noqa: F401 (re-exported)
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

    def __reduce__(self):
        # rows hold functions (lambdas among them): a row travels to another process (the
        # figure helper, batch workers) by name and is looked up in the table there
        return (get_family, (self.name,))

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


SIGMA = Aux("sigma", lambda scale: Prior("HalfStudentT", (("nu", 4.0), ("sigma", scale.std))))
NU = Aux("nu", lambda scale: Prior("Gamma", (("alpha", 2.0), ("beta", 0.1))))
ALPHA = Aux("alpha", lambda scale: Prior("HalfCauchy", (("beta", 1.0),)))
KAPPA = Aux("kappa", lambda scale: Prior("HalfCauchy", (("beta", 1.0),)))


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
    )
}


def get_family(name: str) -> Family:
    """The family row for ``name`` (any case, or an alias; see :mod:`hlm_cli.formula.families`)."""
    return FAMILIES[family_key(name)]


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
