"""Variance partitioning: how much of the response's variance each part of the model explains.

For every posterior draw ``s`` the variance of the latent (link-scale) response is split into

* one component per grouping factor ``g``: the variance its group-level term adds to a row,
  averaged over the observed rows, ``mean_i z_i' Sigma_g z_i`` (Johnson 2014's extension of
  Nakagawa & Schielzeth 2013 to random slopes). For ``(1|g)`` this is ``sd_g^2``; for
  ``(1 + x|g)`` it is ``sd_0^2 + 2 cov_01 mean(x) + sd_1^2 mean(x^2)``, so it depends on where
  ``x`` was observed (centre ``x`` for the variance at its mean). Terms sharing a factor
  (``(1|g) + (0 + x|g)``) are one component; ``cs()`` and latent ``ar1()`` terms use their
  structured covariance;
* ``fixed``: the variance over the observed rows of the population-level linear predictor
  ``X beta`` (the intercept and any offset add nothing), including the penalized part of
  ``s()`` smooths (brms counts those as population-level);
* ``residual``: the distribution-specific variance on the latent scale (Nakagawa, Johnson &
  Schielzeth 2017): gaussian ``sigma^2`` (with ``--sigma-formula``: the mean of ``sigma_i^2``
  over the rows; with known ``se()``: the mean of ``se_i^2``, plus ``sigma^2`` when the model
  also estimates one), t ``sigma^2 nu / (nu - 2)`` (the draws with ``nu <= 2`` have no finite
  variance and are left out of the summaries), lognormal ``sigma^2`` (on the log scale),
  bernoulli/binomial/cumulative ``pi^2/3`` (logit), ``1`` (probit), ``pi^2/6`` (cloglog),
  poisson ``log(1 + 1/lambda)`` and negative binomial ``log(1 + 1/lambda + 1/alpha)`` (the
  lognormal approximation, log link), with ``lambda`` per draw the mean over the rows of
  ``exp(X beta + offset + total group variance / 2)``.

Each fraction is a component divided by their sum, per draw, so the fractions of a draw sum to
one and each gets an equal-tailed interval. Other families are refused with an
:class:`~hlm_cli.errors.InputError`. This is variancePartition's ``fitExtractVarPartModel``
(Hoffman & Schadt 2016) computed over the posterior instead of at the REML estimate, so a
component whose REML estimate is zero gets an honest interval above zero.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hlm_cli.errors import InputError

__all__ = ["FIXED", "RESIDUAL", "components", "fractions", "order_components", "plot_violin", "summarise"]

FIXED = "fixed"
RESIDUAL = "residual"
COLUMNS = ["component", "mean", "lower", "upper", "variance"]
SUPPORTED = ("gaussian", "t", "lognormal", "bernoulli", "binomial", "cumulative", "poisson", "negativebinomial")
_LINK_VARIANCE = {"logit": np.pi**2 / 3, "probit": 1.0, "cloglog": np.pi**2 / 6}


def _stacked(tree, name: str) -> np.ndarray:
    arr = np.asarray(tree["posterior"][name])
    return arr.reshape((arr.shape[0] * arr.shape[1],) + arr.shape[2:])


def _has(tree, name: str) -> bool:
    return name in tree["posterior"]


def _term_cov(tree, g) -> np.ndarray:
    """(S, K, K) covariance of one group-level term's effects."""
    from hlm_cli.model.linpred import structured_cov

    cov = structured_cov(tree, g)
    if cov is not None:
        return cov
    K = len(g.columns)
    if g.cov == "ar1":  # one time point: the stationary variance
        sd = _stacked(tree, g.sd_names[0])
        return (sd**2)[:, None, None] * np.ones((1, K, K))
    sds = np.stack([_stacked(tree, n) for n in g.sd_names], axis=-1)  # (S, K)
    corr = np.broadcast_to(np.eye(K), (sds.shape[0], K, K)).copy()
    for a in range(K):
        for c in range(a + 1, K):
            name = f"cor({g.columns[a]},{g.columns[c]}|{g.factor})"
            if _has(tree, name):
                corr[:, a, c] = corr[:, c, a] = _stacked(tree, name)
    return sds[:, :, None] * corr * sds[:, None, :]


def _check_family(built) -> None:
    fam = built.family
    design = built.design
    if fam.name not in SUPPORTED or (fam.link not in ("identity", "log") and fam.link not in _LINK_VARIANCE):
        raise InputError(
            f"variance partitioning is not defined here for the {fam.name} family ({fam.link} link)",
            hint="it handles gaussian, t, lognormal, bernoulli/binomial/cumulative (logit, probit, cloglog), "
                 "poisson and negativebinomial (log) models",
        )
    if fam.name in ("poisson", "negativebinomial") and fam.link != "log":
        raise InputError(f"variance partitioning of a {fam.name} model needs the log link, not {fam.link}",
                         hint="refit with the default link")
    if design.autocor is not None:
        raise InputError(f"variance partitioning with a residual AR(1) ({design.autocor.label}) is not supported",
                         hint="the residual variance is then shared between rows; fit without ar() to partition it")
    if design.dpar is not None:
        raise InputError("variance partitioning of a zero-inflated or hurdle regression is not supported",
                         hint="drop --zi-formula / --hu-formula")


def components(tree, built) -> dict[str, np.ndarray]:
    """Per-draw variance of every component (latent scale), in display order.

    Parameters
    ----------
    tree : xarray.DataTree
        A run's posterior (``posterior.nc``).
    built : hlm_cli.model.build.BuiltModel
        The run's rebuilt model (its design gives X and Z).

    Returns
    -------
    dict
        ``{factor: (S,), ..., "fixed": (S,), "residual": (S,)}``.
    """
    from hlm_cli.model.linpred import beta_draws

    _check_family(built)
    design = built.design
    fam = built.family
    out: dict[str, np.ndarray] = {}
    for g in design.groups:
        cov = _term_cov(tree, g)  # (S, K, K)
        Z = np.asarray(g.Z, dtype=float)  # (n, K)
        M = Z.T @ Z / max(len(Z), 1)  # mean over rows of z z'
        v = np.einsum("skl,kl->s", cov, M)
        out[g.factor] = out.get(g.factor, 0.0) + v
    beta = beta_draws(tree, built)
    X = np.asarray(design.X, dtype=float)
    keep = np.array([lab != "Intercept" for lab in design.x_labels], dtype=bool)  # a constant adds no variance
    S = beta.shape[0]
    cols, coefs = [X[:, keep]], [beta[:, keep]]
    for sm in design.smooths:
        cols.append(np.asarray(sm.Z, dtype=float))
        coefs.append(_stacked(tree, sm.label).reshape(S, -1))
    A, B = np.concatenate(cols, axis=1), np.concatenate(coefs, axis=1)  # (n, q), (S, q)
    if A.shape[1]:
        # var over rows of A b = b' cov(A) b: no (draws x rows) matrix, whatever the data size
        C = np.atleast_2d(np.cov(A, rowvar=False, bias=True))
        out[FIXED] = np.maximum(np.einsum("sk,kl,sl->s", B, C, B), 0.0)
    else:
        out[FIXED] = np.zeros(S)
    group_total = sum((v for k, v in out.items() if k != FIXED), np.zeros(S))
    out[RESIDUAL] = _residual(tree, built, fam, design, (beta, X, B, A), group_total)
    return out


def _residual(tree, built, fam, design, parts, group_total: np.ndarray) -> np.ndarray:
    beta, X, B, A = parts
    S = beta.shape[0]
    if fam.name in ("gaussian", "t", "lognormal"):
        res = np.zeros(S)
        if design.sigma is not None:
            sig = _stacked(tree, "sigma")  # (S, n): per-row residual SD
            res = (sig**2).mean(axis=1)
        elif _has(tree, "sigma"):
            res = _stacked(tree, "sigma") ** 2
        if design.se is not None:
            res = res + float(np.mean(np.asarray(design.se, dtype=float) ** 2))
        if fam.name == "t":
            nu = _stacked(tree, "nu")
            with np.errstate(divide="ignore", invalid="ignore"):
                res = np.where(nu > 2, res * nu / (nu - 2), np.nan)
        return res
    if fam.link in _LINK_VARIANCE:
        return np.full(S, _LINK_VARIANCE[fam.link])
    # log link counts: the lognormal approximation, lambda = mean_i exp(eta_i + group var / 2)
    offset = np.zeros(design.n) if design.offset is None else np.asarray(design.offset, dtype=float)
    const = ~np.array([lab != "Intercept" for lab in design.x_labels], dtype=bool)
    lam = np.empty(S)
    step = max(1, 2_000_000 // max(design.n, 1))  # draws per block: bounded memory
    for a in range(0, S, step):
        sl = slice(a, a + step)
        eta = B[sl] @ A.T + beta[sl][:, const] @ X[:, const].T + offset
        lam[sl] = np.exp(np.clip(eta + group_total[sl, None] / 2, -700, 700)).mean(axis=1)
    extra = 1.0 / lam
    if fam.name == "negativebinomial":
        extra = extra + 1.0 / _stacked(tree, "alpha")
    return np.log1p(extra)


def summarise(parts: dict[str, np.ndarray], ci: float = 0.95) -> pd.DataFrame:
    """Fractions per draw (each component over their sum), summarised: mean, equal-tailed
    ``ci`` interval, and the posterior mean of the component's variance."""
    if not 0 < ci < 1:
        raise InputError(f"--ci must be between 0 and 1, got {ci}", hint="e.g. --ci 0.9")
    names = list(parts)
    V = np.stack([np.broadcast_to(np.asarray(parts[k], dtype=float), np.shape(parts[RESIDUAL])) for k in names], axis=1)  # (S, C)
    ok = np.all(np.isfinite(V), axis=1) & (V.sum(axis=1) > 0)
    if not ok.any():
        raise InputError("no posterior draw has a finite total variance", hint="check the fit (hlm summary RUN)")
    V = V[ok]
    F = V / V.sum(axis=1, keepdims=True)
    a = (1 - ci) / 2
    return pd.DataFrame({
        "component": names,
        "mean": F.mean(axis=0),
        "lower": np.quantile(F, a, axis=0),
        "upper": np.quantile(F, 1 - a, axis=0),
        "variance": V.mean(axis=0),
    })


def fraction_draws(parts: dict[str, np.ndarray]) -> pd.DataFrame:
    """(S, C) fractions per draw as a DataFrame (columns: the components); draws without a
    finite total are dropped."""
    V = pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in parts.items()})
    V = V[np.isfinite(V).all(axis=1) & (V.sum(axis=1) > 0)]
    return V.div(V.sum(axis=1), axis=0)


def fractions(tree, built, ci: float = 0.95) -> pd.DataFrame:
    """Variance fractions of one fitted model: columns ``component, mean, lower, upper,
    variance`` (one row per grouping factor, then ``fixed`` and ``residual``)."""
    return summarise(components(tree, built), ci)


def order_components(table: pd.DataFrame) -> list[str]:
    """variancePartition's order (``sortCols``): components by decreasing median fraction
    across features, the residual last."""
    med = table.groupby("component")["mean"].median().sort_values(ascending=False)
    names = [c for c in med.index if c != RESIDUAL]
    return names + ([RESIDUAL] if RESIDUAL in med.index else [])


def plot_violin(table: pd.DataFrame, path: Path) -> Path:
    """variancePartition's ``plotVarPart``: one violin per component of the per-feature mean
    fraction (in percent), components sorted by :func:`order_components`, a box inside each.

    ``table``: columns ``feature, component, mean``. Writes a PNG and returns its path."""
    from hlm_cli.outputs.figures._base import GREY, figure, palette, save

    missing = {"feature", "component", "mean"} - set(table.columns)
    if missing:
        raise InputError(f"the variance table lacks column(s) {', '.join(sorted(missing))}",
                         hint="give columns feature, component, mean")
    if table.empty:
        raise InputError("the variance table has no rows", hint="fit at least one feature")
    order = order_components(table)
    values = [100 * table.loc[table["component"] == c, "mean"].to_numpy(dtype=float) for c in order]
    colors = palette(len(order))
    n_feat = table["feature"].nunique()
    with figure(max(4.0, 1.1 * len(order) + 1.5), 4.4) as fig:
        ax = fig.subplots()
        pos = np.arange(1, len(order) + 1)
        spread = [v for v in values if len(v) > 1 and np.ptp(v) > 0]
        if spread:  # a violin needs more than one distinct value
            idx = [i for i, v in enumerate(values) if len(v) > 1 and np.ptp(v) > 0]
            parts = ax.violinplot([values[i] for i in idx], positions=pos[idx], widths=0.8, showextrema=False)
            for i, body in zip(idx, parts["bodies"], strict=True):
                body.set_facecolor(GREY if order[i] == RESIDUAL else colors[i])
                body.set_edgecolor("none")
                body.set_alpha(0.85)
        ax.boxplot(values, positions=pos, widths=0.12, showfliers=False, patch_artist=True,
                   boxprops={"facecolor": "white", "linewidth": 0.8}, medianprops={"color": "#222222"},
                   whiskerprops={"linewidth": 0.8}, capprops={"linewidth": 0})
        ax.set_xticks(pos, [str(c) for c in order], rotation=20 if len(order) > 4 else 0)
        ax.set_ylim(-2, 102)
        ax.set_ylabel("variance explained (%)")
        ax.set_title(f"Variance partition over {n_feat} feature{'s' if n_feat != 1 else ''} (posterior mean fractions)", fontsize=10)
        fig.tight_layout()
        return save(fig, Path(path))[0]
