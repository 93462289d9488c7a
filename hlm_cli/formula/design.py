"""Design matrices from a parsed :class:`~hlm_cli.formula.parser.Formula` and a data frame.

Population-level columns come from `formulae` (Bambi's formula engine) evaluated in
:data:`SAFE_NAMESPACE` only, never the caller's Python namespace. Group-level terms are kept
as an integer level index per row plus a small per-term design (n x K, K = intercept and
slopes), never as a dense n x (levels*K) matrix, so that models such as InstEval (73k rows,
4k levels) stay small.

Column names
------------
Every design column gets one label, built here from formulae's term components and used
unchanged by the model, summary.csv, tables, figures, ``--prior``, ``hypothesis`` and
``contrast``:

=========================  =============================================
``x``                      numeric
``recipe[B]``              factor (string column), one column per non-reference level
``flag[True]``             logical column (coded 0/1, ``False`` the reference)
``log(x)``, ``I(x^2)``     transforms (formulae's text, ``**`` written ``^``)
``x:z``                    numeric x numeric
``recipe[B]:temp``         factor x numeric
``a[2]:b[y]:x``            interactions of any order: component labels joined by ``:``
``s(x)_lin``               a smooth's null-space (linear) column (``s(x):fa_lin`` per level of
                           ``by = f``); the penalized part is :attr:`Design.smooths`
``cr(x, df=4)[0]``         one column per basis function of ``cr()`` / ``bs()``
=========================  =============================================

A term whose labels all read ``TERM[level]`` (a factor, ``x:recipe[B]``) keeps one entry in
:attr:`Design.fixed_slices` (one posterior variable with a ``TERM_dim`` dimension); any other
multi-column term (``recipe[B]:temp``, ``f[v]:g[s]``) gets one entry per column, keyed by its
label, so each column is a scalar posterior variable of that name.

Non-finite values
-----------------
A transform that gives ``inf`` or ``nan`` (``log(y)`` with ``y <= 0``, ``I(x/z)`` with
``z = 0``) is refused with an :class:`~hlm_cli.errors.InputError` naming the term, the first
bad row and the input values there, before any model is built.
"""

from __future__ import annotations

import itertools
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hlm_cli.errors import FormulaError, InputError
from hlm_cli.formula.parser import Formula, GroupTerm, ResidualAR, tokenize


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
    from hlm_cli.formula.smooths import CRSpline, Smooth

    ns.update(s=Smooth, cr=CRSpline)  # bs() is formulae's own (formulae.transforms.BSpline)
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


# --------------------------------------------------------------------------------------------
# Column labels


#: '/' separates groups in PyMC's and HDF5's names, so a division inside a term's name is
#: shown (and stored, and accepted by --prior and hypothesis) as U+2215 DIVISION SLASH.
DIVISION_SLASH = "\u2215"


def display_name(name: str) -> str:
    """formulae's text of a term or transform as hlm shows it: ``I(x ** 2)`` -> ``I(x^2)``,
    ``I(x / z)`` -> ``I(x ∕ z)`` (see :data:`DIVISION_SLASH`)."""
    return name.replace(" ** ", "^").replace("/", DIVISION_SLASH)


def _component_labels(comp, data: pd.DataFrame) -> list[str]:
    """Labels of one component of a term (a variable or a call), one per design column."""
    name = str(getattr(comp, "name", ""))
    labels = [str(lab) for lab in (getattr(comp, "labels", None) or [name])]
    shown = display_name(name)
    if shown != name:
        labels = [shown + lab[len(name) :] if lab.startswith(name) else lab for lab in labels]
    if (
        type(comp).__name__ == "Variable"
        and labels == [name]
        and name in data.columns
        and pd.api.types.is_bool_dtype(data[name])
    ):  # formulae codes a logical column 0/1 and names it like a number
        labels = [f"{name}[True]"]
    return labels


def term_labels(term, data: pd.DataFrame, width: int) -> tuple[str, list[str]]:
    """(display name, column labels) of one formulae term whose design has ``width`` columns."""
    kind = getattr(term, "kind", None)
    name = str(getattr(term, "name", "Intercept"))
    components = getattr(term, "components", None)
    if kind == "intercept" or not components:
        labels = [display_name(str(lab)) for lab in (getattr(term, "labels", None) or [name])]
        return display_name(name), labels
    parts = [_component_labels(c, data) for c in components]
    shown = ":".join(display_name(str(c.name)) for c in components)
    labels = [":".join(p) for p in itertools.product(*parts)] if kind == "interaction" else parts[0]
    if len(labels) != width:  # not a shape this module knows: formulae's own labels
        labels = [display_name(str(lab)) for lab in (getattr(term, "labels", None) or [name])]
    return shown, labels


def _one_variable(name: str, labels: list[str]) -> bool:
    """Whether a term's columns form one posterior variable: ``x``, or ``name[level]`` each."""
    if labels == [name]:
        return True
    pre = name + "["
    return all(lab.startswith(pre) and lab.endswith("]") and "]" not in lab[len(pre) : -1] for lab in labels)


def _add_term(
    name: str,
    labels: list[str],
    kind: str,
    slices: dict[str, slice],
    kinds: dict[str, str],
    x_labels: list[str],
    what: str,
) -> None:
    """Record one term's columns (see the module docstring for when a term is split)."""
    start = len(x_labels)
    for lab in labels:
        if lab in x_labels:
            raise FormulaError(
                f"two {what} columns are both named {lab!r}",
                hint="rename the column whose name looks like another term's label",
            )
    x_labels.extend(labels)
    keys = [(name, slice(start, start + len(labels)))] if _one_variable(name, labels) else [
        (lab, slice(start + j, start + j + 1)) for j, lab in enumerate(labels)
    ]
    for key, sl in keys:
        if key in slices:
            raise FormulaError(f"the {what} term {key!r} appears twice", hint="write each term once")
        slices[key] = sl
        kinds[key] = kind


# --------------------------------------------------------------------------------------------
# Non-finite values

_NEEDS = (
    (re.compile(r"\blog(?:2|10)?\("), "log() needs values > 0"),
    (re.compile(r"\blog1p\("), "log1p() needs values > -1"),
    (re.compile(r"\bsqrt\("), "sqrt() needs values >= 0"),
    (re.compile(r"\blogit\("), "logit() needs values strictly between 0 and 1"),
    (re.compile(r"\barc(?:sin|cos)\("), "arcsin()/arccos() need values in [-1, 1]"),
    (re.compile(r"/"), "a division by zero gives inf"),
    (re.compile(r"\bexp|\*\*"), "exp() or a power can overflow to inf"),
)


def _columns_in(expr: str, data: pd.DataFrame) -> list[str]:
    """Data columns named in formulae text (``log(`cell size` + 1)`` -> ``["cell size"]``)."""
    try:
        tokens = tokenize(expr)
    except FormulaError:
        return [expr] if expr in data.columns else []
    out: list[str] = []
    for t in tokens:
        if t.kind in ("name", "qname") and t.text in data.columns and t.text not in out:
            out.append(t.text)
    if not out and expr in data.columns:
        out.append(expr)
    return out


def _show(value) -> str:
    value = value.item() if hasattr(value, "item") else value
    return repr(value) if isinstance(value, str) else str(value)


def _row_name(i: int, lines: Sequence[int] | None) -> str:
    return f"CSV line {int(lines[i])}" if lines is not None else f"data row {i + 1}"


def check_finite(
    values,
    what: str,
    expr: str,
    data: pd.DataFrame,
    lines: Sequence[int] | None = None,
) -> None:
    """Refuse inf/nan in a response, design column or offset, naming the first bad row.

    ``what`` names the quantity (``"response log(y)"``, ``"term I(x / z)"``), ``expr`` is
    the formulae text it came from (its columns' values at the bad row are shown).
    """
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        return  # not numeric: the family's response check reports it
    if arr.ndim == 2:
        bad_rows = ~np.isfinite(arr).all(axis=1)
        first = arr[bad_rows][0] if bad_rows.any() else None
        value = None if first is None else first[~np.isfinite(first)][0]
    else:
        bad_rows = ~np.isfinite(arr)
        value = arr[bad_rows][0] if bad_rows.any() else None
    if value is None:
        return
    i = int(np.argmax(bad_rows))
    cols = _columns_in(expr, data)
    inputs = ", ".join(f"{c} = {_show(data[c].iloc[i])}" for c in cols)
    verb = "is" if expr in data.columns else "gives"
    n_bad = int(bad_rows.sum())
    needs = [text for pat, text in _NEEDS if pat.search(expr)]
    what = what.replace(DIVISION_SLASH, "/")  # messages quote the formula as the user wrote it
    raise InputError(
        f"{what} {verb} {value} at {_row_name(i, lines)}" + (f" ({inputs})" if inputs and verb == "gives" else "")
        + (f"; {n_bad} rows in all" if n_bad > 1 else ""),
        hint=("; ".join(needs) + "; " if needs else "the values must be finite numbers; ")
        + ("drop or fix those rows, or change the transform" if verb == "gives" else "drop or fix those rows"),
    )


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
    # ar1(time | id): the sorted distinct times (one design column each), the time unit (the
    # smallest gap) and the rows as a residual AR(1) series (for gaussian models; None when a
    # (group, time) pair has two rows, with ``duplicate`` naming them)
    times: np.ndarray | None = None
    unit: float = 1.0
    resid: ARRows | None = None
    duplicate: str | None = None

    @property
    def effect_names(self) -> list[str]:
        """Posterior variable names, Bambi-style: ``1|gene``, ``Days|Subject``."""
        return [f"{'1' if c == 'Intercept' else c}|{self.factor}" for c in self.columns]

    @property
    def cov(self) -> str:
        """The term's covariance structure: "" (unstructured or ``||``), "cs" or "ar1"."""
        return self.term.cov

    @property
    def sd_names(self) -> list[str]:
        """The term's SD variables: one per column, or one for the whole ar1() term."""
        if self.cov == "ar1":
            return [f"ar1({self.term.expr})|{self.factor}_sigma"]
        return [f"{n}_sigma" for n in self.effect_names]

    @property
    def rho_name(self) -> str | None:
        """The structured correlation's variable: ``cor(ar1(week)|patient)``, ``cor(cs|g)``."""
        if self.cov == "ar1":
            return f"cor(ar1({self.term.expr})|{self.factor})"
        if self.cov == "cs" and len(self.columns) > 1:
            return f"cor(cs|{self.factor})"
        return None

    @property
    def n_obs_per_level(self) -> np.ndarray:
        return np.bincount(self.index, minlength=len(self.levels))


@dataclass
class ARRows:
    """Residual AR(1) within groups (``ar(time = , gr = )``, or ``ar1()`` in a gaussian model).

    For each row: ``prev`` the row before it in its group's time order (-1 for a group's first
    row), ``lag`` the time since it in units of ``unit`` (the smallest gap between distinct
    times). ``integer_lags``: every lag a whole number of units, so rho may be negative.
    """

    label: str  # "ar(week|patient)" or the ar1() term's label
    rho_name: str  # the posterior variable of the correlation: "ar[1]", "cor(ar1(week)|patient)"
    time: str
    gr: tuple[str, ...]
    prev: np.ndarray
    lag: np.ndarray
    unit: float
    integer_lags: bool

    def phi(self, rho: np.ndarray) -> np.ndarray:
        """(S, n) correlation of each row's residual with its predecessor's (0 for first rows)."""
        return np.where(self.prev[None, :] >= 0, _power(np.asarray(rho, dtype=float).reshape(-1, 1), self.lag[None, :]), 0.0)


def _power(rho: np.ndarray, lag: np.ndarray) -> np.ndarray:
    """rho ** lag with a negative rho allowed for whole-number lags."""
    with np.errstate(invalid="ignore"):
        return np.sign(rho) ** np.round(lag) * np.abs(rho) ** lag


MAX_AR1_TIMES = 300  # distinct times of an ar1() term (one latent effect per group and time)


def _time_values(data: pd.DataFrame, col: str, what: str, lines) -> np.ndarray:
    values = data[col]
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values) or isinstance(values.dtype, pd.CategoricalDtype):
        first = values.iloc[0]
        raise InputError(
            f"{what}: the time column {col!r} is not numeric (it holds values such as {_show(first)})",
            hint=f"code the times as numbers (e.g. 1, 2, 3 for visits); {col!r} must not be a --categorical column",
        )
    t = values.to_numpy(dtype=float)
    check_finite(t, f"the time column {col}", col, data, lines)
    return t


def _ar_rows(t: np.ndarray, groups: np.ndarray, unit: float, label: str, rho_name: str, time: str, gr: tuple[str, ...],
             data: pd.DataFrame, lines) -> tuple[ARRows | None, str | None]:
    """The residual series of each group in time order; (None, message) when a group has two
    rows at one time."""
    order = np.lexsort((t, groups))
    same = groups[order][1:] == groups[order][:-1]
    dt = np.diff(t[order])
    dup = same & (dt == 0)
    if dup.any():
        k = int(np.argmax(dup))
        a, b = sorted((int(order[k]), int(order[k + 1])))
        where = f"{_row_name(a, lines)} and {_row_name(b, lines)}"
        gtxt = ", ".join(f"{c} = {_show(data[c].iloc[a])}" for c in gr)
        return None, f"{label}: {where} have the same time ({time} = {_show(data[time].iloc[a])}{', ' + gtxt if gtxt else ''})"
    prev = np.full(len(t), -1, dtype=np.int64)
    lag = np.zeros(len(t))
    nxt = order[1:][same]
    prev[nxt] = order[:-1][same]
    lag[nxt] = dt[same] / unit
    integer = bool(np.all(np.abs(lag - np.round(lag)) < 1e-8))
    if integer:
        lag = np.round(lag)
    return ARRows(label, rho_name, time, gr, prev, lag, float(unit), integer), None


def _ar1_group(gt: GroupTerm, data: pd.DataFrame, lines) -> GroupDesign:
    """``ar1(time | id)``: one effect per (group, distinct time), AR(1)-correlated over time."""
    t = _time_values(data, gt.expr, gt.label, lines)
    grid = np.unique(t)
    if len(grid) < 2:
        raise InputError(f"{gt.label}: the time column {gt.expr!r} has a single value ({grid[0]:g})",
                         hint="an AR(1) term needs at least 2 distinct times")
    if len(grid) > MAX_AR1_TIMES:
        raise InputError(f"{gt.label}: {gt.expr!r} has {len(grid)} distinct times; ar1() takes at most {MAX_AR1_TIMES}",
                         hint="ar1() has one effect per group and time: round the times to a coarser grid (e.g. days)")
    unit = float(np.min(np.diff(grid)))
    col = np.searchsorted(grid, t)
    Z = np.zeros((len(t), len(grid)))
    Z[np.arange(len(t)), col] = 1.0
    columns = [f"ar1({gt.expr})[{v:g}]" for v in grid]
    codes, uniques = pd.factorize(level_labels(data, gt.factor), sort=True)
    g = GroupDesign(gt, ":".join(gt.factor), columns, Z, codes.astype(np.int64), [str(u) for u in uniques], None,
                    times=grid, unit=unit)
    g.resid, g.duplicate = _ar_rows(t, g.index, unit, gt.label, g.rho_name, gt.expr, gt.factor, data, lines)
    return g


def residual_ar_design(ar: ResidualAR, data: pd.DataFrame, lines=None) -> ARRows:
    """brms's ``ar(time = , gr = )``: the rows as AR(1) series, one per group."""
    t = _time_values(data, ar.time, ar.label, lines)
    groups = (pd.factorize(level_labels(data, ar.gr), sort=True)[0] if ar.gr else np.zeros(len(t), dtype=np.int64))
    gaps = np.diff(t[np.lexsort((t, groups))])
    same = groups[np.lexsort((t, groups))]
    gaps = gaps[(same[1:] == same[:-1]) & (gaps > 0)]
    if gaps.size == 0:
        raise InputError(f"{ar.label}: no group has two rows at different times",
                         hint="ar() correlates each row's residual with the one before it in its group")
    rows, dup = _ar_rows(t, groups, float(gaps.min()), ar.label, "ar[1]", ar.time, ar.gr, data, lines)
    if rows is None:
        raise InputError(dup, hint="each group needs one row per time: average duplicate rows, or check the gr = column")
    return rows


@dataclass
class SigmaDesign:
    """``--sigma-formula "~ group"``: log(sigma) = X_sigma @ gamma (brms's sigma ~ ...)."""

    text: str
    X: np.ndarray
    labels: list[str]
    slices: dict[str, slice]
    common: object = field(repr=False, default=None)
    prefix: str = "sigma"  # the parameter modelled: sigma (log scale), zi or hu (logit scale)

    def names(self) -> dict[str, list[str]]:
        """Posterior variable per term (``sigma_Intercept``, ``sigma_group``) -> column labels."""
        return {f"{self.prefix}_{t}": self.labels[sl] for t, sl in self.slices.items()}


def build_sigma_design(rhs: str, data: pd.DataFrame, *, lines: Sequence[int] | None = None, prefix: str = "sigma") -> SigmaDesign:
    """Population-level design of a sigma formula (no group terms, no offsets).

    Columns are labelled and split into posterior variables as in :func:`build_design`;
    ``lines`` (CSV line of each row) names a row with a non-finite value.
    """
    flag = f"--{prefix.replace('_', '-')}-formula"
    common = _design(rhs, data, f"{prefix} formula")
    X = np.asarray(common.design_matrix, dtype=float)
    labels: list[str] = []
    slices: dict[str, slice] = {}
    kinds: dict[str, str] = {}
    for name, term in common.terms.items():
        if getattr(term, "kind", None) == "offset":
            raise FormulaError(f"offsets are not supported in {flag}")
        sl = common.slices[name]
        shown, labs = term_labels(term, data, sl.stop - sl.start)
        check_finite(X[:, sl], f"{flag} term {shown}", name, data, lines)
        _add_term(shown, labs, getattr(term, "kind", None) or "intercept", slices, kinds, labels, flag)
    return SigmaDesign(rhs, X, labels, slices, common, prefix)


@dataclass
class SmoothDesign:
    """The penalized part of one smooth (one level of its ``by`` factor): ``eta += Z @ b``,
    ``b ~ Normal(0, sds)`` iid (see :mod:`hlm_cli.formula.smooths`)."""

    term: object  # parser.SmoothTerm
    label: str  # s(x), s(x, k=5), s(x):fa
    Z: np.ndarray  # (n, k - 2)
    transform: object = field(repr=False, default=None)  # smooths.Smooth of the fit
    part: int = 0  # which level of by (0 without by)

    @property
    def sd_name(self) -> str:
        return f"sds({self.label})"

    def to_json(self) -> dict:
        """run.json's record: the basis at x is B(x) (natural cubic spline, cardinal on
        ``knots``, linear beyond them); ``B(x) @ fixed`` is the population column(s) and
        ``B(x) @ random`` the penalized columns (times 1[by == level])."""
        F, R = self.transform.parts[self.part]
        return {"term": self.term.text, "label": self.label, "x": self.term.x, "by": self.term.by,
                "level": None if self.transform.levels is None else self.transform.levels[self.part],
                "basis": "cr", "k": len(self.transform.basis.knots), "knots": self.transform.basis.knots.tolist(),
                "population": f"{self.label}_lin", "sd": self.sd_name, "coefficients": self.label,
                "fixed": F.tolist(), "random": R.tolist()}

    def basis(self, frame: pd.DataFrame) -> np.ndarray:
        """The same columns at new rows (the fit's knots and transforms)."""
        by = None if self.term.by is None else frame[self.term.by]
        try:
            return self.transform.random(frame[self.term.x].to_numpy(dtype=float), by)[self.part]
        except ValueError as err:
            raise InputError(f"cannot evaluate {self.label} at the new rows: {err}",
                             hint="new rows need a numeric x and levels of by= that were fitted") from None


def _check_smooths(formula: Formula, data: pd.DataFrame) -> None:
    """s(x): x numeric with at least k distinct values; by a factor."""
    from hlm_cli.formula.smooths import DEFAULT_K

    for sm in formula.smooths:
        col = data[sm.x]
        if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            raise FormulaError(f"{sm.text}: {sm.x!r} is not numeric; a smooth needs a numeric column",
                               hint=f"for a factor use it as a term ({sm.x}) or a group term (1|{sm.x}); "
                               f"s(x, by = {sm.x}) fits one curve per level")
        k = sm.k or DEFAULT_K
        groups = [col] if sm.by is None else [col[data[sm.by].astype(str) == lev] for lev in sorted(set(data[sm.by].astype(str)))]
        fewest = min(len(pd.unique(g)) for g in groups)
        if fewest < k:
            raise FormulaError(f"{sm.text}: {sm.x!r} has only {fewest} distinct values"
                               + (" in a level of " + repr(sm.by) if sm.by else "") + f", fewer than k = {k}",
                               hint=f"lower the basis dimension: s({sm.x}, k = {max(3, fewest)})"
                               + (f", or enter {sm.x} as a number or a factor" if fewest < 3 else ""))
        if sm.by is not None:
            b = data[sm.by]
            if pd.api.types.is_numeric_dtype(b) and not isinstance(b.dtype, pd.CategoricalDtype):
                raise FormulaError(f"{sm.text}: by = {sm.by} is numeric; hlm supports a factor by= only",
                                   hint=f"add --categorical {sm.by} for one curve per level")


def _smooth_of(term):
    from hlm_cli.formula.smooths import Smooth

    comps = getattr(term, "components", None) or []
    if len(comps) == 1 and isinstance(getattr(getattr(comps[0], "call", None), "stateful_transform", None), Smooth):
        return comps[0].call.stateful_transform
    return None


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
    dpar: SigmaDesign | None = None  # --zi-formula / --hu-formula: logit(zi or hu) regression
    # each population-level term as written (``recipe:temp``) -> its column labels, also
    # for terms split into one posterior variable per column (see the module docstring)
    term_labels: dict[str, list[str]] = field(default_factory=dict)
    # hints about the data as the formula uses it (a small-integer column entering as a number)
    notes: list[str] = field(default_factory=list)
    # each factor whose level order was set (relevel(), C(x, levels = ...), --reference):
    # its levels as strings, reference first (contrast uses the same order)
    levels: dict[str, list[str]] = field(default_factory=dict)
    # residual AR(1): ar(time = , gr = ), or an ar1() term of a gaussian model (see
    # hlm_cli.model.build.residual_structure); None otherwise
    autocor: ARRows | None = None
    # an ordinal (cumulative) response: its K level labels in order (design.y holds codes 1..K)
    response_levels: list[str] | None = None
    smooths: list[SmoothDesign] = field(default_factory=list)  # penalized parts of s() terms
    # cens(), trunc(), weights() of the left-hand side (hlm_cli.formula.response_terms)
    terms: object = None

    @property
    def n(self) -> int:
        return len(self.y)


MAX_HINT_LEVELS = 10  # an integer column with at most this many values may be a coded factor


def set_reference(data: pd.DataFrame, reference: dict[str, str] | None) -> pd.DataFrame:
    """Make each ``column: level`` of ``reference`` the column's reference (first) level.

    ``--reference Genotype=wt``: the column becomes an ordered categorical whose categories are
    the reference level and then the others in formulae's (sorted) order; formulae keeps that
    order for an ordered categorical, so ``Genotype[ko]`` is then the ko - wt difference. A
    numeric column named here becomes a factor (as with ``--categorical``). The level is
    matched against the values as written (``--reference period=1`` for 1, 1.0 or "1").

    Raises
    ------
    InputError
        A column not in the data, or a level not among its values (the hint lists them).
    """
    if not reference:
        return data
    from hlm_cli.errors import closest_match

    data = data.copy()
    for col, ref in reference.items():
        if col not in data.columns:
            raise InputError(f"--reference {col}={ref}: the data have no column {col!r}",
                             hint=closest_match(col, [str(c) for c in data.columns], what="columns"))
        values = data[col]
        if isinstance(values.dtype, pd.CategoricalDtype):
            values = values.astype(object)
        levels = sorted(pd.unique(values.dropna()).tolist(), key=lambda v: (str(type(v)), v))
        match = [v for v in levels if str(v) == ref or _same_number(v, ref)]
        if not match:
            shown = ", ".join(str(v) for v in levels[:12]) + (", ..." if len(levels) > 12 else "")
            raise InputError(f"--reference {col}={ref}: {ref!r} is not a level of {col!r}",
                             hint=f"its levels are {shown}")
        order = match[:1] + [v for v in levels if v is not match[0] and v != match[0]]
        data[col] = pd.Categorical(values, categories=order, ordered=True)
    return data


def _levels_of(values: pd.Series) -> list:
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(object)
    return sorted(pd.unique(values.dropna()).tolist(), key=lambda v: (str(type(v)), v))


def _find_level(levels: list, wanted) -> list:
    return [v for v in levels if str(v) == str(wanted) or _same_number(v, str(wanted))]


def _shown_levels(levels: list) -> str:
    return ", ".join(repr(v) if isinstance(v, str) else str(v) for v in levels[:12]) + (", ..." if len(levels) > 12 else "")


def set_levels(data: pd.DataFrame, orders, reference: dict[str, str] | None = None) -> tuple[pd.DataFrame, dict[str, str] | None]:
    """Apply a formula's ``relevel(x, ref = "wt")`` and ``C(x, levels = [...])`` to ``data``.

    Each named column becomes an ordered categorical (as with ``--reference``, see
    :func:`set_reference`): relevel puts the reference first and the rest in sorted order; C's
    list is the full order. Terms keep the plain column name (``Genotype[ko]``). Returns the data
    and what is left of ``reference`` once the columns the formula orders are taken out.

    Raises
    ------
    FormulaError
        A level not in the column (the hint lists its levels), C's list leaving out a level,
        relevel on a numeric column (the hint shows C(x, levels = ...)), two different orders
        for one column, or an order that disagrees with ``--reference``.
    """
    if not orders:
        return data, reference
    data = data.copy()
    done: dict[str, tuple[list, str, bool]] = {}
    for o in orders:
        col = o.column
        if col not in data.columns:  # the parser checks columns; a direct caller may not
            raise FormulaError(f"{o.text}: the data have no column {col!r}")
        values = data[col]
        if col in done:
            values = values.astype(object)
        levels = _levels_of(values)
        numeric = (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
                   and not isinstance(values.dtype, pd.CategoricalDtype))
        matched = []
        for want in o.values:
            found = _find_level(levels, want)
            if not found:
                raise FormulaError(f"{o.text}: {want!r} is not a level of {col!r}",
                                   hint=f"its levels are {_shown_levels(levels)}")
            matched.append(found[0])
        if numeric and not o.factor:
            example = _shown_levels(matched[:1] + [v for v in levels if v != matched[0]])
            raise FormulaError(
                f"{o.text}: {col} is a number, not a factor, so it has no reference level",
                hint=f"make it a factor with its levels in order: C({col}, levels = [{example}]), "
                     f"or relevel(C({col}), ref = {matched[0]}), or --reference {col}={matched[0]}",
            )
        if o.full:
            missing = [v for v in levels if not any(v is m or v == m for m in matched)]
            if missing:
                raise FormulaError(f"{o.text} leaves out the level(s) {_shown_levels(missing)} of {col!r}",
                                   hint=f"list every level in order: {_shown_levels(levels)}")
            order = matched
        else:
            order = matched[:1] + [v for v in levels if v is not matched[0] and v != matched[0]]
        if col in done:  # relevel() claims the reference only; C(levels=) the whole order
            before, text, full = done[col]
            if str(before[0]) != str(order[0]) or (full and o.full and [str(v) for v in before] != [str(v) for v in order]):
                raise FormulaError(f"{o.text} and {text} give {col!r} two different level orders",
                                   hint=f"order {col}'s levels once in the formula")
            if full:
                continue
        done[col] = (order, o.text, o.full)
        data[col] = pd.Categorical(values, categories=order, ordered=True)
    rest = dict(reference or {})
    for col, (order, text, _) in done.items():
        if col in rest:
            ref = rest.pop(col)
            if not _find_level(order[:1], ref):
                raise FormulaError(f"--reference {col}={ref} disagrees with {text} in the formula (reference {order[0]!r})",
                                   hint=f"set {col}'s reference level in one place: drop --reference {col}=... or change the formula")
    return data, (rest or None)


def _same_number(value, text: str) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    try:
        return float(text) == float(value)
    except ValueError:
        return False


def integer_hints(design_terms: dict[str, str], data: pd.DataFrame) -> list[str]:
    """A hint for each population-level term that is a data column of whole numbers with few
    distinct values entering as a number (``period`` 1-4 in lme4's cbpp: a slope, where lme4's
    example has a factor)."""
    notes = []
    for term, kind in design_terms.items():
        if kind != "numeric" or term not in data.columns:
            continue
        col = data[term]
        if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            continue
        x = col.to_numpy(dtype=float)
        if not np.all(np.isfinite(x)) or not np.all(x == np.round(x)):
            continue
        k = len(np.unique(x))
        if k == 2 and set(np.unique(x)) == {0.0, 1.0}:
            notes.append(f"{term} is coded 0/1 and enters as a number (its coefficient is the 1 - 0 difference); "
                         f"if it is a factor, add --categorical {term} to name its levels")
        elif 3 <= k <= MAX_HINT_LEVELS and len(x) >= 2 * k:
            notes.append(f"{term} has {k} distinct integer values and enters as a number (one slope); "
                         f"if it is a factor, add --categorical {term}")
    return notes


def level_labels(data: pd.DataFrame, factor: tuple[str, ...]) -> pd.Series:
    """String labels of a (possibly interacted) grouping factor, e.g. ``"A:a1"``."""
    parts = [data[c].astype(str) for c in factor]
    out = parts[0]
    for p in parts[1:]:
        out = out + ":" + p
    return out


def _codes_in(labels: pd.Series, levels: list[str], factor: str) -> tuple[np.ndarray, list[str]]:
    """Codes of ``labels`` in a given full level set (``group_levels`` of :func:`build_design`)."""
    codes = pd.Categorical(labels, categories=list(levels)).codes
    if (codes < 0).any():
        bad = labels[codes < 0].iloc[0]
        raise InputError(f"grouping factor {factor!r} has the level {bad!r}, which is not in its level set",
                         hint="rerun hlm batch --by on the whole table so that the level sets are rebuilt")
    return codes, list(levels)


def build_design(formula: Formula, data: pd.DataFrame, *, lines: Sequence[int] | None = None,
                 reference: dict[str, str] | None = None, group_levels: dict[str, list[str]] | None = None) -> Design:
    """Evaluate a parsed formula on (already NaN-free) data.

    Parameters
    ----------
    formula : Formula
        From :func:`hlm_cli.formula.parse`, checked against ``data``'s columns.
    data : pandas.DataFrame
        Rows to model; grouping columns may be of any type (levels are their string form).
    lines : sequence of int, optional
        The CSV line of each row, to name a row with a non-finite value (else "data row N").
    reference : dict, optional
        ``{column: level}``: each column's reference level (``--reference``), see
        :func:`set_reference`.
    group_levels : dict, optional
        ``{factor: [level, ...]}`` (factor as ``"a:b"`` for an interaction): the full level set
        of a grouping factor, a superset of the levels in ``data`` (``hlm batch --by``: every
        feature gets the table's levels, so that features share one model structure; a level
        without rows gets draws from its prior).

    Returns
    -------
    Design

    Raises
    ------
    InputError
        A response, trials, design column or offset that is inf or nan (``log(y)`` with
        ``y <= 0``, ``I(x/z)`` with ``z = 0``), naming the term and the first bad row.
    """
    resp = formula.response
    if resp is None:
        raise FormulaError("the formula has no response", hint='e.g. "logfc ~ 1 + (1|gene)"')
    data, reference = set_levels(data, formula.levels, reference)
    data = set_reference(data, reference)
    y = np.asarray(_eval_expr(resp.expr, data, "response"))
    check_finite(y, f"the response {resp.expr}", resp.expr, data, lines)
    trials = None
    if resp.kind == "binomial":
        if resp.failures is not None:
            failures = np.asarray(_eval_expr(resp.failures, data, "number of failures"))
            check_finite(failures, f"the number of failures {resp.failures}", resp.failures, data, lines)
            trials = y + failures
        else:
            trials = np.asarray(_eval_expr(resp.trials, data, "number of trials"))
            check_finite(trials, f"the number of trials {resp.trials}", resp.trials, data, lines)
    se = None
    if resp.se is not None:
        se = data[resp.se].to_numpy()

    _check_smooths(formula, data)
    common = _design(formula.fixed, data, "population-level design")
    # "y ~ 0 + (1|g)": no population-level terms at all, and formulae returns no design
    X_all = np.zeros((len(data), 0)) if common is None else np.asarray(common.design_matrix, dtype=float)
    keep: list[int] = []
    x_labels: list[str] = []
    slices: dict[str, slice] = {}
    kinds: dict[str, str] = {}
    shown_terms: dict[str, list[str]] = {}
    offset = None
    smooths: list[SmoothDesign] = []
    by_text = {sm.text: sm for sm in formula.smooths}
    for name, term in ({} if common is None else common.terms).items():
        sl = common.slices[name]
        kind = getattr(term, "kind", None) or "intercept"
        shown, labels = term_labels(term, data, sl.stop - sl.start)
        tr = _smooth_of(term)
        if tr is not None and name in by_text:  # s(): its null space here, its penalized part below
            sm = by_text[name]
            names = [sm.label] if tr.levels is None else [f"{sm.label}:{sm.by}{lev}" for lev in tr.levels]
            shown, labels = f"{name}_lin", [f"{nm}_lin" for nm in names]
            by = None if sm.by is None else data[sm.by]
            for j, Zs in enumerate(tr.random(data[sm.x].to_numpy(dtype=float), by)):
                smooths.append(SmoothDesign(sm, names[j], Zs, tr, j))
        check_finite(X_all[:, sl], f"the term {shown}", name, data, lines)
        if kind == "offset":
            col = X_all[:, sl].sum(axis=1)
            offset = col if offset is None else offset + col
            continue
        keep.extend(range(sl.start, sl.stop))
        shown_terms[shown] = labels
        _add_term(shown, labels, kind, slices, kinds, x_labels, "population-level")
    X = X_all[:, keep]

    groups: list[GroupDesign] = []
    seen: set[str] = set()
    for gt in formula.groups:
        if gt.cov == "ar1":
            g = _ar1_group(gt, data, lines)
            if len(g.levels) < 2:
                raise InputError(f"grouping factor {g.factor!r} has a single level ({g.levels[0]!r}) in the data",
                                 hint=f"{gt.label} needs at least 2 groups; for one series use ar(time = {gt.expr})")
            groups.append(g)
            continue
        g_common = _design(gt.expr, data, f"group-level term ({gt.label})")
        Z = np.asarray(g_common.design_matrix, dtype=float)
        cols: list[str] = []
        for name, term in g_common.terms.items():
            if getattr(term, "kind", None) == "offset":
                raise FormulaError("offsets belong in the population-level part of the formula")
            sl = g_common.slices[name]
            shown, labels = term_labels(term, data, sl.stop - sl.start)
            check_finite(Z[:, sl], f"the term {shown} in ({gt.label})", name, data, lines)
            cols.extend(labels)
        labels = level_labels(data, gt.factor)
        codes, uniques = pd.factorize(labels, sort=True)
        if group_levels and ":".join(gt.factor) in group_levels:
            codes, uniques = _codes_in(labels, group_levels[":".join(gt.factor)], ":".join(gt.factor))
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
    ordered = {str(c): [str(v) for v in data[c].cat.categories] for c in data.columns
               if isinstance(data[c].dtype, pd.CategoricalDtype) and data[c].cat.ordered}
    autocor = residual_ar_design(formula.autocor, data, lines) if formula.autocor is not None else None
    from hlm_cli.formula.response_terms import evaluate as response_terms

    return Design(formula, y, X, x_labels, slices, kinds, groups, trials, se, offset, common, term_labels=shown_terms,
                  notes=integer_hints(kinds, data), levels=ordered, autocor=autocor, smooths=smooths,
                  terms=response_terms(resp, data, y, lines))
