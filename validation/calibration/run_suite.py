"""The SBC calibration suite (issue 20): a grid of ``hlm sbc`` runs, family x term type x
parameterization, each with >= 200 simulations, on small simulated designs.

Usage (from the repository root)::

    HLM_QUICK_COMPILE=0 HLM_BACKGROUND_COMPILE=0 nohup .venv/bin/python validation/calibration/run_suite.py \
        > validation/calibration/suite.log 2>&1 &
    .venv/bin/python validation/calibration/run_suite.py --list          # the cells and their commands
    .venv/bin/python validation/calibration/run_suite.py --only gaussian-crossed-auto --sims 20
    .venv/bin/python validation/calibration/run_suite.py --table         # the markdown table of finished cells

Every cell is one ``hlm sbc`` command (printed in the log and in calibration.md); its results
go to ``validation/calibration/results/CELL/`` (sbc_summary.csv, sbc.json, sbc_ecdf.png;
the per-simulation files in ``sims/`` are not committed). A cell that was interrupted resumes
(``hlm sbc`` keeps finished simulations in OUT/sims/); a finished cell is skipped. Cells run in
priority order: (a) every family with crossed intercepts under the auto parameterization,
(b) every gaussian term type under auto, (c) the explicit parameterizations (centered,
noncentered).

Designs (``data/``, written by this script, seed fixed): 48 rows, factors g (6 levels) and h
(8 levels) fully crossed, a covariate x ~ N(0, 1); the nested design has 6 schools x 2
classes x 5 rows (60 rows); the slope designs 8 levels x 8 rows (64 rows); the se() design 8
levels x 6 rows (48 rows) with known SEs in [0.3, 1]. The response column in the CSV only
serves hlm's checks of the family's support and the auto rule's pilot: SBC replaces it.

Priors (explicit, the same in the simulator and in every refit; weakly informative on the
link scale so that simulated data are not degenerate: no counts in the millions, no
all-zero or all-one binary responses): see PRIORS below. The group SDs get HalfNormal(0.5)
on log and logit links, HalfNormal(1) on identity links.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DATA = HERE / "data"
RESULTS = HERE / "results"
SIMS = 200
SAMPLER = ["--draws", "300", "--tune", "300", "--chains", "2", "--workers", "1", "--seed", "20"]

ID = ["b=Normal(0, 1)", "sd=HalfNormal(1)"]  # identity-link coefficients and group SDs
LINKP = ["b=Normal(0, 0.5)", "sd=HalfNormal(0.5)"]  # log/logit links
FAMILIES: dict[str, dict] = {
    # family: response column, Intercept prior, extra priors
    "gaussian": {"y": "y_real", "priors": ["Intercept=Normal(0, 2)", *ID, "sigma=HalfNormal(1)"]},
    "t": {"y": "y_real", "priors": ["Intercept=Normal(0, 2)", *ID, "sigma=HalfNormal(1)", "nu=Gamma(4, 0.4)"]},
    "bernoulli": {"y": "y_bin", "priors": ["Intercept=Normal(0, 1)", *LINKP]},
    "binomial": {"y": "k | trials(n)", "priors": ["Intercept=Normal(0, 1)", *LINKP]},
    "poisson": {"y": "y_count", "priors": ["Intercept=Normal(1, 0.5)", *LINKP]},
    "negativebinomial": {"y": "y_count", "priors": ["Intercept=Normal(1, 0.5)", *LINKP, "alpha=LogNormal(1, 0.5)"]},
    "gamma": {"y": "y_pos", "priors": ["Intercept=Normal(0, 1)", *LINKP, "alpha=LogNormal(1.5, 0.5)"]},
    "lognormal": {"y": "y_pos", "priors": ["Intercept=Normal(0, 1)", *LINKP, "sigma=HalfNormal(0.5)"]},
    "beta": {"y": "y_unit", "priors": ["Intercept=Normal(0, 1)", *LINKP, "kappa=LogNormal(2.5, 0.5)"]},
    "zero_inflated_poisson": {"y": "y_count", "priors": ["Intercept=Normal(1, 0.5)", *LINKP, "zi=Beta(2, 5)"]},
    "zero_inflated_negbinomial": {"y": "y_count", "priors": ["Intercept=Normal(1, 0.5)", *LINKP, "alpha=LogNormal(1, 0.5)",
                                                            "zi=Beta(2, 5)"]},
    "hurdle_poisson": {"y": "y_count", "priors": ["Intercept=Normal(1, 0.5)", *LINKP, "hu=Beta(2, 5)"]},
    "hurdle_negbinomial": {"y": "y_count", "priors": ["Intercept=Normal(1, 0.5)", *LINKP, "alpha=LogNormal(1, 0.5)",
                                                     "hu=Beta(2, 5)"]},
    "beta_binomial": {"y": "k | trials(n)", "priors": ["Intercept=Normal(0, 1)", *LINKP, "phi=LogNormal(2.3, 0.5)"]},
    "weibull": {"y": "y_pos", "priors": ["Intercept=Normal(0, 1)", *LINKP, "shape=LogNormal(0.5, 0.3)"]},
    "exponential": {"y": "y_pos", "priors": ["Intercept=Normal(0, 1)", *LINKP]},
    "cumulative": {"y": "y_ord", "priors": ["Intercept=Normal(0, 1.5)", *LINKP], "no_intercept_prior": True},
}
GAUSS = ["Intercept=Normal(0, 2)", *ID, "sigma=HalfNormal(1)"]
TERMS: dict[str, dict] = {
    # term: data file, formula (y_real response), extra options
    "crossed": {"data": "crossed.csv", "rhs": "1 + x + (1|g) + (1|h)"},
    "nested": {"data": "nested.csv", "rhs": "1 + x + (1|school/class)"},
    "slopes": {"data": "slopes.csv", "rhs": "1 + x + (1 + x|g)", "extra": ["--prior", "cor=LKJ(2)"]},
    "uncorrelated": {"data": "slopes.csv", "rhs": "1 + x + (1 + x||g)"},
    "se": {"data": "se.csv", "lhs": "y_real | se(s)", "rhs": "1 + x + (1|g)", "priors": ["Intercept=Normal(0, 2)", *ID]},
    "sigma_formula": {"data": "crossed.csv", "rhs": "1 + x + (1|g)",
                      "extra": ["--sigma-formula", "~ x"],
                      "priors": ["Intercept=Normal(0, 2)", *ID, "sigma_Intercept=Normal(0, 0.5)", "sigma_x=Normal(0, 0.3)"]},
}
PARAMS = ("auto", "centered", "noncentered")


def write_designs() -> None:
    """The small designs, with a response column per family kind (only its support matters)."""
    DATA.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2026)

    def responses(n: int) -> dict:
        return {"y_real": rng.normal(size=n).round(4), "y_bin": rng.integers(0, 2, n), "k": rng.integers(0, 11, n),
                "n": np.full(n, 10), "y_count": rng.poisson(3, n), "y_pos": rng.gamma(2.0, 1.0, n).round(4),
                "y_unit": rng.beta(2, 2, n).round(4), "y_ord": rng.choice(["a", "b", "c", "d"], n)}

    g, h = np.meshgrid([f"g{i}" for i in range(6)], [f"h{j}" for j in range(8)], indexing="ij")
    n = g.size
    crossed = pd.DataFrame({"g": g.ravel(), "h": h.ravel(), "x": rng.normal(size=n).round(3), **responses(n)})
    crossed.to_csv(DATA / "crossed.csv", index=False)
    school = np.repeat([f"s{i}" for i in range(6)], 10)
    klass = np.tile(np.repeat(["c1", "c2"], 5), 6)
    nested = pd.DataFrame({"school": school, "class": klass, "x": rng.normal(size=60).round(3), **responses(60)})
    nested.to_csv(DATA / "nested.csv", index=False)
    gg = np.repeat([f"g{i}" for i in range(8)], 8)
    slopes = pd.DataFrame({"g": gg, "x": rng.normal(size=64).round(3), **responses(64)})
    slopes.to_csv(DATA / "slopes.csv", index=False)
    gs = np.repeat([f"g{i}" for i in range(8)], 6)
    se = pd.DataFrame({"g": gs, "x": rng.normal(size=48).round(3), "s": rng.uniform(0.3, 1.0, 48).round(3), **responses(48)})
    se.to_csv(DATA / "se.csv", index=False)


def cells() -> list[dict]:
    """Every cell in priority order: (a) families x crossed x auto, (b) gaussian terms x auto,
    (c) the explicit parameterizations."""
    out = []

    def fam_cell(fam: str, param: str) -> dict:
        row = FAMILIES[fam]
        rhs = "1 + x + (1|g) + (1|h)"
        formula = f"{row['y']} ~ {rhs}"
        priors = [p for p in row["priors"] if not (row.get("no_intercept_prior") and p.startswith("Intercept="))]
        return {"name": f"{fam}-crossed-{param}", "family": fam, "term": "crossed", "param": param,
                "data": "crossed.csv", "formula": formula, "priors": priors, "extra": []}

    def term_cell(term: str, param: str) -> dict:
        row = TERMS[term]
        formula = f"{row.get('lhs', 'y_real')} ~ {row['rhs']}"
        return {"name": f"gaussian-{term}-{param}", "family": "gaussian", "term": term, "param": param,
                "data": row["data"], "formula": formula, "priors": row.get("priors", GAUSS), "extra": row.get("extra", [])}

    for fam in FAMILIES:
        out.append(fam_cell(fam, "auto"))
    for term in TERMS:
        if term != "crossed":
            out.append(term_cell(term, "auto"))
    for param in PARAMS[1:]:  # (c) the gaussian term types first: that is where the choice matters most
        for term in TERMS:
            out.append(term_cell(term, param))
    for param in PARAMS[1:]:
        for fam in FAMILIES:
            if fam != "gaussian":
                out.append(fam_cell(fam, param))
    return out


def command(cell: dict, sims: int = SIMS) -> list[str]:
    args = ["hlm", "sbc", f"validation/calibration/data/{cell['data']}", "--formula", cell["formula"],
            "--family", cell["family"]]
    for p in cell["priors"]:
        args += ["--prior", p]
    args += list(cell["extra"])
    if cell["family"] == "cumulative":
        args += ["--levels", "y_ord=a,b,c,d"]
    args += ["--parameterization", cell["param"], "--sims", str(sims), *SAMPLER, "--quiet",
             "--out", f"validation/calibration/results/{cell['name']}"]
    return args


def run_cell(cell: dict, sims: int, refresh: bool = False) -> dict:
    out = RESULTS / cell["name"]
    args = command(cell, sims)
    state = out / "sbc.json"
    if state.is_file() and not refresh:
        s = json.loads(state.read_text())
        if s.get("sims") == sims and s.get("ok", 0) + s.get("failed", 0) >= sims:
            print(f"[skip] {cell['name']}: done ({s['verdict']})", flush=True)
            return s
    print(f"[run ] {cell['name']}: {shlex.join(args)}", flush=True)
    t0 = time.time()
    hlm = str(Path(sys.executable).with_name("hlm"))
    env = dict(os.environ, HLM_QUICK_COMPILE="0", HLM_BACKGROUND_COMPILE="0")
    proc = subprocess.run([hlm, *args[1:]], cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.time() - t0
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-6:]
    print(f"[done] {cell['name']}: exit {proc.returncode} in {wall:.0f} s | " + " | ".join(tail), flush=True)
    meta = {"exit": proc.returncode, "wall_s": round(wall, 1), "command": shlex.join(args)}
    if refresh:
        return meta
    # beside OUT, not in it: hlm sbc resumes only an OUT that holds its own files
    meta_file = RESULTS / f"{cell['name']}.suite.json"
    prev = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    meta["wall_s_total"] = round(prev.get("wall_s_total", 0.0) + wall, 1)
    meta_file.write_text(json.dumps(meta, indent=1))
    return meta


def table() -> str:
    """The markdown table of every finished cell."""
    lines = ["| cell | family | term | parameterization (auto chose) | verdict | n_sims | worst quantity (p_adjusted, max ECDF diff) "
             "| failed sims | divergent refits | wall (s): suite / sum of refits |", "|---|---|---|---|---|---|---|---|---|---|"]
    for cell in cells():
        out = RESULTS / cell["name"]
        if not (out / "sbc_summary.csv").is_file():
            continue
        s = json.loads((out / "sbc.json").read_text())
        summ = pd.read_csv(out / "sbc_summary.csv")
        worst = summ.sort_values(["p_adjusted", "max_ecdf_diff"], ascending=[True, False]).iloc[0]
        mf = RESULTS / f"{cell['name']}.suite.json"
        meta = json.loads(mf.read_text()) if mf.is_file() else {}
        chose = "; ".join(f"{k}: {v}" for k, v in (s.get("parameterization_detail") or s.get("parameterization", {})).items())
        secs = [json.loads(p.read_text()).get("seconds", 0.0) for p in (out / "sims").glob("sim_*.json")]
        wall = f"{meta.get('wall_s_total', s.get('wall_s'))} / {sum(secs):.0f}"
        chose, par = chose.replace("|", "\\|"), str(worst["parameter"]).replace("|", "\\|")
        lines.append(f"| {cell['name']} | {cell['family']} | {cell['term']} | {cell['param']} ({chose}) | "
                     f"**{s['verdict']}** | {int(summ['n_sims'].min())} | {par} "
                     f"({worst['p_adjusted']:.3g}, {worst['max_ecdf_diff']:.3f}) | {s['failed']} | {s['divergent_sims']} | {wall} |")
    return "\n".join(lines)


def commands_md() -> str:
    """The exact command of every finished cell, as run from the repository root."""
    lines = ["Exact commands (run from the repository root; `hlm sbc` resumes an interrupted OUT):", "", "```sh"]
    for cell in cells():
        if (RESULTS / cell["name"] / "sbc_summary.csv").is_file():
            lines.append(f"# {cell['name']}")
            lines.append(shlex.join(command(cell)))
    lines.append("```")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=SIMS)
    ap.add_argument("--only", action="append", help="run only these cells (by name); repeatable")
    ap.add_argument("--list", action="store_true", help="print the cells and their commands")
    ap.add_argument("--table", action="store_true", help="print the markdown table of finished cells")
    ap.add_argument("--write-md", action="store_true", help="put the table and the commands into validation/calibration.md "
                    "(between its <!-- table --> and <!-- /table --> markers)")
    ap.add_argument("--refresh", action="store_true", help="rerun finished cells' commands (no refits: rebuilds their tables and sbc.json)")
    ap.add_argument("--skip-stage-c", action="store_true", help="only the auto cells")
    a = ap.parse_args(argv)
    if a.table:
        print(table())
        return 0
    if a.write_md:
        md = HERE.parent / "calibration.md"
        text = md.read_text()
        head, rest = text.split("<!-- table -->", 1)
        _, tail = rest.split("<!-- /table -->", 1)
        md.write_text(f"{head}<!-- table -->\n{table()}\n\n{commands_md()}\n<!-- /table -->{tail}")
        return 0
    write_designs()
    todo = [c for c in cells() if (not a.only or c["name"] in a.only) and (not a.skip_stage_c or c["param"] == "auto")]
    if a.list:
        for c in todo:
            print(c["name"], ":", shlex.join(command(c, a.sims)))
        return 0
    for c in todo:
        if a.refresh:
            state = RESULTS / c["name"] / "sbc.json"
            if state.is_file() and json.loads(state.read_text()).get("verdict"):
                run_cell(c, a.sims, refresh=True)
            continue
        run_cell(c, a.sims)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
