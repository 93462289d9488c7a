"""Q2(b'): cache=True plus deterministic shared-variable keys (patch nutpie.compile_pymc.uuid4).
argv[1] = data seed (same seed -> identical data)."""
import time, sys, json, itertools, uuid
import numpy as np, pymc as pm, nutpie
import nutpie.compile_pymc as ncp
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from model_def import make_data, build
cnt = itertools.count()
ncp.uuid4 = lambda: uuid.UUID(int=next(cnt))
m = build(*make_data(seed=int(sys.argv[1])))
s = time.perf_counter()
c = nutpie.compile_pymc_model(m, cache=True)
print(json.dumps(dict(seed=int(sys.argv[1]), compile=round(time.perf_counter() - s, 2),
    logp_cache_hits=c.compiled_logp_func.cache_hits, expand_cache_hits=c.compiled_expand_func.cache_hits)))
