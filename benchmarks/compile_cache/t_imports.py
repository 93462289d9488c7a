"""Import-time split (wall) of what a warm `hlm fit` must import. Fresh process."""
import time, json, sys
T = {}
t = time.perf_counter(); import numpy; T["numpy"] = time.perf_counter() - t
t = time.perf_counter(); import pymc; T["pymc(+pytensor,numba?)"] = time.perf_counter() - t
T["numba_loaded_by_pymc"] = "numba" in sys.modules
T["arviz_loaded_by_pymc"] = "arviz" in sys.modules
t = time.perf_counter(); import nutpie; T["nutpie(+arviz,...)"] = time.perf_counter() - t
T["matplotlib.pyplot_loaded"] = "matplotlib.pyplot" in sys.modules
T["arviz_plots_loaded"] = "arviz_plots" in sys.modules
print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in T.items()}))
