"""Design matrices from a parsed :class:`~hlm_cli.formula.parser.Formula` and a data frame.

Population-level columns come from `formulae` (Bambi's formula engine) evaluated in
:data:`SAFE_NAMESPACE` only, never the caller's Python namespace. Group-level terms are kept
as an integer level index per row plus a small per-term design (n x K, K = intercept and
slopes), never as a dense n x (levels*K) matrix, so that models such as InstEval (73k rows,
4k levels) stay small.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hlm_cli.errors import FormulaError, InputError
from hlm_cli.formula.parser import Formula, GroupTerm


def _logit(x):
    x = np.asarray(x, dtype=float)
    return np.log(x) - np.log1p(-x)


def _expit(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


def _safe_namespace() -> dict:
    from formulae.transforms import TRANSFORMS

    ns = {name: TRANSFORMS[name] for name in ("C", "I", "offset", "p", "prop", "proportion")}
    ns.update(
        scale=TRANSFORMS["scale"] if "scale" in TRANSFORMS else TRANSFORMS["standardize"],
        standardize=TRANSFORMS["standardize"],
        center=TRANSFORMS["center"],
    )
    for name in (
        "log", "log2", "log10", "log1p", "exp", "expm1", "sqrt", "abs", "sin", "cos", "tan",
        "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "floor", "ceil", "round",
        "square", "sign",
    ):
        ns[name] = getattr(np, name)
    ns.update(logit=_logit, expit=_expit, inv_logit=_expit, True_=True)
    return ns


def _env():
    from formulae.environment import Environment

    return Environment([_safe_namespace()])


def _design(rhs: str, data: pd.DataFrame, what: str):
    """formulae's common-effects design for ``~ rhs`` in the closed namespace."""
    import formulae

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dm = formulae.design_matrices(rhs, data, na_action="error", env=_env())
    except FormulaError:
        raise
    except Exception as err:  # formulae's own errors: bad transform arguments, etc.
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise FormulaError(f"cannot build the {what} from {rhs!r}: {msg}") from None
    return dm.common


def _eval_expr(expr: str, data: pd.DataFrame, what: str) -> np.ndarray:
    """Evaluate a single (already allow-listed) expression, e.g. the response ``log(y)``."""
    if expr in data.columns:
        return data[expr].to_numpy()
    try:  # a constant, e.g. trials(10) or cbind(s, 3)
        return np.full(len(data), float(expr))
    except ValueError:
        pass
    common = _design(f"0 + I({expr})", data, what)
    return np.asarray(common.design_matrix)[:, 0]


@dataclass
class GroupDesign:
    """One group-level term: per-row level index and the per-term design columns."""

    term: GroupTerm
    factor: str  # "gene", "batch:cask"
    columns: list[str]  # design labels, e.g. ["Intercept", "Days"]
    Z: np.ndarray  # (n, K)
    index: np.ndarray  # (n,) int level index
    levels: list[str]
    common: object = field(repr=False, default=None)  # formulae matrix, for new data

    @property
    def effect_names(self) -> list[str]:
        """Posterior variable names, Bambi-style: ``1|gene``, ``Days|Subject``."""
        return [f"{'1' if c == 'Intercept' else c}|{self.factor}" for c in self.columns]

    @property
    def n_obs_per_level(self) -> np.ndarray:
        return np.bincount(self.index, minlength=len(self.levels))


@dataclass
class SigmaDesign:
    """``--sigma-formula "~ group"``: log(sigma) = X_sigma @ gamma (brms's sigma ~ ...)."""

    text: str
    X: np.ndarray
    labels: list[str]
    slices: dict[str, slice]
    common: object = field(repr=False, default=None)

    def names(self) -> dict[str, list[str]]:
        """Posterior variable per term (``sigma_Intercept``, ``sigma_group``) -> column labels."""
        return {f"sigma_{t}": self.labels[sl] for t, sl in self.slices.items()}


def build_sigma_design(rhs: str, data: pd.DataFrame) -> SigmaDesign:
    """Population-level design of a sigma formula (no group terms, no offsets)."""
    common = _design(rhs, data, "sigma formula")
    X = np.asarray(common.design_matrix, dtype=float)
    labels: list[str] = []
    slices: dict[str, slice] = {}
    for name, term in common.terms.items():
        if getattr(term, "kind", None) == "offset":
            raise FormulaError("offsets are not supported in --sigma-formula")
        start = len(labels)
        labels.extend(list(getattr(term, "labels", None) or [name]))
        slices[name] = slice(start, len(labels))
    return SigmaDesign(rhs, X, labels, slices, common)


@dataclass
class Design:
    """Everything the model builder needs, as plain arrays."""

    formula: Formula
    y: np.ndarray
    X: np.ndarray  # (n, p) population-level design, without offsets
    x_labels: list[str]
    fixed_slices: dict[str, slice]  # formulae term name -> columns of X
    fixed_kinds: dict[str, str]
    groups: list[GroupDesign]
    trials: np.ndarray | None = None
    se: np.ndarray | None = None
    offset: np.ndarray | None = None
    common: object = field(repr=False, default=None)
    sigma: SigmaDesign | None = None  # distributional model for the residual SD

    @property
    def n(self) -> int:
        return len(self.y)


def level_labels(data: pd.DataFrame, factor: tuple[str, ...]) -> pd.Series:
    """String labels of a (possibly interacted) grouping factor, e.g. ``"A:a1"``."""
    parts = [data[c].astype(str) for c in factor]
    out = parts[0]
    for p in parts[1:]:
        out = out + ":" + p
    return out


def build_design(formula: Formula, data: pd.DataFrame) -> Design:
    """Evaluate a parsed formula on (already NaN-free) data.

    Parameters
    ----------
    formula : Formula
        From :func:`hlm_cli.formula.parse`, checked against ``data``'s columns.
    data : pandas.DataFrame
        Rows to model; grouping columns may be of any type (levels are their string form).

    Returns
    -------
    Design
    """
    resp = formula.response
    if resp is None:
        raise FormulaError("the formula has no response", hint='e.g. "logfc ~ 1 + (1|gene)"')
    y = np.asarray(_eval_expr(resp.expr, data, "response"))
    trials = None
    if resp.kind == "binomial":
        if resp.failures is not None:
            trials = y + np.asarray(_eval_expr(resp.failures, data, "number of failures"))
        else:
            trials = np.asarray(_eval_expr(resp.trials, data, "number of trials"))
    se = None
    if resp.se is not None:
        se = data[resp.se].to_numpy()

    common = _design(formula.fixed, data, "population-level design")
    # "y ~ 0 + (1|g)": no population-level terms at all, and formulae returns no design
    X_all = np.zeros((len(data), 0)) if common is None else np.asarray(common.design_matrix, dtype=float)
    keep: list[int] = []
    x_labels: list[str] = []
    slices: dict[str, slice] = {}
    kinds: dict[str, str] = {}
    offset = None
    for name, term in ({} if common is None else common.terms).items():
        sl = common.slices[name]
        kind = getattr(term, "kind", None) or "intercept"
        if kind == "offset":
            col = X_all[:, sl].sum(axis=1)
            offset = col if offset is None else offset + col
            continue
        start = len(keep)
        keep.extend(range(sl.start, sl.stop))
        labels = list(getattr(term, "labels", None) or [name])
        x_labels.extend(labels)
        slices[name] = slice(start, len(keep))
        kinds[name] = kind
    X = X_all[:, keep]

    groups: list[GroupDesign] = []
    seen: set[str] = set()
    for gt in formula.groups:
        g_common = _design(gt.expr, data, f"group-level term ({gt.label})")
        Z = np.asarray(g_common.design_matrix, dtype=float)
        cols: list[str] = []
        for name, term in g_common.terms.items():
            if getattr(term, "kind", None) == "offset":
                raise FormulaError("offsets belong in the population-level part of the formula")
            cols.extend(list(getattr(term, "labels", None) or [name]))
        labels = level_labels(data, gt.factor)
        codes, uniques = pd.factorize(labels, sort=True)
        g = GroupDesign(gt, ":".join(gt.factor), cols, Z, codes.astype(np.int64), [str(u) for u in uniques], g_common)
        for nm in g.effect_names:
            if nm in seen:
                raise FormulaError(
                    f"the group-level effect {nm!r} appears twice in the formula",
                    hint="each column may vary by a grouping factor once",
                )
            seen.add(nm)
        if len(g.levels) < 2:
            raise InputError(
                f"grouping factor {g.factor!r} has a single level ({g.levels[0]!r}) in the data",
                hint=f"a group-level term needs at least 2 groups; drop (... | {g.factor}) from the formula",
            )
        groups.append(g)
    return Design(formula, y, X, x_labels, slices, kinds, groups, trials, se, offset, common)
