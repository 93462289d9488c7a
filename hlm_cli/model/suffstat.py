"""A Gaussian likelihood from cross-products instead of rows (large data).

For ``y ~ Normal(eta, sigma)`` with one ``sigma`` for every row and a linear predictor that is
linear in the parameters, ``eta = sum_j A_j theta_j``, the log-likelihood depends on the data
only through cross-products:

    sum_i (y_i - eta_i)^2 = y'y - 2 sum_j theta_j' A_j'y + sum_jk theta_j' (A_j'A_k) theta_k

Each ``A_j`` is a piece of the linear predictor as :mod:`hlm_cli.model.build` makes it: the
population design (a dense ``(n, p)`` matrix times the coefficients), a smooth's penalized
basis (dense), or a group term (row ``i`` takes level ``idx[i]``'s effects ``b[idx[i], :]``
times ``Z[i, :]``, a gather). Their cross-products are small when the data have many rows
per parameter: a 16,000-gene x 64-cell-line screen has 1,024,000 rows but its largest
cross-product (genes x cell lines) is one 16,000 x 64 matrix, and a gradient is two
matrix-vector products over it (0.4 ms) instead of gathers, a residual and scatter-adds over
a million rows (4.9 ms, memory bound; PyTensor's numba backend, one core). When every gene
meets every cell line equally often (a complete screen) that matrix is one number, and the
cross term is ``m sum(b_gene) sum(b_cell_line)``: a gradient then costs microseconds. The model is the same (the log density equals the
row-wise one up to rounding: tests/unit/test_suffstat.py); only how it is computed changes.

It applies (:func:`plan`) to the gaussian family with the identity link and nothing that
makes rows differ in their variance or density: no ``--sigma-formula``, ``se()``, weights,
``cens()``/``trunc()`` or residual AR; and only where it is cheaper: at least
50,000 rows and cross-products with fewer entries than
``rows x pieces`` (and below 50 million). InstEval (73,421 rows, 2,972 students x
1,128 lecturers crossed: a 3.4-million-entry cross-product) keeps the row-wise likelihood.
The environment variable ``HLM_SUFFSTAT`` overrides the choice: ``on`` wherever the model is
eligible (the tests use it on small data), ``off`` never.

Rounding: ``y'y - 2 theta'A'y + theta'A'A theta`` subtracts large numbers when the residuals
are small next to the response. The response is centered on its mean (and the intercept
column's coefficient shifted by it), which removes the part due to the response's level.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

MODE_ENV = "HLM_SUFFSTAT"  # auto (default), on (wherever eligible: tests), off
MIN_ROWS = 50_000
MAX_ENTRIES = 50_000_000


@dataclass
class Piece:
    """One part of the linear predictor: ``D @ theta`` (dense) or ``sum_k Z[i, k] b[idx[i], k]``."""

    kind: str  # "dense" or "gather"
    coef: object  # symbolic: theta (q,) or b (levels, K)
    D: np.ndarray | None = None  # dense: (n, q)
    idx: np.ndarray | None = None  # gather: (n,) level of each row
    Z: np.ndarray | None = None  # gather: (n, K); None: all ones, K = 1
    levels: int = 0
    ones_column: int | None = None  # dense: a column of ones (the intercept), for centering

    @property
    def width(self) -> int:
        if self.kind == "dense":
            return self.D.shape[1]
        return self.levels * self.k

    @property
    def k(self) -> int:
        return 1 if self.Z is None else self.Z.shape[1]

    def zcol(self, c: int, n: int) -> np.ndarray | None:
        return None if self.Z is None else self.Z[:, c]


def mode() -> str:
    value = os.environ.get(MODE_ENV, "auto").strip().lower()
    return value if value in ("auto", "on", "off") else "auto"


def eligible(design, family) -> bool:
    """Whether the model's likelihood can be written with cross-products at all."""
    if family.name != "gaussian" or family.link != "identity":
        return False
    if design.sigma is not None or design.dpar is not None or design.se is not None or design.autocor is not None:
        return False
    terms = design.terms
    if terms is not None and any(getattr(terms, a, None) is not None for a in ("cens", "lb", "ub", "weights")):
        return False
    return True


def entries(pieces: list[Piece]) -> int:
    """Numbers stored for the cross-products of ``pieces`` (what one gradient reads twice)."""
    total = 0
    for j, a in enumerate(pieces):
        for b in pieces[j:]:
            if a is b and a.kind == "gather":
                total += a.levels * a.k * a.k
            else:
                total += a.width * b.width
    return total


def worth_it(n: int, pieces: list[Piece]) -> bool:
    """Cheaper than the rows: enough rows, and cross-products well below rows x pieces
    (``HLM_SUFFSTAT=on``: whenever they fit in memory; ``off``: never)."""
    m = mode()
    if m == "off" or not pieces:
        return False
    e = entries(pieces)
    if m == "on":
        return e <= MAX_ENTRIES
    return n >= MIN_ROWS and e <= MAX_ENTRIES and e <= n * len(pieces)


def _gather_weights(p: Piece, c: int, w: np.ndarray | None) -> np.ndarray | None:
    z = p.zcol(c, 0)
    if z is None:
        return w
    return z if w is None else z * w


def _bincount(idx: np.ndarray, weights: np.ndarray | None, size: int) -> np.ndarray:
    if weights is None:
        return np.bincount(idx, minlength=size).astype(float)
    return np.bincount(idx, weights=weights, minlength=size)


def statistics(pieces: list[Piece], y: np.ndarray) -> dict:
    """The numbers the likelihood needs: ``yy``, ``ybar``, each piece's ``A_j'y`` and every
    block ``A_j'A_k`` (j <= k), as plain arrays (keys ``lin{j}``, ``quad{j}_{k}``)."""
    y = np.asarray(y, dtype=float)
    n = y.shape[0]
    has_ones = any(p.kind == "dense" and p.ones_column is not None for p in pieces)
    ybar = float(y.mean()) if has_ones else 0.0
    yc = y - ybar
    out: dict[str, np.ndarray | float] = {"yy": float(yc @ yc), "ybar": ybar, "n": float(n)}
    for j, p in enumerate(pieces):
        if p.kind == "dense":
            out[f"lin{j}"] = p.D.T @ yc
        else:
            out[f"lin{j}"] = np.stack([_bincount(p.idx, _gather_weights(p, c, yc), p.levels) for c in range(p.k)], axis=1)
    out["constant"] = set()
    for j, a in enumerate(pieces):
        for k in range(j, len(pieces)):
            m = _block(a, pieces[k], same=(j == k), n=n)
            if j != k and m.size > 1 and np.all(m == m.flat[0]):
                # every pair of levels (and columns) meets equally often, as in a complete screen
                # (each gene once in each cell line): theta_j' M theta_k = m sum(theta_j) sum(theta_k)
                m = np.asarray(m.flat[0])
                out["constant"].add(f"quad{j}_{k}")
            out[f"quad{j}_{k}"] = m
    return out


def _block(a: Piece, b: Piece, *, same: bool, n: int) -> np.ndarray:
    if a.kind == "dense" and b.kind == "dense":
        return a.D.T @ b.D
    if a.kind == "gather" and same:  # (levels, K, K): one K x K block per level
        m = np.empty((a.levels, a.k, a.k))
        for c in range(a.k):
            for d in range(c, a.k):
                zc, zd = a.zcol(c, n), a.zcol(d, n)
                w = None if zc is None else zc * zd
                m[:, c, d] = m[:, d, c] = _bincount(a.idx, w, a.levels)
        return m
    if a.kind == "dense":  # dense x gather: (q, levels * K)
        m = np.empty((a.D.shape[1], b.levels, b.k))
        for q in range(a.D.shape[1]):
            for d in range(b.k):
                m[q, :, d] = _bincount(b.idx, _gather_weights(b, d, a.D[:, q]), b.levels)
        return m.reshape(a.D.shape[1], b.levels * b.k)
    if b.kind == "dense":  # gather x dense: stored as the transpose of dense x gather
        return _block(b, a, same=False, n=n).T
    # two different gathers: (La * Ka, Lb * Kb)
    m = np.zeros((a.levels, a.k, b.levels, b.k))
    flat = a.idx.astype(np.int64) * b.levels + b.idx.astype(np.int64)
    for c in range(a.k):
        for d in range(b.k):
            zc, zd = a.zcol(c, n), b.zcol(d, n)
            w = None if zc is None and zd is None else (zc if zd is None else zd if zc is None else zc * zd)
            m[:, c, :, d] = _bincount(flat, w, a.levels * b.levels).reshape(a.levels, b.levels)
    return m.reshape(a.levels * a.k, b.levels * b.k)


def _vec(pt, p: Piece, coef):
    """The piece's coefficients as one vector, in the order of its block rows."""
    return coef if p.kind == "dense" else coef.reshape((p.levels * p.k,))


def residual_ss(pt, pieces: list[Piece], stats: dict, data):
    """Symbolic ``sum_i (y_i - eta_i)^2`` from :func:`statistics` (``data(name, array)``
    registers each array as model data, so a compiled model is reused with new data)."""
    coefs = []
    for p in pieces:
        c = p.coef
        if p.kind == "dense" and p.ones_column is not None:
            # centred response: the intercept column's coefficient shifted by the mean
            c = pt.set_subtensor(c[p.ones_column], c[p.ones_column] - data("_ss_ybar", np.asarray(stats["ybar"])))
        coefs.append(c)
    lin = 0.0
    quad = 0.0
    for j, p in enumerate(pieces):
        L = data(f"_ss_lin{j}", np.asarray(stats[f"lin{j}"]))
        lin = lin + (pt.dot(L, coefs[j]) if p.kind == "dense" else pt.sum(L * coefs[j]))
        for k in range(j, len(pieces)):
            M = data(f"_ss_quad{j}_{k}", np.asarray(stats[f"quad{j}_{k}"]))
            q = pieces[k]
            if j == k and p.kind == "gather":
                b = coefs[j]
                part = pt.dot(M[:, 0, 0], b[:, 0] ** 2) if p.k == 1 else pt.sum(M * b[:, :, None] * b[:, None, :])
            elif j == k:
                part = pt.dot(coefs[j], pt.dot(M, coefs[j]))
            elif f"quad{j}_{k}" in stats["constant"]:
                part = 2.0 * M * pt.sum(coefs[j]) * pt.sum(coefs[k])
            else:
                part = 2.0 * pt.dot(_vec(pt, p, coefs[j]), pt.dot(M, _vec(pt, q, coefs[k])))
            quad = quad + part
    yy = data("_ss_yy", np.asarray(stats["yy"]))
    return yy - 2.0 * lin + quad
