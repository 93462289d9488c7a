"""CPU-time (process_time) breakdown of a warm (disk-hit) hlm_cli.sampling.cache.compile_model call. usage: t_warm_breakdown.py CACHE_DIR"""
import time, sys, json, collections
t0 = time.process_time()
import numpy as np, pymc as pm, nutpie
import hlm_cli.sampling.cache as cc
t_imp = time.process_time() - t0
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from model_def import make_data, build
from pathlib import Path
import pymc.initial_point, nutpie.compile_pymc as ncp
from numba.core import compiler
T = collections.defaultdict(float)
def wrap(mod, name, label=None):
    f = getattr(mod, name)
    def w(*a, **k):
        s = time.process_time()
        try: return f(*a, **k)
        finally: T[label or name] += time.process_time() - s
    setattr(mod, name, w)
for n in ["_model_signature", "_graph_fingerprint", "_environment", "_read_entry", "_load_from_disk", "_assemble", "_rebind", "_memoise"]:
    wrap(cc, n)
wrap(pymc.initial_point, "make_initial_point_fn")
wrap(ncp, "_prepare_dims_and_coords")
from numba.core.registry import cpu_target
ctx = cpu_target.target_context
_r = type(ctx).refresh
def r(self):
    s = time.process_time(); _r(self); T["ctx.refresh"] += time.process_time() - s
type(ctx).refresh = r
_rb = compiler.CompileResult._rebuild.__func__
def rb(cls, *a):
    s = time.process_time()
    try: return _rb(cls, *a)
    finally: T["CompileResult._rebuild x2"] += time.process_time() - s
compiler.CompileResult._rebuild = classmethod(rb)
m = build(*make_data())
s = time.process_time()
c = cc.compile_model(m, structure_key="demo-2crossed-10x9", cache_dir=Path(sys.argv[1]))
tot = time.process_time() - s
s = time.process_time()
c.initial_point_func(0)
t_ip = time.process_time() - s
print(json.dumps(dict(imports=round(t_imp, 2), compile_model=round(tot, 3), first_initial_point_call=round(t_ip, 3),
                      **{k: round(v, 3) for k, v in T.items()}, hit=c.logp_func is None)))
