"""Q2(d): other knobs: freeze_model=True, and env NUMBA_OPT (set by caller). Fresh process, stock nutpie.
usage: [NUMBA_OPT=k] t_variants.py [freeze|default]"""
import time, sys, json, os
import numpy as np, pymc as pm, nutpie
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from model_def import make_data, build
v = sys.argv[1] if len(sys.argv) > 1 else "default"
m = build(*make_data())
w, c = time.perf_counter(), time.process_time()
cm = nutpie.compile_pymc_model(m, freeze_model=(v == "freeze"))
w1, c1 = time.perf_counter(), time.process_time()
ts = []
for s in range(3):
    t = time.perf_counter()
    tr = nutpie.sample(cm, chains=4, draws=1000, tune=1000, progress_bar=False, seed=s, cores=1)
    ts.append(time.perf_counter() - t)
w2, c2 = time.perf_counter(), time.process_time()
print("RESULT " + json.dumps(dict(variant=v, numba_opt=os.environ.get("NUMBA_OPT", "default(3)"),
    compile=round(w1 - w, 3), cpu_compile=round(c1 - c, 3), sample_min_cores1=round(min(ts), 3), cpu_sample_x3=round(c2 - c1, 3),
    mu=round(float(tr.posterior["Intercept"].mean()), 4))))
