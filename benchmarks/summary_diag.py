"""Time ``outputs.summary.summarize`` on an InstEval-sized synthetic posterior (issue 22).

4,120 group effects (2,972 + 1,128 + 14 + 6 top-level, as InstEval's ``(1|s) + (1|d) + (1|dept)``
model), 2 chains x 683 draws (the ``--ess 400`` stop), AR(1) draws with autocorrelations 0-0.95.
``--rev REV`` times the ``summarize`` of an older commit instead (loaded from ``git show``),
e.g. the one before diag_fast; each run is a fresh process, so run it once per version:

    PYTHONPATH=. .venv/bin/python benchmarks/summary_diag.py
    PYTHONPATH=. .venv/bin/python benchmarks/summary_diag.py --rev 0178f40

Prints one JSON line: CPU (user + system of this process) and wall seconds of each of
``--repeat`` calls, the load average before and after, and a hash of summary.csv's text (the
two versions must print the same hash).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def synthetic(chains: int = 2, draws: int = 683, seed: int = 0):
    import xarray as xr

    rng = np.random.default_rng(seed)
    sizes = {"s": 2972, "d": 1128, "dept": 14}
    post = {}

    def ar1(shape):
        phi = rng.uniform(0.0, 0.95, shape[2:])
        e = rng.standard_normal(shape)
        x = np.empty_like(e)
        x[:, 0] = e[:, 0]
        for t in range(1, shape[1]):
            x[:, t] = phi * x[:, t - 1] + e[:, t]
        return x

    for name in ("Intercept", "service", "sigma", "1|s_sigma", "1|d_sigma", "1|dept_sigma"):
        post[name] = (("chain", "draw"), ar1((chains, draws, 1))[..., 0])
    coords = {}
    for f, n in sizes.items():
        dim = f"{f}__factor_dim"
        coords[dim] = [f"L{i}" for i in range(n)]
        post[f"1|{f}"] = (("chain", "draw", dim), ar1((chains, draws, n)))
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset(post, coords=coords)})
    params = SimpleNamespace(
        population=["Intercept", "service"],
        group_sds={f: [f"1|{f}_sigma"] for f in sizes},
        correlations={},
        family=["sigma"],
        group_effects={f: [f"1|{f}"] for f in sizes},
    )
    return tree, params


def load_summary(rev: str | None):
    if rev is None:
        from hlm_cli.outputs import summary

        return summary
    src = subprocess.run(["git", "show", f"{rev}:hlm_cli/outputs/summary.py"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "summary_old.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("summary_old", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rev", default=None, help="time this commit's summarize instead")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    import arviz_stats.base  # noqa: F401  imported before a fit's summary; not timed
    import arviz_stats.validate  # noqa: F401

    tree, params = synthetic()
    mod = load_summary(args.rev)
    load_before = os.getloadavg()
    cpu, wall = [], []
    for _ in range(args.repeat):
        t0, w0 = time.process_time(), time.perf_counter()
        table = mod.summarize(tree, params)
        cpu.append(round(time.process_time() - t0, 2))
        wall.append(round(time.perf_counter() - w0, 2))
    with tempfile.TemporaryDirectory() as tmp:
        mod.write(table, Path(tmp) / "summary.csv")
        digest = hashlib.sha256((Path(tmp) / "summary.csv").read_bytes()).hexdigest()[:16]
    print(json.dumps({
        "version": args.rev or "worktree", "rows": len(table), "cpu_s": cpu, "wall_s": wall,
        "load_before": [round(v, 2) for v in load_before], "load_after": [round(v, 2) for v in os.getloadavg()],
        "summary_csv_sha256": digest, "python": sys.version.split()[0],
    }))


if __name__ == "__main__":
    main()
