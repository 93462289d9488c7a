"""Prior specifications: parsing ``--prior "TERM=Dist(args)"`` safely, and the defaults.

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

import ast
from dataclasses import dataclass

import numpy as np

from hlm_cli.errors import PriorError

# distribution -> positional parameter names (PyMC's), and whether it is positive-only
DISTRIBUTIONS: dict[str, tuple[tuple[str, ...], bool]] = {
    "Normal": (("mu", "sigma"), False),
    "StudentT": (("nu", "mu", "sigma"), False),
    "Cauchy": (("alpha", "beta"), False),
    "Laplace": (("mu", "b"), False),
    "Uniform": (("lower", "upper"), False),
    "Flat": ((), False),
    "HalfNormal": (("sigma",), True),
    "HalfStudentT": (("nu", "sigma"), True),
    "HalfCauchy": (("beta",), True),
    "Exponential": (("lam",), True),
    "Gamma": (("alpha", "beta"), True),
    "InverseGamma": (("alpha", "beta"), True),
    "LogNormal": (("mu", "sigma"), True),
    "HalfFlat": ((), True),
    "Beta": (("alpha", "beta"), True),
    "LKJ": (("eta",), False),
}


@dataclass(frozen=True)
class Prior:
    """A distribution name with numeric arguments (scalars or per-column vectors)."""

    dist: str
    args: tuple[tuple[str, object], ...] = ()
    source: str = "default"  # "default" or "user"

    @property
    def kwargs(self) -> dict:
        return dict(self.args)

    def __str__(self) -> str:
        def fmt(v):
            if isinstance(v, (list, tuple, np.ndarray)):
                vals = [float(x) for x in np.ravel(v)]
                return fmt(vals[0]) if len(set(vals)) == 1 else "[" + ", ".join(fmt(x) for x in vals) + "]"
            return f"{float(v):.4g}"

        return f"{self.dist}(" + ", ".join(f"{k}={fmt(v)}" for k, v in self.args) + ")"

    def to_json(self) -> dict:
        return {
            "dist": self.dist,
            "args": {k: (np.asarray(v).tolist() if not np.isscalar(v) else float(v)) for k, v in self.args},
            "source": self.source,
            "text": str(self),
        }


def parse_prior(text: str) -> tuple[str, Prior]:
    """Parse ``"TERM=Dist(args)"`` into (term, Prior) without evaluating any code.

    The right-hand side is parsed with :func:`ast.parse` and walked; only a call of a known
    distribution with numeric literal arguments is accepted.
    """
    if "=" not in text:
        raise PriorError(
            f"--prior {text!r} has no '='",
            hint='write TERM=Dist(args), e.g. --prior "Intercept=Normal(0, 100)"',
        )
    term, _, rhs = text.partition("=")
    term, rhs = term.strip(), rhs.strip()
    if not term:
        raise PriorError(f"--prior {text!r} names no term", hint='e.g. --prior "sigma=HalfNormal(10)"')
    try:
        node = ast.parse(rhs, mode="eval").body
    except SyntaxError:
        raise PriorError(f"cannot read the distribution in --prior {text!r}", hint="write it as Dist(arg, ...), e.g. Normal(0, 10)") from None
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise PriorError(f"--prior {text!r}: expected a distribution such as Normal(0, 10)", hint="known: " + ", ".join(DISTRIBUTIONS))
    name = node.func.id
    if name not in DISTRIBUTIONS:
        import difflib

        close = difflib.get_close_matches(name, DISTRIBUTIONS, n=1)
        hint = (f"did you mean {close[0]!r}? " if close else "") + "known: " + ", ".join(DISTRIBUTIONS)
        raise PriorError(f"unknown prior distribution {name!r} in --prior {text!r}", hint=hint)
    params, positive = DISTRIBUTIONS[name]

    def number(arg: ast.AST) -> float:
        if isinstance(arg, ast.UnaryOp) and isinstance(arg.op, (ast.USub, ast.UAdd)):
            v = number(arg.operand)
            return -v if isinstance(arg.op, ast.USub) else v
        if isinstance(arg, ast.Constant) and isinstance(arg.value, (int, float)) and not isinstance(arg.value, bool):
            return float(arg.value)
        raise PriorError(f"--prior {text!r}: arguments must be numbers", hint=f"e.g. {name}({', '.join('1' for _ in params)})")

    if len(node.args) > len(params):
        raise PriorError(f"--prior {text!r}: {name} takes {len(params)} argument(s) ({', '.join(params) or 'none'})")
    args = {p: number(a) for p, a in zip(params, node.args, strict=False)}
    for kw in node.keywords:
        if kw.arg not in params:
            raise PriorError(f"--prior {text!r}: {name} has no parameter {kw.arg!r}", hint=f"{name} takes: {', '.join(params) or 'nothing'}")
        args[kw.arg] = number(kw.value)
    missing = [p for p in params if p not in args]
    if missing:
        raise PriorError(f"--prior {text!r}: {name} needs {', '.join(missing)}", hint=f"{name}({', '.join(params)})")
    for key in ("sigma", "beta", "lam", "nu", "eta", "b"):
        if key in args and args[key] <= 0 and not (name == "Cauchy" and key == "alpha"):
            raise PriorError(f"--prior {text!r}: {key} must be > 0 (got {args[key]:g})")
    if name == "Uniform" and args["lower"] >= args["upper"]:
        raise PriorError(f"--prior {text!r}: lower must be below upper")
    return term, Prior(name, tuple((p, args[p]) for p in params), source="user")


def parse_priors(texts: list[str] | dict[str, str] | None) -> dict[str, Prior]:
    """Parse every --prior (or the [priors] table of a config file)."""
    if not texts:
        return {}
    items = [f"{k}={v}" for k, v in texts.items()] if isinstance(texts, dict) else list(texts)
    out: dict[str, Prior] = {}
    for text in items:
        term, prior = parse_prior(text)
        if term in out:
            raise PriorError(f"two priors given for {term!r}", hint="give each term one --prior")
        out[term] = prior
    return out


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
