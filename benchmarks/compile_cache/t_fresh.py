"""Fresh-process timing: imports, build, compile, sample."""
import time, sys, json
t0 = time.perf_counter()
import numpy as np, pymc as pm, nutpie
t1 = time.perf_counter()
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from model_def import make_data, build
m = build(*make_data())
t2 = time.perf_counter()
c = nutpie.compile_pymc_model(m)
t3 = time.perf_counter()
tr = nutpie.sample(c, chains=4, draws=1000, tune=1000, progress_bar=False, seed=1)
t4 = time.perf_counter()
print(json.dumps(dict(imports=round(t1-t0,2), build=round(t2-t1,2), compile=round(t3-t2,2), sample=round(t4-t3,2),
      total=round(t4-t0,2), mu=float(tr.posterior["Intercept"].mean()))))
