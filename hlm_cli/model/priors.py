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
    PRESET_NAMES,
    Prior,
    UserPriors,
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


TIME_FAMILIES = ("weibull", "exponential")  # positive times: log-link intercept centred on log(mean(y))


@dataclass(frozen=True)
class Scale:
    """Bambi's prior auto-scaling statistics for one model."""

    mean: float
    std: float
    logit: bool
    resid: float = 0.0  # sd(y) for sigma's default when std is not (gaussian or t with a log link)

    @property
    def sigma(self) -> float:
        """The scale of sigma's default prior: sd(y)."""
        return self.resid or self.std

    @classmethod
    def for_response(cls, family, y: np.ndarray) -> Scale:
        if family.scaled and family.link == "log":  # --link log: coefficients on the log scale, sigma on y's
            m = float(np.mean(y))
            return cls(float(np.log(m)) if m > 0 else 0.0, 1.0, False, _std(y))
        if family.scaled:
            return cls(float(np.mean(y)), _std(y), False)
        if family.name in TIME_FAMILIES and family.link == "log":
            # times come in any unit (days, seconds): the intercept's prior is centred on
            # log(mean(y)) (brms: median of log(y)), so a change of unit does not move the fit
            return cls(float(np.log(np.mean(y))), 1.0, False)
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
    "sigma": lambda scale: Prior("HalfStudentT", (("nu", 4.0), ("sigma", scale.sigma))),
    "nu": lambda scale: Prior("Gamma", (("alpha", 2.0), ("beta", 0.1))),
    "alpha": lambda scale: Prior("HalfCauchy", (("beta", 1.0),)),
    "kappa": lambda scale: Prior("HalfCauchy", (("beta", 1.0),)),
}


# --------------------------------------------------------------------------- presets

PRESETS = PRESET_NAMES  # --prior-preset: hlm's defaults (above), or those of brms or rstanarm

_BRMS_LINKS = ("identity", "log", "inverse", "sqrt")  # brms transforms y by these links (tlinks)
R_MAD = 1.4826  # R's mad(): the consistency constant of the median absolute deviation


def r_mad(x: np.ndarray) -> float:
    """R's ``mad(x)``: 1.4826 * median(|x - median(x)|)."""
    x = np.asarray(x, dtype=float)
    return float(R_MAD * np.median(np.abs(x - np.median(x))))


def _r_round(x: float, digits: int = 1) -> float:
    """R's ``round()`` (IEC 60559: halves to even), as numpy's."""
    return float(np.round(x, digits))


class Preset:
    """Default priors of another package, for ``--prior-preset brms|rstanarm``.

    **brms** (``brms:::def_scale_prior.brmsterms``, brms 2.2x): with ``y*`` the response on the
    link scale (for identity, log, inverse and sqrt links, zeros shifted to 0.1 before a log;
    lognormal counts as log) and ``s = max(2.5, round(mad(y*), 1))`` (R's mad, scaled by
    1.4826): flat on every population slope (``b``), StudentT(3, round(median(y*), 1), s) on
    the (centered) intercept, HalfStudentT(3, s) on every group SD and on sigma, LKJ(1) on
    correlations, Gamma(2, 0.1) on nu, Gamma(0.01, 0.01) on shape parameters (alpha, kappa).
    Other links (logit: bernoulli, binomial, beta) keep location 0 and s = 2.5. With
    ``--sigma-formula``: StudentT(3, 0, 2.5) on sigma's intercept, flat on its slopes.

    **rstanarm** (``stan_glmer`` defaults, autoscaled; sd() with n - 1): Normal(0, 2.5 sd(y) /
    sd(x)) on each slope and Normal(mean(y), 2.5 sd(y)) on the centered intercept for gaussian
    and t responses (sd(y) = 1 and mean 0 otherwise, on the log scale for lognormal),
    Exponential(1 / sd(y)) on sigma, Exponential(1) on alpha and kappa, LKJ(1) on correlations.
    rstanarm's ``decov`` prior on group covariances is not expressible here; it is approximated
    by Exponential(1 / sd(y)) on each group SD (Exponential(1) for non-gaussian families): for a
    one-column group term of a non-gaussian model that is decov(1, 1, 1, 1) exactly (tau ~
    Gamma(1, 1)); for gaussian models rstanarm scales tau by sigma, and for several columns it
    splits the trace through a simplex, which this does not.
    """

    def __init__(self, name: str, family, y: np.ndarray) -> None:
        if name not in PRESETS:
            raise PriorError(f"unknown prior preset {name!r}", hint="use one of: " + ", ".join(PRESETS))
        self.name = name
        self.family = family
        y = np.asarray(y, dtype=float)
        gaussian_like = family.scaled or family.name == "lognormal"
        if name == "brms":
            link = "log" if family.name == "lognormal" else family.link
            self.location, self.scale = 0.0, 2.5
            if link in _BRMS_LINKS:
                ys = np.where(y == 0, 0.1, y) if link in ("log", "inverse") else y
                with np.errstate(all="ignore"):
                    ylink = {"identity": ys, "log": np.log(ys), "inverse": 1 / ys, "sqrt": np.sqrt(ys)}[link]
                s = _r_round(r_mad(ylink))
                if np.isfinite(s):
                    self.scale = max(2.5, s)
                m = _r_round(float(np.median(ylink)))
                if np.isfinite(m):
                    self.location = m
        else:
            yy = np.log(y) if family.name == "lognormal" else y
            sd = float(np.std(yy, ddof=1)) if len(yy) > 1 else 0.0
            self.gaussian = gaussian_like
            self.mean = float(np.mean(yy)) if gaussian_like else 0.0
            self.sd = (sd if sd > 0 else 1.0) if gaussian_like else 1.0

    def _p(self, dist: str, *args) -> Prior:
        return Prior(dist, tuple(args), source=f"preset:{self.name}")

    def slope(self, x: np.ndarray) -> Prior:
        if self.name == "brms":
            return self._p("Flat")
        sdx = float(np.std(x, ddof=1)) if len(x) > 1 else 0.0
        return self._p("Normal", ("mu", 0.0), ("sigma", 2.5 * self.sd / (sdx if sdx > 0 else 1.0)))

    def intercept(self) -> Prior:
        if self.name == "brms":
            return self._p("StudentT", ("nu", 3.0), ("mu", self.location), ("sigma", self.scale))
        return self._p("Normal", ("mu", self.mean), ("sigma", 2.5 * self.sd))

    def group_sd(self) -> Prior:
        if self.name == "brms":
            return self._p("HalfStudentT", ("nu", 3.0), ("sigma", self.scale))
        return self._p("Exponential", ("lam", 1.0 / self.sd))

    def cor(self) -> Prior:
        return self._p("LKJ", ("eta", 1.0))

    def aux(self, name: str, default: Prior) -> Prior:
        if name == "sigma":
            if self.name == "brms":
                return self._p("HalfStudentT", ("nu", 3.0), ("sigma", self.scale))
            return self._p("Exponential", ("lam", 1.0 / self.sd))
        if name == "nu":
            return self._p("Gamma", ("alpha", 2.0), ("beta", 0.1)) if self.name == "brms" else default
        if name == "Intercept" and self.name == "brms":  # a cumulative model's thresholds: brms's student_t(3, 0, 2.5)
            return self._p("StudentT", ("nu", 3.0), ("mu", 0.0), ("sigma", 2.5))
        if name in ("alpha", "kappa", "phi", "shape"):
            if self.name == "brms":
                return self._p("Gamma", ("alpha", 0.01), ("beta", 0.01))
            return self._p("Exponential", ("lam", 1.0))
        if name in ("zi", "hu"):  # brms: beta(1, 1); rstanarm has no such families
            return self._p("Beta", ("alpha", 1.0), ("beta", 1.0)) if self.name == "brms" else default
        return default

    def sigma_coef(self, label: str, default: Prior) -> Prior:
        """A coefficient of ``--sigma-formula`` (log sigma)."""
        if self.name != "brms":
            return default
        if label == "Intercept":
            return self._p("StudentT", ("nu", 3.0), ("mu", 0.0), ("sigma", 2.5))
        return self._p("Flat")


def preset_for(name: str | None, family, y: np.ndarray) -> Preset | None:
    """The :class:`Preset` named (None for hlm's own defaults)."""
    if name is None or name == "hlm":
        return None
    return Preset(name, family, y)
