"""InstEval next to lme4 in one run (issue 22): wall time, CPU time, ESS and R-hat.

    .venv/bin/python benchmarks/insteval.py                      # lme4, then hlm with the options below
    .venv/bin/python benchmarks/insteval.py --warm               # one untimed hlm fit first (compiled-model cache filled)
    .venv/bin/python benchmarks/insteval.py --hlm-args "--ess 400 --tune 400 --chains 2 --no-plots"

Fits ``y ~ service + (1|s) + (1|d) + (1|dept)`` to sample_data/insteval.csv (73,421 rows) with
lme4 (``Rscript``, REML as lme4 does by default) and with ``hlm fit`` (a separate process, as a
user runs it), and prints each one's wall time (the whole process and, for lme4, the ``lmer``
call alone), CPU time (user + system of the process and its children, which the load of other
jobs does not inflate as much as the wall time), hlm's stage timings from run.json, the bulk ESS
and R-hat of the six top-level parameters, and the load average before and after. The machine
is shared: the wall times are only as good as the load says; compare the ratio measured in the
same run. ``--json FILE`` also writes the numbers.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "sample_data" / "insteval.csv"
FORMULA = "y ~ service + (1|s) + (1|d) + (1|dept)"
DEFAULT_HLM_ARGS = "--ess 400 --tune 400 --chains 2"
TOP = {"Intercept": "Intercept", "service": "service", "1|s_sigma": "sd(s)", "1|d_sigma": "sd(d)",
       "1|dept_sigma": "sd(dept)", "sigma": "sigma"}

R_SCRIPT = r"""
suppressPackageStartupMessages(library(lme4))
t0 <- Sys.time()
d <- read.csv("%s")
d$s <- factor(d$s); d$d <- factor(d$d); d$dept <- factor(d$dept)
t1 <- Sys.time()
m <- lmer(y ~ service + (1|s) + (1|d) + (1|dept), data = d)
t2 <- Sys.time()
vc <- as.data.frame(VarCorr(m))
cat(sprintf("lmer_s=%%.3f\n", as.numeric(difftime(t2, t1, units = "secs"))))
cat(sprintf("total_s=%%.3f\n", as.numeric(difftime(t2, t0, units = "secs"))))
fe <- fixef(m)
cat(sprintf("Intercept=%%.5f\nservice=%%.5f\n", fe[1], fe[2]))
for (i in seq_len(nrow(vc))) cat(sprintf("sd_%%s=%%.5f\n", vc$grp[i], vc$sdcor[i]))
"""


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall s, CPU s of the process and its children, result)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, res


def run_lme4() -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as fh:
        fh.write(R_SCRIPT % DATA)
        script = fh.name
    try:
        wall, cpu, res = timed(["Rscript", script])
    finally:
        os.unlink(script)
    if res.returncode != 0:
        sys.exit(f"lme4 failed:\n{res.stderr}")
    vals = dict(line.split("=", 1) for line in res.stdout.split() if "=" in line)
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), **{k: float(v) for k, v in vals.items()}}


def run_hlm(out: Path, args: str, *, hlm: str) -> dict:
    cmd = [hlm, "fit", str(DATA), "--formula", FORMULA, "--out", str(out), "--force", "--quiet", *shlex.split(args)]
    wall, cpu, res = timed(cmd)
    if res.returncode not in (0, 3):
        sys.exit(f"hlm failed ({res.returncode}):\n{res.stderr[-3000:]}")
    info = json.loads((out / "run.json").read_text())
    rows = {}
    with open(out / "summary.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if r["parameter"] in TOP:
                rows[TOP[r["parameter"]]] = {"mean": float(r["mean"]), "ess_bulk": float(r["ess_bulk"]), "r_hat": float(r["r_hat"])}
    sampler = info["sampler"]
    size = (out / "posterior.nc").stat().st_size
    return {"command": shlex.join(["hlm", *cmd[1:]]), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "timings": info["timings"], "compile_mode": sampler.get("compile_mode"), "ess_stop": sampler.get("ess_stop"),
            "draws_kept": sampler.get("draws_kept", sampler["draws"]), "params": rows, "posterior_nc_mb": round(size / 1e6, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hlm-args", default=DEFAULT_HLM_ARGS, help=f"options for hlm fit [default: {DEFAULT_HLM_ARGS!r}]")
    ap.add_argument("--warm", action="store_true", help="fit once, untimed, before the timed fit (compiled-model cache warm)")
    ap.add_argument("--no-lme4", action="store_true", help="time hlm only")
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "hlm_insteval")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    ap.add_argument("--hlm", default=str(Path(sys.executable).with_name("hlm")))
    opts = ap.parse_args()

    result: dict = {"load_before": load(), "nproc": os.cpu_count(), "hlm_args": opts.hlm_args}
    if not opts.no_lme4:
        result["lme4"] = lme4 = run_lme4()
        print(f"lme4: {lme4['wall_s']:.1f} s wall (lmer {lme4['lmer_s']:.1f} s), {lme4['cpu_s']:.1f} s CPU; "
              f"service {lme4['service']:.4f}, sd(s) {lme4['sd_s']:.4f}, sd(d) {lme4['sd_d']:.4f}, "
              f"sd(dept) {lme4['sd_dept']:.4f}, sigma {lme4['sd_Residual']:.4f}")
    if opts.warm:
        run_hlm(opts.out, opts.hlm_args, hlm=opts.hlm)
    result["hlm"] = h = run_hlm(opts.out, opts.hlm_args, hlm=opts.hlm)
    result["load_after"] = load()
    tm = h["timings"]
    stages = ", ".join(f"{k} {v:.1f}" for k, v in tm.items() if k != "total")
    print(f"hlm:  {h['wall_s']:.1f} s wall, {h['cpu_s']:.1f} s CPU; compile mode {h['compile_mode']}; "
          f"{h['draws_kept']} draws per chain kept; posterior.nc {h['posterior_nc_mb']} MB")
    print(f"      stages (s): {stages}")
    if h["ess_stop"]:
        print(f"      --ess: {json.dumps(h['ess_stop'])}")
    for name, r in h["params"].items():
        print(f"      {name:10s} mean {r['mean']:9.4f}  bulk ESS {r['ess_bulk']:7.0f}  R-hat {r['r_hat']:.4f}")
    ok_ess = all(r["ess_bulk"] >= 400 for r in h["params"].values()) and len(h["params"]) == 6
    if not opts.no_lme4:
        ratio = h["wall_s"] / result["lme4"]["wall_s"]
        result["ratio_wall"] = round(ratio, 2)
        print(f"ratio hlm / lme4 wall: {ratio:.2f} (target <= 2); CPU ratio {h['cpu_s'] / result['lme4']['cpu_s']:.2f}; "
              f"bulk ESS >= 400 for all six: {ok_ess}")
    print(f"load average before {result['load_before']}, after {result['load_after']} ({result['nproc']} cores)")
    if opts.json:
        opts.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
