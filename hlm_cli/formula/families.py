"""The family names ``--family`` and a config's ``family`` accept (and their aliases).

Only the vocabulary lives here, below the spec, so that an unknown family is refused while
the settings are validated, before any data is read; what each family does (link, auxiliary
parameters, likelihood, support) is a row of :data:`hlm_cli.model.families.FAMILIES`, whose
keys are exactly :data:`NAMES` (a unit test keeps the two in step).
"""

from __future__ import annotations

from hlm_cli.errors import ConfigError

NAMES: tuple[str, ...] = ("gaussian", "t", "bernoulli", "binomial", "poisson", "negativebinomial", "gamma", "beta", "lognormal")
ALIASES: dict[str, str] = {"normal": "gaussian", "student_t": "t", "studentt": "t", "negbinomial": "negativebinomial",
                           "negative_binomial": "negativebinomial", "logistic": "bernoulli"}


def family_key(name: str) -> str:
    """The family's name in :data:`NAMES` for ``name`` (any case, or an alias).

    Raises
    ------
    ConfigError
        ``unknown family 'NAME'``, with the names to choose from as the hint.
    """
    key = ALIASES.get(name.lower(), name.lower())
    if key not in NAMES:
        raise ConfigError(f"unknown family {name!r}", hint="choose one of: " + ", ".join(NAMES))
    return key
