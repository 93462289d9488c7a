import sys
import numpy as np, pymc as pm, nutpie
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from model_def import make_data, build
m = build(*make_data())
c = nutpie.compile_pymc_model(m)
for cf in (c.compiled_logp_func, c.compiled_expand_func):
    mod = cf._library._final_module
    envs = [gv.name for gv in mod.global_variables if gv.name.startswith("_ZN08NumbaEnv")]
    decl = [gv.name for gv in mod.global_variables if gv.is_declaration]
    print(len(envs), envs[:3])
    print("declared(external) globals", decl[:20])
    fdecl = [f.name for f in mod.functions if f.is_declaration]
    print("external functions", fdecl)
