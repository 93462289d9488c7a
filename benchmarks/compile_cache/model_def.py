"""Shared test model + data generator for compile-cache benchmarks."""
import numpy as np


def make_data(n=90, ng=10, nc=9, seed=0, intercept=1.0):
    rng = np.random.default_rng(seed)
    gi = np.arange(n) % ng
    ci = (np.arange(n) // ng) % nc
    rng.shuffle(ci)
    a = rng.normal(0, 0.7, ng); a -= a.mean()
    b = rng.normal(0, 0.4, nc); b -= b.mean()
    y = intercept + a[gi] + b[ci] + rng.normal(0, 0.5, n)
    return y, gi.astype("int64"), ci.astype("int64"), ng, nc


def build(y, gi, ci, ng, nc):
    import pymc as pm
    with pm.Model(coords={"gene": range(ng), "cell_line": range(nc)}) as m:
        gi_ = pm.Data("gi", gi); ci_ = pm.Data("ci", ci); y_ = pm.Data("y", y)
        mu = pm.Normal("Intercept", 0, 2.5)
        sa = pm.HalfNormal("sa", 1); sb = pm.HalfNormal("sb", 1)
        a = pm.ZeroSumNormal("a", sigma=sa, dims="gene")
        b = pm.ZeroSumNormal("b", sigma=sb, dims="cell_line")
        s = pm.HalfNormal("sigma", 1)
        pm.Normal("obs", mu + a[gi_] + b[ci_], s, observed=y_)
    return m
