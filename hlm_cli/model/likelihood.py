"""Pointwise log-likelihood of the fitted rows, per posterior draw, in numpy.

PSIS-LOO needs log p(y_i | theta_s) for every row i and draw s. PyMC's
``compute_log_likelihood`` compiles a new PyTensor function per run (seconds, and it fails on
models with an LKJ correlation in pymc 6.4); here each family's log density is a scipy
expression over the linear-predictor draws, with PyMC's parameterizations:
NegativeBinomial(mu, alpha) = NB(n = alpha, p = alpha / (alpha + mu)); Gamma(mu, alpha) has
shape alpha and scale mu / alpha; Beta(mu, kappa) = Beta(mu * kappa, (1 - mu) * kappa).
``tests/unit/test_likelihood.py`` checks each family against PyMC's own logp.

Log-link families are written on the log scale, in eta itself rather than ``exp(eta)``, so a
draw with a huge rate (an observation-level random effect in its tail, eta = 50 or 800) gives
a finite (very negative) log density instead of an overflow or an error.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from hlm_cli.model.linpred import aux_draws, inverse_link


def logpdf(fam, y: np.ndarray, eta: np.ndarray, aux, *, trials=None, se=None) -> np.ndarray:
    """log p(y | eta, aux) elementwise; eta is (S, n), aux(name) gives (S, 1) draws."""
    y = np.asarray(y, dtype=float)[None, :]
    sigma = aux("sigma")
    if se is not None:
        se = np.asarray(se, dtype=float)[None, :]
        sigma = np.sqrt(se**2 + sigma**2) if sigma is not None else se
    if fam.name == "gaussian":  # the common case, without importing scipy.stats (0.7 s)
        z = (y - eta) / sigma
        return -0.5 * z * z - np.log(sigma) - 0.5 * np.log(2 * np.pi)
    from scipy import stats

    match fam.name:
        case "t":
            return stats.t.logpdf(y, aux("nu"), eta, sigma)
        case "lognormal":
            return stats.norm.logpdf(np.log(y), eta, sigma) - np.log(y)
        case "bernoulli":
            return y * special.log_expit(eta) + (1 - y) * special.log_expit(-eta)
        case "binomial":
            n = np.asarray(trials, dtype=float)[None, :] if trials is not None else 1.0
            return (special.gammaln(n + 1) - special.gammaln(y + 1) - special.gammaln(n - y + 1)
                    + y * special.log_expit(eta) + (n - y) * special.log_expit(-eta))
        case "poisson":  # y eta - exp(eta) - log y!
            with np.errstate(over="ignore", invalid="ignore"):
                return np.where(y > 0, y * eta, 0.0) - np.exp(eta) - special.gammaln(y + 1)
        case "negativebinomial":  # log(alpha + mu) = logaddexp(log alpha, eta)
            alpha = aux("alpha")
            log_am = np.logaddexp(np.log(alpha), eta)
            return (special.gammaln(y + alpha) - special.gammaln(alpha) - special.gammaln(y + 1)
                    + alpha * (np.log(alpha) - log_am) + y * (eta - log_am))
        case "gamma":  # shape alpha, rate alpha exp(-eta)
            alpha = aux("alpha")
            with np.errstate(over="ignore"):
                return (alpha * np.log(alpha) - alpha * eta + (alpha - 1) * np.log(y)
                        - alpha * y * np.exp(-eta) - special.gammaln(alpha))
        case "beta":
            kappa = aux("kappa")
            mu = inverse_link(fam, eta)
            return stats.beta.logpdf(y, mu * kappa, (1 - mu) * kappa)
    raise AssertionError(fam.name)


def chunk_size(n: int, budget: int = 2_000_000) -> int:
    """Draws per chunk so that each (draws, n) temporary stays near ``budget`` elements."""
    return max(1, min(500, budget // max(n, 1)))


def pointwise(tree, built, *, dtype=float) -> np.ndarray:
    """(S, n) log-likelihood of the fitted rows, computed in chunks of draws (bounded memory)."""
    from hlm_cli.model.linpred import eta_draws

    post = tree["posterior"]
    S = post.sizes["chain"] * post.sizes["draw"]
    d = built.design
    out = np.empty((S, d.n), dtype=dtype)
    chunk = chunk_size(d.n)
    for start in range(0, S, chunk):
        sl = slice(start, min(S, start + chunk))
        eta = eta_draws(tree, built, draws=sl)
        m = eta.shape[0]
        out[sl] = logpdf(built.family, d.y, eta, lambda name, m=m, sl=sl: aux_draws(tree, name, m, sl), trials=d.trials, se=d.se)
    return out
