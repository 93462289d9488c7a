"""Experiment: how much of nutpie's cold compile is numba compiling the error path of `out[...] = grad`
(raise_shape_mismatch_error -> f-string formatting)? Replace the slice assignment with an explicit loop.
usage: t_loopcopy.py [patched|stock]"""
import time, sys, json
import numpy as np, pymc as pm, nutpie
import nutpie.compile_pymc as ncp
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from model_def import make_data, build

def _make_c_logp_func(n_dim, logp_fn, user_data, shared_keys, shared_data):
    import numba
    extract = ncp.make_extraction_fn(logp_fn, shared_data, shared_keys, user_data.dtype)
    c_sig = numba.types.int64(numba.types.uint64, numba.types.CPointer(numba.types.double),
                              numba.types.CPointer(numba.types.double), numba.types.CPointer(numba.types.double),
                              numba.types.voidptr)
    def logp_numba(dim, x_, out_, logp_, user_data_):
        if dim != n_dim:
            return -1
        try:
            x = numba.carray(x_, (n_dim,))
            out = numba.carray(out_, (n_dim,))
            logp = numba.carray(logp_, ())
            logp_val, grad = extract(x, user_data_)
            logp[()] = logp_val
            if grad.shape[0] != n_dim:
                return 2
            for i in range(n_dim):
                out[i] = grad[i]
            if not np.all(np.isfinite(out)):
                return 3
            if not np.isfinite(logp_val):
                return 4
        except Exception:  # noqa: BLE001
            return 1
        return 0
    return logp_numba, c_sig

def _make_c_expand_func(n_dim, n_expanded, expand_fn, user_data, shared_var_keys, shared_data):
    import numba
    extract = ncp.make_extraction_fn(expand_fn, shared_data, shared_var_keys, user_data.dtype)
    c_sig = numba.types.int64(numba.types.uint64, numba.types.uint64, numba.types.CPointer(numba.types.double),
                              numba.types.CPointer(numba.types.double), numba.types.voidptr)
    def expand_numba(dim, expanded, x_, out_, user_data_):
        if dim != n_dim:
            return -1
        if expanded != n_expanded:
            return -1
        try:
            x = numba.carray(x_, (n_dim,))
            out = numba.carray(out_, (n_expanded,))
            (values,) = extract(x, user_data_)
            if values.shape[0] != n_expanded:
                return -2
            for i in range(n_expanded):
                out[i] = values[i]
        except Exception:  # noqa: BLE001
            return -2
        return 0
    return expand_numba, c_sig

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
