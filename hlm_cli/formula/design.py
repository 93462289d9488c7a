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
from hlm_cli.formula.parser import Formula, GroupTerm, tokenize


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


def build_design(formula: Formula, data: pd.DataFrame, *, lines: Sequence[int] | None = None,
                 reference: dict[str, str] | None = None) -> Design:
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

    common = _design(formula.fixed, data, "population-level design")
    # "y ~ 0 + (1|g)": no population-level terms at all, and formulae returns no design
    X_all = np.zeros((len(data), 0)) if common is None else np.asarray(common.design_matrix, dtype=float)
    keep: list[int] = []
    x_labels: list[str] = []
    slices: dict[str, slice] = {}
    kinds: dict[str, str] = {}
    shown_terms: dict[str, list[str]] = {}
    offset = None
    for name, term in ({} if common is None else common.terms).items():
        sl = common.slices[name]
        kind = getattr(term, "kind", None) or "intercept"
        shown, labels = term_labels(term, data, sl.stop - sl.start)
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
    return Design(formula, y, X, x_labels, slices, kinds, groups, trials, se, offset, common, term_labels=shown_terms,
                  notes=integer_hints(kinds, data))
