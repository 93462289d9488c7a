"""The family names ``--family`` and a config's ``family`` accept (and their aliases).

Only the vocabulary lives here, below the spec, so that an unknown family is refused while
the settings are validated, before any data is read; what each family does (link, auxiliary
parameters, likelihood, support) is a row of :data:`hlm_cli.model.families.FAMILIES`, whose
keys are exactly :data:`NAMES` (a unit test keeps the two in step).
"""

from __future__ import annotations

from hlm_cli.errors import ConfigError

NAMES: tuple[str, ...] = ("gaussian", "t", "bernoulli", "binomial", "poisson", "negativebinomial", "gamma", "beta", "lognormal",
                         "cumulative")
ALIASES: dict[str, str] = {"normal": "gaussian", "student_t": "t", "studentt": "t", "negbinomial": "negativebinomial",
                           "negative_binomial": "negativebinomial", "logistic": "bernoulli",
                           "ordinal": "cumulative"}


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
