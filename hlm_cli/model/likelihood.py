"""Pointwise log-likelihood of the fitted rows, per posterior draw, in numpy.

PSIS-LOO needs log p(y_i | theta_s) for every row i and draw s. PyMC's
``compute_log_likelihood`` compiles a new PyTensor function per run (seconds, and it fails on
models with an LKJ correlation in pymc 6.4); here each family's log density is a numpy/scipy
expression over the linear-predictor draws, the ``logpdf`` of its row in
:data:`hlm_cli.model.families.FAMILIES` (with PyMC's parameterizations, and log-link
families written in eta itself so that a huge rate gives a finite value, not an overflow).
``tests/unit/test_likelihood.py`` checks each family against PyMC's own logp.
"""

from __future__ import annotations

import numpy as np

from hlm_cli.model.linpred import aux_draws


def logpdf(fam, y: np.ndarray, eta: np.ndarray, aux, *, trials=None, se=None, terms=None) -> np.ndarray:
    """log p(y | eta, aux) elementwise; eta is (S, n), aux(name) gives (S, 1) draws.

    ``terms`` (the rows' :class:`~hlm_cli.formula.response_terms.ResponseTerms`) applies
    cens(), trunc() and weights() as :mod:`hlm_cli.model.censoring` defines them."""
    y1 = np.asarray(y, dtype=float)
    y = y1[None, :]
    sigma = aux("sigma")
    if se is not None:
        se = np.asarray(se, dtype=float)[None, :]
        sigma = np.sqrt(se**2 + sigma**2) if sigma is not None else se
    if terms is not None and terms.precision_weights is not None and sigma is not None:
        sigma = sigma / np.sqrt(np.asarray(terms.precision_weights, dtype=float))[None, :]
    out = fam.logpdf(y, eta, sigma, aux, trials)
    if terms is not None:
        from hlm_cli.model import censoring

        out = censoring.adjust(out, y, fam.name, censoring.bounds(terms, y1, fam.name), eta, sigma, aux)
    return out


def chunk_size(n: int, budget: int = 2_000_000) -> int:
    """Draws per chunk so that each (draws, n) temporary stays near ``budget`` elements."""
    return max(1, min(500, budget // max(n, 1)))


def pointwise(tree, built, *, dtype=float, each_eta=None) -> np.ndarray:
    """(S, n) log-likelihood of the fitted rows, computed in chunks of draws (bounded memory).

    ``each_eta(draws, eta)``, when given, receives each chunk's linear predictor (a slice of
    the draws and a read-only ``(m, n)`` array) before its log density: the fit's posterior
    predictive is drawn from it, instead of computing the linear predictor a second time."""
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
        if each_eta is not None:
            eta.flags.writeable = False  # shared with the caller: neither side may change it
            each_eta(sl, eta)

        def aux(name, m=m, sl=sl):
            return aux_draws(tree, name, m, sl)

        if d.autocor is not None:
            eta, aux = conditional_ar(tree, d, eta, aux, sl)
        out[sl] = logpdf(built.family, d.y, eta, aux, trials=d.trials, se=d.se, terms=getattr(d, "terms", None))
    return out


def conditional_ar(tree, design, eta: np.ndarray, aux, draws: slice | None = None):
    """A residual AR(1) model's rows given the row before each (the pointwise likelihood LOO
    uses: log p(y_i | y_prev, theta), see docs/covariance.md): the conditional mean
    ``eta_i + phi_i (y_prev - eta_prev)`` and SD ``sigma sqrt(1 - phi_i^2)``."""
    ar = design.autocor
    m = eta.shape[0]
    rho = aux_draws(tree, ar.rho_name, m, draws)
    phi = ar.phi(rho)  # (m, n)
    prev = np.maximum(ar.prev, 0)
    y = np.asarray(design.y, dtype=float)
    mu = eta + phi * (y[prev][None, :] - eta[:, prev])
    sigma = aux("sigma") * np.sqrt(1.0 - phi**2)
    return mu, (lambda name: sigma if name == "sigma" else aux(name))
