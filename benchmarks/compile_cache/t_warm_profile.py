"""cProfile of a warm (disk-hit) compile_model call. usage: t_warm_profile.py CACHE_DIR [N]"""
import cProfile, pstats, sys
import numpy as np, pymc as pm, nutpie
from pathlib import Path
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from model_def import make_data, build
from hlm_cli.compile_cache import compile_model
m = build(*make_data())
pr = cProfile.Profile(); pr.enable()
c = compile_model(m, structure_key="demo-2crossed-10x9", cache_dir=Path(sys.argv[1]))
pr.disable()
assert c.logp_func is None, "expected a disk hit"
pstats.Stats(pr).sort_stats("cumulative").print_stats(int(sys.argv[2]) if len(sys.argv) > 2 else 40)
