"""Choosing how each group-level term is sampled: centered, non-centered or zero-sum.

Why it matters: for ``b_j ~ Normal(0, tau)`` with data ``y_ij ~ Normal(b_j + ..., sigma)``, the
non-centered form ``b_j = tau * z_j`` is best when the data say little about each b_j (few
observations, large noise), and the centered form is best when they say a lot: otherwise
the posterior is a funnel or a narrow ridge and NUTS diverges or crawls (Papaspiliopoulos,
Roberts & Skold 2007; Betancourt & Girolami 2015). When data are informative, the overall
intercept and the mean of the group effects are also nearly confounded (the additive
non-identifiability of the seed thread 000); sampling the centered effects as zero-sum
offsets around the intercept (PyMC's ZeroSumNormal) removes that ridge while the reported
effects keep lme4's meaning: deviations of each group from the intercept.

The ``auto`` rule, per group-level term, from a pilot computed before any sampling:

1. Regress the response (on the link scale for identity links) on the population-level
   design by least squares; take the residuals r.
2. For the term's grouping factor, estimate the within-level variance ``s2_w`` (pooled
   variance of r inside levels, or the known se^2) and the between-level variance ``s2_b``
   of the level means by the method of moments (never below 1e-12).
3. The information ratio of level j is ``I_j = n_j * s2_b / s2_w`` (observations per level
   times the variance ratio): the precision the data give b_j relative to its prior.
4. If the median ``I_j >= 1`` the term is ``centered``: ``zerosum`` when it is a single
   group intercept in a model with an intercept, plain centered otherwise; below 1 it is
   ``noncentered``.

Non-identity links have no cheap pilot on the response scale; there the rule uses the
observations per level alone (centered when the median level has >= 30 observations).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHOICES = ("auto", "centered", "noncentered", "zerosum")


@dataclass(frozen=True)
class Choice:
    kind: str  # centered, noncentered, zerosum
    info_ratio: float | None  # median I_j, when computed
    reason: str


def _pilot_residuals(design, family) -> np.ndarray | None:
    if family.link != "identity":
        return None
    y = np.asarray(design.y, dtype=float)
    if family.name == "lognormal":
        y = np.log(y)
    if design.offset is not None:
        y = y - design.offset
    if design.X.shape[1] == 0:
        return y - y.mean()
    beta, *_ = np.linalg.lstsq(design.X, y, rcond=None)
    return y - design.X @ beta


def choose(design, family, requested: str = "auto") -> dict[str, Choice]:
    """Pick a parameterization per group term (keyed by the term's label)."""
    out: dict[str, Choice] = {}
    resid = _pilot_residuals(design, family) if requested == "auto" else None
    has_intercept = "Intercept" in design.x_labels
    for g in design.groups:
        single_intercept = g.columns == ["Intercept"]
        if requested != "auto":
            kind = requested
            if kind == "zerosum" and not single_intercept:
                kind = "centered"  # zero-sum applies to single group intercepts only
            out[g.term.label] = Choice(kind, None, f"--parameterization {requested}")
            continue
        n_j = g.n_obs_per_level.astype(float)
        if resid is None:
            med = float(np.median(n_j))
            centered = med >= 30
            ratio = None
            reason = f"median {med:g} observations per level ({'>=' if centered else '<'} 30, non-identity link)"
        else:
            ratio = _info_ratio(resid, g.index, n_j, design.se)
            centered = ratio >= 1.0
            reason = f"median information ratio n_j*var_between/var_within = {ratio:.3g} ({'>=' if centered else '<'} 1)"
        if centered:
            kind = "zerosum" if (single_intercept and has_intercept) else "centered"
        else:
            kind = "noncentered"
        out[g.term.label] = Choice(kind, ratio, reason)
    return out


def _info_ratio(resid: np.ndarray, index: np.ndarray, n_j: np.ndarray, se: np.ndarray | None) -> float:
    L = len(n_j)
    sums = np.bincount(index, weights=resid, minlength=L)
    means = sums / np.maximum(n_j, 1)
    if se is not None:
        s2_w_obs = np.asarray(se, dtype=float) ** 2
        s2_w_level = np.bincount(index, weights=s2_w_obs, minlength=L) / np.maximum(n_j, 1)
        s2_w = float(np.mean(s2_w_level))
    else:
        dev = resid - means[index]
        dof = max(len(resid) - L, 1)
        s2_w = float(np.sum(dev**2) / dof) if len(resid) > L else float(np.var(resid))
    s2_w = max(s2_w, 1e-12)
    # method of moments: var(level means) = s2_b + mean(s2_w / n_j)
    s2_b = max(float(np.var(means, ddof=1)) - float(np.mean(s2_w / np.maximum(n_j, 1))), 1e-12)
    if se is not None:
        ratio = n_j * s2_b / s2_w
    else:
        ratio = n_j * s2_b / s2_w
    return float(np.median(ratio))
