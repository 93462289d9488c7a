"""Q4: one process, compile once, then 20 datasets.

(a) raw nutpie: compiled.with_data(...) + nutpie.sample
(b) hlm_cli.sampling.cache: build pm.Model per dataset + compile_model (memo hit) + nutpie.sample
(c) baseline: fresh nutpie.compile_pymc_model per dataset (first 3 only)
"""
import sys, time, json, warnings, statistics
import numpy as np, pymc as pm, nutpie
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from model_def import make_data, build
from hlm_cli.sampling.cache import compile_model
warnings.filterwarnings("ignore")
S = dict(chains=4, draws=1000, tune=1000, progress_bar=False, seed=3)
cores = int(sys.argv[1]) if len(sys.argv) > 1 else None
if cores: S["cores"] = cores
datasets = [make_data(n=90, seed=100 + i) for i in range(20)]
t = time.perf_counter()
base = nutpie.compile_pymc_model(build(*datasets[0]))
t_first = time.perf_counter() - t
A = []; mus_a = []
for y, gi, ci, ng, nc in datasets:
    t = time.perf_counter()
    tr = nutpie.sample(base.with_data(y=y, gi=gi, ci=ci), **S)
    A.append(time.perf_counter() - t); mus_a.append(float(tr.posterior["Intercept"].mean()))
B = []; Bc = []; Bs = []; mus_b = []
for d in datasets:
    t = time.perf_counter()
    m = build(*d)
    c = compile_model(m, structure_key="batch-demo", cache_dir=None)
    t1 = time.perf_counter()
    tr = nutpie.sample(c, **S)
    B.append(time.perf_counter() - t); Bc.append(t1 - t); Bs.append(time.perf_counter() - t1); mus_b.append(float(tr.posterior["Intercept"].mean()))
C = []
for d in datasets[:3]:
    t = time.perf_counter()
    tr = nutpie.sample(nutpie.compile_pymc_model(build(*d)), **S)
    C.append(time.perf_counter() - t)
med = lambda x: round(statistics.median(x), 3)
print(json.dumps(dict(cores=cores, first_compile=round(t_first, 2),
    raw_with_data_sample_median=med(A), raw_total_20=round(sum(A), 2),
    compile_model_memo_build_plus_compile_median=med(Bc), compile_model_memo_sample_median=med(Bs), compile_model_memo_total_per_dataset_median=med(B),
    memo_first_call_incl_compile=round(B[0], 2),
    fresh_compile_per_dataset_median=med(C),
    same_results=bool(np.allclose(mus_a, mus_b)))))
