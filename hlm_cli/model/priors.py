"""Prior specifications: the defaults, and the rules a prior must meet in a model.

Prior text (``--prior "TERM=Dist(args)"``) is parsed by :mod:`hlm_cli.formula.priors` (the
syntax layer); its names are re-exported here for the model code.

Defaults follow Bambi's weakly-informative auto-scaling (``bambi/priors/scaler.py``, after
Gelman et al. 2008 and the rstanarm defaults): with s = 2.5 * sd(y) for gaussian and t
families (sd(y) = 1 otherwise), the intercept gets Normal(mean(y), s) widened for the
predictors' means, each slope Normal(0, s / sd(x)), each group SD HalfNormal of the matching
intercept or slope scale, and sigma HalfStudentT(4, sd(y)). Logit models use the same rule
with sd(y) = 1 (rstanarm's Normal(0, 2.5) on the standardized scale), not Bambi's tighter
Normal(0, 1.5) intercept and Normal(0, 1 / sd(x)) slopes: on lme4's cbpp those pulled the
period effects 12-15% towards zero, 0.3-0.55 lme4 standard errors (validation/README.md).
The correlation matrix of a
correlated group term gets LKJ(eta = 1), uniform over correlation matrices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hlm_cli.errors import PriorError
from hlm_cli.formula.priors import (  # noqa: F401  (re-exported: the model's names for prior text)
    DISTRIBUTIONS,
    EXAMPLES,
    MAX_PRIOR_CHARS,
    POSITIVE_ARGS,
    Prior,
    parse_prior,
    parse_priors,
)


def check_positive_target(term: str, prior: Prior) -> None:
    if not DISTRIBUTIONS[prior.dist][1]:
        raise PriorError(
            f"the prior for {term!r} must be positive-only, but {prior.dist} is not",
            hint="use HalfNormal, HalfStudentT, Exponential, Gamma, ... for SDs and family parameters",
        )


def _std(x: np.ndarray) -> float:
    s = float(np.std(x))
    return s if s > 0 else 1.0


@dataclass(frozen=True)
class Scale:
    """Bambi's prior auto-scaling statistics for one model."""

    mean: float
    std: float
    logit: bool

    @classmethod
    def for_response(cls, family, y: np.ndarray) -> Scale:
        if family.scaled:
            return cls(float(np.mean(y)), _std(y), False)
        if family.name == "lognormal":
            return cls(float(np.mean(np.log(y))), _std(np.log(y)), False)
        return cls(0.0, 1.0, family.link == "logit")

    def slope_sigma(self, x: np.ndarray, categorical: bool = False) -> float:
        return 2.5 * self.std / _std(x)

    def intercept(self, slope_sigmas: np.ndarray, x_means: np.ndarray) -> Prior:
        """Default prior of the intercept: Normal(mean, 2.5 sd) on the link scale.

        It is the prior of the centered intercept (the response at the predictors' means,
        brms's ``Intercept``; see :mod:`hlm_cli.model.build`), and it is not widened:
        ``build.resolve_priors`` passes empty ``slope_sigmas``/``x_means`` whenever the design
        has other columns (they are centered), so Bambi's widening term
        ``sum(slope_sigma^2 * x_mean^2)`` below is never used by hlm's models.
        """
        sigma = 2.5 * self.std
        if len(slope_sigmas):
            sigma = float(np.sqrt(sigma**2 + np.dot(slope_sigmas**2, x_means**2)))
        return Prior("Normal", (("mu", self.mean), ("sigma", sigma)))

    def group_sd(self, column: np.ndarray | None) -> Prior:
        """HalfNormal with the intercept (column None) or slope scale."""
        if column is None:
            sigma = 2.5 * self.std
        else:
            sigma = self.slope_sigma(column)
        return Prior("HalfNormal", (("sigma", float(sigma)),))


AUX_DEFAULTS = {
    "sigma": lambda scale: Prior("HalfStudentT", (("nu", 4.0), ("sigma", scale.std))),
    "nu": lambda scale: Prior("Gamma", (("alpha", 2.0), ("beta", 0.1))),
    "alpha": lambda scale: Prior("HalfCauchy", (("beta", 1.0),)),
    "kappa": lambda scale: Prior("HalfCauchy", (("beta", 1.0),)),
}
