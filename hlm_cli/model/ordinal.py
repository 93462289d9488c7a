"""Ordinal (``--family cumulative``) responses: the order of the categories, and the design
without a population intercept.

The response's categories are coded 1..K in their order (the codes the likelihood, the
simulator and the PPC use; brms codes them the same way), and the order is:

- the order given with ``--levels y=low,mid,high`` (a config's ``levels = { y = [...] }``);
- else the categories of an ordered categorical column (a parquet/feather ordered factor);
- else numeric order for numbers (1, 2, 5 are three categories in that order);
- text without an explicit order is refused (alphabetical order is rarely the right one).

As in ``ordinal::clmm`` and brms, a cumulative model has no population intercept: the K - 1
thresholds ``Intercept[1] < ... < Intercept[K-1]`` replace it, with
P(y <= k) = F(Intercept[k] - eta). The design is built with the intercept (so factors get
treatment contrasts, as R does) and its column is then removed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hlm_cli.errors import FormulaError, InputError


def _same(value, text: str) -> bool:
    if str(value) == text:
        return True
    try:
        return float(value) == float(text)
    except (TypeError, ValueError):
        return False


def _shown(levels) -> str:
    levels = [str(v) for v in levels]
    return ",".join(levels[:12]) + (",..." if len(levels) > 12 else "")


def response_codes(values: pd.Series, name: str, order: list[str] | None = None, lines=None) -> tuple[np.ndarray, list[str]]:
    """The codes 1..K of an ordinal response and the K level labels in order.

    Raises
    ------
    InputError
        Text without an order, a value not among ``order``, a level listed twice, or fewer
        than two categories.
    """

    def line(i: int) -> int:
        return int(lines[i]) if lines is not None else i + 2

    if isinstance(values.dtype, pd.CategoricalDtype) and order is None:
        if values.cat.ordered:
            order = [str(c) for c in values.cat.categories]
        values = values.astype(object)
    present = pd.unique(values.dropna())
    if order is not None:
        order = [str(o).strip() for o in order]
        if len(set(order)) != len(order):
            dup = next(o for o in order if order.count(o) > 1)
            raise InputError(f"--levels {name}: level {dup!r} is listed twice", hint="list each level once, lowest first")
        codes = np.zeros(len(values))
        for k, level in enumerate(order, start=1):
            codes[[_same(v, level) for v in values]] = k
        bad = codes == 0
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(f"response {name!r} has the value {values.iloc[i]!r} on CSV line {line(i)}, which --levels {name}=... does not list",
                             hint=f"list every level lowest first: --levels {name}={_shown(order + [str(values.iloc[i])])}")
        labels = order
    elif pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        raise InputError(f"response {name!r} holds text; the order of its levels is not known",
                         hint=f"give it lowest first, e.g. --levels {name}={_shown(sorted(str(v) for v in present))}")
    else:
        levels = np.sort(np.asarray(present, dtype=float))
        codes = np.searchsorted(levels, np.asarray(values, dtype=float)) + 1.0
        labels = [f"{v:g}" for v in levels]
    if len(labels) < 2:
        raise InputError(f"response {name!r} has {len(labels)} category; an ordinal model needs at least 2",
                         hint="check the response column (or --levels)")
    return np.asarray(codes, dtype=float), labels


def check_formula(formula) -> None:
    """Refuse what a cumulative model cannot take: a response that is not a plain column,
    or a formula without the intercept (the thresholds are the intercepts)."""
    resp = formula.response
    if resp is not None and (resp.kind == "binomial" or resp.se or resp.failures or resp.trials):
        raise FormulaError("an ordinal (cumulative) response is one column of ordered categories",
                           hint="write it as 'rating ~ ...' (no cbind(), trials() or se())")
    if not formula.has_intercept:
        raise FormulaError("a cumulative model has no population intercept to remove: its thresholds Intercept[k] replace it",
                           hint="leave out '0 +' / '- 1' (the intercept column is dropped for you)")


def drop_intercept(design) -> None:
    """Remove the population intercept column of ``design`` (in place)."""
    if "Intercept" not in design.fixed_slices:
        return
    j = design.x_labels.index("Intercept")
    keep = [i for i in range(design.X.shape[1]) if i != j]
    design.X = np.asarray(design.X)[:, keep]
    design.x_labels = [lab for lab in design.x_labels if lab != "Intercept"]
    slices, start = {}, 0
    for term, sl in design.fixed_slices.items():
        if term == "Intercept":
            continue
        width = sl.stop - sl.start
        slices[term] = slice(start, start + width)
        start += width
    design.fixed_slices = slices
    design.fixed_kinds = {k: v for k, v in design.fixed_kinds.items() if k != "Intercept"}
    if design.term_labels:
        design.term_labels = {k: v for k, v in design.term_labels.items() if k != "Intercept"}
