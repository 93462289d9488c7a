"""hlm's numpy log-likelihood agrees with PyMC's logp for every family."""

import numpy as np
import pytest
import xarray as xr

from hlm_cli.formula import parse
from hlm_cli.formula.design import build_design
from hlm_cli.model import likelihood
from hlm_cli.model.build import build_model
from hlm_cli.model.families import get_family

SLOW = pytest.mark.slow  # each case compiles a PyTensor C function (~8 s)


@pytest.mark.parametrize("family, formula", [
    ("gaussian", "y ~ x + (1|g)"), pytest.param("t", "y ~ x + (1 + x|g)", marks=SLOW),
    pytest.param("poisson", "count ~ x + (1|g)", marks=SLOW),
    ("negativebinomial", "count ~ x + (1|g)"), pytest.param("bernoulli", "flag ~ x + (1|g)", marks=SLOW),
    pytest.param("gamma", "exp(y) ~ x + (1|g)", marks=SLOW), pytest.param("lognormal", "exp(y) ~ x + (1|g)", marks=SLOW),
    pytest.param("binomial", "cbind(count, 3) ~ x + (1|g)", marks=SLOW),
    pytest.param("beta", "expit(y) ~ x + (1|g)", marks=SLOW),
])
def test_matches_pymc_logp(tiny_df, family, formula):
    import pymc as pm

    d = build_design(parse(formula, list(tiny_df.columns)), tiny_df)
    built = build_model(d, get_family(family), parameterization="centered")
    model = built.model
    rng = np.random.default_rng(0)
    # two random points in the unconstrained space, mapped to the constrained values
    ip = model.initial_point()
    points = [{k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in ip.items()} for _ in range(2)]
    obs = model.observed_RVs[0]
    ref_fn = model.compile_fn(model.logp(vars=[obs], sum=False)[0], inputs=model.value_vars, on_unused_input="ignore")
    value_fn = model.compile_fn([model.unobserved_value_vars[i] for i in range(len(model.unobserved_value_vars))], inputs=model.value_vars, on_unused_input="ignore")
    names = [v.name for v in model.unobserved_value_vars]
    post = {}
    for p in points:
        for n, v in zip(names, value_fn(p), strict=True):
            post.setdefault(n, []).append(np.asarray(v))
    data_vars = {}
    for n, vals in post.items():
        arr = np.stack(vals)[None]  # (chain=1, draw=2, ...)
        dims = ["chain", "draw"] + [f"{n}_d{i}" for i in range(arr.ndim - 2)]
        data_vars[n] = (dims, arr)
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset(data_vars)})
    ours = likelihood.pointwise(tree, built)
    ref = np.stack([ref_fn(p) for p in points])
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-8)
    assert pm is not None
