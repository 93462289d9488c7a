"""Time ``hlm batch`` against separate ``hlm fit`` processes on the cell-line screens.

    python benchmarks/batch_bench.py WORKDIR [--n 200] [--broken 3] [--serial 10]
        [--workers N] [--cores C] [--priors fixed|default] [--plots] [--draws D --tune T]

1. writes ``WORKDIR/inputs`` with ``benchmarks/make_batch_inputs.py`` (N good + broken CSVs);
2. times ``--serial`` separate ``hlm fit`` processes, one after another, on the first good files
   and on every broken file, and extrapolates to all inputs: the first fit (cold compile) plus
   (N - 1) times the mean of the others, plus the broken ones;
3. times one ``hlm batch`` over all inputs and checks its tables: N fitted, the broken ones
   failed with a reason, a summary row for every parameter of every fitted input;
4. times the separate fits of step 2 again, and compares the batch with the mean of both.

Each timing starts with an empty compiled-model cache (``HLM_CACHE_DIR=WORKDIR/cache``), so
both pay their own first compilation. ``--priors fixed`` gives every input the same explicit
priors (one model structure: compiled once); ``default`` keeps hlm's priors, which are scaled
to each input's response, so every input is a new model to compile. Results go to
``WORKDIR/results.json`` and are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORMULA = "logfc ~ 1 + (1|gene) + (1|cell_line)"
FIXED_PRIORS = ["--prior", "Intercept=Normal(0, 2)", "--prior", "sd=HalfNormal(1)", "--prior", "sigma=HalfNormal(1)"]


def hlm() -> list[str]:
    exe = Path(sys.executable).parent / "hlm"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "hlm_cli"]


def fresh_cache(work: Path) -> dict:
    cache = work / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    return {**os.environ, "HLM_CACHE_DIR": str(cache)}


def timed(cmd: list[str], env: dict) -> tuple[float, int, str]:
    t = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    return time.perf_counter() - t, res.returncode, res.stderr[-2000:]


def check_tables(out: Path, n_good: int, broken: list[str]) -> dict:
    """Counts from batch_status.csv / batch_summary.csv, and whether they are complete."""
    import pandas as pd

    st = pd.read_csv(out / "batch_status.csv", keep_default_na=False)
    sm = pd.read_csv(out / "batch_summary.csv")
    fitted = st[st["status"].isin(["ok", "diagnostics-warning"])]
    failed = st[st["status"] == "failed"]
    expected_rows = sum(len(pd.read_csv(out / d / "summary.csv")) for d in fitted["run_dir"])
    return {
        "inputs": len(st),
        "fitted": len(fitted),
        "with_diagnostics_warnings": int((st["status"] == "diagnostics-warning").sum()),
        "failed": {r["input"].rsplit("/", 1)[-1]: r["error"] for _, r in failed.iterrows()},
        "summary_rows": len(sm),
        "complete": bool(len(fitted) == n_good and set(Path(p).name for p in failed["input"]) == set(broken)
                         and all(failed["error"].str.len() > 0) and len(sm) == expected_rows
                         and set(sm["run_dir"]) == set(fitted["run_dir"])),
        "median_fit_s": float(pd.to_numeric(fitted["total_s"]).median()),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("work", type=Path)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--broken", type=int, default=3)
    p.add_argument("--serial", type=int, default=10, help="separate hlm fit processes to time (good files)")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--cores", type=int, default=None)
    p.add_argument("--priors", choices=["fixed", "default"], default="fixed")
    p.add_argument("--plots", action="store_true", help="also draw the figures (off: --no-plots)")
    p.add_argument("--draws", type=int, default=None)
    p.add_argument("--tune", type=int, default=None)
    p.add_argument("--skip-serial", action="store_true")
    args = p.parse_args(argv)

    work = args.work.resolve()
    inputs = work / "inputs"
    if not inputs.exists():
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_batch_inputs.py"), str(inputs),
                        "--n", str(args.n), "--broken", str(args.broken)], check=True)
    files = sorted(inputs.glob("*.csv"))
    good = [f for f in files if not f.name.startswith("broken_")]
    broken = [f for f in files if f.name.startswith("broken_")]
    shared = ["--formula", FORMULA]
    if args.priors == "fixed":
        shared += FIXED_PRIORS
    if not args.plots:
        shared.append("--no-plots")
    for flag, v in (("--draws", args.draws), ("--tune", args.tune)):
        if v is not None:
            shared += [flag, str(v)]
    results: dict = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "inputs": {"good": len(good), "broken": len(broken)}, "priors": args.priors, "plots": args.plots,
    }

    def serial(label: str) -> dict:
        env = fresh_cache(work)
        times = []
        for f in good[: args.serial]:
            t, rc, err = timed([*hlm(), "fit", str(f), *shared, "--out", str(work / "serial" / f.stem), "--force", "--quiet"], env)
            assert rc in (0, 3), err
            times.append(t)
            print(f"{label}: hlm fit {f.name}: {t:.1f} s", file=sys.stderr)
        broken_t = []
        for f in broken:
            t, rc, _ = timed([*hlm(), "fit", str(f), *shared, "--out", str(work / "serial" / f.stem), "--force", "--quiet"], env)
            assert rc == 1
            broken_t.append(t)
        rest = times[1:] or times
        per_file = sum(rest) / len(rest)
        return {
            "timed_good": len(times), "first_s": round(times[0], 2), "mean_rest_s": round(per_file, 2),
            "median_rest_s": round(sorted(rest)[len(rest) // 2], 2), "broken_s": [round(t, 2) for t in broken_t],
            "extrapolated_total_s": round(times[0] + per_file * (len(good) - 1) + sum(broken_t), 1),
        }

    # separate fits are timed before and after the batch, so that a change in the machine's
    # load during the run does not favour either side
    if not args.skip_serial:
        results["serial_before"] = serial("before")

    env = fresh_cache(work)
    out = work / "batch"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [*hlm(), "batch", str(inputs / "*.csv"), *shared, "--out", str(out), "--quiet"]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    if args.cores:
        cmd += ["--cores", str(args.cores)]
    t, rc, err = timed(cmd, env)
    results["batch"] = {"command": " ".join(cmd[1:]).replace(str(work), "WORKDIR"), "exit_code": rc,
                        "wall_s": round(t, 1), **check_tables(out, len(good), [f.name for f in broken])}
    if not args.skip_serial:
        results["serial_after"] = serial("after")
        est = (results["serial_before"]["extrapolated_total_s"] + results["serial_after"]["extrapolated_total_s"]) / 2
        results["serial_extrapolated_mean_s"] = round(est, 1)
        results["speedup"] = round(est / t, 1)
    (work / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
