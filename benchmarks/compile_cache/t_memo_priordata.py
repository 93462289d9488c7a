"""Memo hit for a model whose support point depends on pm.Data: initial-point fn must follow the new data."""
import sys, json, warnings
import numpy as np, pymc as pm, nutpie
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from model_def import make_data
from hlm_cli.sampling.cache import compile_model
warnings.filterwarnings("ignore")
def build(y, gi, ci, ng, nc):
    with pm.Model(coords={"gene": range(ng), "cell_line": range(nc)}) as m:
        gi_ = pm.Data("gi", gi); ci_ = pm.Data("ci", ci); y_ = pm.Data("y", y)
        mu = pm.Normal("Intercept", pm.Data("m0", float(np.mean(y))), 2.5)
        sa = pm.HalfNormal("sa", 1); sb = pm.HalfNormal("sb", 1)
        a = pm.ZeroSumNormal("a", sigma=sa, dims="gene"); b = pm.ZeroSumNormal("b", sigma=sb, dims="cell_line")
        pm.Normal("obs", mu + a[gi_] + b[ci_], pm.HalfNormal("sigma", 1), observed=y_)
    return m
S = dict(chains=2, draws=300, tune=300, progress_bar=False, seed=5)
compile_model(build(*make_data(seed=0, intercept=1.0)), structure_key="pd", cache_dir=None)
mB = build(*make_data(seed=1, intercept=5.0))
cB = compile_model(mB, structure_key="pd", cache_dir=None)
fresh = nutpie.compile_pymc_model(build(*make_data(seed=1, intercept=5.0)))
print(json.dumps(dict(
    init_point_memo=np.round(cB.initial_point_func(3)[:1], 4).tolist(),
    init_point_fresh=np.round(fresh.initial_point_func(3)[:1], 4).tolist(),
    identical_draws=bool(np.array_equal(nutpie.sample(cB, **S).posterior["Intercept"].values,
                                        nutpie.sample(fresh, **S).posterior["Intercept"].values)))))
