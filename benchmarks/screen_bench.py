"""Marginal time per feature of ``hlm batch TABLE --by gene`` (issue 21), and lme4 per gene in R
timed the same way.

Two screens of small features (64 rows: 8 cell lines x 2 conditions x 4 replicates) with N1
and N2 genes are fitted from scratch; the marginal time per feature is
``(T(N2) - T(N1)) / (N2 - N1)``, which removes the start-up (worker imports, the first
compile) that a long screen pays once. The compiled-model cache is warm for hlm (as after a
first run), so the two runs differ only in the number of features. lme4: one ``lmer`` per gene
in one R process, the same two sizes, the same difference.

    PYTHONPATH=. .venv/bin/python benchmarks/screen_bench.py --n1 20 --n2 120 --workers 2

Prints one JSON line (also appended to benchmarks/results.jsonl) with the load average.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORMULA = "expr ~ treatment + (1|cell_line)"
CPU: dict[str, float] = {}  # CPU seconds (batch + workers) per output directory

R_SCRIPT = r"""
suppressMessages(library(lme4))
args <- commandArgs(TRUE)
d <- read.csv(args[1])
genes <- unique(d$gene)
t0 <- proc.time()[["elapsed"]]
for (g in genes) {
  fit <- suppressMessages(suppressWarnings(lmer(expr ~ treatment + (1|cell_line), data = d[d$gene == g, ])))
  s <- summary(fit)$coefficients
}
cat(proc.time()[["elapsed"]] - t0, "\n")
"""


def simulate(genes: int, seed: int = 5):
    spec = importlib.util.spec_from_file_location("make_sample_data", ROOT / "sample_data" / "make_sample_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    data, _ = mod.simulate_screen(seed, genes=genes, cell_lines=8, reps=4)
    return data


def time_hlm(table: Path, out: Path, workers: int, draws: int, tune: int, chains: int) -> float:
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "hlm_cli", "batch", str(table), "--by", "gene", "--formula", FORMULA, "--out", str(out),
           "--draws", str(draws), "--tune", str(tune), "--chains", str(chains), "--workers", str(workers), "--quiet"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False, capture_output=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU[str(out)] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall


def time_r(table: Path) -> float | None:
    if shutil.which("Rscript") is None:
        return None
    script = table.parent / "lme4_per_gene.R"
    script.write_text(R_SCRIPT)
    res = subprocess.run(["Rscript", str(script), str(table)], capture_output=True, text=True)
    try:
        return float(res.stdout.split()[-1])
    except (IndexError, ValueError):
        return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n1", type=int, default=20)
    ap.add_argument("--n2", type=int, default=120)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=500)
    ap.add_argument("--chains", type=int, default=2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hlm_screen_bench_"))
    tables = {}
    for n in (args.n1, args.n2):
        tables[n] = tmp / f"screen_{n}.csv"
        simulate(n).to_csv(tables[n], index=False)
    time_hlm(tables[args.n1], tmp / "warm", args.workers, args.draws, args.tune, args.chains)  # warm the cache
    load = os.getloadavg()
    t = {n: time_hlm(tables[n], tmp / f"out_{n}", args.workers, args.draws, args.tune, args.chains) for n in (args.n1, args.n2)}
    r = {n: time_r(tables[n]) for n in (args.n1, args.n2)}
    res = {
        "bench": "screen_by_gene", "rows_per_feature": 64, "n1": args.n1, "n2": args.n2, "workers": args.workers,
        "draws": args.draws, "tune": args.tune, "chains": args.chains,
        "hlm_s": {str(k): round(v, 2) for k, v in t.items()},
        "hlm_marginal_s_per_feature": round((t[args.n2] - t[args.n1]) / (args.n2 - args.n1), 3),
        "hlm_cpu_s": {str(n): round(CPU[str(tmp / f"out_{n}")], 2) for n in (args.n1, args.n2)},
        "hlm_marginal_cpu_s_per_feature": round((CPU[str(tmp / f"out_{args.n2}")] - CPU[str(tmp / f"out_{args.n1}")])
                                                / (args.n2 - args.n1), 3),
        "lme4_s": {str(k): (None if v is None else round(v, 2)) for k, v in r.items()},
        "lme4_marginal_s_per_feature": (None if None in r.values()
                                        else round((r[args.n2] - r[args.n1]) / (args.n2 - args.n1), 4)),
        "load_before": [round(x, 2) for x in load], "load_after": [round(x, 2) for x in os.getloadavg()],
        "cores": os.cpu_count(),
    }
    print(json.dumps(res))
    with open(ROOT / "benchmarks" / "results.jsonl", "a") as fh:
        fh.write(json.dumps(res) + "\n")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
