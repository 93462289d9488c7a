"""End-to-end 'hlm fit' stand-in: imports + build + compile + sample, in a fresh process.

usage: t_cache_fit.py MODE [data_seed] [n_rows] [exit]
  MODE = nutpie (stock nutpie.compile_pymc_model) | none (compile_model, no disk cache) | <cache dir>
  exit = normal | gcfreeze | osexit  (how the process ends)
Prints wall (perf_counter) and CPU (process_time, all threads) per phase.
"""
import time
w0, c0 = time.perf_counter(), time.process_time()
import sys, json, logging
import numpy as np, pymc as pm, nutpie
from hlm_cli.sampling.cache import compile_model
w1, c1 = time.perf_counter(), time.process_time()
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from model_def import make_data, build
from pathlib import Path
logs = []
class H(logging.Handler):
    def emit(self, r): logs.append(r.getMessage())
lg = logging.getLogger("hlm_cli.sampling.cache"); lg.setLevel(logging.DEBUG); lg.addHandler(H())
mode = sys.argv[1]
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
n = int(sys.argv[3]) if len(sys.argv) > 3 else 90
ex = sys.argv[4] if len(sys.argv) > 4 else "normal"
m = build(*make_data(n=n, seed=seed))
w2, c2 = time.perf_counter(), time.process_time()
if mode == "nutpie":
    c = nutpie.compile_pymc_model(m)
else:
    c = compile_model(m, structure_key="demo-2crossed-10x9", cache_dir=None if mode == "none" else Path(mode))
w3, c3 = time.perf_counter(), time.process_time()
tr = nutpie.sample(c, chains=4, draws=1000, tune=1000, progress_bar=False, seed=1)
w4, c4 = time.perf_counter(), time.process_time()
r = lambda x: round(x, 3)
print("RESULT " + json.dumps(dict(
    imports=r(w1-w0), build=r(w2-w1), compile=r(w3-w2), sample=r(w4-w3), total=r(w4-w0),
    cpu_imports=r(c1-c0), cpu_build=r(c2-c1), cpu_compile=r(c3-c2), cpu_sample=r(c4-c3),
    disk_hit=any("disk hit" in l for l in logs), mu=round(float(tr.posterior["Intercept"].mean()), 4))), flush=True)
if ex == "gcfreeze":
    import gc; gc.disable(); gc.freeze()
elif ex == "osexit":
    import os; sys.stdout.flush(); sys.stderr.flush(); os._exit(0)
