"""cProfile of nutpie.compile_pymc_model in a fresh process."""
import cProfile, pstats, sys, time
import numpy as np, pymc as pm, nutpie
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from model_def import make_data, build
m = build(*make_data())
pr = cProfile.Profile()
t = time.perf_counter()
pr.enable()
c = nutpie.compile_pymc_model(m)
pr.disable()
print("compile", time.perf_counter() - t)
st = pstats.Stats(pr); st.sort_stats("cumulative").print_stats(int(sys.argv[1]) if len(sys.argv) > 1 else 60)
