"""Should a first fit take the quick path (no C callbacks; background compile afterwards) or
compile in the foreground? Issue 17 asks for numbers on a quiet AND a busy machine.

    .venv/bin/python benchmarks/quick_vs_compile.py [--busy N] [--repeats 2]

For each strategy, from an empty compiled-model cache, two `hlm fit` processes one after the
other, the second started as soon as the first returns (a user fitting a second dataset of the
same design, or re-running): the wall time of each and of both together. `--busy N` starts N
`while True: pass` processes for the duration (2 = both cores of this VM busy). Strategies:

* quick: HLM_QUICK_COMPILE=1 and the detached background compile (forced with
  HLM_BACKGROUND_COMPILE=1, as at a terminal);
* compile: HLM_QUICK_COMPILE=0 (compile in the foreground, cache for the next fit).

Prints one JSON line per run and a summary table; `--no-plots` keeps figure drawing out of it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HLM = str(ROOT / ".venv" / "bin" / "hlm")
CASES = {
    "cell_lines": ("sample_data/cell_lines.csv", "logfc ~ 1 + (1|gene) + (1|cell_line)"),
    "sleepstudy": ("sample_data/sleepstudy.csv", "Reaction ~ Days + (Days | Subject)"),
}


def fit(data: str, formula: str, cache: Path, quick: bool, out: Path) -> float:
    env = dict(os.environ, HLM_CACHE_DIR=str(cache), HLM_QUICK_COMPILE="1" if quick else "0",
               HLM_BACKGROUND_COMPILE="1" if quick else "0")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    t = time.perf_counter()
    subprocess.run([HLM, "fit", data, "--formula", formula, "--out", str(out), "--no-plots", "--quiet", "--seed", "1"],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - t


def one(case: str, quick: bool) -> dict:
    data, formula = CASES[case]
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        first = fit(data, formula, cache, quick, Path(tmp) / "r1")
        second = fit(data, formula, cache, quick, Path(tmp) / "r2")
        if quick:  # let a still-running background compiler finish before the next measurement
            deadline = time.time() + 300
            while any(cache.rglob("background-*.filling")) and time.time() < deadline:
                time.sleep(0.5)
    return {"case": case, "strategy": "quick" if quick else "compile", "first_s": round(first, 2),
            "second_s": round(second, 2), "both_s": round(first + second, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--busy", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--only", default=",".join(CASES))
    args = ap.parse_args()
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    rows = []
    try:
        load = os.getloadavg()[0]
        for case in args.only.split(","):
            for _ in range(args.repeats):
                for quick in (True, False):
                    row = one(case, quick) | {"busy": args.busy, "load_at_start": round(load, 2)}
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    finally:
        for p in spinners:
            p.kill()
    print(f"\n| case | strategy | busy spinners | first fit s | second fit s | both s |  (median of {args.repeats})")
    for case in args.only.split(","):
        for strategy in ("quick", "compile"):
            sel = [r for r in rows if r["case"] == case and r["strategy"] == strategy]
            med = {k: statistics.median(r[k] for r in sel) for k in ("first_s", "second_s", "both_s")}
            print(f"| {case} | {strategy} | {args.busy} | {med['first_s']:.1f} | {med['second_s']:.1f} | {med['both_s']:.1f} |")


if __name__ == "__main__":
    main()
