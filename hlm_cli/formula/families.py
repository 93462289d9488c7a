"""The family names ``--family`` and a config's ``family`` accept (and their aliases).

Only the vocabulary lives here, below the spec, so that an unknown family is refused while
the settings are validated, before any data is read; what each family does (link, auxiliary
parameters, likelihood, support) is a row of :data:`hlm_cli.model.families.FAMILIES`, whose
keys are exactly :data:`NAMES` (a unit test keeps the two in step).
"""

from __future__ import annotations

from hlm_cli.errors import ConfigError

NAMES: tuple[str, ...] = ("gaussian", "t", "bernoulli", "binomial", "poisson", "negativebinomial", "gamma", "beta", "lognormal",
                          "zero_inflated_poisson", "zero_inflated_negbinomial", "hurdle_poisson", "hurdle_negbinomial",
                          "beta_binomial", "weibull", "exponential", "cumulative")
ALIASES: dict[str, str] = {"normal": "gaussian", "student_t": "t", "studentt": "t", "negbinomial": "negativebinomial",
                           "negative_binomial": "negativebinomial", "logistic": "bernoulli",
                           "zero_inflated_negativebinomial": "zero_inflated_negbinomial", "zip": "zero_inflated_poisson",
                           "zinb": "zero_inflated_negbinomial", "hurdle_negativebinomial": "hurdle_negbinomial",
                           "betabinomial": "beta_binomial", "ordinal": "cumulative"}

_UNIT = ("logit", "probit", "cloglog")
_RATE = ("log", "softplus")
# the links --link accepts per family, the default first. Each other link is a map of eta onto
# the default link's scale (hlm_cli.model.families.LINK_MAPS), so a row's likelihood, log density
# and simulator serve every link. Left out on purpose: identity and sqrt for counts and positive
# responses (a negative or zero mean, and sqrt's two symmetric modes), inverse for gamma.
LINKS: dict[str, tuple[str, ...]] = {
    "gaussian": ("identity", "log"), "t": ("identity", "log"), "bernoulli": _UNIT, "binomial": _UNIT,
    "poisson": _RATE, "negativebinomial": _RATE, "gamma": _RATE, "beta": _UNIT, "lognormal": ("identity",),
    "zero_inflated_poisson": _RATE, "zero_inflated_negbinomial": _RATE, "hurdle_poisson": _RATE,
    "hurdle_negbinomial": _RATE, "beta_binomial": _UNIT, "weibull": _RATE, "exponential": _RATE,
    "cumulative": ("logit", "probit"),
}


def check_link(family: str, link: str | None) -> str:
    """The link to use for ``family`` (its default when ``link`` is None).

    Raises
    ------
    ConfigError
        ``the FAMILY family has no link 'LINK'``, with the family's links as the hint.
    """
    key = family_key(family)
    allowed = LINKS[key]
    if link is None:
        link = family_link(family)  # brms's spelling: cumulative(probit)
    if link is None:
        return allowed[0]
    if link.lower() not in allowed:
        raise ConfigError(f"the {key} family has no link {link!r}",
                          hint=f"--link for {key}: " + ", ".join(allowed) + f" (default {allowed[0]})")
    return link.lower()


def family_key(name: str) -> str:
    """The family's name in :data:`NAMES` for ``name`` (any case, or an alias).

    Raises
    ------
    ConfigError
        ``unknown family 'NAME'``, with the names to choose from as the hint.
    """
    base = name.split("(", 1)[0].strip() if name.rstrip().endswith(")") else name
    key = ALIASES.get(base.lower(), base.lower())
    if key not in NAMES:
        raise ConfigError(f"unknown family {name!r}", hint="choose one of: " + ", ".join(NAMES))
    return key


def family_link(name: str) -> str | None:
    """The link written in brms's spelling ``cumulative(probit)``, or None (``cumulative``)."""
    head, paren, rest = name.partition("(")
    if not paren or not rest.rstrip().endswith(")"):
        return None
    return rest.rstrip()[:-1].strip().lower() or None
