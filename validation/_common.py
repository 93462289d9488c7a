"""Shared helpers for the validation scripts: run ``hlm fit``, read a run back, compare, report.

The validation scripts compare hlm's posterior summaries with reference fits made in R
(``validation/reference/*.json``, written by ``validation/r/*.R``). Each fit is a real
``hlm fit`` subprocess (the command a user types), so the wall time recorded is the user's
wall time, and the run directory under ``validation/runs/`` (git-ignored) is an ordinary
hlm run that can be inspected with any hlm command afterwards.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "validation" / "reference"
RUNS = ROOT / "validation" / "runs"
HLM = ROOT / ".venv" / "bin" / "hlm"

# sampler settings: the acceptance run, and a smoke run that only checks the script works
FULL = {"chains": 4, "draws": 1000, "tune": 1000}
QUICK = {"chains": 2, "draws": 300, "tune": 300}


def reference(name: str) -> dict:
    """``validation/reference/<name>.json`` as a dict."""
    return json.loads((REFERENCE / f"{name}.json").read_text())


def loadavg() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def machine() -> dict:
    """Where and when the numbers were made (the host is shared: load averages matter)."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "loadavg_start": loadavg(),
    }


@dataclass
class Fit:
    """One hlm run read back: summary rows, medians, diagnostics and timings."""

    name: str
    run_dir: Path
    command: str
    summary: dict[str, dict]  # parameter -> summary.csv row (floats where numeric)
    median: dict[str, float]
    divergences: int
    min_ess_bulk: float
    min_ess_bulk_param: str
    max_rhat: float
    wall_s: float
    timings: dict
    compile_cached: bool | None
    parameterization: dict
    priors: dict
    loadavg_before: list[float] | None
    loadavg_after: list[float] | None
    findings: list[str] = field(default_factory=list)

    def row(self, parameter: str) -> dict | None:
        return self.summary.get(parameter)

    def kinds(self, kind: str) -> list[str]:
        return [p for p, r in self.summary.items() if r["kind"] == kind]

    def diagnostics_json(self) -> dict:
        return {
            "divergences": self.divergences,
            "min_ess_bulk": round(self.min_ess_bulk, 1),
            "min_ess_bulk_parameter": self.min_ess_bulk_param,
            "max_rhat": round(self.max_rhat, 4),
            "wall_s": round(self.wall_s, 1),
            "timings": self.timings,
            "compile_cached": self.compile_cached,
            "loadavg_before": self.loadavg_before,
            "loadavg_after": self.loadavg_after,
            "parameterization": {k: v.get("kind") + (" (on mean)" if v.get("on_mean") else "") for k, v in self.parameterization.items()},
            "findings": self.findings,
        }


def hlm_fit(name: str, data: str, formula: str, *extra: str, sampler: dict, seed: int) -> Fit:
    """Run ``hlm fit`` into ``validation/runs/<name>`` and read the run back.

    Exit code 3 (diagnostics failed under --strict) cannot happen without --strict; any
    non-zero exit is an error here, reported with hlm's own stderr.
    """
    RUNS.mkdir(parents=True, exist_ok=True)
    out = RUNS / name
    cmd = [
        str(HLM), "fit", data, "--formula", formula, "--out", str(out.relative_to(ROOT)),
        "--chains", str(sampler["chains"]), "--draws", str(sampler["draws"]), "--tune", str(sampler["tune"]),
        "--seed", str(seed), "--force", "--no-plots", "--quiet", *extra,
    ]
    shown = shlex.join(["hlm", *cmd[1:]])
    print(f"[{name}] {shown}", file=sys.stderr, flush=True)
    before = loadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = loadavg()
    if proc.returncode != 0:
        raise SystemExit(f"hlm fit for {name} failed (exit {proc.returncode}):\n{proc.stderr.strip()}")
    fit = read_run(name, out, command=shown, wall_s=wall, loadavg_before=before, loadavg_after=after)
    print(f"[{name}] done in {wall:.1f} s (compile {fit.timings.get('compile', float('nan')):.1f} s, "
          f"sample {fit.timings.get('sample', float('nan')):.1f} s); divergences {fit.divergences}, "
          f"min bulk ESS {fit.min_ess_bulk:.0f} ({fit.min_ess_bulk_param})", file=sys.stderr, flush=True)
    return fit


def _num(v: str):
    try:
        return float(v)
    except ValueError:
        return v


def read_run(name: str, run_dir: Path, *, command: str = "", wall_s: float = float("nan"),
             loadavg_before=None, loadavg_after=None) -> Fit:
    """Read summary.csv, run.json and posterior.nc (medians, divergences) of a run directory."""
    import csv

    import numpy as np
    import xarray as xr

    with open(run_dir / "summary.csv", newline="") as fh:
        rows = {r["parameter"]: {k: _num(v) if k not in ("parameter", "kind", "group") else v for k, v in r.items()} for r in csv.DictReader(fh)}
    info = json.loads((run_dir / "run.json").read_text())
    tree = xr.open_datatree(run_dir / "posterior.nc", engine="h5netcdf")
    post = tree["posterior"].to_dataset()
    median: dict[str, float] = {}
    for p, r in rows.items():
        if r["kind"] == "group_effect":
            continue
        median[p] = _median(post, p)
    div = int(np.asarray(tree["sample_stats"]["diverging"]).sum()) if "diverging" in tree["sample_stats"] else -1
    ess = {p: r["ess_bulk"] for p, r in rows.items() if isinstance(r["ess_bulk"], float) and not math.isnan(r["ess_bulk"])}
    min_param = min(ess, key=ess.get)
    rhat = max(r["r_hat"] for r in rows.values() if isinstance(r["r_hat"], float) and not math.isnan(r["r_hat"]))
    return Fit(
        name=name, run_dir=run_dir, command=command, summary=rows, median=median, divergences=div,
        min_ess_bulk=ess[min_param], min_ess_bulk_param=min_param, max_rhat=rhat, wall_s=wall_s,
        timings=info.get("timings", {}), compile_cached=info.get("sampler", {}).get("compile_cached"),
        parameterization=info.get("parameterization", {}), priors={k: v.get("text") for k, v in info.get("priors", {}).items()},
        loadavg_before=loadavg_before, loadavg_after=loadavg_after,
        findings=[f["message"] for f in info.get("diagnostics", {}).get("findings", [])],
    )


def _median(post, label: str) -> float:
    """Posterior median of a summary row: a scalar variable, or ``var[level]`` of a 1-d one."""
    import numpy as np

    if label in post:
        return float(np.median(post[label].values))
    m = re.fullmatch(r"(.+)\[(.+)\]", label)
    if m and m.group(1) in post:
        da = post[m.group(1)]
        (dim,) = [d for d in da.dims if d not in ("chain", "draw")]
        return float(np.median(da.sel({dim: m.group(2)}).values))
    return float("nan")


# ---------------------------------------------------------------- comparisons
@dataclass
class Check:
    """One compared quantity: a row of a comparison table."""

    quantity: str  # hlm's parameter name
    kind: str  # fixed, sd, cor, sigma, structure
    ref: float | None = None
    ref_se: float | None = None
    mean: float | None = None
    sd: float | None = None
    median: float | None = None
    metric: str = ""
    criterion: str = ""
    passed: bool | None = None  # None: information only

    @property
    def result(self) -> str:
        return "info" if self.passed is None else ("PASS" if self.passed else "FAIL")

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in ("quantity", "kind", "ref", "ref_se", "mean", "sd", "median", "metric", "criterion")} | {"result": self.result}


def check_fixed(fit: Fit, param: str, est: float, se: float, tol: float) -> Check:
    """Population-level effect: |posterior mean - estimate| / reference SE <= tol."""
    return _check_location(fit, param, est, se, tol, scale_name="SE", sd_ratio=False)


def _check_location(fit: Fit, param: str, ref: float, scale: float, tol: float, *, scale_name: str, sd_ratio: bool) -> Check:
    """|posterior mean - ref| / scale <= tol; ``sd_ratio`` also shows posterior sd / scale."""
    r = fit.row(param)
    if r is None:
        return Check(param, "fixed", ref, scale, metric="missing in summary.csv", criterion=f"<= {tol:g} {scale_name}", passed=False)
    z = abs(r["mean"] - ref) / scale
    metric = f"|diff|/{scale_name} = {z:.3f}" + (f"; sd ratio {r['sd'] / scale:.2f}" if sd_ratio else "")
    return Check(param, "fixed", ref, scale, r["mean"], r["sd"], fit.median.get(param),
                 metric=metric, criterion=f"<= {tol:g}", passed=z <= tol)


def check_sd(fit: Fit, param: str, est: float, tol: float, kind: str = "sd", scored: bool = True) -> Check:
    """A standard deviation: posterior mean / reference within 1 +- tol (the median is shown too)."""
    r = fit.row(param)
    if r is None:
        return Check(param, kind, est, metric="missing in summary.csv", criterion=f"ratio in [{1 - tol:g}, {1 + tol:g}]", passed=False)
    ratio = r["mean"] / est
    med = fit.median.get(param)
    metric = f"mean/ref = {ratio:.3f}" + (f" (median/ref {med / est:.3f})" if med is not None else "")
    return Check(param, kind, est, None, r["mean"], r["sd"], med, metric=metric,
                 criterion=f"mean ratio in [{1 - tol:g}, {1 + tol:g}]" if scored else "",
                 passed=(abs(ratio - 1) <= tol) if scored else None)


def check_cor_in_hdi(fit: Fit, param: str, est: float) -> Check:
    """A correlation must be a reported parameter, and the reference value inside its 94% HDI."""
    r = fit.row(param)
    if r is None or r["kind"] != "correlation":
        return Check(param, "cor", est, metric="no such correlation parameter", criterion="reported; ref in 94% HDI", passed=False)
    inside = r["hdi94_lb"] <= est <= r["hdi94_ub"]
    return Check(param, "cor", est, None, r["mean"], r["sd"], fit.median.get(param),
                 metric=f"94% HDI [{r['hdi94_lb']:.3f}, {r['hdi94_ub']:.3f}]", criterion="ref in 94% HDI", passed=inside)


def check_no_kind(fit: Fit, kind: str) -> Check:
    found = fit.kinds(kind)
    return Check(f"(no {kind} parameter)", "structure", metric=", ".join(found) or "none reported",
                 criterion=f"no {kind} parameter", passed=not found)


def check_location_vs_posterior(fit: Fit, param: str, ref_mean: float, ref_sd: float, tol: float) -> Check:
    """Bayesian vs Bayesian: |mean - ref mean| <= tol * ref posterior sd."""
    return _check_location(fit, param, ref_mean, ref_sd, tol, scale_name="ref sd", sd_ratio=True)


def check_scale_vs_posterior(fit: Fit, param: str, ref_mean: float, ref_sd: float, tol: float, kind: str = "sd") -> Check:
    """Bayesian vs Bayesian: posterior mean ratio within 1 +- tol (posterior sd ratio shown)."""
    r = fit.row(param)
    if r is None:
        return Check(param, kind, ref_mean, ref_sd, metric="missing in summary.csv", criterion=f"ratio in [{1 - tol:g}, {1 + tol:g}]", passed=False)
    ratio = r["mean"] / ref_mean
    return Check(param, kind, ref_mean, ref_sd, r["mean"], r["sd"], fit.median.get(param),
                 metric=f"mean ratio {ratio:.3f}; sd ratio {r['sd'] / ref_sd:.2f}",
                 criterion=f"mean ratio in [{1 - tol:g}, {1 + tol:g}]", passed=abs(ratio - 1) <= tol)


def check_divergences(fit: Fit, allowed: int = 0) -> Check:
    return Check("divergences", "diagnostic", metric=str(fit.divergences), criterion=f"<= {allowed}", passed=fit.divergences <= allowed)


# ---------------------------------------------------------------- reporting
def _f(x, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return f"{x:.{digits}g}"


def cell(text: str) -> str:
    """A table cell: '|' (in ``1|gene_sigma``, ``|diff|``) would end the cell in GitHub markdown."""
    return text.replace("|", "\\|")


def markdown_table(checks: list[Check], ref_label: str, ref_se_label: str) -> str:
    head = f"| quantity | {ref_label} | {ref_se_label} | hlm mean | hlm sd | hlm median | comparison | criterion | result |"
    lines = [head, "|" + "---|" * 9]
    for c in checks:
        result = c.result if c.passed is None else f"**{c.result}**"
        cells = [f"`{c.quantity}`", _f(c.ref), _f(c.ref_se), _f(c.mean), _f(c.sd), _f(c.median), c.metric, c.criterion, result]
        lines.append("| " + " | ".join(cell(x) for x in cells) + " |")
    return "\n".join(lines)


def diagnostics_line(fit: Fit) -> str:
    t = fit.timings
    cached = " (compiled model from cache)" if fit.compile_cached else ""
    load = f"; load avg {fit.loadavg_before[0]:.1f} -> {fit.loadavg_after[0]:.1f}" if fit.loadavg_before and fit.loadavg_after else ""
    param = ", ".join(f"`{k}` {v.get('kind')}{' on mean' if v.get('on_mean') else ''}" for k, v in fit.parameterization.items())
    return (
        f"divergences **{fit.divergences}**, min bulk ESS **{fit.min_ess_bulk:.0f}** (`{fit.min_ess_bulk_param}`), "
        f"max R-hat {fit.max_rhat:.3f}; hlm wall time **{fit.wall_s:.1f} s** (compile {t.get('compile', float('nan')):.1f} s{cached}, "
        f"sampling {t.get('sample', float('nan')):.1f} s){load}; parameterization: {param}"
    )


def verdict(checks: list[Check]) -> str:
    scored = [c for c in checks if c.passed is not None]
    return "PASS" if all(c.passed for c in scored) else "FAIL"


def parse_args(doc: str, models: dict, investigate_help: str, argv: list[str] | None):
    """The options both validation scripts take; ``args.sampler`` and ``args.suffix`` follow --quick."""
    import argparse

    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 chains x 300 draws: checks the script, not hlm")
    ap.add_argument("--only", action="append", choices=sorted(models), help="fit only these models (repeatable)")
    ap.add_argument("--no-investigate", action="store_true", help=investigate_help)
    args = ap.parse_args(argv)
    args.sampler = QUICK if args.quick else FULL
    args.suffix = "_quick" if args.quick else ""  # quick runs never overwrite the acceptance runs
    return args


def fit_section(heading: str, fit: Fit, checks: list[Check], ref_label: str, ref_se_label: str, *,
                before: list[str] = (), diagnostics_prefix: str = "", after: list[str] = ()) -> list[str]:
    """Markdown lines of one fit: heading, ``before``, the command, the table, the diagnostics, ``after``."""
    return [f"### {heading}", "", *before, f"`{fit.command}`", "", markdown_table(checks, ref_label, ref_se_label), "",
            diagnostics_prefix + diagnostics_line(fit), "", *after]


def fit_record(fit: Fit, checks: list[Check], **extra) -> dict:
    """results.json's entry for one fit; ``extra`` keys come after the command, as written before."""
    return {"command": fit.command, **extra, "checks": [c.to_json() for c in checks],
            "diagnostics": fit.diagnostics_json(), "priors": fit.priors}


def new_payload(name: str, env: dict, sampler: dict, seed: int) -> dict:
    """results.json before any fit: the machine, the sampler settings and the reference used."""
    return {"machine": env, "sampler": sampler, "seed": seed, "reference": f"validation/reference/{name}.json",
            "models": {}, "investigations": {}}


def finish(name: str, args, verdicts: dict[str, str], titles: dict[str, str], payload: dict, out_md: list[str]) -> int:
    """Insert the one-line-per-model table, write results.json and the report, print it, and
    return the exit code (0 when every model passed)."""
    overall = "PASS" if all(v == "PASS" for v in verdicts.values()) else "FAIL"
    out_md.insert(2, "| model | result |\n|---|---|\n" + "\n".join(f"| {cell(titles[k])} | **{v}** |" for k, v in verdicts.items())
                  + f"\n\nOverall: **{overall}**\n")
    payload["overall"] = overall
    payload["machine"]["loadavg_end"] = loadavg()
    text = "\n".join(out_md)
    write_outputs(name + args.suffix, payload, text)
    print(text)
    return 0 if overall == "PASS" else 1


def write_outputs(stem: str, payload: dict, markdown: str) -> None:
    """``validation/runs/<stem>_results.json`` (all numbers) and ``<stem>_report.md`` (the tables)."""
    RUNS.mkdir(parents=True, exist_ok=True)
    (RUNS / f"{stem}_results.json").write_text(json.dumps(payload, indent=1, default=str) + "\n")
    (RUNS / f"{stem}_report.md").write_text(markdown + "\n")
