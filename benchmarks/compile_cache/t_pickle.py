"""Q2(a): can the CompiledPyMCModel (or its pieces) be pickled?"""
import sys, pickle, traceback
import numpy as np, pymc as pm, nutpie
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from model_def import make_data, build
try:
    import cloudpickle
except ImportError:
    cloudpickle = None
m = build(*make_data())
c = nutpie.compile_pymc_model(m)
for lib in [pickle, cloudpickle]:
    if lib is None:
        print("cloudpickle not installed"); continue
    for what, obj in [("CompiledPyMCModel", c), ("compiled_logp_func(CFunc)", c.compiled_logp_func),
                      ("logp_func(pytensor Function)", c.logp_func), ("initial_point_func", c.initial_point_func)]:
        try:
            b = lib.dumps(obj)
            print(lib.__name__, what, "OK", len(b))
        except Exception as e:
            print(lib.__name__, what, "FAIL", type(e).__name__, str(e)[:150])
