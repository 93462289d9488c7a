"""CPU cost of the extra work compile_model does on a cold compile (spec of the initial point, serialise+write)."""
import sys, time, json, tempfile
from pathlib import Path
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from model_def import make_data, build
import hlm_cli.sampling.cache as cc
from hlm_cli.sampling import _nutpie
m = build(*make_data())
T = {}
for mod, name in [(cc, "_model_identity"), (_nutpie, "compile_recording"), (cc, "_initial_point_spec"), (cc, "_save_to_disk"), (cc, "_memoise")]:
    f = getattr(mod, name)
    def w(*a, _f=f, _n=name):
        s = time.process_time()
        try: return _f(*a)
        finally: T[_n] = round(time.process_time() - s, 3)
    setattr(mod, name, w)
d = Path(tempfile.mkdtemp())
s = time.process_time(); cc.compile_model(m, structure_key="k", cache_dir=d); T["compile_model_total"] = round(time.process_time() - s, 3)
T["entry_bytes"] = sum(p.stat().st_size for p in d.rglob("*.entry"))
print(json.dumps(T))
