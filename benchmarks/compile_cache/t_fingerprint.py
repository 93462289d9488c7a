"""Fingerprint/signature determinism: prints key parts for (seed, n, ng, nc, prior_sd)."""
import sys, time, json
sys.path.insert(0, __file__.rsplit("/", 1)[0])
import model_def
import hlm_cli.compile_cache as cc
seed, n, ng, nc = map(int, sys.argv[1:5])
y, gi, ci, _, _ = model_def.make_data(n=n, ng=ng, nc=nc, seed=seed)
m = model_def.build(y, gi, ci, ng, nc)
s = time.perf_counter(); fp = cc._graph_fingerprint(m); t = time.perf_counter() - s
print(json.dumps(dict(args=sys.argv[1:], sig=cc._hash(cc._model_signature(m))[:12], fp=fp[:12], env=cc._hash(cc._environment())[:12], t_fp=round(t, 3))))
