"""Write hlm's simulated sample datasets, and their true parameter values, next to this file.

Run from anywhere: ``python sample_data/make_sample_data.py``. Every dataset has its own
fixed seed (``numpy.random.default_rng``), so the CSVs are identical on every run. Floats
are rounded to 6 decimals when written. Each simulated dataset mirrors one of the
project's seed documents; see ``sample_data/README.md`` for the table, the intended
``hlm fit`` formulas and the truth files.

The CSVs exported from R (sleepstudy, penicillin, pastes, cbpp, insteval, eight_schools)
are not made here; see ``R_DATASETS.md``. This script never touches them.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
DECIMALS = 6

# --- 1. cell lines x genes (seed 000: "Modeling two varying intercepts") -----------------
CELL_LINE_PARAMS = {
    "mu_alpha": -1.0,
    "sigma_alpha": 0.5,
    "mu_beta": 0.0,
    "sigma_beta": 0.5,
    "sigma": 0.05,
}
GENES = ["KRAS", "TP53", "MYC"]  # the seed's gene index 0, 1, 2
N_CELL_LINES = 10
N_EXPTS = 3


def simulate_cell_lines(seed: int) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Simulate the seed-000 design: 10 cell lines x 3 genes x 3 experiments.

    ``logfc = alpha_g + beta_c + N(0, sigma)`` with ``alpha_g ~ N(mu_alpha, sigma_alpha)``
    and ``beta_c ~ N(mu_beta, sigma_beta)``, drawn in the seed's order (alpha, beta, then
    one noise draw per row in row order).

    Returns
    -------
    data : DataFrame
        Columns ``cell_line`` (0..9), ``gene`` (KRAS, TP53, MYC), ``expt`` (1..3), ``logfc``.
    truth : DataFrame
        ``parameter, value`` in the names hlm reports for
        ``logfc ~ 1 + (1|gene) + (1|cell_line)``. Only the identified quantities:
        ``Intercept = mean(alpha) + mean(beta)`` and the centred offsets.
    raw : dict
        The generating ``alpha_g`` and ``beta_c`` (not identified from the data).
    """
    p = CELL_LINE_PARAMS
    rng = np.random.default_rng(seed)
    alpha = rng.normal(p["mu_alpha"], p["sigma_alpha"], len(GENES))
    beta = rng.normal(p["mu_beta"], p["sigma_beta"], N_CELL_LINES)
    rows = list(itertools.product(range(N_CELL_LINES), range(len(GENES)), range(N_EXPTS)))
    c_idx = np.array([r[0] for r in rows])
    g_idx = np.array([r[1] for r in rows])
    mu = alpha[g_idx] + beta[c_idx]
    logfc = mu + rng.normal(0.0, p["sigma"], len(rows))
    data = pd.DataFrame(
        {
            "cell_line": c_idx,
            "gene": [GENES[g] for g in g_idx],
            "expt": np.array([r[2] for r in rows]) + 1,
            "logfc": logfc,
        }
    )
    # alpha_g + delta and beta_c - delta fit equally well for any delta (the seed
    # thread's "additive non-identifiability"); with an explicit Intercept the
    # identified quantities are the grand mean and the centred offsets.
    truth = [("Intercept", alpha.mean() + beta.mean())]
    truth += [(f"1|gene[{g}]", a - alpha.mean()) for g, a in zip(GENES, alpha, strict=True)]
    truth += [(f"1|cell_line[{c}]", b - beta.mean()) for c, b in enumerate(beta)]
    truth += [
        ("1|gene_sigma", p["sigma_alpha"]),
        ("1|cell_line_sigma", p["sigma_beta"]),
        ("sigma", p["sigma"]),
    ]
    raw = {"alpha": dict(zip(GENES, alpha, strict=True)), "beta": dict(enumerate(beta))}
    return data, _truth_frame(truth), raw


def cell_lines_generating(raw: dict) -> pd.DataFrame:
    """The seed's own (non-identified) parameters, to show they differ from the fit's."""
    p = CELL_LINE_PARAMS
    rows = [(name, p[name]) for name in ("mu_alpha", "sigma_alpha", "mu_beta", "sigma_beta")]
    rows += [(f"alpha_g[{g}]", a) for g, a in raw["alpha"].items()]
    rows += [(f"beta_c[{c}]", b) for c, b in raw["beta"].items()]
    rows += [("sigma", p["sigma"])]
    return _truth_frame(rows)


# --- 2. mice, wake (seed 002: "Bayesian Linear Mixed Models for biomedical data") --------
MICE_PARAMS = {
    "Intercept": 44.0,
    "Treatment": 3.1,
    "Genotype": -0.4,
    "Treatment:Genotype": -0.2,
    "1|mouse_sigma": 3.2,
    "sigma": 7.6,
}
# (period-1 dose, period-2 dose or None, genotype 0=wt 1=ko, number of mice), as listed
# in the seed document; 18 mice, 33 recordings.
MICE_DESIGN = [
    (0, 3, 0, 4),
    (0, 3, 1, 2),
    (10, 3, 0, 1),
    (10, 3, 1, 2),
    (10, 0, 0, 3),
    (10, 0, 1, 3),
    (0, None, 1, 2),
    (10, None, 0, 1),
]
# The planned period-2 dose of the three excluded mice, for mice_wake_missing.csv only:
# every saline-first mouse in the design got 3 mg/kg second; the 10+NA mouse is given 0.
MICE_PLANNED_DOSE = {0: 3, 10: 0}


def simulate_mice_wake(seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Simulate the seed-002 ciproxifan design: 18 mice, 33 rows, 3 missing second periods.

    ``WAKE = 44 + 3.1*Treatment - 0.4*Genotype - 0.2*Treatment*Genotype + u_mouse + eps``,
    ``u ~ N(0, 3.2)``, ``eps ~ N(0, 7.6)``, clipped to [0, 100] (the seed's lmer fit gave
    these numbers). REM is 0.5-15 % of the time asleep and NREM the rest, so
    WAKE + NREM + REM = 100.

    Returns
    -------
    data, missing, truth : DataFrame
        ``data`` has 33 rows; ``missing`` adds the 3 excluded second periods with empty
        WAKE, NREM and REM (36 rows); ``truth`` is ``parameter, value``.
    """
    p = MICE_PARAMS
    rng = np.random.default_rng(seed)
    mice, excluded = [], []
    for dose1, dose2, genotype, n in MICE_DESIGN:
        for _ in range(n):
            mouse = f"m{len(mice) + 1:02d}"
            mice.append((mouse, genotype, dose1, dose2))
            if dose2 is None:
                excluded.append((mouse, genotype, MICE_PLANNED_DOSE[dose1]))
    u = rng.normal(0.0, p["1|mouse_sigma"], len(mice))
    rows = []
    for (mouse, genotype, dose1, dose2), u_m in zip(mice, u, strict=True):
        for period, dose in ((1, dose1), (2, dose2)):
            if dose is not None:
                rows.append((mouse, genotype, dose, period, u_m))
    data = pd.DataFrame(rows, columns=["mouse", "Genotype", "Treatment", "period", "u"])
    t, g = data["Treatment"].to_numpy(float), data["Genotype"].to_numpy(float)
    mean = (
        p["Intercept"]
        + p["Treatment"] * t
        + p["Genotype"] * g
        + p["Treatment:Genotype"] * t * g
        + data["u"].to_numpy()
    )
    wake = np.clip(mean + rng.normal(0.0, p["sigma"], len(data)), 0.0, 100.0).round(DECIMALS)
    rem = ((100.0 - wake) * rng.uniform(0.005, 0.15, len(data))).round(DECIMALS)
    data = data.drop(columns="u").assign(WAKE=wake, NREM=(100.0 - wake - rem).round(DECIMALS))
    data["REM"] = rem
    data = data[["mouse", "Genotype", "Treatment", "period", "WAKE", "NREM", "REM"]]

    gaps = pd.DataFrame(
        [(m, gen, dose, 2, np.nan, np.nan, np.nan) for m, gen, dose in excluded],
        columns=data.columns,
    )
    missing = (
        pd.concat([data, gaps], ignore_index=True)
        .sort_values(["mouse", "period"], kind="stable")
        .reset_index(drop=True)
    )
    truth = list(p.items()) + [(f"1|mouse[{m[0]}]", v) for m, v in zip(mice, u, strict=True)]
    return data, missing, _truth_frame(truth)


# --- 3. schools in regions (seed 001: Love, "Bayesian Hierarchical Modeling") -----------
N_REGIONS, SCHOOLS_PER_REGION = 4, 10
SCHOOL_PARAMS = {"theta_sd": 5.0, "mu_sd": 1.0, "y_sd": 1.0, "pupil_sd": 3.0}


def simulate_schools(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Slides' model, n=40 schools, k=4 regions, 10 schools each.

    ``theta_k ~ N(0, 5)``, ``mu_i ~ N(theta_k(i), 1)``, ``y_i ~ N(mu_i, 1)``; ``se`` is the
    known sampling sd of ``y_i`` (1.0).

    Returns
    -------
    data : DataFrame
        ``region, school, y, se``.
    truth : DataFrame
        ``theta[R1]``..``theta[R4]``, ``mu[S01]``..``mu[S40]`` and the three sds.
    """
    p = SCHOOL_PARAMS
    rng = np.random.default_rng(seed)
    theta = rng.normal(0.0, p["theta_sd"], N_REGIONS)
    k = np.repeat(np.arange(N_REGIONS), SCHOOLS_PER_REGION)
    mu = rng.normal(theta[k], p["mu_sd"])
    y = rng.normal(mu, p["y_sd"])
    regions = [f"R{i + 1}" for i in range(N_REGIONS)]
    schools = [f"S{i + 1:02d}" for i in range(len(k))]
    data = pd.DataFrame(
        {"region": [regions[i] for i in k], "school": schools, "y": y, "se": p["y_sd"]}
    )
    truth = [(f"theta[{r}]", v) for r, v in zip(regions, theta, strict=True)]
    truth += [(f"mu[{s}]", v) for s, v in zip(schools, mu, strict=True)]
    truth += [(name, p[name]) for name in ("theta_sd", "mu_sd", "y_sd")]
    return data, _truth_frame(truth)


def simulate_pupils(schools: pd.DataFrame, school_truth: pd.DataFrame, seed: int):
    """Pupil-level scores for the same 40 schools: 5..25 pupils each, ``N(mu_school, 3)``.

    The truth uses the names hlm reports for ``score ~ 1 + (1|region/school)``; the
    generating model has intercept 0, region offsets ``theta_k`` and school offsets
    ``mu_i - theta_k``.
    """
    rng = np.random.default_rng(seed)
    value = school_truth.set_index("parameter")["value"]
    counts = rng.integers(5, 26, len(schools))
    rows = []
    for (region, school), n in zip(
        schools[["region", "school"]].itertuples(index=False), counts, strict=True
    ):
        scores = rng.normal(value[f"mu[{school}]"], SCHOOL_PARAMS["pupil_sd"], n)
        rows += [(region, school, j + 1, s) for j, s in enumerate(scores)]
    data = pd.DataFrame(rows, columns=["region", "school", "pupil", "score"])
    regions = schools["region"].unique()
    truth = [("Intercept", 0.0)]
    truth += [(f"1|region[{r}]", value[f"theta[{r}]"]) for r in regions]
    truth += [
        (f"1|region:school[{r}:{s}]", value[f"mu[{s}]"] - value[f"theta[{r}]"])
        for r, s in schools[["region", "school"]].itertuples(index=False)
    ]
    truth += [
        ("1|region_sigma", SCHOOL_PARAMS["theta_sd"]),
        ("1|region:school_sigma", SCHOOL_PARAMS["mu_sd"]),
        ("sigma", SCHOOL_PARAMS["pupil_sd"]),
    ]
    return data, _truth_frame(truth)


# --- 4. drug x knock-out groups with technical replicates (seed 003: "Extended BEST") ----
KO_GROUPS = ["ko_A", "ko_B", "ko_C", "WT"]
KO_BASELINE = 100.0
KO_GROUP_EFFECT = {"ko_A": -1.0, "ko_B": 3.0, "ko_C": 1.0, "WT": 0.0}
KO_DRUG_EFFECT = {"ko_A": 2.0, "ko_B": 0.2, "ko_C": 4.0, "WT": 2.5}  # mean 2.175
KO_UNITS, KO_REPLICATES = 4, 3
KO_SD = {"unit": 0.5, "sigma": 0.7}


def simulate_drug_knockout(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two arms x 4 knock-out groups x 4 units x 3 technical replicates = 96 rows.

    ``value = 100 + group_effect[g] + drug_effect[g]*is_drug + unit + eps`` with
    ``unit ~ N(0, 0.5)`` (one per group x arm x unit) and ``eps ~ N(0, 0.7)``.

    Returns
    -------
    data : DataFrame
        ``treatment`` (placebo/drug), ``group``, ``unit``, ``replicate``, ``value``.
    truth : DataFrame
        The overall and per-group drug effects, and the identified quantities for
        ``value ~ treatment + (1 + treatment | group) + (1 | unit)`` with placebo as the
        reference level.
    """
    rng = np.random.default_rng(seed)
    units = [
        (group, arm, f"{group}_{arm}_{i + 1}")
        for group in KO_GROUPS
        for arm in ("placebo", "drug")
        for i in range(KO_UNITS)
    ]
    unit_eff = rng.normal(0.0, KO_SD["unit"], len(units))
    rows = []
    for (group, arm, unit), u in zip(units, unit_eff, strict=True):
        mean = KO_BASELINE + KO_GROUP_EFFECT[group] + KO_DRUG_EFFECT[group] * (arm == "drug") + u
        rows += [(arm, group, unit, r + 1, mean) for r in range(KO_REPLICATES)]
    data = pd.DataFrame(rows, columns=["treatment", "group", "unit", "replicate", "value"])
    data["value"] += rng.normal(0.0, KO_SD["sigma"], len(data))
    # the seed's design matrix codes the arm as a 0/1 `drug` column: with it, placebo is the
    # reference and `value ~ drug + (1 + drug | group) + (1 | unit)` reads as in the seed
    data.insert(1, "drug", (data["treatment"] == "drug").astype(int))

    mean_group = np.mean(list(KO_GROUP_EFFECT.values()))
    mean_drug = np.mean(list(KO_DRUG_EFFECT.values()))
    truth = [("drug_effect", mean_drug)]
    truth += [(f"drug_effect[{g}]", KO_DRUG_EFFECT[g]) for g in KO_GROUPS]
    truth += [(f"group_effect[{g}]", KO_GROUP_EFFECT[g]) for g in KO_GROUPS]
    truth += [("Intercept", KO_BASELINE + mean_group), ("treatment[drug]", mean_drug)]
    truth += [(f"1|group[{g}]", KO_GROUP_EFFECT[g] - mean_group) for g in KO_GROUPS]
    truth += [(f"treatment[drug]|group[{g}]", KO_DRUG_EFFECT[g] - mean_drug) for g in KO_GROUPS]
    truth += [(f"1|unit[{unit}]", u) for (_, _, unit), u in zip(units, unit_eff, strict=True)]
    truth += [("drug", mean_drug)]
    truth += [(f"drug|group[{g}]", KO_DRUG_EFFECT[g] - mean_drug) for g in KO_GROUPS]
    truth += [("1|unit_sigma", KO_SD["unit"]), ("sigma", KO_SD["sigma"])]
    return data, _truth_frame(truth)


# --- 5. batch demo: six screens of the cell-line design and one broken file --------------
BATCH_SEEDS = {f"screen_{i:02d}.csv": 1000 + i for i in range(1, 7)}
BATCH_BROKEN = ("screen_07_broken.csv", 1007)


# --- writing ------------------------------------------------------------------------------
def simulate_screen(seed: int, genes: int = 40, cell_lines: int = 8, reps: int = 2,
                    null_share: float = 0.7, sigma: float = 0.5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A knock-out screen in one long table (``hlm batch --by gene``): genes x cell lines x
    2 conditions x replicates; ``expr = mu_g + effect_g * treated + u_{g,cell line} + e``.

    Most genes (``null_share``) have no treatment effect; the others +-(0.6 to 2.5). Each gene has
    its own cell-line SD (0.05 to 1.2) and the residual SD is ``sigma``. The truth gives each
    gene's effect, cell-line SD and variance fractions (the cell line's, the treatment's,
    the residual's; the treatment's is ``effect^2 / 4`` with balanced conditions).
    """
    rng = np.random.default_rng(seed)
    names = [f"gene_{i + 1:03d}" for i in range(genes)]
    lines = [f"CL{j + 1:02d}" for j in range(cell_lines)]
    rows, truth = [], []
    for g in names:
        mu = rng.normal(0.0, 1.0)
        effect = 0.0 if rng.random() < null_share else float(rng.choice([-1, 1]) * rng.uniform(0.6, 2.5))
        tau = float(rng.uniform(0.05, 1.2))
        u = rng.normal(0.0, tau, size=cell_lines)
        for j, cl in enumerate(lines):
            for cond, x in (("control", 0.0), ("treated", 1.0)):
                for r in range(reps):
                    rows.append((g, cl, cond, r + 1, mu + effect * x + u[j] + rng.normal(0.0, sigma)))
        total = tau**2 + effect**2 / 4 + sigma**2
        truth.append((g, effect, tau, sigma, tau**2 / total, effect**2 / 4 / total, sigma**2 / total))
    data = pd.DataFrame(rows, columns=["gene", "cell_line", "treatment", "replicate", "expr"])
    truth = pd.DataFrame(truth, columns=["gene", "effect", "cell_line_sd", "sigma", "cell_line_fraction",
                                         "fixed_fraction", "residual_fraction"])
    return data, truth


def _truth_frame(rows) -> pd.DataFrame:
    return pd.DataFrame([(n, float(v)) for n, v in rows], columns=["parameter", "value"])


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` with floats rounded to 6 decimals; NaN is written as an empty cell."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.round(DECIMALS).to_csv(path, index=False, lineterminator="\n")
    return path


def main(out: Path = HERE) -> list[Path]:
    """Write every simulated dataset and its truth file under ``out``; return the paths."""
    written = []

    def put(frame: pd.DataFrame, name: str) -> None:
        written.append(write_csv(frame, out / name))

    cells, cells_truth, raw = simulate_cell_lines(103)
    put(cells, "cell_lines.csv")
    put(cells_truth, "cell_lines_truth.csv")
    put(cell_lines_generating(raw), "cell_lines_generating.csv")

    mice, mice_missing, mice_truth = simulate_mice_wake(2022)
    put(mice, "mice_wake.csv")
    put(mice_missing, "mice_wake_missing.csv")
    put(mice_truth, "mice_wake_truth.csv")

    schools, schools_truth = simulate_schools(40)
    put(schools, "schools_regions.csv")
    put(schools_truth, "schools_regions_truth.csv")
    pupils, pupils_truth = simulate_pupils(schools, schools_truth, 41)
    put(pupils, "schools_pupils.csv")
    put(pupils_truth, "schools_pupils_truth.csv")

    ko, ko_truth = simulate_drug_knockout(3)
    put(ko, "drug_knockout.csv")
    put(ko_truth, "drug_knockout_truth.csv")

    # The batch truth lives outside batch/ so that `hlm batch sample_data/batch/*.csv`
    # sees only the screens.
    batch_truth = []
    for name, seed in BATCH_SEEDS.items():
        data, truth, _ = simulate_cell_lines(seed)
        put(data, f"batch/{name}")
        batch_truth.append(truth.assign(file=name))
    name, seed = BATCH_BROKEN
    broken, _, _ = simulate_cell_lines(seed)
    put(broken.rename(columns={"logfc": "logFC_typo"}), f"batch/{name}")
    put(pd.concat(batch_truth)[["file", "parameter", "value"]], "batch_truth.csv")

    screen, screen_truth = simulate_screen(2121)  # hlm batch sample_data/screen.csv --by gene
    put(screen, "screen.csv")
    put(screen_truth, "screen_truth.csv")
    return written


if __name__ == "__main__":
    for path in main():
        frame = pd.read_csv(path)
        print(f"{path.relative_to(HERE.parent)}: {len(frame)} rows")
