"""Q2(b): pass cache=True through nutpie.compile_pymc_model(**kwargs) -> numba.cfunc."""
import time, sys, json, warnings
import numpy as np, pymc as pm, nutpie
from numba.core import ccallback
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from model_def import make_data, build
m = build(*make_data())
s = time.perf_counter()
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    c = nutpie.compile_pymc_model(m, cache=True)
print(json.dumps(dict(compile=round(time.perf_counter() - s, 2),
    logp_cache_hits=c.compiled_logp_func.cache_hits, expand_cache_hits=c.compiled_expand_func.cache_hits,
    warnings=[str(x.message)[:150] for x in w if "cache" in str(x.message).lower()])))
