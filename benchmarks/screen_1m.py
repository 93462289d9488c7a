"""One million rows: a seeded 16,000-gene x 64-cell-line screen, fitted and LOO'd by hlm.

    .venv/bin/python benchmarks/screen_1m.py [--out DIR] [--draws N --tune N --chains N]

Writes DIR/screen.csv (1,024,000 rows: gene, cell_line, logfc) and DIR/truth.csv (the
simulated gene and cell-line effects), then times

* ``hlm fit DIR/screen.csv --formula "logfc ~ 1 + (1|gene) + (1|cell_line)" --out DIR/run``
  (sampler defaults unless --draws/--tune/--chains are given), and
* ``hlm loo DIR/run --out DIR/loo``

each under ``/usr/bin/time -v`` (peak RSS of the process) and a watchdog that sums the RSS of
the process tree once a second and kills it above ``--max-rss-gb`` (default 10: a step that
blows memory is stopped, never left to take the machine). It then checks R-hat and bulk ESS
of the intercept, both SDs and sigma, the correlation of the estimated gene (and cell-line)
effects with the simulated ones, and that report.html was written, and appends one JSON line
to DIR/results.jsonl (and prints it). Acceptance targets (issue 22): fit <= 20 min and
<= 8 GB; loo <= 10 min and <= 8 GB; R-hat <= 1.01 and bulk ESS >= 400; gene effects
correlate >= 0.95 with the truth; report.html built.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
FORMULA = "logfc ~ 1 + (1|gene) + (1|cell_line)"
TRUTH = {"Intercept": -0.3, "sd_gene": 0.8, "sd_cell_line": 0.4, "sigma": 0.6}
TOP = ["Intercept", "1|gene_sigma", "1|cell_line_sigma", "sigma"]


def make_data(out: Path, genes: int, lines: int, seed: int, drop: float = 0.0) -> tuple[Path, Path]:
    """The screen (one row per gene x cell line, less a random ``drop`` fraction of them) and
    its true effects."""
    rng = np.random.default_rng(seed)
    g_names = np.array([f"g{i:05d}" for i in range(genes)])
    l_names = np.array([f"cl{j:02d}" for j in range(lines)])
    b_gene = rng.normal(0.0, TRUTH["sd_gene"], genes)
    b_line = rng.normal(0.0, TRUTH["sd_cell_line"], lines)
    gi = np.repeat(np.arange(genes), lines)
    li = np.tile(np.arange(lines), genes)
    y = TRUTH["Intercept"] + b_gene[gi] + b_line[li] + rng.normal(0.0, TRUTH["sigma"], genes * lines)
    if drop > 0:  # missing measurements: the genes x cell lines cross-product is no longer constant
        keep = np.random.default_rng(seed + 1).random(genes * lines) >= drop
        gi, li, y = gi[keep], li[keep], y[keep]
    data = out / "screen.csv"
    pd.DataFrame({"gene": g_names[gi], "cell_line": l_names[li], "logfc": np.round(y, 5)}).to_csv(data, index=False)
    truth = out / "truth.csv"
    pd.concat([pd.DataFrame({"factor": "gene", "level": g_names, "effect": b_gene}),
               pd.DataFrame({"factor": "cell_line", "level": l_names, "effect": b_line})]).to_csv(truth, index=False)
    return data, truth


def tree_rss(pid: int) -> int:
    """Bytes resident in a process and its descendants."""
    import psutil

    try:
        p = psutil.Process(pid)
        procs = [p] + p.children(recursive=True)
    except psutil.Error:
        return 0
    total = 0
    for q in procs:
        try:
            total += q.memory_info().rss
        except psutil.Error:
            pass
    return total


def timed(cmd: list[str], log: Path, max_rss: float) -> dict:
    """Run ``cmd`` under /usr/bin/time -v with an RSS watchdog; wall time and peak memory."""
    env = dict(os.environ, HLM_QUICK_COMPILE="0", HLM_BACKGROUND_COMPILE="0")
    full = ["/usr/bin/time", "-v", *cmd] if Path("/usr/bin/time").exists() else cmd
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(full, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        peak = {"tree": 0, "killed": False}

        def watch():
            while proc.poll() is None:
                rss = tree_rss(proc.pid)
                peak["tree"] = max(peak["tree"], rss)
                if rss > max_rss:
                    peak["killed"] = True
                    os.killpg(proc.pid, 9)
                    return
                time.sleep(1.0)

        th = threading.Thread(target=watch, daemon=True)
        th.start()
        rc = proc.wait()
        th.join(timeout=2)
    wall = time.perf_counter() - t0
    text = log.read_text(errors="replace")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    return {"rc": rc, "wall_s": round(wall, 1), "peak_rss_gb": round(int(m.group(1)) * 1024 / 1e9, 2) if m else None,
            "peak_tree_rss_gb": round(peak["tree"] / 1e9, 2), "killed_by_watchdog": peak["killed"], "log": str(log)}


def check_fit(run: Path, truth: Path) -> dict:
    summ = pd.read_csv(run / "summary.csv").set_index("parameter")
    top = {p: {"mean": float(summ.loc[p, "mean"]), "r_hat": float(summ.loc[p, "r_hat"]), "ess_bulk": float(summ.loc[p, "ess_bulk"])}
           for p in TOP if p in summ.index}
    tr = pd.read_csv(truth)
    out = {"top": top,
           "rhat_ok": all(v["r_hat"] <= 1.01 for v in top.values()),
           "ess_ok": all(v["ess_bulk"] >= 400 for v in top.values())}
    for factor in ("gene", "cell_line"):
        t = tr[tr["factor"] == factor].set_index("level")["effect"]
        est = summ[summ.index.str.startswith(f"1|{factor}[")]["mean"]
        est.index = est.index.str.slice(len(f"1|{factor}["), -1)
        both = pd.concat([t, est], axis=1, join="inner")
        out[f"corr_{factor}"] = round(float(np.corrcoef(both.iloc[:, 0], both.iloc[:, 1])[0, 1]), 4)
        out[f"n_{factor}"] = int(len(both))
    info = json.loads((run / "run.json").read_text())
    out["timings"] = info.get("timings")
    out["storage"] = info.get("storage")
    out["report_html"] = (run / "report.html").exists()
    out["posterior_nc_mb"] = round((run / "posterior.nc").stat().st_size / 1e6, 1)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "screen_1m_out")
    ap.add_argument("--genes", type=int, default=16_000)
    ap.add_argument("--lines", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--drop", type=float, default=0.0, help="drop this fraction of the rows at random (an incomplete screen)")
    ap.add_argument("--draws", type=int)
    ap.add_argument("--tune", type=int)
    ap.add_argument("--chains", type=int)
    ap.add_argument("--max-rss-gb", type=float, default=10.0)
    ap.add_argument("--skip-fit", action="store_true", help="reuse OUT/run (time loo only)")
    ap.add_argument("--hlm", default=str(Path(sys.executable).with_name("hlm")))
    args = ap.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    data, truth = out / "screen.csv", out / "truth.csv"
    if not (data.exists() and truth.exists()) or not args.skip_fit:
        data, truth = make_data(out, args.genes, args.lines, args.seed, args.drop)
    rec: dict = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "host": platform.node(), "cpus": os.cpu_count(),
                 "load_before": os.getloadavg(), "rows": len(pd.read_csv(data, usecols=["gene"])), "drop": args.drop, "genes": args.genes, "lines": args.lines,
                 "seed": args.seed, "formula": FORMULA}
    sampler = []
    for flag in ("draws", "tune", "chains"):
        if getattr(args, flag) is not None:
            sampler += [f"--{flag}", str(getattr(args, flag))]
    rec["sampler_args"] = sampler or "defaults"
    limit = args.max_rss_gb * 1e9
    run = out / "run"
    if not args.skip_fit:
        cmd = [args.hlm, "fit", str(data), "--formula", FORMULA, "--out", str(run), "--force", "--seed", str(args.seed), "--quiet", *sampler]
        rec["fit_command"] = " ".join(cmd)
        rec["fit"] = timed(cmd, out / "fit.log", limit)
        rec["load_after_fit"] = os.getloadavg()
        print(json.dumps({"fit": rec["fit"]}), flush=True)
    if (run / "summary.csv").exists():
        rec["fit_checks"] = check_fit(run, truth)
        cmd = [args.hlm, "loo", str(run), "--out", str(out / "loo")]
        rec["loo_command"] = " ".join(cmd)
        rec["loo"] = timed(cmd, out / "loo.log", limit)
        rec["load_after_loo"] = os.getloadavg()
        if (out / "loo" / "loo.json").exists():
            m = json.loads((out / "loo" / "loo.json").read_text())["models"][0]
            rec["loo_result"] = {k: m.get(k) for k in ("elpd_loo", "elpd_loo_se", "p_loo", "estimate", "subsample", "seconds")}
    with open(out / "results.jsonl", "a") as fh:
        fh.write(json.dumps(rec, default=str) + "\n")
    print(json.dumps(rec, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
