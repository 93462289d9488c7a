"""Wall-clock breakdown of nutpie.compile_pymc_model internals (fresh process, no profiler).

Wraps the internals with timers; numba's event API gives time spent holding the LLVM lock.
"""
import time, sys, json, collections
t0 = time.perf_counter()
import numpy as np, pymc as pm, nutpie, numba
import nutpie.compile_pymc as ncp
import pymc.pytensorf, pymc.initial_point, pytensor.graph
from numba.core import event
t_imp = time.perf_counter() - t0
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from model_def import make_data, build

T = collections.defaultdict(float)
def wrap(mod, name, label=None):
    f = getattr(mod, name)
    def w(*a, **k):
        s = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            T[label or name] += time.perf_counter() - s
    setattr(mod, name, w)

wrap(pymc.initial_point, "make_initial_point_fn")
wrap(ncp, "_compute_shapes")
wrap(ncp, "_make_functions")
wrap(pymc.pytensorf, "compile", "pytensor_function(logp+expand)")
wrap(pytensor.graph, "rewrite_graph")
wrap(numba, "cfunc", "cfunc_decorate(no-op)")
from numba.core import ccallback
_orig = ccallback.CFunc.compile
def cc(self):
    s = time.perf_counter()
    try:
        return _orig(self)
    finally:
        T["cfunc.compile " + self.__qualname__.split(".")[0]] += time.perf_counter() - s
ccallback.CFunc.compile = cc

llvm = [0.0]
class L(event.Listener):
    def on_start(self, ev): self._s = time.perf_counter()
    def on_end(self, ev): llvm[0] += time.perf_counter() - self._s
event.register("numba:llvm_lock", L())
# count numba cache hits of pytensor-generated functions
from numba.core import caching
hits = [0, 0]
_lo = caching.Cache.load_overload
def lo(self, sig, ctx):
    r = _lo(self, sig, ctx)
    hits[r is None] += 1
    return r
caching.Cache.load_overload = lo

m = build(*make_data())
s = time.perf_counter()
c = nutpie.compile_pymc_model(m)
tot = time.perf_counter() - s
print(json.dumps(dict(imports=round(t_imp, 2), compile_total=round(tot, 2), **{k: round(v, 2) for k, v in T.items()},
                      llvm_lock=round(llvm[0], 2), numba_cache_hits=hits[0], numba_cache_misses=hits[1])))
