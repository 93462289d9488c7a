"""Reporting zero-sum group intercepts on lme4's scale.

A zero-sum term is sampled as offsets ``d`` that sum to zero, with the intercept ``m``
holding the mean of the group effects. The standard model's quantities are
``Intercept = m - t`` and ``b_k = d_k + mbar_k`` with ``t = sum_k mbar_k``, where the mean
effects ``mbar_k ~ N(0, v_k)``, ``v_k = tau_k^2 / L_k``, are independent of the data given
``m`` except through the intercept's prior (see ``build._intercept_rv``). For a
Normal(mu0, s0) intercept prior the conditional is exact and Gaussian::

    t | m ~ N((m - mu0) V / (V + s0^2), V s0^2 / (V + s0^2)),   V = sum_k v_k
    mbar | t ~ N(v t / V, diag(v) - v v^T / V)

(for other intercept priors, ``t ~ N(0, V)``, exact under a flat prior). One draw of mbar per
posterior draw turns the zero-sum posterior into the posterior of the usual model, so
``Intercept`` and ``1|g`` mean what they mean in lme4 and brms, while the linear predictor,
and so every prediction and log-likelihood, is unchanged.

With a centered population design (:mod:`hlm_cli.model.build`) the sampled intercept ``m`` is
the centered one (``_Intercept_c``, the one the prior is on) and the reported ``Intercept`` is
the deterministic ``m - sum_j b_j mean(X_j)``: both are shifted by the same ``t``, since the
centering is linear in ``m``.
"""

from __future__ import annotations

import numpy as np


def to_user_scale(tree, built, *, seed: int = 0):
    """Rewrite Intercept and zero-sum group effects in ``tree['posterior']`` in place."""
    zs = [g for g in built.design.groups if built.parameterization[g.term.label].sums_to_zero]
    post = tree["posterior"]
    if not zs or "Intercept" not in post:
        return tree
    from hlm_cli.model.build import CENTERED_INTERCEPT

    rng = np.random.default_rng(seed + 7919)
    sampled = CENTERED_INTERCEPT if CENTERED_INTERCEPT in post else "Intercept"
    m = np.asarray(post[sampled], dtype=float)  # (C, D): the intercept the prior is on
    v = np.stack([np.asarray(post[f"{g.effect_names[0]}_sigma"], dtype=float) ** 2 / len(g.levels) for g in zs], axis=-1)
    V = v.sum(axis=-1)
    prior = built.priors["Intercept"]
    if prior.dist == "Normal":
        mu0, s0 = float(prior.kwargs["mu"]), float(prior.kwargs["sigma"])
        mean = (m - mu0) * V / (V + s0**2)
        var = V * s0**2 / (V + s0**2)
    else:
        mean, var = np.zeros_like(m), V
    t = rng.normal(mean, np.sqrt(var))
    m0 = rng.normal(0.0, np.sqrt(v))
    mbar = m0 + v / V[..., None] * (t - m0.sum(axis=-1))[..., None]
    ds = post.to_dataset()
    ds["Intercept"] = (post["Intercept"].dims, np.asarray(post["Intercept"], dtype=float) - t)
    if sampled != "Intercept":
        ds[sampled] = (post[sampled].dims, m - t)
    for k, g in enumerate(zs):
        name = g.effect_names[0]
        ds[name] = post[name] + mbar[..., k][..., None]
    tree["posterior"] = ds
    return tree
