"""Real-data validation (issue 16): hlm with default settings against lme4/glmmTMB on R datasets.

For every ``validation/real/reference/NAME.json`` (made by ``Rscript validation/real/reference.R``)
this runs the hlm command a user would type on ``validation/real/data/NAME.csv``::

    hlm fit validation/real/data/NAME.csv --formula F --family FAM [--categorical COL ...]
        --out validation/runs/real_NAME --force --no-plots --seed 1 --quiet

with hlm's defaults (4 chains x 1000 draws after 1000 warm-up; ``--quick``: 2 x 500 after 500),
one fit at a time, with ``HLM_QUICK_COMPILE=0 HLM_BACKGROUND_COMPILE=0``. It reads the run's
summary.csv, run.json and posterior.nc back and applies issue 16's rule:

- population effects: posterior mean within 0.3 reference SE of the reference estimate (0.5
  for GLMMs -- non-gaussian families -- whose smallest grouping factor has fewer than 20 levels);
- group SDs: posterior mean within 25% of the reference estimate, judged only where the
  grouping factor has at least 8 levels (fewer: shown, not judged; a reference SD of 0 -- a
  singular fit -- is shown, not judged);
- correlations, residual sigma and GLMM dispersion: shown, not judged.

A dataset PASSes when every judged quantity passes, each reference coefficient has an hlm
parameter of the expected name, and the fit ran. R-hat and divergences are reported next to
it (issue 16's acceptance asks for R-hat <= 1.01 and no divergences; the column ``diag``
says whether that holds), but they are not part of PASS/FAIL.

Name mapping (R -> hlm): ``(Intercept)`` -> ``Intercept``; a coefficient name is split at
``:``, and each piece that is a factor column's name followed by one of its levels
(``SexMale``, ``recipeB``, ``trtdrug+``) becomes ``column[level]`` (``Sex[Male]``,
``recipe[B]``); numeric pieces (``age``, ``log(revenues)``) are kept; pieces are joined with
``:`` again (``recipeB:temp`` -> ``recipe[B]:temp``). Factor columns are the CSV's text
columns plus the ``--categorical`` ones. Group SDs: lme4's ``(Intercept)`` term is hlm's ``1``,
so lme4's SD of ``age`` in ``Subject`` is hlm's ``age|Subject_sigma``; groups are matched as
sets of ``:``-separated names (lme4's ``Variety:Block`` is hlm's ``Block:Variety``). When a
reference name has no hlm parameter, the run FAILs on names, and the values are also compared
by position (the k-th R coefficient with the k-th hlm population parameter) so that the table
still says whether the numbers are right.

Writes validation/real/results.json (merged with earlier results when ``--only`` is given) and
prints a markdown table. Run from the repository root::

    .venv/bin/python validation/real/validate_real.py [--only NAME[,NAME]] [--quick]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "validation" / "real"
REFERENCE = HERE / "reference"
RESULTS = HERE / "results.json"
RUNS = ROOT / "validation" / "runs"
HLM = ROOT / ".venv" / "bin" / "hlm"

LOC_TOL = 0.3
LOC_TOL_FEW = 0.5
FEW_GROUPS = 20  # a GLMM whose smallest grouping factor has fewer levels gets LOC_TOL_FEW
SD_TOL = 0.25
SD_MIN_GROUPS = 8
TIMEOUT_S = 3600
# `python -c BOOT SRC fit ...` runs hlm from the snapshot SRC: the editable install's import
# finder (which would load the working tree's hlm_cli) is removed first
BOOT = (
    "import sys, runpy; "
    "sys.meta_path[:] = [m for m in sys.meta_path if '__editable__' not in getattr(m, '__module__', '')]; "
    "sys.path.insert(0, sys.argv.pop(1)); runpy.run_module('hlm_cli', run_name='__main__', alter_sys=True)"
)


def git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def num(v: str) -> float | str:
    try:
        return float(v)
    except ValueError:
        return v


def factor_levels(data: Path, categorical: list[str]) -> dict[str, set[str]]:
    """Levels of every factor column: text columns of the CSV and the --categorical ones."""
    import pandas as pd

    df = pd.read_csv(data)
    out = {}
    for col in df.columns:
        if col in categorical or not pd.api.types.is_numeric_dtype(df[col]):
            out[col] = {str(v) for v in df[col].dropna().unique()}
    return out


def r_to_hlm(name: str, levels: dict[str, set[str]]) -> str:
    """R's coefficient name as hlm names it (see the module docstring)."""
    if name == "(Intercept)":
        return "Intercept"
    pieces = []
    for piece in name.split(":"):
        for col in sorted(levels, key=len, reverse=True):
            if piece.startswith(col) and piece[len(col):] in levels[col]:
                piece = f"{col}[{piece[len(col):]}]"
                break
        pieces.append(piece)
    return ":".join(pieces)


def read_summary(run_dir: Path) -> dict[str, dict]:
    with open(run_dir / "summary.csv", newline="") as fh:
        return {
            r["parameter"]: {k: (v if k in ("parameter", "kind", "group") else num(v)) for k, v in r.items()}
            for r in csv.DictReader(fh)
        }


def divergences(run_dir: Path) -> int | None:
    try:
        import numpy as np
        import xarray as xr

        tree = xr.open_datatree(run_dir / "posterior.nc", engine="h5netcdf")
        return int(np.asarray(tree["sample_stats"]["diverging"]).sum())
    except Exception:  # noqa: BLE001 - a diagnostic, not a criterion
        return None


def finite(x) -> bool:
    return isinstance(x, float) and math.isfinite(x)


def compare(ref: dict, summary: dict[str, dict], levels: dict[str, set[str]]) -> dict:
    """Apply the rule to one run; returns the rows and the verdict."""
    family = ref["hlm"]["family"]
    ngroups = {k: int(v) for k, v in ref["ngroups"].items()}
    few = family != "gaussian" and min(ngroups.values()) < FEW_GROUPS
    tol = LOC_TOL_FEW if few else LOC_TOL
    pop = [p for p, r in summary.items() if r["kind"] == "population"]
    rows, problems = [], []

    # population effects
    ref_names = list(ref["fixef"])
    mapped = {n: r_to_hlm(n, levels) for n in ref_names}
    missing = [n for n in ref_names if mapped[n] not in summary]
    by_order = bool(missing) and len(pop) == len(ref_names)
    if missing:
        problems.append(
            "names: R " + ", ".join(f"{n} (expected {mapped[n]})" for n in missing)
            + " not in hlm's population parameters " + ", ".join(pop)
        )
    for k, n in enumerate(ref_names):
        est, se = ref["fixef"][n]["estimate"], ref["fixef"][n]["se"]
        hname = mapped[n] if mapped[n] in summary else (pop[k] if by_order else None)
        row = {"kind": "population", "reference": n, "hlm": hname, "ref": est, "ref_se": se,
               "matched_by": "name" if hname == mapped[n] else ("order" if hname else None)}
        if hname is not None:
            s = summary[hname]
            z = abs(s["mean"] - est) / se
            row.update(mean=s["mean"], sd=s["sd"], r_hat=s["r_hat"], ess_bulk=s["ess_bulk"], z=z, limit=tol,
                       ok=z <= tol)
            if z > tol:
                problems.append(f"{hname}: |mean - est|/SE = {z:.2f} > {tol} (hlm {s['mean']:.4g}, ref {est:.4g} +- {se:.3g})")
        else:
            row["ok"] = False
        rows.append(row)

    # group SDs
    sd_rows = [(p, r) for p, r in summary.items() if r["kind"] == "group_sd"]
    for grp, terms in ref["sd"].items():
        gset = set(grp.split(":"))
        for term, value in terms.items():
            hterm = "1" if term == "(Intercept)" else r_to_hlm(term, levels)
            match = [p for p, r in sd_rows if set(r["group"].split(":")) == gset and p.rsplit("|", 1)[0] == hterm]
            n = ngroups.get(grp)
            row = {"kind": "group_sd", "reference": f"{term}|{grp}", "ngroups": n, "ref": value}
            judged = n is not None and n >= SD_MIN_GROUPS and value > 1e-6
            if not match:
                row.update(hlm=None, ok=False)
                problems.append(f"names: no hlm group SD for {term}|{grp} (hlm has {', '.join(p for p, _ in sd_rows)})")
            else:
                s = summary[match[0]]
                ratio = s["mean"] / value if value > 0 else math.inf
                row.update(hlm=match[0], mean=s["mean"], sd=s["sd"], r_hat=s["r_hat"], ess_bulk=s["ess_bulk"], ratio=ratio,
                           judged=judged, ok=(abs(ratio - 1) <= SD_TOL) if judged else None)
                if judged and abs(ratio - 1) > SD_TOL:
                    problems.append(f"{match[0]}: mean/ref = {ratio:.3f} outside [0.75, 1.25] (hlm {s['mean']:.4g}, ref {value:.4g}, {n} groups)")
            rows.append(row)

    # information only: correlations, sigma, dispersion
    for grp, pairs in ref.get("cor", {}).items():
        for pair, value in pairs.items():
            a, b = ("Intercept" if t == "(Intercept)" else r_to_hlm(t, levels) for t in pair.split(","))
            match = [p for p, r in summary.items() if r["kind"] == "correlation" and p.startswith(f"cor({a},{b}|")]
            row = {"kind": "correlation", "reference": f"cor({pair}|{grp})", "ref": value, "hlm": match[0] if match else None}
            if match:
                row.update(mean=summary[match[0]]["mean"], sd=summary[match[0]]["sd"], r_hat=summary[match[0]]["r_hat"])
            rows.append(row)
    aux = None
    if ref.get("sigma") is not None:
        aux = ("sigma", ref["sigma"])
    elif ref.get("dispersion") and "hlm_alpha" in ref["dispersion"]:
        aux = ("alpha", ref["dispersion"]["hlm_alpha"])
    if aux and aux[0] in summary:
        s = summary[aux[0]]
        rows.append({"kind": "family", "reference": aux[0], "hlm": aux[0], "ref": aux[1], "mean": s["mean"], "sd": s["sd"],
                     "ratio": s["mean"] / aux[1], "r_hat": s["r_hat"]})

    zs = [r["z"] for r in rows if r["kind"] == "population" and "z" in r]
    ratios = [r["ratio"] for r in rows if r["kind"] == "group_sd" and r.get("judged")]
    return {
        "rows": rows,
        "loc_tol": tol,
        "worst_z": max(zs) if zs else None,
        "worst_z_param": max((r for r in rows if "z" in r), key=lambda r: r["z"])["hlm"] if zs else None,
        "worst_sd_ratio": max(ratios, key=lambda x: abs(x - 1)) if ratios else None,
        "names_ok": not missing and all(r.get("hlm") for r in rows if r["kind"] == "group_sd"),
        "pass": not problems,
        "problems": problems,
    }


def run_one(name: str, ref: dict, sampler: dict, refit: bool = True, old: dict | None = None,
            extra: list[str] | None = None) -> dict:
    """Fit (or, with refit=False, re-read the existing run directory) and compare."""
    spec = ref["hlm"]
    out = RUNS / (f"real_{name}" + ("_" + "_".join(a.strip("-").replace(" ", "") for a in extra) if extra else ""))
    RUNS.mkdir(parents=True, exist_ok=True)
    src = os.environ.get("HLM_SRC")  # run hlm from this source snapshot (see --src)
    hlm = [sys.executable, "-c", BOOT, src] if src else [str(HLM)]
    cmd = [*hlm, "fit", spec["data"], "--formula", spec["formula"], "--family", spec["family"]]
    for c in spec.get("categorical") or []:
        cmd += ["--categorical", c]
    cmd += ["--out", str(out.relative_to(ROOT)), "--force", "--no-plots", "--seed", "1", "--quiet"]
    cmd += extra or []
    if sampler:
        cmd += ["--chains", str(sampler["chains"]), "--draws", str(sampler["draws"]), "--tune", str(sampler["tune"])]
    shown = shlex.join(["hlm", *cmd[len(hlm):]])
    env = {**os.environ, "HLM_QUICK_COMPILE": "0", "HLM_BACKGROUND_COMPILE": "0"}
    print(f"[{name}] {shown}", file=sys.stderr, flush=True)
    result = {
        "name": name, "command": shown, "source": ref.get("source"), "note": ref.get("note"),
        "r_call": ref["r_call"], "r_method": ref["method"], "formula": spec["formula"], "family": spec["family"],
        "nobs": ref["nobs"], "ngroups": ref["ngroups"],
        "git_head": git("rev-parse", "--short", "HEAD"),
        "hlm_source": (f"snapshot {src} of commit {os.environ.get('HLM_SRC_COMMIT', '?')}" if src
                       else "working tree of " + ROOT.name),
        "git_dirty_hlm_cli": [] if src else [ln[3:] for ln in git("status", "--porcelain", "--", "hlm_cli").splitlines()],
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_before": os.getloadavg(), "sampler": sampler or "defaults (4 x 1000 + 1000 warm-up)",
    }
    if not refit:
        result = {**(old or {}), **{k: result[k] for k in ("r_call", "r_method", "formula", "family", "nobs", "ngroups", "note")}}
        return evaluate(name, ref, spec, out, result, result.get("wall_s") or float("nan"))
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=TIMEOUT_S)
        rc, err = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired as e:
        rc, err = 124, f"timed out after {TIMEOUT_S} s: {e.stderr or ''}"
    wall = time.perf_counter() - t0
    result.update(wall_s=round(wall, 1), exit_code=rc, loadavg_after=os.getloadavg(), stderr=err.strip()[-3000:])
    if rc != 0:
        result.update(status="FAIL", problems=[f"hlm fit exited {rc}: " + " | ".join(err.strip().splitlines()[-3:])])
        print(f"[{name}] FAILED to fit (exit {rc}) after {wall:.0f} s", file=sys.stderr, flush=True)
        return result
    return evaluate(name, ref, spec, out, result, wall)


def evaluate(name: str, ref: dict, spec: dict, out: Path, result: dict, wall: float) -> dict:
    try:
        return _evaluate(name, ref, spec, out, result, wall)
    except Exception as e:  # noqa: BLE001 - keep the run; --recompare reads it again
        result.update(status="ERROR", problems=[f"harness could not read the run: {type(e).__name__}: {e}"])
        print(f"[{name}] harness error {e!r}", file=sys.stderr, flush=True)
        return result


def _evaluate(name: str, ref: dict, spec: dict, out: Path, result: dict, wall: float) -> dict:
    info = json.loads((out / "run.json").read_text())
    summary = read_summary(out)
    levels = factor_levels(ROOT / spec["data"], spec.get("categorical") or [])
    cmp = compare(ref, summary, levels)
    main = [r for r in summary.values() if r["kind"] != "group_effect" and finite(r["r_hat"])]
    allr = [r for r in summary.values() if finite(r["r_hat"])]
    worst = max(main, key=lambda r: r["r_hat"])
    div = divergences(out)
    result.update(
        timings=info.get("timings"), compile_cached=info.get("sampler", {}).get("compile_cached"),
        parameterization={k: v.get("kind") for k, v in info.get("parameterization", {}).items()},
        findings=[f.get("message") for f in info.get("diagnostics", {}).get("findings", [])],
        max_rhat=worst["r_hat"], max_rhat_param=worst["parameter"],
        max_rhat_all=max(r["r_hat"] for r in allr),
        min_ess_bulk=min(r["ess_bulk"] for r in main if finite(r["ess_bulk"])),
        divergences=div, diag_ok=(worst["r_hat"] <= 1.01 and div == 0),
        population_names=[p for p, r in summary.items() if r["kind"] == "population"],
        **{k: v for k, v in cmp.items() if k != "pass"},
        status="PASS" if cmp["pass"] else "FAIL",
    )
    print(f"[{name}] {result['status']} in {wall:.0f} s; worst z {cmp['worst_z']}, R-hat {worst['r_hat']:.3f}, "
          f"divergences {div}", file=sys.stderr, flush=True)
    for p in cmp["problems"]:
        print(f"[{name}]   {p}", file=sys.stderr, flush=True)
    return result


def fmt(x, nd=3):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def table(results: dict[str, dict]) -> str:
    lines = [
        "| dataset | formula | family | reference | hlm wall s | max R-hat | div | worst pop. z (limit) | worst SD ratio | result |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        formula = r["formula"].replace("|", "\\|")
        call = r["r_call"].replace("|", "\\|")
        z = f"{fmt(r.get('worst_z'), 2)} ({r.get('loc_tol', '-')})" if r.get("worst_z") is not None else "-"
        lines.append(
            f"| {name} | `{formula}` | {r['family']} | `{call}` | {fmt(r.get('wall_s'), 0)} | "
            f"{fmt(r.get('max_rhat'))} | {fmt(r.get('divergences'))} | {z} | {fmt(r.get('worst_sd_ratio'))} | "
            f"**{r['status']}**{'' if r.get('names_ok', True) else ' (names)'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", help="comma-separated dataset names (default: every reference/*.json)")
    ap.add_argument("--quick", action="store_true", help="2 chains x 500 draws (+500 warm-up): smoke run")
    ap.add_argument("--table", action="store_true", help="print the table of results.json without fitting")
    ap.add_argument("--src", help="run hlm from a source snapshot made here of this commit (git archive COMMIT "
                    "hlm_cli into /tmp/hlm_src_COMMIT, imported instead of the editable install) instead of the working tree, which other "
                    "people may be editing")
    ap.add_argument("--extra", default="", help="more hlm fit options for an investigation, e.g. "
                    "'--parameterization centered'; results are keyed 'NAME OPTIONS' (use with --results)")
    ap.add_argument("--recompare", action="store_true",
                    help="compare the existing runs in validation/runs/real_NAME again without fitting")
    ap.add_argument("--results", type=Path, default=RESULTS, help="results file to write and merge into "
                    "(default validation/real/results.json)")
    args = ap.parse_args(argv)
    if args.src:
        snap = Path(f"/tmp/hlm_src_{args.src}")
        if not (snap / "hlm_cli").exists():
            snap.mkdir(parents=True, exist_ok=True)
            archive = subprocess.run(["git", "archive", args.src, "hlm_cli"], cwd=ROOT, capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", str(snap)], input=archive.stdout, check=True)
        os.environ["HLM_SRC"] = str(snap)
        os.environ["HLM_SRC_COMMIT"] = git("rev-parse", "--short", args.src)
    refs = {p.stem: json.loads(p.read_text()) for p in sorted(REFERENCE.glob("*.json"))}
    results = json.loads(args.results.read_text())["results"] if args.results.exists() else {}
    if not args.table:
        names = args.only.split(",") if args.only else list(refs)
        unknown = [n for n in names if n not in refs]
        if unknown:
            ap.error(f"unknown dataset(s) {', '.join(unknown)}; known: {', '.join(refs)}")
        sampler = {"chains": 2, "draws": 500, "tune": 500} if args.quick else {}
        for n in names:
            extra = shlex.split(args.extra)
            key = f"{n} {args.extra}".strip()
            results[key] = run_one(n, refs[n], sampler, refit=not args.recompare, old=results.get(key), extra=extra)
            args.results.write_text(json.dumps({"results": results}, indent=1, default=str) + "\n")
    print(table({k: results[k] for n in refs for k in results if k.split(" ")[0] == n}))
    return 0 if all(r["status"] == "PASS" for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
