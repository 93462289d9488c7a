"""Where does the time between 'script done' and process exit go? usage: t_exit.py CACHE_DIR [normal|osexit|gcfreeze]"""
import time, atexit, sys, os
T0 = time.time()
def last():
    sys.stderr.write(f"atexit_handlers_done {time.time():.3f}\n"); sys.stderr.flush()
atexit.register(last)
import numpy as np, pymc as pm, nutpie
from pathlib import Path
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model_def import make_data, build
from hlm_cli.sampling.cache import compile_model
c = compile_model(build(*make_data()), structure_key="demo-2crossed-10x9", cache_dir=Path(sys.argv[1]))
tr = nutpie.sample(c, chains=4, draws=1000, tune=1000, progress_bar=False, seed=1)
sys.stderr.write(f"start {T0:.3f}\nscript_done {time.time():.3f}\n"); sys.stderr.flush()
if len(sys.argv) > 2 and sys.argv[2] == "osexit":
    sys.stdout.flush(); sys.stderr.flush(); os._exit(0)
if len(sys.argv) > 2 and sys.argv[2] == "gcfreeze":
    import gc; gc.disable(); gc.freeze()
