"""Prior text, the closed parser of ``--prior "TERM=Dist(args)"`` and ``[priors]`` tables.

The right-hand side is read with :func:`ast.parse` and walked, never evaluated: only a call of
a known distribution (``DISTRIBUTIONS``) with finite numeric literal arguments that satisfy
its rules (scales > 0, lower < upper) becomes a :class:`Prior`. This is syntax, so it sits
below the spec (which checks config-file priors before any data is read); the defaults and
what a prior means for a model are :mod:`hlm_cli.model.priors`.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass

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


# distribution -> the parameters that must be > 0 (Cauchy's alpha is its location)
POSITIVE_ARGS: dict[str, tuple[str, ...]] = {
    "Normal": ("sigma",),
    "StudentT": ("nu", "sigma"),
    "Cauchy": ("beta",),
    "Laplace": ("b",),
    "HalfNormal": ("sigma",),
    "HalfStudentT": ("nu", "sigma"),
    "HalfCauchy": ("beta",),
    "Exponential": ("lam",),
    "Gamma": ("alpha", "beta"),
    "InverseGamma": ("alpha", "beta"),
    "LogNormal": ("sigma",),
    "Beta": ("alpha", "beta"),
    "LKJ": ("eta",),
}

# a valid example of each distribution, for hints
EXAMPLES: dict[str, str] = {
    "Normal": "Normal(0, 10)", "StudentT": "StudentT(3, 0, 10)", "Cauchy": "Cauchy(0, 1)",
    "Laplace": "Laplace(0, 1)", "Uniform": "Uniform(0, 10)", "Flat": "Flat()",
    "HalfNormal": "HalfNormal(1)", "HalfStudentT": "HalfStudentT(3, 1)", "HalfCauchy": "HalfCauchy(1)",
    "Exponential": "Exponential(1)", "Gamma": "Gamma(2, 0.1)", "InverseGamma": "InverseGamma(3, 1)",
    "LogNormal": "LogNormal(0, 1)", "HalfFlat": "HalfFlat()", "Beta": "Beta(2, 2)", "LKJ": "LKJ(1)",
}

MAX_PRIOR_CHARS = 500  # a prior is a short call; longer text is refused before it is parsed


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
        import numpy as np  # here, so that checking prior text (the spec) does not load numpy

        def fmt(v):
            if isinstance(v, (list, tuple, np.ndarray)):
                vals = [float(x) for x in np.ravel(v)]
                return fmt(vals[0]) if len(set(vals)) == 1 else "[" + ", ".join(fmt(x) for x in vals) + "]"
            return f"{float(v):.4g}"

        return f"{self.dist}(" + ", ".join(f"{k}={fmt(v)}" for k, v in self.args) + ")"

    def to_json(self) -> dict:
        import numpy as np

        return {
            "dist": self.dist,
            "args": {k: (np.asarray(v).tolist() if not np.isscalar(v) else float(v)) for k, v in self.args},
            "source": self.source,
            "text": str(self),
        }


def _signature(name: str) -> str:
    params = DISTRIBUTIONS[name][0]
    return f"{name}({', '.join(params)})"


def _number(arg: ast.AST) -> float | None:
    """The value of a numeric literal, optionally signed (``-1``, ``+2.5``, ``1e3``); else None.

    A literal too large for a float (``1e999999``, a 400-digit integer) reads as +-inf, which
    the caller refuses as not finite.
    """
    sign = 1.0
    while isinstance(arg, ast.UnaryOp) and isinstance(arg.op, (ast.USub, ast.UAdd)):
        if isinstance(arg.op, ast.USub):
            sign = -sign
        arg = arg.operand
    if isinstance(arg, ast.Constant) and isinstance(arg.value, (int, float)) and not isinstance(arg.value, bool):
        try:
            return sign * float(arg.value)
        except OverflowError:  # an int beyond the float range
            return sign * float("inf")
    return None


def parse_prior(text: str, *, where: str | None = None) -> tuple[str, Prior]:
    """Parse ``"TERM=Dist(args)"`` into (term, Prior) without evaluating any code.

    The right-hand side is parsed with :func:`ast.parse` and walked; only a call of a known
    distribution with finite numeric literal arguments that satisfy the distribution's rules
    (scales > 0, lower < upper) is accepted.

    Parameters
    ----------
    text : str
        ``"TERM=Dist(args)"``, e.g. ``"sigma=HalfNormal(10)"``.
    where : str, optional
        How the user wrote it, for messages (default ``--prior 'TEXT'``); a config file's
        ``[priors]`` table passes e.g. ``run.toml: priors.sigma = 'HalfNormal(-1)'``.

    Raises
    ------
    PriorError
        Naming the value and the rule it broke, with a hint giving a valid example.
    """
    if not isinstance(text, str):
        raise PriorError(f"{where or 'a prior'}: expected text such as 'sigma=HalfNormal(10)' (got {text!r})",
                         hint='write TERM=Dist(args), e.g. "Intercept=Normal(0, 100)"')
    label = where or f"--prior {text!r}"
    if len(text) > MAX_PRIOR_CHARS:
        raise PriorError(f"{label[:80]}...: a prior of {len(text)} characters is too long (at most {MAX_PRIOR_CHARS})",
                         hint='write one distribution call, e.g. --prior "Intercept=Normal(0, 100)"')
    if "=" not in text:
        raise PriorError(f"{label} has no '='", hint='write TERM=Dist(args), e.g. --prior "Intercept=Normal(0, 100)"')
    term, _, rhs = text.partition("=")
    term, rhs = term.strip(), rhs.strip()
    if not term:
        raise PriorError(f"{label} names no term", hint='e.g. --prior "sigma=HalfNormal(10)"')
    try:
        node = ast.parse(rhs, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise PriorError(f"cannot read the distribution in {label}", hint="write it as Dist(arg, ...), e.g. Normal(0, 10)") from None
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise PriorError(f"{label}: expected a distribution such as Normal(0, 10)", hint="known: " + ", ".join(DISTRIBUTIONS))
    name = node.func.id
    if name not in DISTRIBUTIONS:
        import difflib

        close = difflib.get_close_matches(name, DISTRIBUTIONS, n=1)
        hint = (f"did you mean {close[0]!r}? " if close else "") + "known: " + ", ".join(DISTRIBUTIONS)
        raise PriorError(f"unknown prior distribution {name!r} in {label}", hint=hint)
    params, _ = DISTRIBUTIONS[name]
    rules = [f"{p} > 0" for p in POSITIVE_ARGS.get(name, ())] + (["lower < upper"] if name == "Uniform" else [])
    example = (_signature(name) + (f" with {' and '.join(rules)}" if rules else "")
               + (", all finite numbers" if params else ", no arguments") + f", e.g. {EXAMPLES[name]}")

    def value(param: str, arg: ast.AST) -> float:
        v = _number(arg)
        if v is None:
            got = ast.unparse(arg) if hasattr(ast, "unparse") else "?"
            if got in ("inf", "nan", "-inf", "+inf"):
                raise PriorError(f"{label}: {name}'s {param} must be a finite number (got {got})", hint=example)
            raise PriorError(f"{label}: {name}'s {param} must be a number (got {got[:40]!r})", hint=example)
        if not math.isfinite(v):
            raise PriorError(f"{label}: {name}'s {param} must be a finite number (got {v:g})", hint=example)
        return v

    if len(node.args) > len(params):
        raise PriorError(f"{label}: {name} takes {len(params)} argument(s) ({', '.join(params) or 'none'}), got {len(node.args)}",
                         hint=example)
    args = {p: value(p, a) for p, a in zip(params, node.args, strict=False)}
    for kw in node.keywords:
        if kw.arg is None or kw.arg not in params:
            raise PriorError(f"{label}: {name} has no parameter {kw.arg!r}", hint=example)
        if kw.arg in args:
            raise PriorError(f"{label}: {name}'s {kw.arg} is given twice", hint=example)
        args[kw.arg] = value(kw.arg, kw.value)
    missing = [p for p in params if p not in args]
    if missing:
        raise PriorError(f"{label}: {name} needs {', '.join(missing)} ({_signature(name)})", hint=example)
    for key in POSITIVE_ARGS.get(name, ()):
        if args[key] <= 0:
            raise PriorError(f"{label}: {name}'s {key} must be > 0 (got {args[key]:g})", hint=example)
    if name == "Uniform" and args["lower"] >= args["upper"]:
        raise PriorError(f"{label}: Uniform's lower must be below upper (got {args['lower']:g} and {args['upper']:g})", hint=example)
    return term, Prior(name, tuple((p, args[p]) for p in params), source="user")


PRESET_NAMES = ("hlm", "brms", "rstanarm")  # --prior-preset (see hlm_cli.model.priors.Preset)


class UserPriors(dict):
    """The user's priors by key, and the ``--prior-preset`` whose defaults they override."""

    preset: str | None = None


def check_preset(name: str | None) -> str | None:
    """``--prior-preset NAME``: one of :data:`PRESET_NAMES` (None: hlm's defaults)."""
    if name is None:
        return None
    if name not in PRESET_NAMES:
        raise PriorError(f"unknown --prior-preset {name!r}", hint="use one of: " + ", ".join(PRESET_NAMES))
    return name


def parse_priors(texts: list[str] | dict[str, str] | None, preset: str | None = None) -> UserPriors:
    """Parse every --prior (or the [priors] table of a config file); ``preset`` names the
    defaults they override (``--prior-preset``; None or "hlm": hlm's own)."""
    out = UserPriors()
    out.preset = check_preset(preset)
    if not texts:
        return out
    items = [f"{k}={v}" for k, v in texts.items()] if isinstance(texts, dict) else list(texts)
    for text in items:
        term, prior = parse_prior(text)
        term = printed_key(term)
        if term in out:
            raise PriorError(f"two priors given for {term!r}", hint="give each term one --prior")
        out[term] = prior
    return out


def sd_display_name(var: str) -> str:
    """The printed name of a group SD variable: ``1|gene_sigma`` -> ``sd(Intercept|gene)``,
    ``Days|Subject_sigma`` -> ``sd(Days|Subject)`` (the summary table's, brms's layout)."""
    if var.startswith("sds("):  # a smooth's SD (hlm_cli.formula.smooths) is printed as named
        return var
    return f"sd({var.removesuffix('_sigma').replace('1|', 'Intercept|', 1)})"


def sd_variable_name(text: str) -> str | None:
    """The variable a printed SD name stands for (``sd(Intercept|gene)`` -> ``1|gene_sigma``),
    or None when ``text`` is not of that form (``sd(gene)``, a class, has no ``|``)."""
    text = text.strip()
    if not (text.startswith("sd(") and text.endswith(")")) or "|" not in text:
        return None
    inner = text[3:-1].strip()
    col, _, factor = inner.partition("|")
    col, factor = col.strip(), factor.strip()
    if not col or not factor:
        return None
    return f"{'1' if col in ('Intercept', '1') else col}|{factor}_sigma"


def printed_key(term: str) -> str:
    """A prior key in the table's spelling, spaces around its punctuation dropped:
    ``sd( Intercept | g )`` and ``sd(1|g)`` -> ``sd(Intercept|g)``, ``cor(Intercept, x|g)`` ->
    ``cor(Intercept,x|g)``; other keys unchanged."""
    import re

    var = sd_variable_name(term)
    if var is not None:
        return sd_display_name(var)
    if term.startswith("cor(") and term.endswith(")"):
        return re.sub(r"\s*([(),|])\s*", r"\1", term)
    return term
