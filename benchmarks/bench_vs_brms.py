"""Time hlm against brms on the same data and the same draws, in one run, on this machine.

    .venv/bin/python benchmarks/bench_vs_brms.py [--only cell_lines,sleepstudy] [--no-brms]

Each hlm variant runs REPEATS (3) times and the run with the median wall time is reported
(with all wall times). For each model: hlm fit cold (empty compile cache, new process: the quick first fit, see
hlm_cli/compile_quick.py), the same with HLM_QUICK_COMPILE=0 (cold, compiling nutpie's C
callbacks first), hlm fit warm (cache filled by the cold run's background compile, which the
script waits for and times; new process), warm with --no-plots, and brms (new Rscript process:
compile + sample). Reports wall time, divergences, tree-depth hits, min bulk ESS over all
parameters, and ratios. Results are printed and appended to benchmarks/results.jsonl.

hlm runs with Python's default bytecode caching (PYTHONDONTWRITEBYTECODE, which this sandbox
sets, is removed from their environment), as on a user's machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
HLM = str(ROOT / ".venv" / "bin" / "hlm")
MODELS = {
    "cell_lines": ("sample_data/cell_lines.csv", "logfc ~ 1 + (1|gene) + (1|cell_line)", 1000, 4),
    "sleepstudy": ("sample_data/sleepstudy.csv", "Reaction ~ Days + (Days|Subject)", 1000, 4),
}


def hlm_fit(data: str, formula: str, draws: int, chains: int, cache: Path, extra=(), quick: bool = True) -> dict:
    out = Path(tempfile.mkdtemp()) / "run"
    env = dict(os.environ, HLM_CACHE_DIR=str(cache), HLM_QUICK_COMPILE="1" if quick else "0", HLM_BACKGROUND_COMPILE="1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    t0 = time.perf_counter()
    r = subprocess.run([HLM, "fit", str(ROOT / data), "--formula", formula, "--out", str(out), "--draws", str(draws),
                        "--tune", str(draws), "--chains", str(chains), "--seed", "1", "--quiet", *extra],
                       env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode not in (0, 3):
        raise SystemExit(f"hlm failed: {r.stderr}")
    info = json.loads((out / "run.json").read_text())
    summ = pd.read_csv(out / "summary.csv")
    finds = {f["code"]: f["value"] for f in info["diagnostics"]["findings"]}
    res = {"wall_s": round(wall, 2), "timings": info["timings"], "divergences": int(finds.get("divergences", 0) or 0),
           "treedepth_hits": int(finds.get("treedepth", 0) or 0), "min_ess_bulk": float(summ["ess_bulk"].min()),
           "max_rhat": float(summ["r_hat"].max()), "compile_mode": info["sampler"].get("compile_mode", "")}
    res["ess_per_s"] = round(res["min_ess_bulk"] / wall, 1)
    res["ess_per_sampling_s"] = round(res["min_ess_bulk"] / max(info["timings"]["sample"], 1e-9), 1)
    shutil.rmtree(out.parent, ignore_errors=True)
    return res


REPEATS = 3  # runs per variant; the median by wall time is reported, with every wall time


def median_run(runs: list[dict]) -> dict:
    """The run with the median wall time, plus every run's wall time."""
    ordered = sorted(runs, key=lambda r: r["wall_s"])
    out = dict(ordered[len(ordered) // 2])
    out["wall_s_all"] = [r["wall_s"] for r in runs]
    return out


def cold_fit(data: str, formula: str, draws: int, chains: int, quick: bool) -> dict:
    cache = Path(tempfile.mkdtemp(prefix="hlm-bench-cache-"))
    try:
        run = hlm_fit(data, formula, draws, chains, cache, quick=quick)
        if quick:
            run["background_compile_s_after_exit"] = wait_for_fill(cache)
        return run
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def wait_for_fill(cache: Path, timeout: float = 300) -> float:
    """Seconds until the background compile of a quick first fit has written its entry."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if list(cache.rglob("*.entry")) and not list(cache.rglob("*.filling")):
            break
        time.sleep(0.1)
    return round(time.perf_counter() - t0, 2)


def brms_fit(data: str, formula: str, draws: int, chains: int) -> dict | None:
    if shutil.which("Rscript") is None:
        return None
    t0 = time.perf_counter()
    r = subprocess.run(["Rscript", str(ROOT / "benchmarks" / "brms_fit.R"), str(ROOT / data), formula, str(draws), str(chains)],
                       capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        print(r.stderr[-2000:], file=sys.stderr)
        return None
    res = json.loads(r.stdout.strip().splitlines()[-1])
    res["process_wall_s"] = round(wall, 2)
    res["ess_per_s"] = round(res["min_ess_bulk"] / wall, 1)
    res["ess_per_sampling_s"] = round(res["min_ess_bulk"] / res["sampling_s"], 1)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=",".join(MODELS))
    ap.add_argument("--no-brms", action="store_true")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    for name in args.only.split(","):
        data, formula, draws, chains = MODELS[name]
        cache = Path(tempfile.mkdtemp(prefix="hlm-bench-cache-"))
        cold_full = median_run([cold_fit(data, formula, draws, chains, quick=False) for _ in range(REPEATS)])
        colds = []
        for i in range(REPEATS):  # each in an empty cache; the last one's cache serves the warm runs
            if i:
                shutil.rmtree(cache, ignore_errors=True)
                cache.mkdir()
            run = hlm_fit(data, formula, draws, chains, cache)
            run["background_compile_s_after_exit"] = wait_for_fill(cache)
            colds.append(run)
        cold = median_run(colds)
        warm = median_run([hlm_fit(data, formula, draws, chains, cache) for _ in range(REPEATS)])
        warm_noplots = median_run([hlm_fit(data, formula, draws, chains, cache, ["--no-plots"]) for _ in range(REPEATS)])
        brms = None if args.no_brms else brms_fit(data, formula, draws, chains)
        row = {"model": name, "formula": formula, "draws": draws, "chains": chains, "machine": f"{platform.node()} {os.cpu_count()} cores",
               "load_avg_1min_at_start": round(load, 2), "date": time.strftime("%Y-%m-%d %H:%M"),
               "hlm_cold": cold, "hlm_cold_compiled_first": cold_full, "hlm_warm": warm, "hlm_warm_no_plots": warm_noplots, "brms": brms}
        if brms:
            row["ratio_wall_brms_over_hlm_cold"] = round(brms["process_wall_s"] / cold["wall_s"], 2)
            row["ratio_wall_brms_over_hlm_warm"] = round(brms["process_wall_s"] / warm["wall_s"], 2)
            row["ratio_ess_per_s_hlm_over_brms"] = round(cold["ess_per_s"] / brms["ess_per_s"], 2)
            row["ratio_ess_per_s_hlm_warm_over_brms"] = round(warm["ess_per_s"] / brms["ess_per_s"], 2)
        print(json.dumps(row, indent=2))
        with open(ROOT / "benchmarks" / "results.jsonl", "a") as fh:
            fh.write(json.dumps(row) + "\n")
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
