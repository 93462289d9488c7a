"""Response families as rows of a table (as Bambi's ``defaults/families.py``), not ``if`` chains.

Each row gives the link, the auxiliary parameters with their default priors, the support the
response must lie in, and whether Bambi's prior auto-scaling uses the response's own scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hlm_cli.errors import InputError
from hlm_cli.formula.families import ALIASES, NAMES, family_key  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class Family:
    name: str
    link: str  # identity, logit, log
    aux: tuple[str, ...]  # auxiliary (family) parameters, e.g. ("sigma",)
    support: str  # real, positive, unit, binary, count, binomial
    scaled: bool  # True: priors scale with sd(y) (gaussian, t), as Bambi's PriorScaler
    description: str

    @property
    def discrete(self) -> bool:
        return self.support in ("binary", "count", "binomial")


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("gaussian", "identity", ("sigma",), "real", True, "Normal(mu, sigma)"),
        Family("t", "identity", ("sigma", "nu"), "real", True, "StudentT(nu, mu, sigma): robust to outliers"),
        Family("bernoulli", "logit", (), "binary", False, "Bernoulli(p): 0/1 outcomes"),
        Family("binomial", "logit", (), "binomial", False, "Binomial(n, p): successes out of trials"),
        Family("poisson", "log", (), "count", False, "Poisson(mu): counts"),
        Family("negativebinomial", "log", ("alpha",), "count", False, "NegativeBinomial(mu, alpha): overdispersed counts"),
        Family("gamma", "log", ("alpha",), "positive", False, "Gamma(mu, alpha): positive, right-skewed"),
        Family("beta", "logit", ("kappa",), "unit", False, "Beta(mu, kappa): proportions in (0, 1)"),
        Family("lognormal", "identity", ("sigma",), "positive", False, "LogNormal(mu, sigma): mu and sigma on the log scale"),
    )
}


def get_family(name: str) -> Family:
    """The family row for ``name`` (any case, or an alias; see :mod:`hlm_cli.formula.families`)."""
    return FAMILIES[family_key(name)]


_SUPPORT_RULES = {
    # support -> (check(y) -> mask of bad values, what the family needs, suggestion)
    "positive": (lambda y: ~(y > 0), "values > 0", "use --family gaussian, or shift/transform the response"),
    "unit": (lambda y: ~((y > 0) & (y < 1)), "values strictly between 0 and 1", "use bernoulli for 0/1 data, or squeeze the values into (0, 1)"),
    "binary": (lambda y: ~np.isin(y, (0, 1)), "only 0 and 1", "use --family binomial for counts of successes"),
    "count": (lambda y: ~((y >= 0) & (np.mod(y, 1) == 0)), "non-negative whole numbers", "use --family gaussian for continuous data"),
    "binomial": (lambda y: ~((y >= 0) & (np.mod(y, 1) == 0)), "non-negative whole numbers of successes", "write the response as cbind(successes, failures) or p(successes, trials)"),
}


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
    if family.support in _SUPPORT_RULES:
        bad_fn, need, suggestion = _SUPPORT_RULES[family.support]
        bad = bad_fn(y)
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(
                f"response {name!r} has {int(bad.sum())} value(s) outside the {family.name} family's "
                f"support ({need}); first on CSV line {line(i)}: {y[i]:g}",
                hint=suggestion,
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
