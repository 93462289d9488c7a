import sys, time, warnings, statistics
import numpy as np, pymc as pm, nutpie
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from model_def import make_data, build
from hlm_cli.compile_cache import compile_model
warnings.filterwarnings("ignore")
S = dict(chains=4, draws=1000, tune=1000, progress_bar=False, seed=3)
d0 = make_data(seed=100)
base = nutpie.compile_pymc_model(build(*d0))
compile_model(build(*d0), structure_key="x", cache_dir=None)
ta, tb, tc = [], [], []
for i in range(8):
    d = make_data(seed=200 + i)
    ca = base.with_data(y=d[0], gi=d[1], ci=d[2])
    cb = compile_model(build(*d), structure_key="x", cache_dir=None)
    t = time.perf_counter(); nutpie.sample(ca, **S); ta.append(time.perf_counter() - t)
    t = time.perf_counter(); nutpie.sample(cb, **S); tb.append(time.perf_counter() - t)
    m = build(*d)
    t = time.perf_counter(); nutpie.sample(ca, **S); tc.append(time.perf_counter() - t)
print("raw", statistics.median(ta), "memo", statistics.median(tb), "raw after build", statistics.median(tc))
