"""Q5: nutpie.sample cores=1 vs cores=2 vs default, 4 chains x 1000 draws (+1000 tune), interleaved repeats."""
import sys, time, warnings, statistics, os, json
import numpy as np, pymc as pm, nutpie
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from model_def import make_data, build
warnings.filterwarnings("ignore")
c = nutpie.compile_pymc_model(build(*make_data()))
R = {"default": [], "cores=1": [], "cores=2": [], "cores=4": []}
kw = {"default": {}, "cores=1": {"cores": 1}, "cores=2": {"cores": 2}, "cores=4": {"cores": 4}}
for rep in range(int(sys.argv[1]) if len(sys.argv) > 1 else 8):
    for k in R:
        t = time.perf_counter()
        nutpie.sample(c, chains=4, draws=1000, tune=1000, progress_bar=False, seed=rep, **kw[k])
        R[k].append(time.perf_counter() - t)
print(json.dumps({"cpu_count": os.cpu_count(), "sched_affinity": len(os.sched_getaffinity(0)),
                  **{k: {"median": round(statistics.median(v), 3), "min": round(min(v), 3)} for k, v in R.items()}}))
