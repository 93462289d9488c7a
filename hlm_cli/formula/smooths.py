"""Penalized smooths ``s(x)`` and plain spline bases ``cr(x, df=)`` for formulas.

``s(x)`` is fitted as mgcv's ``smooth2random`` (and brms) does: a penalized cubic regression
spline (mgcv's ``bs = "cr"``: natural cubic spline with ``k`` knots at quantiles of the
unique x values, penalty the integrated squared second derivative) is made identifiable with
a sum-to-zero constraint over the fitted rows and then split by an eigen-decomposition of its
penalty into

- the unpenalized null space (a linear trend in x): one population-level column, named
  ``s(x)_lin``, with the ordinary slope prior, and
- the penalized part: ``k - 2`` columns ``Z`` whose coefficients are iid
  ``Normal(0, sds(s(x)))``, so that the smoothing parameter is the standard deviation
  ``sds(s(x))`` (brms's ``sds(sx_1)``).

The penalty is scaled as mgcv's ``scale.penalty`` does before the split, so ``sds`` is on the
scale mgcv/brms report. ``s(x, by = f)`` (f a factor) gives one smooth per level of f, each
centered over its level's rows and with its own ``sds(s(x):fLEVEL)`` (mgcv's names); add ``f``
itself to the formula for the level means, as in mgcv.

Why ``cr`` and not mgcv's default thin-plate ``tp``: for one covariate both are cubic
smoothing splines with the same penalty; ``tp`` differs in its (eigen-truncated) basis, which
needs an n x n eigen-decomposition (or mgcv's Lanczos iterations) at fit time. ``cr`` needs
only ``k`` knots, reproduces exactly at new x from the stored knots and matrices, and gives
curves indistinguishable from ``tp`` at the same ``k`` for smooth functions (validation/smooth).

Everything needed at new x (knots, constraint and penalty transforms, levels of ``by``) lives
in the :class:`Smooth` object that formulae keeps for the term (a stateful transform, like
``scale()``), so predictions, contrasts and the report use the basis of the fit.
"""

from __future__ import annotations

import numpy as np

DEFAULT_K = 10  # mgcv's default basis dimension


def _knots(x: np.ndarray, k: int) -> np.ndarray:
    """mgcv's cr knots: ``quantile(unique(x), seq(0, 1, length = k))``."""
    u = np.unique(x)
    return np.quantile(u, np.linspace(0.0, 1.0, k))


class CubicBasis:
    """Cardinal natural cubic spline basis on fixed knots (linear beyond the end knots)."""

    def __init__(self, knots: np.ndarray) -> None:
        from scipy.interpolate import CubicSpline

        self.knots = np.asarray(knots, dtype=float)
        k = len(self.knots)
        self._cs = CubicSpline(self.knots, np.eye(k), bc_type="natural")
        lo, hi = self.knots[0], self.knots[-1]
        self._ends = (lo, hi, self._cs(lo), self._cs(lo, 1), self._cs(hi), self._cs(hi, 1))

    def __call__(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        lo, hi, f_lo, d_lo, f_hi, d_hi = self._ends
        out = self._cs(np.clip(x, lo, hi))
        below, above = x < lo, x > hi
        if below.any():
            out[below] = f_lo[None, :] + (x[below] - lo)[:, None] * d_lo[None, :]
        if above.any():
            out[above] = f_hi[None, :] + (x[above] - hi)[:, None] * d_hi[None, :]
        return out

    def penalty(self) -> np.ndarray:
        """S with beta' S beta = integral of f''(x)^2 (f'' is linear between knots)."""
        kn = self.knots
        D = self._cs(kn, 2)  # (knots, basis): second derivatives at the knots
        h = np.diff(kn)
        k = len(kn)
        B = np.zeros((k, k))
        for i, hi in enumerate(h):
            B[i, i] += hi / 3
            B[i + 1, i + 1] += hi / 3
            B[i, i + 1] += hi / 6
            B[i + 1, i] += hi / 6
        return D.T @ B @ D


def _center(X: np.ndarray) -> np.ndarray:
    """(k, k-1) Z whose columns span the coefficients with sum over rows of X @ beta = 0."""
    c = X.sum(axis=0)[:, None]
    q, _ = np.linalg.qr(c, mode="complete")
    return q[:, 1:]


def mixed_model_split(X: np.ndarray, S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """mgcv's smooth2random for one centered smooth: (F, R) with fixed part ``X @ F`` and
    random part ``X @ R`` (iid unit-penalty coefficients). X is the raw basis on the rows the
    constraint applies to."""
    # mgcv's scale.penalty (smoothCon, on the basis before the constraint): S / (norm(S, "O") / norm(X, "I")^2)
    S = S / (np.abs(S).sum(axis=0).max() / np.abs(X).sum(axis=1).max() ** 2)
    Zc = _center(X)
    Sc = Zc.T @ S @ Zc
    d, U = np.linalg.eigh(Sc)
    order = np.argsort(d)[::-1]
    d, U = d[order], U[:, order]
    pos = d > d[0] * 1e-9
    R = Zc @ U[:, pos] / np.sqrt(d[pos])[None, :]
    F = Zc @ U[:, ~pos]
    lin = X @ F
    for j in range(F.shape[1]):  # unit-SD columns that increase with the rows' order of x
        sd = lin[:, j].std()
        F[:, j] /= sd if sd > 0 else 1.0
    return F, R


class Smooth:
    """``s(x, k = 10, by = f)`` as a formulae stateful transform.

    Called by formulae, it returns the population-level (null-space) columns; the random part
    is :meth:`random`. Its state is set from the fitted rows on the first call.
    """

    __stateful_transform__ = True

    def __init__(self) -> None:
        self.basis: CubicBasis | None = None
        self.levels: list[str] | None = None  # by-factor levels (None: no by)
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []  # (F, R) per level

    def _setup(self, x: np.ndarray, k, by) -> None:
        k = DEFAULT_K if k is None else int(k)
        self.basis = CubicBasis(_knots(x, k))
        X = self.basis(x)
        if by is None:
            self.levels = None
            self.parts = [mixed_model_split(X, self.basis.penalty())]
        else:
            lab = _labels(by)
            self.levels = sorted(set(lab.tolist()))
            self.parts = [mixed_model_split(X[lab == lev], self.basis.penalty()) for lev in self.levels]
        # orient each linear column to increase with x (sign is arbitrary in the eigenbasis)
        for j, (F, R) in enumerate(self.parts):
            if len(np.unique(x)) > 1 and np.corrcoef(X @ F[:, 0], x)[0, 1] < 0:
                self.parts[j] = (-F, R)

    def _masks(self, n: int, by) -> list[np.ndarray]:
        if self.levels is None:
            return [np.ones(n, dtype=bool)]
        lab = _labels(by)
        unknown = sorted(set(lab.tolist()) - set(self.levels))
        if unknown:
            raise ValueError(f"level {unknown[0]!r} of the by= factor was not in the fitted data")
        return [lab == lev for lev in self.levels]

    def __call__(self, x, k=None, by=None, bs="cr"):
        x = np.asarray(x, dtype=float)
        if self.basis is None:
            self._setup(x, k, by)
        X = self.basis(x)
        cols = [(X @ F) * m[:, None] for (F, _), m in zip(self.parts, self._masks(len(x), by), strict=True)]
        return np.concatenate(cols, axis=1)

    def random(self, x, by=None) -> list[np.ndarray]:
        """The penalized columns at x, one (n, k-2) matrix per level of ``by`` (zero off-level)."""
        x = np.asarray(x, dtype=float)
        X = self.basis(x)
        return [(X @ R) * m[:, None] for (_, R), m in zip(self.parts, self._masks(len(x), by), strict=True)]


class CRSpline:
    """``cr(x, df = 4)``: an unpenalized natural cubic regression spline basis with ``df``
    columns (``df + 1`` knots at quantiles of the unique x, centered over the fitted rows so
    that it does not repeat the intercept), as a formulae stateful transform."""

    __stateful_transform__ = True

    def __init__(self) -> None:
        self.basis: CubicBasis | None = None
        self.Z: np.ndarray | None = None

    def __call__(self, x, df=None):
        x = np.asarray(x, dtype=float)
        if self.basis is None:
            if df is None or int(df) != df or df < 2:
                raise ValueError("cr() needs df = an integer >= 2, e.g. cr(x, df = 4)")
            if len(np.unique(x)) < int(df) + 1:
                raise ValueError(f"cr(x, df={int(df)}) needs at least {int(df) + 1} distinct x values")
            self.basis = CubicBasis(_knots(x, int(df) + 1))
            self.Z = _center(self.basis(x))
        return self.basis(x) @ self.Z


def _labels(by) -> np.ndarray:
    return np.asarray([str(v) for v in np.asarray(by, dtype=object)], dtype=object)
