"""Robustness/correctness checks for hlm_cli.sampling.cache (each scenario in a fresh subprocess where it matters).

usage: t_robust.py            (driver)
       t_robust.py child ...  (internal)
"""
import json, os, subprocess, sys, tempfile, time
from pathlib import Path
HERE = Path(__file__).resolve().parent
PY = sys.executable


def child(argv):
    import logging, warnings
    warnings.filterwarnings("ignore")
    import numpy as np, pymc as pm, nutpie
    sys.path.insert(0, str(HERE))
    from model_def import make_data
    import hlm_cli.sampling.cache as cc
    logs = []
    class H(logging.Handler):
        def emit(self, r): logs.append(r.getMessage())
    lg = logging.getLogger("hlm_cli.sampling.cache"); lg.setLevel(logging.DEBUG); lg.addHandler(H())
    opts = json.loads(argv[0])
    cache = None if opts.get("cache") is None else Path(opts["cache"])
    n, ng, seed = opts.get("n", 90), opts.get("ng", 10), opts.get("seed", 0)
    prior_sd = opts.get("prior_sd", 2.5)
    y, gi, ci, ng, nc = make_data(n=n, ng=ng, seed=seed)
    def build():
        with pm.Model(coords={"gene": range(ng), "cell_line": range(nc)}) as m:
            if opts.get("no_data"):
                gi_, ci_, y_ = gi, ci, y
            else:
                gi_ = pm.Data("gi", gi); ci_ = pm.Data("ci", ci); y_ = pm.Data("y", y)
            if opts.get("prior_data"):  # support point depends on pm.Data
                mu = pm.Normal("Intercept", pm.Data("m0", float(np.mean(y))), prior_sd)
            else:
                mu = pm.Normal("Intercept", 0, prior_sd)
            sa = pm.HalfNormal("sa", 1); sb = pm.HalfNormal("sb", 1)
            a = pm.ZeroSumNormal("a", sigma=sa, dims="gene")
            b = pm.ZeroSumNormal("b", sigma=sb, dims="cell_line")
            s = pm.HalfNormal("sigma", 1)
            eta = mu + a[gi_] + b[ci_]
            if opts.get("det_rows"):
                eta = pm.Deterministic("eta", eta)
            pm.Normal("obs", eta, s, observed=y_)
        return m
    m = build()
    t = time.perf_counter()
    c = cc.compile_model(m, structure_key=opts.get("key", "k"), cache_dir=cache)
    t_c = time.perf_counter() - t
    tr = nutpie.sample(c, chains=2, draws=500, tune=500, progress_bar=False, seed=11)
    out = dict(compile_s=round(t_c, 2), disk_hit=any("disk hit" in l for l in logs),
               mu=float(tr.posterior["Intercept"].mean()), a_len=int(tr.posterior["a"].shape[-1]),
               from_cache=c.logp_func is None)
    if opts.get("fresh"):
        f = nutpie.compile_pymc_model(build())
        trf = nutpie.sample(f, chains=2, draws=500, tune=500, progress_bar=False, seed=11)
        out["mu_fresh"] = float(trf.posterior["Intercept"].mean())
        out["identical_to_fresh"] = bool(np.array_equal(trf.posterior["Intercept"].values, tr.posterior["Intercept"].values))
        sd = float(trf.posterior["Intercept"].std())
        out["z_vs_fresh"] = round(abs(out["mu"] - out["mu_fresh"]) / (sd / np.sqrt(500)), 2)
    if opts.get("memo_second"):
        # second call in the same process with new data of another length
        y2, gi2, ci2, _, _ = make_data(n=87, ng=ng, seed=seed + 50)
        with pm.Model(coords={"gene": range(ng), "cell_line": range(nc)}) as m2:
            gi_ = pm.Data("gi", gi2); ci_ = pm.Data("ci", ci2); y_ = pm.Data("y", y2)
            mu = pm.Normal("Intercept", 0, prior_sd)
            sa = pm.HalfNormal("sa", 1); sb = pm.HalfNormal("sb", 1)
            a = pm.ZeroSumNormal("a", sigma=sa, dims="gene"); b = pm.ZeroSumNormal("b", sigma=sb, dims="cell_line")
            s = pm.HalfNormal("sigma", 1)
            pm.Normal("obs", mu + a[gi_] + b[ci_], s, observed=y_)
        t = time.perf_counter(); c2 = cc.compile_model(m2, structure_key=opts.get("key", "k"), cache_dir=cache)
        out["memo_s"] = round(time.perf_counter() - t, 3)
        out["memo_hit"] = any("in-process hit" in l for l in logs)
        tr2 = nutpie.sample(c2, chains=2, draws=500, tune=500, progress_bar=False, seed=11)
        f2 = nutpie.compile_pymc_model(m2)
        tr2f = nutpie.sample(f2, chains=2, draws=500, tune=500, progress_bar=False, seed=11)
        out["memo_identical_to_fresh"] = bool(np.array_equal(tr2.posterior["Intercept"].values, tr2f.posterior["Intercept"].values))
    print("RESULT " + json.dumps(out))


def run(opts, env=None):
    p = subprocess.run([PY, __file__, "child", json.dumps(opts)], capture_output=True, text=True,
                       env={**os.environ, **(env or {})}, timeout=600)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"rc": p.returncode, "stderr_tail": p.stderr[-800:]}


def entries(d):
    return sorted((Path(d) / "nutpie-v2").glob("*.entry"))


def main():
    res = {}
    d = tempfile.mkdtemp(prefix="hlmcc_")
    res["cold"] = run({"cache": d})
    res["warm"] = run({"cache": d, "fresh": True})
    res["warm_other_data_same_len"] = run({"cache": d, "seed": 3, "fresh": True})
    res["warm_other_len_87"] = run({"cache": d, "seed": 4, "n": 87, "fresh": True})
    res["n_entries_after_4_runs"] = len(entries(d))
    # corruption: flip bytes in the middle of the body
    e = entries(d)[0]; b = bytearray(e.read_bytes()); b[len(b) // 2] ^= 0xFF; e.write_bytes(bytes(b))
    res["corrupt_flipped_byte"] = run({"cache": d})
    res["after_corrupt_rewritten_hit"] = run({"cache": d})
    e = entries(d)[0]; e.write_bytes(e.read_bytes()[:1000])
    res["truncated"] = run({"cache": d})
    # valid checksum but garbage pickle
    import hashlib
    e = entries(d)[0]; body = b"not a pickle at all"
    e.write_bytes(b"HLM-NUTPIE-CACHE\x00" + hashlib.sha256(body).digest() + body)
    res["garbage_with_valid_checksum"] = run({"cache": d})
    # unwritable / invalid cache dir
    f = Path(d) / "a_file"; f.write_text("x")
    res["cache_dir_is_a_file"] = run({"cache": str(f)})
    res["cache_dir_unwritable"] = run({"cache": "/proc/hlm_cache_test"})
    # same structure_key but different prior / group count / data-dependent deterministic
    res["same_key_other_prior"] = run({"cache": d, "prior_sd": 5.0, "fresh": True})
    res["same_key_11_genes"] = run({"cache": d, "ng": 11, "n": 99, "fresh": True})
    d2 = tempfile.mkdtemp(prefix="hlmcc_det_")
    res["det_rows_cold_90"] = run({"cache": d2, "det_rows": True})
    res["det_rows_warm_87"] = run({"cache": d2, "det_rows": True, "n": 87, "fresh": True})
    d3 = tempfile.mkdtemp(prefix="hlmcc_nodata_")
    res["no_pm_data_cold"] = run({"cache": d3, "no_data": True})
    res["no_pm_data_other_values"] = run({"cache": d3, "no_data": True, "seed": 9, "fresh": True})
    res["no_pm_data_same_values_hit"] = run({"cache": d3, "no_data": True})
    d5 = tempfile.mkdtemp(prefix="hlmcc_priordata_")
    res["prior_on_pm_data_cold"] = run({"cache": d5, "prior_data": True})
    res["prior_on_pm_data_warm_other_data"] = run({"cache": d5, "prior_data": True, "seed": 8, "fresh": True})
    res["memo"] = run({"cache": None, "memo_second": True})
    # two concurrent cold compiles of the same key
    d4 = tempfile.mkdtemp(prefix="hlmcc_conc_")
    ps = [subprocess.Popen([PY, __file__, "child", json.dumps({"cache": d4})], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in ps]
    res["concurrent_cold_ok"] = [("RESULT" in o) for o in outs]
    res["concurrent_then_hit"] = run({"cache": d4})
    res["concurrent_leftover_tmp_files"] = len(list((Path(d4) / "nutpie-v2").glob("*.tmp")))
    for k, v in res.items():
        print(k, json.dumps(v))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(sys.argv[2:])
    else:
        main()
