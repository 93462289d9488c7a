"""Experiment: how much of nutpie's cold compile is numba compiling the error path of `out[...] = grad`
(raise_shape_mismatch_error -> f-string formatting)? Replace the slice assignment with an explicit loop.
usage: t_loopcopy.py [patched|stock]"""
import time, sys, json
import numpy as np, pymc as pm, nutpie
import nutpie.compile_pymc as ncp
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from model_def import make_data, build

# the patched callbacks are the ones hlm compiles with (hlm_cli.sampling._nutpie._loop_copy_wrappers)
from hlm_cli.sampling._nutpie import _make_c_expand_func, _make_c_logp_func

if sys.argv[1:] == ["patched"]:
    ncp._make_c_logp_func = _make_c_logp_func
    ncp._make_c_expand_func = _make_c_expand_func
m = build(*make_data())
w, c = time.perf_counter(), time.process_time()
cm = nutpie.compile_pymc_model(m)
w1, c1 = time.perf_counter(), time.process_time()
tr = nutpie.sample(cm, chains=4, draws=1000, tune=1000, progress_bar=False, seed=1)
print("RESULT " + json.dumps(dict(variant=sys.argv[1], compile=round(w1 - w, 3), cpu_compile=round(c1 - c, 3),
                                  mu=round(float(tr.posterior["Intercept"].mean()), 4))))
