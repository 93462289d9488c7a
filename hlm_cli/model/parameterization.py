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
4. If the median ``I_j >= CENTER_AT`` (3) the term is sampled centered, else ``noncentered``. A centered
   single group intercept in a model with an intercept is sampled as ``zerosum`` offsets
   (the intercept's prior widened so the model is unchanged, and lme4-scale values drawn
   back after sampling: :mod:`hlm_cli.model.reparam`); a centered term with slopes whose
   columns are population-level columns too is centered on those coefficients
   (hierarchical centering), which removes the same intercept/group-mean ridge.
5. A centered group intercept nested in another factor is centered on its parent level's
   mean, and the top of such a chain on the intercept (``_center_nested``): lecturers on
   their department's mean, departments on the intercept (InstEval).

Log-link Gamma, Poisson and negative binomial models use the same pilot on ``log(y)``
(``log(y + 1/2)`` for counts), whose within-level variance is the family's noise on the link
scale (about CV^2, or 1/mean for counts). Other non-identity links have no cheap pilot; there
the rule uses the observations per level alone (centered when the median level has >= 30
observations).

A correlated term with an intercept and slopes is sampled for its covariates centered at their
means (:func:`shifts`, an exact change of variables); when its slopes are poorly informed
(non-centered) but its intercept at the covariates' means is well informed (ratio >=
``CENTER_AT``), that intercept coordinate alone is sampled centered and the slopes
non-centered given it (``Choice.intercept_centered``). nlme's Orthodont ``(age|Subject)``,
ages 8-14: 14 divergences and R-hat 1.019 non-centered, 27 and 1.041 centered (shifted), 5
and 1.012 shifted non-centered, 0 and 1.006 shifted with the intercept centered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHOICES = ("auto", "centered", "noncentered", "zerosum")
# Centered when the median level's information ratio is at least this. The crossover of the
# two geometries is at 1 for a known tau; tau itself is uncertain with few levels, and a
# ratio near 1 gave worse mixing centered than non-centered on the sample data (mice: ESS 287
# vs 581 at ratio 1.7; schools: ESS 180 at 1.8), so the rule asks for a clear margin.
CENTER_AT = 3.0


@dataclass(frozen=True)
class Choice:
    kind: str  # centered, noncentered, zerosum
    info_ratio: float | None  # median I_j, when computed
    reason: str
    on_mean: bool = False  # centered on the population-level coefficients (hierarchical centering)
    parent: str | None = None  # centered on the effect of the factor it is nested in
    zero_sum: bool = False  # non-centered offsets constrained to sum to zero (single group intercepts)
    # correlated terms with an intercept and slopes: effects sampled for the slope covariates
    # centered at their means (b' = A b, Sigma' = A Sigma A^T; see build._group_term)
    shifted: bool = False
    # noncentered correlated terms: the intercept coordinate (at the covariates' means) is
    # sampled centered, the slopes non-centered given it (a partially centered Cholesky form)
    intercept_centered: bool = False
    # a centered group intercept centered on the intercept plus the population columns that
    # vary mostly between its levels, at each level's means (see between_columns)
    between: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        if self.parent:
            return f"centered on ({self.parent})"
        if self.zero_sum:
            return "noncentered zero-sum"
        if self.intercept_centered:
            return "intercept centered, slopes noncentered (covariates centered)"
        if self.on_mean:
            return "noncentered around the intercept" if self.kind == "noncentered" else "centered on the population means"
        return self.kind

    @property
    def sums_to_zero(self) -> bool:
        """Sampled as zero-sum offsets, the intercept holding their mean (see reparam)."""
        return self.kind == "zerosum" or self.zero_sum

    @property
    def identified(self) -> bool:
        """Sampled in a form without the intercept/group-mean ridge."""
        return self.sums_to_zero or self.on_mean or self.parent is not None


# log-link families with a pilot on the log of the response: Gamma's log(y) has within-level
# variance trigamma(shape) ~ CV^2; a count's log(y + 1/2) about 1/mean (+ the overdispersion)
LOG_PILOT = {"gamma": 0.0, "poisson": 0.5, "negativebinomial": 0.5}


def _pilot_residuals(design, family) -> np.ndarray | None:
    y = np.asarray(design.y, dtype=float)
    if family.link == "log" and family.name in LOG_PILOT and design.trials is None:
        # plm::Produc-like Gamma (17 years per state, CV 0.04, sd(state) 0.16): information
        # ratio ~200, so the state effects are sampled centered (the observations-per-level
        # rule said non-centered: R-hat 1.035 for sd(state))
        if not np.all(y + LOG_PILOT[family.name] > 0):
            return None
        y = np.log(y + LOG_PILOT[family.name])
    elif family.link != "identity":
        return None
    elif family.name == "lognormal":
        y = np.log(y)
    if design.offset is not None:
        y = y - design.offset
    if design.X.shape[1] == 0:
        return y - y.mean()
    beta, *_ = np.linalg.lstsq(design.X, y, rcond=None)
    return y - design.X @ beta


def choose(design, family, requested: str = "auto", *, zero_sum_ok: bool = True) -> dict[str, Choice]:
    """Pick a parameterization per group term (keyed by the term's label).

    Centered terms whose columns all appear among the population-level columns are
    centered on those coefficients (hierarchical centering, Gelfand, Sahu & Carlin 1995),
    one term per column; a remaining single group intercept in a model with an intercept
    becomes zero-sum (centered or not); anything else is plainly centered. Zero-sum forms need
    a Normal or flat intercept prior (``zero_sum_ok``), for which they are exactly the usual
    model (see :mod:`hlm_cli.model.reparam`).
    """
    out: dict[str, Choice] = {}
    resid = _pilot_residuals(design, family) if requested == "auto" else None
    has_intercept = "Intercept" in design.x_labels
    claimed: set[str] = set()
    intercept_ratios: dict[str, float] = {}
    ratios = _backfit_ratios(design, resid, intercept_ratios) if resid is not None else {}
    # terms with slopes claim their population columns first: they have no zero-sum form
    order = sorted(design.groups, key=lambda g: g.columns == ["Intercept"])
    for g in order:
        single_intercept = g.columns == ["Intercept"]
        if requested != "auto":
            want, ratio, reason = requested, None, f"--parameterization {requested}"
        else:
            n_j = g.n_obs_per_level.astype(float)
            if resid is None:
                med = float(np.median(n_j))
                ratio = None
                want = "centered" if med >= 30 else "noncentered"
                reason = f"median {med:g} observations per level ({'>=' if med >= 30 else '<'} 30, non-identity link)"
            else:
                ratio = ratios[g.term.label]
                want = "centered" if ratio >= CENTER_AT else "noncentered"
                reason = f"median information ratio n_j*var_between/var_within = {ratio:.3g} ({'>=' if ratio >= CENTER_AT else '<'} {CENTER_AT:g})"
        zs = single_intercept and has_intercept and zero_sum_ok
        shifted = shifts(g)
        between = ()
        if single_intercept and has_intercept and requested == "auto" and "Intercept" not in claimed \
                and not any(nests(g, o) for o in design.groups if o is not g):
            between = between_columns(design, g)
        if between and ratio is not None and BETWEEN_CENTER_AT <= ratio < CENTER_AT:
            # only the centered form can be centered on the between-level covariates, which
            # removes their trade-off with the group effects: worth it at a lower ratio
            want = "centered"
            reason = reason.replace(f"(< {CENTER_AT:g})", f"(>= {BETWEEN_CENTER_AT:g} with between-level covariates)")
        if want == "noncentered":
            # the slopes are poorly informed, but the level's intercept at the covariates' means
            # may be well informed: then only it is sampled centered (not on the population
            # intercept: a between-level predictor such as Orthodont's Sex then trades off
            # against the centered level means, bulk ESS 272 vs 494)
            ic = shifted and requested == "auto" and intercept_ratios.get(g.term.label, 0.0) >= CENTER_AT
            if ic:
                reason += f"; the intercept at the covariates' means has ratio {intercept_ratios[g.term.label]:.3g}: sampled centered"
            out[g.term.label] = Choice("noncentered", ratio, reason, zero_sum=zs and requested == "auto",
                                       shifted=shifted, intercept_centered=ic)
            continue
        if between:
            claimed.add("Intercept")
            out[g.term.label] = Choice("centered", ratio, reason + f"; centered on the intercept and {', '.join(between)} "
                                       "(they vary mostly between its levels)", on_mean=True, between=between)
            continue
        if zs and want in ("zerosum", "centered") and (requested != "centered"):
            out[g.term.label] = Choice("zerosum", ratio, reason)
            continue
        on_mean = all(c in design.x_labels for c in g.columns) and not (claimed & set(g.columns))
        if on_mean:
            claimed.update(g.columns)
        out[g.term.label] = Choice("centered", ratio, reason, on_mean=on_mean, shifted=shifted)
    _center_nested(design, out)
    return {g.term.label: out[g.term.label] for g in design.groups}


# a population column is a between-level covariate of a grouping factor when at least this share
# of its variance lies between the factor's levels
BETWEEN_AT = 0.5
# A single group intercept with such covariates is sampled centered on them from this information
# ratio up (instead of CENTER_AT): the non-centered form keeps the slopes' trade-off with the
# group effects at any ratio. Defaults, 4 x 1000: grouseticks (1|BROOD), ratio 2.73: R-hat
# 1.018 -> 1.002 (min ESS 431 -> 1070); epil (1|subject), 2.07: min ESS 579 -> 3268;
# salamanders (1|site), 2.34: 913 -> 1058.
BETWEEN_CENTER_AT = 2.0


def between_columns(design, g) -> tuple[str, ...]:
    """Population columns that vary mostly between the levels of ``g`` (share of variance
    between levels >= ``BETWEEN_AT``): plm::Produc's log(pcap) and log(emp) between states.

    Their coefficients trade off against the group intercepts: moving beta by d and every
    b_j by -d (xbar_j - xbar) leaves the likelihood almost unchanged. A centered group
    intercept is then sampled as each level's mean on the link scale at its own covariate
    means, ``theta_j = b_j + Intercept_c + sum_k (xbar_jk - xbar_k) beta_k ~ N(that mean,
    tau)`` (hierarchical centering on group-level predictors, Gelfand, Sahu & Carlin 1995):
    an exact shift of variables, so the model and the reported ``b_j`` are unchanged, while
    the slopes are identified by the within-level variation and the prior link.
    """
    X = np.asarray(design.X, dtype=float)
    if "Intercept" not in design.x_labels or X.shape[1] < 2 or g.columns != ["Intercept"]:
        return ()
    L = len(g.levels)
    n_j = np.maximum(np.bincount(g.index, minlength=L), 1).astype(float)
    out = []
    for k, lab in enumerate(design.x_labels):
        if lab == "Intercept":
            continue
        x = X[:, k] - X[:, k].mean()
        total = float(np.sum(x**2))
        if total <= 1e-12:
            continue
        means = np.bincount(g.index, weights=x, minlength=L) / n_j
        if float(np.sum(n_j * means**2)) >= BETWEEN_AT * total:
            out.append(lab)
    return tuple(out)


def level_means(design, g, columns) -> np.ndarray:
    """(levels, len(columns)) means of the centered population columns within each level."""
    X = np.asarray(design.X, dtype=float)
    L = len(g.levels)
    n_j = np.maximum(np.bincount(g.index, minlength=L), 1).astype(float)
    cols = [design.x_labels.index(c) for c in columns]
    Xc = X[:, cols] - X[:, cols].mean(axis=0)
    return np.stack([np.bincount(g.index, weights=Xc[:, k], minlength=L) / n_j for k in range(len(cols))], axis=1)


def shifts(g) -> bool:
    """Whether a group term is sampled for its slope covariates centered at their means.

    For a correlated term with an intercept and slopes, ``(age|Subject)`` with ages 8-14, the
    effects ``b = (b_0, b_age)`` of one level are strongly correlated in the posterior when
    age is far from 0: the data fix the level's line near the mean age, not at age 0. The
    term is then sampled in the coordinates ``b' = A b`` with ``A = I + e_0 c^T`` (``c`` the
    columns' means, ``c_0 = 0``), so ``b'_0`` is the level's deviation at the mean covariates,
    with the covariance ``Sigma' = A Sigma A^T``. The SDs and the correlation matrix are
    sampled, and their priors are given, as before on the user's scale, and ``b = A^{-1} b'``
    is what the linear predictor and the reported effects use: the model is unchanged (an
    exact linear change of variables with unit Jacobian), only the sampled coordinates are.
    """
    return bool(g.term.correlated and len(g.columns) >= 2 and g.columns[0] == "Intercept")


def nests(child, parent) -> bool:
    """True when every level of ``child`` lies in exactly one level of ``parent``."""
    if len(parent.levels) >= len(child.levels):
        return False
    pairs = np.unique(np.stack([child.index, parent.index]), axis=1)
    return pairs.shape[1] == len(child.levels)


def parent_index(child, parent) -> np.ndarray:
    """(levels of child,) index of each child level's parent level."""
    out = np.zeros(len(child.levels), dtype=np.int64)
    out[child.index] = parent.index
    return out


def _center_nested(design, out: dict[str, Choice]) -> None:
    """A centered group intercept nested in another factor (schools in regions, lecturers in
    departments) is centered on its parent's level mean: school_j ~ N(mu_region(j), tau), the
    slides' model. Otherwise the parent's effect and the mean of its children trade off, the
    same ridge as between the intercept and group means.

    The top of each such chain (the region, the department) is then centered on the
    intercept, ``mu_k = Intercept + b_k`` (Gelfand, Sahu & Carlin 1995), sampled centered or
    not as its own information ratio says, so that the chain carries the intercept down to
    the finest level: the intercept is identified through the group means instead of trading
    off against the mean of thousands of lecturer effects (InstEval: intercept bulk ESS 374
    in 2 x 1000 draws before, ~600 in 2 x 500 after, at a tenth of the gradient evaluations).
    This is a shift of variables, so the model, and lme4's meaning of every reported effect,
    is unchanged; no zero-sum correction is needed for the chain.
    """
    singles = [g for g in design.groups if g.columns == ["Intercept"]]
    for g in singles:
        c = out[g.term.label]
        if c.kind not in ("centered", "zerosum") or c.on_mean:
            continue
        parents = [p for p in singles if p is not g and nests(g, p)]
        if not parents:
            continue
        p = max(parents, key=lambda p: len(p.levels))
        out[g.term.label] = Choice("centered", c.info_ratio, c.reason + f"; nested in {p.factor}", parent=p.term.label)
    if "Intercept" not in design.x_labels or any(c.on_mean and "Intercept" in g.columns for g in design.groups for c in [out[g.term.label]]):
        return  # no intercept, or a varying-slope term is already centered on it
    by_label = {g.term.label: g for g in design.groups}
    tops = {_chain(out, lab)[-1] for lab, c in out.items() if c.parent is not None}
    if len(tops) != 1:
        return  # one intercept can anchor one chain; others keep their zero-sum roots
    top = tops.pop()
    c = out[top]
    if by_label[top].columns != ["Intercept"]:
        return
    kind = "noncentered" if c.kind == "noncentered" else "centered"
    out[top] = Choice(kind, c.info_ratio, c.reason + "; top of a nesting chain: centered on the intercept", on_mean=True)


def _chain(out: dict[str, Choice], label: str) -> list[str]:
    """The term and the terms it is nested in, innermost first."""
    labels = [label]
    while out[labels[-1]].parent is not None:
        labels.append(out[labels[-1]].parent)
    return labels


def depth(out: dict[str, Choice], label: str) -> int:
    """How many parents a term is nested in (0 for a root): build order."""
    return len(_chain(out, label)) - 1


def _backfit_ratios(design, resid: np.ndarray, intercept_ratios: dict[str, float] | None = None) -> dict[str, float]:
    """Information ratio per term, each computed after removing the (shrunken) level means of
    the coarser terms, so that a nested or crossed factor is not credited with variation that
    belongs to another one (schools inherit their region's spread otherwise).

    ``intercept_ratios``, when given, receives each term's group-intercept ratio alone: the
    ratio of the level means, i.e. of the intercept at each level's mean covariates, which is
    the intercept coordinate of a shifted term (:func:`shifts`)."""
    r = resid.copy()
    out: dict[str, float] = {}
    intercepts = intercept_ratios if intercept_ratios is not None else {}
    for g in sorted(design.groups, key=lambda g: len(g.levels)):
        n_j = g.n_obs_per_level.astype(float)
        ratios = [_info_ratio(r, g.index, n_j, design.se)] if "Intercept" in g.columns else []
        ratios += [_slope_ratio(r, g.index, g.Z[:, k], len(n_j)) for k, c in enumerate(g.columns) if c != "Intercept"]
        out[g.term.label] = min(ratios)  # the least informed column decides
        if ratios and "Intercept" in g.columns:
            intercepts[g.term.label] = ratios[0]
        means = np.bincount(g.index, weights=r, minlength=len(n_j)) / np.maximum(n_j, 1)
        ratio_j = n_j * out[g.term.label] / max(np.median(n_j), 1)  # per-level ratio, same variance ratio
        shrink = ratio_j / (1.0 + ratio_j)
        r = r - (shrink * means)[g.index]
    return out


def _slope_ratio(resid: np.ndarray, index: np.ndarray, z: np.ndarray, L: int) -> float:
    """Information ratio of a varying slope: Sxx_j * var_between(slopes) / var_within, where
    the per-level least-squares slopes of the residuals on z give var_between by the method of
    moments (their spread minus their sampling variance)."""
    n_j = np.bincount(index, minlength=L).astype(float)
    zbar = np.bincount(index, weights=z, minlength=L) / np.maximum(n_j, 1)
    rbar = np.bincount(index, weights=resid, minlength=L) / np.maximum(n_j, 1)
    dz = z - zbar[index]
    sxx = np.bincount(index, weights=dz**2, minlength=L)
    ok = sxx > 1e-12
    if ok.sum() < 2:
        return 0.0
    slopes = np.bincount(index, weights=dz * (resid - rbar[index]), minlength=L)[ok] / sxx[ok]
    fit = slopes[np.searchsorted(np.flatnonzero(ok), np.arange(L)).clip(0, ok.sum() - 1)]
    dev = resid - rbar[index] - np.where(ok[index], fit[index], 0.0) * dz
    dof = max(len(resid) - 2 * int(ok.sum()), 1)
    s2_w = max(float(np.sum(dev**2) / dof), 1e-12)
    s2_b = max(float(np.var(slopes, ddof=1)) - float(np.mean(s2_w / sxx[ok])), 1e-12)
    return float(np.median(sxx[ok] * s2_b / s2_w))


def _info_ratio(resid: np.ndarray, index: np.ndarray, n_j: np.ndarray, se: np.ndarray | None) -> float:
    if (n_j == 0).any() and (n_j > 0).sum() >= 2:  # levels without rows (hlm batch --by) say nothing
        seen = n_j > 0
        index = (np.cumsum(seen) - 1)[index]
        n_j = n_j[seen]
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
