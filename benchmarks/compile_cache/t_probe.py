import sys, time, hashlib
import numpy as np, pymc as pm, nutpie, pytensor
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from model_def import make_data, build
m = build(*make_data())
print("data_vars", [v.name for v in getattr(m, "data_vars", [])])
print("dim_lengths", {k: type(v).__name__ for k, v in m.dim_lengths.items()})
s = time.perf_counter()
lp = m.logp()
t1 = time.perf_counter() - s
s = time.perf_counter()
txt = pytensor.printing.debugprint(lp, file="str", print_type=True)
h = hashlib.sha256(txt.encode()).hexdigest()
t2 = time.perf_counter() - s
print("logp build", round(t1, 3), "dprint+hash", round(t2, 3), len(txt))
c = nutpie.compile_pymc_model(m)
print("logp shared", [(v.name, type(v).__name__, v.ndim, v.dtype) for v in c.logp_func.get_shared()])
print("expand shared", [(v.name, type(v).__name__) for v in c.expand_func.get_shared()])
for cf in (c.compiled_logp_func, c.compiled_expand_func):
    lib = cf._library
    print(cf._wrapper_name, "dyn_globals", lib.has_dynamic_globals)
    s = time.perf_counter(); p = lib.serialize_using_object_code(); print("serialize", round(time.perf_counter() - s, 3), [type(x) for x in p], len(p[2][0]))
print(c.user_data.dtype)
print(c.shape_info, c.reparameterized_names, c.dims, c.n_dim, c.n_expanded)
