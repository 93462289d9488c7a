"""The data of the response terms ``cens()``, ``trunc()`` and ``weights()`` (brms's additions).

:func:`evaluate` reads the columns a formula's left-hand side names into one
:class:`ResponseTerms` of per-row arrays, checking them as brms does and naming the first bad
CSV line. What the terms mean for the likelihood is :mod:`hlm_cli.model.censoring`;
docs/response-terms.md is the user's page.

Censoring codes (brms's ``prepare_cens``): ``"left"``/-1 (the true value is at most y),
``"none"``/0/FALSE, ``"right"``/1/TRUE (at least y), ``"interval"``/2 (between y and y2);
strings may be abbreviated (``"l"``, ``"r"``) and any case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from hlm_cli.errors import InputError

CODES = {"left": -1, "none": 0, "right": 1, "interval": 2}
CODE_NAMES = {v: k for k, v in CODES.items()}


@dataclass(frozen=True)
class ResponseTerms:
    """Per-row arrays of the response terms (None: the term is absent)."""

    cens: np.ndarray | None = None  # int codes -1, 0, 1, 2
    y2: np.ndarray | None = None  # upper end of interval-censored rows (y + 1 elsewhere: a safe filler)
    lb: np.ndarray | None = None  # truncation bounds per row (-inf / inf: none)
    ub: np.ndarray | None = None
    weights: np.ndarray | None = None
    weights_type: str = "precision"

    def pick(self, idx) -> ResponseTerms:
        """The same terms for a subset of rows."""
        def sub(a):
            return None if a is None else np.asarray(a)[idx]

        return replace(self, cens=sub(self.cens), y2=sub(self.y2), lb=sub(self.lb), ub=sub(self.ub), weights=sub(self.weights))

    @property
    def censored(self) -> bool:
        return self.cens is not None and bool(np.any(self.cens != 0))

    @property
    def truncated(self) -> bool:
        return (self.lb is not None and bool(np.any(np.isfinite(self.lb)))) or (
            self.ub is not None and bool(np.any(np.isfinite(self.ub))))

    @property
    def loglik_weights(self) -> np.ndarray | None:
        return self.weights if self.weights_type == "loglik" else None

    @property
    def precision_weights(self) -> np.ndarray | None:
        return self.weights if self.weights_type == "precision" else None

    def counts(self) -> dict[str, int]:
        """Rows per censoring kind, for run.json and the report."""
        if self.cens is None:
            return {}
        return {CODE_NAMES[c]: int(np.sum(self.cens == c)) for c in (-1, 0, 1, 2)}

    def structure(self) -> dict:
        """What changes the model graph (the compiled-model cache key)."""
        return {
            "cens": sorted(int(c) for c in np.unique(self.cens)) if self.cens is not None else None,
            "lb": self.lb is not None and bool(np.any(np.isfinite(self.lb))),
            "ub": self.ub is not None and bool(np.any(np.isfinite(self.ub))),
            "weights": None if self.weights is None else self.weights_type,
        }


def _line(lines, i: int) -> int:
    return int(lines[i]) if lines is not None else i + 2


def cens_codes(values, column: str, lines: Sequence[int] | None = None) -> np.ndarray:
    """brms's censoring coding -> int codes -1/0/1/2; an InputError names the first bad row."""
    s = pd.Series(values).reset_index(drop=True)
    out = np.empty(len(s), dtype=np.int64)
    for i, v in enumerate(s.tolist()):
        code = None
        if isinstance(v, (bool, np.bool_)):
            code = 1 if v else 0
        elif isinstance(v, str):
            t = v.strip().lower()
            matches = [c for name, c in CODES.items() if t and name.startswith(t)]
            if len(matches) == 1:
                code = matches[0]
            elif t in ("true", "false"):
                code = 1 if t == "true" else 0
            else:
                try:
                    f = float(t)
                    code = int(f) if f in (-1.0, 0.0, 1.0, 2.0) else None
                except ValueError:
                    code = None
        else:
            try:
                f = float(v)
                code = int(f) if f in (-1.0, 0.0, 1.0, 2.0) else None
            except (TypeError, ValueError):
                code = None
        if code is None:
            raise InputError(
                f"censoring column {column!r} has {v!r} on CSV line {_line(lines, i)}",
                hint='use "left", "none", "right", "interval" (or -1, 0, 1, 2; TRUE = right, FALSE = none)',
            )
        out[i] = code
    return out


def _numbers(data: pd.DataFrame, spec: str, what: str, lines) -> np.ndarray:
    try:
        return np.full(len(data), float(spec))
    except ValueError:
        pass
    col = data[spec]
    x = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
    bad = np.isnan(x) & col.notna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(f"{what} column {spec!r} is not numeric: CSV line {_line(lines, i)} has {col.iloc[i]!r}",
                         hint="give numbers in that column")
    return x


def evaluate(resp, data: pd.DataFrame, y: np.ndarray, lines: Sequence[int] | None = None) -> ResponseTerms | None:
    """The response terms of ``resp`` (a parsed :class:`~hlm_cli.formula.parser.Response`) on ``data``.

    Raises
    ------
    InputError
        An unknown censoring code, an interval-censored row without y2 or with y2 <= y, a
        response outside its truncation bounds, a negative or non-finite weight (zero for
        precision weights).
    """
    if resp.cens is None and resp.trunc_lb is None and resp.trunc_ub is None and resp.weights is None:
        return None
    y = np.asarray(y, dtype=float)
    cens = y2 = lb = ub = w = None
    if resp.cens is not None:
        cens = cens_codes(data[resp.cens], resp.cens, lines)
        interval = cens == 2
        if resp.cens_y2 is not None:
            raw = _numbers(data, resp.cens_y2, "the interval's upper end (y2)", lines)
            with np.errstate(invalid="ignore"):
                bad = interval & ~(np.isfinite(raw) & (raw > y))
            if bad.any():
                i = int(np.argmax(bad))
                raise InputError(
                    f"interval-censored row on CSV line {_line(lines, i)} needs y2 > y; "
                    f"it has y = {y[i]:g}, {resp.cens_y2} = {raw[i]:g}",
                    hint="y is the lower end and y2 the upper end of the interval",
                )
            y2 = np.where(interval, raw, y + 1.0)
        elif interval.any():
            i = int(np.argmax(interval))
            raise InputError(
                f"censoring column {resp.cens!r} marks CSV line {_line(lines, i)} as interval-censored, "
                "but cens() names no upper end",
                hint="write y | cens(c, y2) ~ ... with y2 the column of upper ends",
            )
    if resp.trunc_lb is not None or resp.trunc_ub is not None:
        lb = _numbers(data, resp.trunc_lb, "the truncation bound lb", lines) if resp.trunc_lb else np.full(len(y), -np.inf)
        ub = _numbers(data, resp.trunc_ub, "the truncation bound ub", lines) if resp.trunc_ub else np.full(len(y), np.inf)
        lb = np.where(np.isnan(lb), -np.inf, lb)
        ub = np.where(np.isnan(ub), np.inf, ub)
        bad = lb >= ub
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(f"truncation bounds on CSV line {_line(lines, i)} have lb = {lb[i]:g} >= ub = {ub[i]:g}",
                             hint="trunc(lb = , ub = ) needs lb < ub")
        top = y2 if y2 is not None else y
        out = (y < lb) | (np.where(cens == 2, top, y) > ub if cens is not None else y > ub)
        if out.any():
            i = int(np.argmax(out))
            raise InputError(
                f"response {resp.expr!r} is outside its truncation bounds on CSV line {_line(lines, i)}: "
                f"{y[i]:g} not in [{lb[i]:g}, {ub[i]:g}]",
                hint="truncation means values outside [lb, ub] cannot be observed: fix the bounds or the row",
            )
    if resp.weights is not None:
        w = _numbers(data, resp.weights, "weights", lines)
        precision = resp.weights_type == "precision"
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(w) | (w <= 0 if precision else w < 0)
        if bad.any():
            i = int(np.argmax(bad))
            need = "positive" if precision else "non-negative"
            raise InputError(
                f"weights column {resp.weights!r} must hold {need} finite numbers; CSV line {_line(lines, i)} has {w[i]:g}",
                hint="a precision weight of 0 means infinite variance: drop that row instead" if precision
                else "fix or drop that row",
            )
    return ResponseTerms(cens, y2, lb, ub, w, resp.weights_type)
