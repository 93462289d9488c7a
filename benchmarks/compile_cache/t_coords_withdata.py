"""(1) coordinate labels follow the new model on memo and disk hits; (2) .with_data() on a disk-hit object.
usage: t_coords_withdata.py CACHE_DIR   (run twice: first run cold, second run disk hit)"""
import sys, json, warnings
import numpy as np, pymc as pm, nutpie
from pathlib import Path
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from model_def import make_data
from hlm_cli.sampling.cache import compile_model
warnings.filterwarnings("ignore")
def build(y, gi, ci, ng, nc, prefix):
    with pm.Model(coords={"gene": [f"{prefix}{i}" for i in range(ng)], "cell_line": [f"cl{i}" for i in range(nc)]}) as m:
        gi_ = pm.Data("gi", gi); ci_ = pm.Data("ci", ci); y_ = pm.Data("y", y)
        mu = pm.Normal("Intercept", 0, 2.5)
        a = pm.ZeroSumNormal("a", sigma=pm.HalfNormal("sa", 1), dims="gene")
        b = pm.ZeroSumNormal("b", sigma=pm.HalfNormal("sb", 1), dims="cell_line")
        pm.Normal("obs", mu + a[gi_] + b[ci_], pm.HalfNormal("sigma", 1), observed=y_)
    return m
S = dict(chains=2, draws=300, tune=300, progress_bar=False, seed=5)
cache = Path(sys.argv[1])
c1 = compile_model(build(*make_data(seed=0), prefix="geneA_"), structure_key="coords", cache_dir=cache)
c2 = compile_model(build(*make_data(seed=1), prefix="geneB_"), structure_key="coords", cache_dir=cache)
tr1 = nutpie.sample(c1, **S); tr2 = nutpie.sample(c2, **S)
y3, gi3, ci3, ng, nc = make_data(n=87, seed=2)
c3 = c1.with_data(y=y3, gi=gi3, ci=ci3)
fresh3 = nutpie.compile_pymc_model(build(y3, gi3, ci3, ng, nc, prefix="geneA_"))
print(json.dumps(dict(
    first_from_disk=c1.logp_func is None,
    labels_1=[str(x) for x in tr1.posterior["a"].coords["gene"].values[:2]],
    labels_2=[str(x) for x in tr2.posterior["a"].coords["gene"].values[:2]],
    with_data_on_result_identical_to_fresh=bool(np.array_equal(nutpie.sample(c3, **S).posterior["Intercept"].values,
                                                               nutpie.sample(fresh3, **S).posterior["Intercept"].values)))))
