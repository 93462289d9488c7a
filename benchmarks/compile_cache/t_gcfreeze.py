"""Effect of gc.freeze() after imports on cold compile (stock nutpie) and warm compile_model. usage: t_gcfreeze.py [freeze] [CACHE_DIR]"""
import time, sys, json, gc
t0 = time.perf_counter()
import numpy as np, pymc as pm, nutpie
from hlm_cli.compile_cache import compile_model
t1 = time.perf_counter()
freeze = len(sys.argv) > 1 and sys.argv[1] == "freeze"
if freeze:
    gc.freeze()
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from model_def import make_data, build
from pathlib import Path
m = build(*make_data())
t2 = time.perf_counter()
if len(sys.argv) > 2:
    c = compile_model(m, structure_key="demo-2crossed-10x9", cache_dir=Path(sys.argv[2]))
else:
    c = nutpie.compile_pymc_model(m)
t3 = time.perf_counter()
tr = nutpie.sample(c, chains=4, draws=1000, tune=1000, progress_bar=False, seed=1)
t4 = time.perf_counter()
print(json.dumps(dict(freeze=freeze, imports=round(t1-t0,2), compile=round(t3-t2,2), sample=round(t4-t3,2), gc_counts=gc.get_stats()[2]["collections"])))
