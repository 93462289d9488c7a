"""``hlm sbc``: simulation-based calibration of a model on the user's own design.

SBC (Talts et al. 2018; Modrák et al. 2023, the SBC R package) checks that a model and its
sampler give calibrated posteriors: draw parameters from the prior, simulate a response,
fit, and rank each true value among the posterior draws. When everything is right the ranks
are uniform; a bug in the model, a sampler that does not explore, or a generator that does
not match the fitted model shows up as non-uniform ranks.

How hlm does it
---------------
- The design of DATA is kept (predictors, group levels, trials, known SEs, offsets); only the
  response is replaced.
- The priors are resolved ONCE on the original data (hlm's defaults are scaled by sd(y) and
  mean(y)) and used, as explicit priors, by the generator and by every refit.
- The generator is the standard model (:func:`draw_truths`): every top-level parameter from
  its prior (one compiled ``pm.draw`` for all simulations), group effects iid Normal (or
  multivariate Normal with an LKJ correlation) around 0, the linear predictor from
  :func:`hlm_cli.model.linpred.eta_draws` and the response from the family row's
  ``simulate`` (:func:`hlm_cli.model.linpred.simulate`). The refits may use zero-sum or
  centered group terms: they report on lme4's scale, which is what is ranked.
- ``simulate_priors`` (``--simulate-prior TERM=Dist``) replaces some priors in the generator
  only: a deliberate mismatch that SBC must detect.
- Every refit uses the same built and compiled model with only ``_y`` swapped, so the model
  compiles once (per worker process, loaded from the compile cache). Simulations run in
  worker processes, in chunks; each finished simulation is written to ``OUT/sims/`` at once,
  so an interrupted run resumes by running the same command again.
- Ranks: for each top-level quantity (intercept, coefficients, group SDs, correlations,
  family parameters) and the log-likelihood of the simulated data (the test quantity of
  Modrák et al.), the draws are thinned to near independence (thinning factor S / ESS_bulk,
  as the SBC package does) and the rank of the true value is counted.
- Uniformity: the ranks become fractional ranks ``u = (rank + U(0,1)) / (max_rank + 1)``,
  uniform on (0, 1) under calibration whatever each simulation's ``max_rank``; their ECDF is
  compared with simultaneous bands (:func:`arviz_stats.ecdf_utils.ecdf_pit`, Säilynoja et al.
  2022). The p-value is that of the same ECDF statistic (the smallest binomial tail
  probability over the evaluation points) against its distribution under uniformity, and the
  verdict is Bonferroni-corrected over the quantities (family-wise level ``alpha``).

Nothing here prints: progress goes up through ``on_progress``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hlm_cli.errors import ConfigError, HlmError, OutputError, PriorError
from hlm_cli.spec import FitSpec

LOG_LIK = "log_lik"  # the test quantity: total log-likelihood of the simulated data
MIN_KEPT = 20  # thinning keeps at least this many draws per quantity
SIMS_DIR = "sims"
STATE_FILE = "sbc.json"
RANKS_FILE = "sbc_ranks.csv"
SUMMARY_FILE = "sbc_summary.csv"
PLOT_FILE = "sbc_ecdf.png"
REPORT_FILE = "sbc_report.html"
CHUNK = 5  # simulations per task sent to a worker


# --------------------------------------------------------------------------
# what to run
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class SbcSpec:
    """Everything ``hlm sbc`` needs.

    Attributes
    ----------
    fit : FitSpec
        The model (data, formula, family, priors) and the sampler settings of every refit.
    out : Path
        Output directory.
    sims : int
        Number of simulations.
    simulate_priors : dict
        ``TERM -> "Dist(args)"``: priors of the generator that differ from the fit's.
    workers : int, optional
        Worker processes (default: all cores, at most one per chunk).
    force : bool
        Start again, deleting the simulations of an earlier run with other settings.
    alpha : float
        Family-wise level of the uniformity test (Bonferroni over the quantities).
    """

    fit: FitSpec
    out: Path
    sims: int = 200
    simulate_priors: dict[str, str] = field(default_factory=dict)
    workers: int | None = None
    force: bool = False
    alpha: float = 0.05
    command: str | None = None


@dataclass
class SbcProgress:
    total: int
    done: int = 0
    failed: int = 0
    divergent: int = 0
    skipped: int = 0
    workers: int = 0
    stage: str = ""


@dataclass
class SbcResult:
    out: Path
    ranks: object  # DataFrame: sim, parameter, rank, max_rank
    summary: object  # DataFrame: one row per quantity
    n_sims: int
    n_ok: int
    n_failed: int
    n_divergent: int
    wall_s: float
    files: dict[str, str]
    workers: int = 0

    @property
    def passed(self) -> bool:
        return bool(len(self.summary)) and bool((self.summary["verdict"] == "pass").all())

    @property
    def exit_code(self) -> int:
        from hlm_cli.errors import ExitCode

        return int(ExitCode.OK) if self.passed else int(ExitCode.DIAGNOSTICS)


# --------------------------------------------------------------------------
# statistics (pure numpy; unit-tested)
# --------------------------------------------------------------------------


def thin_factor(draws: np.ndarray, min_kept: int = MIN_KEPT) -> int:
    """Thinning factor that leaves near-independent draws: floor(S / ESS_bulk), at least 1,
    and small enough to keep ``min_kept`` draws. ``draws`` is (chains, draws)."""
    from arviz_stats.base import array_stats

    draws = np.asarray(draws, dtype=float)
    S = draws.size
    cap = max(1, S // max(1, min(min_kept, S)))
    with np.errstate(all="ignore"):
        try:
            ess = float(array_stats.ess(draws, method="bulk"))
        except Exception:  # noqa: BLE001 - constant or degenerate draws
            ess = float("nan")
    if not np.isfinite(ess) or ess <= 0:
        return cap
    return int(min(cap, max(1, np.floor(S / ess))))


def rank_of(truth: float, draws: np.ndarray, thin: int, rng) -> tuple[int, int]:
    """(rank, max_rank): how many of the thinned draws are below ``truth`` (ties broken at
    random), and how many draws were kept. ``draws`` is (chains, draws), thinned per chain."""
    kept = np.asarray(draws, dtype=float)[:, ::max(1, int(thin))].ravel()
    less = int(np.sum(kept < truth))
    ties = int(np.sum(kept == truth))
    if ties:
        less += int(rng.integers(0, ties + 1))
    return less, int(kept.size)


def fractional_ranks(ranks: np.ndarray, max_ranks: np.ndarray, rng) -> np.ndarray:
    """``(rank + U(0, 1)) / (max_rank + 1)``: exactly uniform on (0, 1) when each rank is
    uniform on 0..max_rank, so simulations with different max_rank can be pooled."""
    ranks = np.asarray(ranks, dtype=float)
    return (ranks + rng.random(ranks.shape)) / (np.asarray(max_ranks, dtype=float) + 1.0)


def _min_tail(u: np.ndarray) -> float:
    """The ECDF statistic behind the simultaneous bands: the smallest binomial tail
    probability of the ECDF of ``u`` over the evaluation points i/n (Säilynoja et al. 2022)."""
    from scipy.special import bdtr

    u = np.sort(np.asarray(u, dtype=float))
    n = u.size
    z = np.arange(1, n) / n
    counts = np.searchsorted(u, z, side="right")
    lower = np.min(bdtr(counts, n, z))
    upper = np.min(1 - bdtr(counts - 1, n, z))
    return float(min(lower, upper))


def uniformity(u: np.ndarray, *, level: float = 0.95, n_null: int = 1000, seed: int = 214) -> dict:
    """Test fractional ranks ``u`` for uniformity.

    Returns
    -------
    dict
        ``max_ecdf_diff`` (largest |ECDF(z) - z|), ``p_value`` (of the ECDF statistic
        against its null distribution, ``n_null`` uniform samples of the same size),
        ``outside_band`` (whether the ECDF leaves the simultaneous ``level`` band of
        :func:`arviz_stats.ecdf_utils.ecdf_pit`) and the band itself (``x``, ``ecdf``,
        ``lower``, ``upper``) for plotting.
    """
    from arviz_stats.ecdf_utils import ecdf_pit

    u = np.asarray(u, dtype=float)
    n = u.size
    if n < 2:
        return {"max_ecdf_diff": float("nan"), "p_value": float("nan"), "outside_band": False,
                "x": np.array([0.0, 1.0]), "ecdf": np.array([0.0, 1.0]), "lower": np.array([0.0, 1.0]), "upper": np.array([0.0, 1.0])}
    rng = np.random.default_rng(seed)
    x, ecdf, lower, upper = ecdf_pit(u, level, n_simulations=n_null, rng=rng)
    obs = _min_tail(u)
    null = np.array([_min_tail(rng.random(n)) for _ in range(n_null)])
    p = float((1 + np.sum(null <= obs)) / (n_null + 1))
    outside = bool(np.any(ecdf < lower - 1e-12) or np.any(ecdf > upper + 1e-12))
    return {"max_ecdf_diff": float(np.max(np.abs(ecdf - x))), "p_value": p, "outside_band": outside,
            "x": x, "ecdf": ecdf, "lower": lower, "upper": upper}


def summarize(ranks, *, alpha: float = 0.05, seed: int = 0, n_null: int = 1000):
    """sbc_summary.csv from the ranks table (sim, parameter, rank, max_rank).

    One row per quantity: ``n_sims``, ``max_ecdf_diff``, ``p_value``, ``p_adjusted``
    (Bonferroni over the quantities), ``outside_band`` (the ECDF leaves the simultaneous
    band at level ``1 - alpha / k``), ``verdict`` (``fail`` when ``p_adjusted < alpha``).
    Also returns the per-quantity curves for the plot.
    """
    import pandas as pd

    params = list(dict.fromkeys(ranks["parameter"]))
    k = max(1, len(params))
    level = 1.0 - alpha / k
    rows, curves = [], {}
    for name in params:
        sub = ranks[ranks["parameter"] == name].sort_values("sim")
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        u = fractional_ranks(sub["rank"].to_numpy(), sub["max_rank"].to_numpy(), rng)
        res = uniformity(u, level=level, n_null=n_null)
        p_adj = min(1.0, res["p_value"] * k) if np.isfinite(res["p_value"]) else float("nan")
        verdict = "fail" if (np.isfinite(p_adj) and p_adj < alpha) else "pass"
        rows.append({"parameter": name, "n_sims": int(len(sub)), "max_ecdf_diff": round(res["max_ecdf_diff"], 4),
                     "p_value": round(res["p_value"], 4), "p_adjusted": round(p_adj, 4),
                     "outside_band": res["outside_band"], "band_level": round(level, 4), "verdict": verdict})
        curves[name] = res
    cols = ["parameter", "n_sims", "max_ecdf_diff", "p_value", "p_adjusted", "outside_band", "band_level", "verdict"]
    return pd.DataFrame(rows, columns=cols), curves


# --------------------------------------------------------------------------
# the generator
# --------------------------------------------------------------------------


def generator_priors(built, simulate_priors: dict[str, str]) -> dict:
    """The fit's resolved priors with ``simulate_priors`` (``TERM -> Dist text``) in place.

    Keys are resolved as ``--prior`` keys are (a parameter, a term, a class such as ``sd``).
    """
    from hlm_cli.model.build import resolve_priors
    from hlm_cli.model.priors import parse_priors

    priors = dict(built.priors)
    if not simulate_priors:
        return priors
    texts = [f"{k}={v}" for k, v in simulate_priors.items()]
    try:
        user = parse_priors(texts)
    except PriorError as err:
        raise PriorError(f"--simulate-prior: {err}", hint=err.hint) from None
    try:
        resolved, used = resolve_priors(built.design, built.family, user)
    except PriorError as err:
        raise PriorError(f"--simulate-prior: {err}", hint=err.hint) from None
    for name in used.values():
        priors[name] = resolved[name]
    return priors


def _proper(name: str, prior) -> None:
    if prior.dist in ("Flat", "HalfFlat"):
        raise PriorError(f"SBC draws parameters from their priors, but {name!r} has an improper {prior.dist} prior",
                         hint=f'give it a proper prior, e.g. --prior "{name}=Normal(0, 10)"')


ORDERED_AUX = ("Intercept",)  # a cumulative family's thresholds (hlm_cli.model.families.CUTPOINTS)


def draw_truths(built, priors: dict, sims: int, seed: int):
    """Parameters from the priors and responses from the standard model, for ``sims`` simulations.

    Returns
    -------
    tree : xarray.DataTree
        A ``posterior`` group with one chain and ``sims`` draws holding the true values under
        the names the fitted posterior uses (lme4 scale), so that hlm's own
        :mod:`~hlm_cli.model.linpred` gives their linear predictor and responses.
    y : ndarray (sims, n)
    true_ll : ndarray (sims,)
        Log-likelihood of each simulated response at its true parameters.
    """
    import pymc as pm
    import xarray as xr

    from hlm_cli.model import likelihood, linpred
    from hlm_cli.model.build import OBS_DIM, column_means

    design, family, info = built.design, built.family, built.params
    S = int(sims)
    rng = np.random.default_rng([int(seed), 1])

    # every prior in one pm.draw call (one compile)
    names, dists = [], []
    # an ordinal model's K - 1 thresholds: iid under their prior, restricted to increasing
    # values by the ordered transform (build._cutpoints), i.e. the sorted values of K - 1 draws
    n_cut = len(design.response_levels) - 1 if family.ordinal and design.response_levels else 0

    def want(name: str):
        prior = priors[name]
        _proper(name, prior)
        if prior.dist == "LKJ":
            return
        names.append(name)
        size = {"size": n_cut} if n_cut and name in ORDERED_AUX else {}
        dists.append(getattr(pm, prior.dist).dist(**{k: np.asarray(v, dtype=float) for k, v in prior.args}, **size))

    labels_all = list(design.x_labels)
    for lab in labels_all:
        want(lab)
    # distributional regressions: --sigma-formula (log scale), --zi/--hu-formula (logit scale)
    from scipy.special import expit

    regressions = [(sub, inv) for sub, inv in ((design.sigma, np.exp), (getattr(design, "dpar", None), expit))
                   if sub is not None]
    for sub, _ in regressions:
        for lab in sub.labels:
            want(f"{sub.prefix}_{lab}")
    for g in design.groups:
        for eff in g.effect_names:
            want(f"{eff}_sigma")
    for a in info.family:
        if a in priors and a not in names:
            want(a)
    lkj = {}
    for g in design.groups:
        if g.term.correlated and len(g.columns) > 1:
            eta = float(priors[f"cor({g.factor})"].kwargs["eta"])
            lkj[g.term.label] = pm.LKJCorr.dist(n=len(g.columns), eta=eta)
    all_dists = dists + list(lkj.values())
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # FAST_COMPILE: one draw of a few vectors does not need C code (seconds of compiling)
        out = pm.draw(all_dists, draws=S, random_seed=rng, mode="FAST_COMPILE") if all_dists else []
    if len(all_dists) == 1:
        out = [out]
    drawn = {n: (np.sort(np.asarray(v, dtype=float).reshape(S, n_cut), axis=1) if n_cut and n in ORDERED_AUX
                 else np.asarray(v, dtype=float).reshape(S)) for n, v in zip(names, out[: len(names)], strict=True)}
    chol = {lab: np.asarray(v, dtype=float) for lab, v in zip(lkj, out[len(names):], strict=True)}

    post: dict[str, tuple] = {}

    def put(name, value, dims=()):
        post[name] = (("chain", "draw", *dims), np.asarray(value, dtype=float)[None, ...])

    # population level: the intercept's prior is on the centered intercept (build.py)
    means = column_means(design.X, design.x_labels)
    beta = np.stack([drawn[lab] for lab in labels_all], axis=1) if labels_all else np.zeros((S, 0))
    if means is not None:
        ic = labels_all.index("Intercept")
        beta[:, ic] = beta[:, ic] - beta @ means
    col = {lab: beta[:, j] for j, lab in enumerate(labels_all)}
    for term, sl in design.fixed_slices.items():
        labels = design.x_labels[sl]
        if term in info.population:
            if len(labels) == 1 and labels[0] == term:
                put(term, col[term])
            else:
                put(term, np.stack([col[lab] for lab in labels], axis=1), (f"{term}_dim",))
        else:
            for lab in labels:
                put(lab, col[lab])

    # group level: the standard model, effects ~ N(0, Sigma) per level
    for g in design.groups:
        L = len(g.levels)
        K = len(g.columns)
        sds = np.stack([drawn[f"{eff}_sigma"] for eff in g.effect_names], axis=1)  # (S, K)
        z = rng.standard_normal((S, L, K))
        if g.term.label in chol:
            Lc = chol[g.term.label]  # (S, K, K) lower Cholesky factor of the correlation
            C = sds[:, :, None] * Lc
            b = np.einsum("slk,sjk->slj", z, C)
            R = np.einsum("sik,sjk->sij", Lc, Lc)
            for a in range(K):
                for c in range(a + 1, K):
                    put(f"cor({g.columns[a]},{g.columns[c]}|{g.factor})", R[:, a, c])
        else:
            b = z * sds[:, None, :]
        for j, eff in enumerate(g.effect_names):
            put(f"{eff}_sigma", sds[:, j])
            put(eff, b[:, :, j], (g.factor,))

    # family parameters, and a sigma regression
    for a in info.family:
        if a in drawn:
            put(a, drawn[a], (f"{a}_dim",) if drawn[a].ndim == 2 else ())
    for sub, inv in regressions:
        pre = sub.prefix
        gam = np.stack([drawn[f"{pre}_{lab}"] for lab in sub.labels], axis=1)
        smeans = column_means(sub.X, sub.labels)
        if smeans is not None:  # drawn on the centered intercept, reported on the user's scale
            ic = list(sub.labels).index("Intercept")
            gam[:, ic] = gam[:, ic] - gam @ smeans
        gcol = {lab: gam[:, j] for j, lab in enumerate(sub.labels)}
        for var, labels in sub.names().items():
            if len(labels) == 1 and var == f"{pre}_{labels[0]}":
                put(var, gcol[labels[0]])
            else:
                put(var, np.stack([gcol[lab] for lab in labels], axis=1), (f"{var}_dim",))
        with np.errstate(over="ignore"):
            put(pre, inv(gam @ np.asarray(sub.X, dtype=float).T), (OBS_DIM,))

    ds = xr.Dataset(post, coords={"chain": [0], "draw": np.arange(S)})
    tree = xr.DataTree.from_dict({"posterior": ds})
    with np.errstate(all="ignore"):
        eta = linpred.eta_draws(tree, built)
        y = linpred.simulate(family, tree, eta, trials=design.trials, se=design.se, rng=rng)
        ll = np.empty(S)
        for s in range(S):
            def aux(name, s=s):
                x = linpred.aux_draws(tree, name, S)
                return None if x is None else x[s:s + 1]

            ll[s] = float(np.sum(likelihood.logpdf(family, y[s], eta[s:s + 1], aux, trials=design.trials, se=design.se)))
    return tree, np.asarray(y, dtype=float), ll


def quantities(values: dict, built, lead: int = 2) -> dict[str, np.ndarray]:
    """Top-level quantities by name (vector variables split: ``genotype[B]``), each an array
    whose leading axes are the samples. ``values`` maps variable names to arrays whose
    leading ``lead`` axes are samples (chain, draw) followed by the variable's own axes."""
    out: dict[str, np.ndarray] = {}
    coords = getattr(built.model, "coords", {}) or {}
    for name in built.params.top_level:
        if name not in values:
            continue
        x = values[name]
        if x.ndim <= lead:
            out[name] = x
            continue
        labels = list(coords.get(f"{name}_dim", range(x.shape[-1])))
        for k in range(x.shape[-1]):
            out[f"{name}[{labels[k] if k < len(labels) else k}]"] = x[..., k]
    return out


def response_ok(family, y: np.ndarray) -> str:
    """'' when a simulated response is a valid response of the family, else why not."""
    if not np.all(np.isfinite(y)):
        return "the simulated response has non-finite values (a prior draw far in the tail)"
    bad = family.domain.bad
    if bad is not None and bool(np.any(bad(y))):
        return f"the simulated response has values outside the {family.name} family's support"
    return ""


# --------------------------------------------------------------------------
# the worker side
# --------------------------------------------------------------------------

_STATE: dict = {}  # per process: the built model of the job, keyed by its fingerprint


def _built_for(job: dict):
    key = job["fingerprint"]
    if _STATE.get("key") == key:
        return _STATE["built"]
    from hlm_cli.model.build import build_model
    from hlm_cli.workflows.fit import prepare

    spec = FitSpec.model_validate(job["spec"])
    prep = prepare(spec)
    # one density term per row: each simulation swaps the response in below (a likelihood from
    # cross-products would keep the first response's sums)
    built = build_model(prep.built.design, prep.family, dict(job["priors"]), parameterization=spec.sampler.parameterization,
                        likelihood="rows")
    built.design.y = np.asarray(built.design.y, dtype=float).copy()
    _STATE.update(key=key, built=built, spec=spec)
    return built


def fit_sim(job: dict, sim: dict) -> dict:
    """Fit one simulated response and rank the true values; never raises for a failed fit."""
    t0 = time.perf_counter()
    rec = {"sim": int(sim["sim"]), "status": "failed", "error": "", "divergences": 0, "ranks": {}, "seconds": 0.0}
    try:
        built = _built_for(job)
        spec = _STATE["spec"]
        from hlm_cli import sampling

        y = np.asarray(sim["y"], dtype=float)
        built.design.y = y
        built.data_vars["_y"] = y
        sampler = spec.sampler.model_copy(update={"seed": (spec.sampler.seed + 7 * int(sim["sim"])) % (2**32 - 1)})
        posterior = sampling.sample(built, sampler, use_cache=spec.cache, quick=False)
        tree = posterior.tree
        post = tree["posterior"]
        values = {name: np.asarray(post[name], dtype=float) for name in built.params.top_level if name in post}
        draws = quantities(values, built)
        ll = np.asarray(tree["log_likelihood"][built.response_name], dtype=float).sum(axis=-1)  # (C, D)
        draws[LOG_LIK] = ll
        truths = dict(sim["truths"])
        truths[LOG_LIK] = float(sim["true_ll"])
        rng = np.random.default_rng([int(job["seed"]), 2, int(sim["sim"])])
        ranks = {}
        for name, x in draws.items():
            if name not in truths:
                continue
            thin = thin_factor(x)
            r, m = rank_of(truths[name], x, thin, rng)
            ranks[name] = [r, m, thin]
        stats = tree["sample_stats"]
        div = int(np.asarray(stats["diverging"]).sum()) if "diverging" in stats else 0
        rec.update(status="ok", ranks=ranks, divergences=div)
    except HlmError as err:
        rec["error"] = str(err)
    except Exception as err:  # noqa: BLE001 - one simulation's crash must not end the run
        first = str(err).splitlines()[0] if str(err) else ""
        rec["error"] = f"internal error ({type(err).__name__}: {first})"
    rec["seconds"] = round(time.perf_counter() - t0, 3)
    return rec


def run_chunk(job: dict, sims: list[dict]) -> list[dict]:
    """What a worker runs: several simulations with one built model."""
    return [fit_sim(job, s) for s in sims]


# --------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------


def _fingerprint(spec: SbcSpec, priors: dict) -> str:
    fit = spec.fit.model_dump(mode="json")
    for k in ("out", "force", "quiet", "command", "config_file", "plots", "strict", "color_by", "svg", "ci"):
        fit.pop(k, None)
    fit["sampler"].pop("cores", None)
    blob = {"fit": fit, "sims": spec.sims, "simulate": spec.simulate_priors,
            "priors": {k: v.to_json() for k, v in sorted(priors.items())}}
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _prepare_out(out: Path, fingerprint: str, force: bool) -> None:
    """Create OUT, or resume it: an OUT from other settings needs --force."""
    import shutil

    out = Path(out)
    state = out / STATE_FILE
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {str(out)!r} is a file", hint="give a directory for the SBC results")
    if out.is_dir() and any(out.iterdir()) and not _only_sims(out):
        old = None
        if state.is_file():
            try:
                old = json.loads(state.read_text()).get("fingerprint")
            except (OSError, ValueError):
                old = None
        elif not force:
            raise OutputError(f"--out {str(out)!r} exists and is not an hlm sbc directory",
                              hint="choose a new --out (nothing there is deleted)")
        if old is not None and old != fingerprint:
            if not force:
                raise OutputError(f"--out {str(out)!r} holds an SBC run with other settings",
                                  hint="add --force to start again there, or choose another --out")
            shutil.rmtree(out / SIMS_DIR, ignore_errors=True)
        if force and old is None and not state.is_file():
            raise OutputError(f"--out {str(out)!r} exists and is not an hlm sbc directory",
                              hint="choose a new --out (nothing there is deleted)")
    try:
        (out / SIMS_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create --out {str(out)!r}: {err.strerror}", hint="check the path and its permissions") from None
    if not state.is_file():  # marks OUT as this run's before any refit, so that an interrupted run resumes
        _write_json(state, {"fingerprint": fingerprint, "status": "running"})


def _only_sims(out: Path) -> bool:
    """OUT holds nothing but sims/ with simulation files: an interrupted run from before sbc.json
    was written at the start (each file's fingerprint decides whether it is reused)."""
    entries = list(Path(out).iterdir())
    if [e.name for e in entries] != [SIMS_DIR] or not entries[0].is_dir():
        return False
    return all(p.name.startswith("sim_") and p.suffix == ".json" for p in entries[0].iterdir())


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, default=float))
    os.replace(tmp, path)


def _sim_path(out: Path, sim: int) -> Path:
    return Path(out) / SIMS_DIR / f"sim_{sim:05d}.json"


def _read_done(out: Path, fingerprint: str, sims: int) -> dict[int, dict]:
    done = {}
    for i in range(sims):
        p = _sim_path(out, i)
        if p.is_file():
            try:
                rec = json.loads(p.read_text())
            except (OSError, ValueError):
                continue
            if rec.get("fingerprint") == fingerprint:
                done[i] = rec
    return done


def run_sbc(spec: SbcSpec, *, on_progress: Callable[[SbcProgress], None] | None = None) -> SbcResult:
    """Simulate, refit and rank; write the SBC files into ``spec.out``.

    Raises
    ------
    HlmError
        Before any refit: bad data, formula, priors (improper ones included) or --out.
    """
    t_start = time.perf_counter()
    say = on_progress or (lambda p: None)
    progress = SbcProgress(total=spec.sims, stage="build")
    say(progress)
    if spec.sims < 2:
        raise ConfigError(f"--sims must be at least 2 (got {spec.sims})", hint="SBC needs many simulations, e.g. --sims 200")
    from hlm_cli.workflows.fit import prepare

    prep = prepare(spec.fit)
    built = prep.built
    fit_priors = dict(built.priors)
    gen_priors = generator_priors(built, spec.simulate_priors)
    for name, p in fit_priors.items():
        _proper(name, p)
    fingerprint = _fingerprint(spec, gen_priors | {f"fit:{k}": v for k, v in fit_priors.items()})
    _prepare_out(spec.out, fingerprint, spec.force)
    seed = spec.fit.sampler.seed

    done = _read_done(spec.out, fingerprint, spec.sims)
    progress.skipped = len(done)
    todo = []
    if len(done) < spec.sims:  # a finished run that is run again only rebuilds its tables
        progress.stage = "simulate"
        say(progress)
        tree, Y, true_ll = draw_truths(built, gen_priors, spec.sims, seed)
        post = tree["posterior"]
        truth_vals = quantities({n: np.asarray(post[n], dtype=float)[0] for n in post.data_vars}, built, lead=1)
    for i in range(spec.sims):
        if i in done:
            continue
        why = response_ok(built.family, Y[i])
        if why:
            rec = {"sim": i, "status": "failed", "error": why, "divergences": 0, "ranks": {}, "seconds": 0.0, "fingerprint": fingerprint}
            _write_json(_sim_path(spec.out, i), rec)
            done[i] = rec
            continue
        todo.append({"sim": i, "y": Y[i].tolist(), "true_ll": float(true_ll[i]),
                     "truths": {k: float(v[i]) for k, v in truth_vals.items()}})
    for rec in done.values():
        progress.done += rec["status"] == "ok"
        progress.failed += rec["status"] != "ok"
        progress.divergent += rec.get("divergences", 0) > 0

    job = {"spec": spec.fit.model_dump(mode="json"), "priors": fit_priors, "fingerprint": fingerprint, "seed": seed}
    progress.stage = "fit"
    workers = 0
    if todo:
        workers = _execute(spec, job, built, todo, fingerprint, progress, say)
    progress.stage = "summarize"
    say(progress)
    result = _finish(spec, fingerprint, built, fit_priors, gen_priors, time.perf_counter() - t_start, workers)
    return result


def _default_workers() -> int:
    from hlm_cli._procs import available_cores

    return available_cores()


def _execute(spec: SbcSpec, job: dict, built, todo: list[dict], fingerprint: str, progress: SbcProgress, say) -> int:
    chunks = [todo[i:i + CHUNK] for i in range(0, len(todo), CHUNK)]
    workers = max(1, min(spec.workers or _default_workers(), len(chunks)))
    progress.workers = workers

    def record(recs: list[dict]) -> None:
        for rec in recs:
            rec["fingerprint"] = fingerprint
            _write_json(_sim_path(spec.out, rec["sim"]), rec)
            if rec["status"] == "ok":
                progress.done += 1
                progress.divergent += rec["divergences"] > 0
            else:
                progress.failed += 1
        say(progress)

    say(progress)
    if workers == 1:
        _STATE.clear()
        _STATE.update(key=fingerprint, built=built, spec=spec.fit)
        for chunk in chunks:
            record(run_chunk(job, chunk))
        return workers
    # compile once here (into the disk cache) so that the workers load it instead of each compiling
    if spec.fit.cache and spec.fit.sampler.sampler == "nutpie":
        from hlm_cli import sampling
        from hlm_cli.sampling import cache

        sampling.compile_model(built.model, structure_key=built.structure_key, cache_dir=cache.default_cache_dir())
    import concurrent.futures as cf
    import multiprocessing as mp

    from hlm_cli.workflows.batch import _init_worker

    pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                  initializer=_init_worker, initargs=(True, os.getpid()))
    try:
        futures = {pool.submit(run_chunk, job, chunk): chunk for chunk in chunks}
        for fut in cf.as_completed(futures):
            try:
                recs = fut.result()
            except Exception as err:  # noqa: BLE001 - a crashed worker: its simulations fail
                name = type(err).__name__
                recs = [{"sim": s["sim"], "status": "failed", "error": f"the worker stopped ({name})",
                         "divergences": 0, "ranks": {}, "seconds": 0.0} for s in futures[fut]]
            record(recs)
    except BaseException:
        procs = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=5)
        raise
    pool.shutdown()
    return workers


def ranks_table(records: list[dict]):
    """sbc_ranks.csv: one row per (ok simulation, quantity)."""
    import pandas as pd

    rows = [{"sim": r["sim"], "parameter": name, "rank": int(v[0]), "max_rank": int(v[1]), "thin": int(v[2])}
            for r in sorted(records, key=lambda r: r["sim"]) if r["status"] == "ok"
            for name, v in r["ranks"].items()]
    return pd.DataFrame(rows, columns=["sim", "parameter", "rank", "max_rank", "thin"])


def _finish(spec: SbcSpec, fingerprint: str, built, fit_priors, gen_priors, wall: float, workers: int) -> SbcResult:
    from hlm_cli.outputs import sbc_out

    out = Path(spec.out)
    records = list(_read_done(out, fingerprint, spec.sims).values())
    ranks = ranks_table(records)
    summary, curves = summarize(ranks, alpha=spec.alpha, seed=spec.fit.sampler.seed)
    ok = [r for r in records if r["status"] == "ok"]
    failed = [r for r in records if r["status"] != "ok"]
    divergent = [r for r in ok if r.get("divergences", 0) > 0]
    files = {"ranks": RANKS_FILE, "summary": SUMMARY_FILE}
    ranks.to_csv(out / RANKS_FILE, index=False)
    summary.to_csv(out / SUMMARY_FILE, index=False)
    state = {
        "fingerprint": fingerprint,
        "command": spec.command,
        "formula": spec.fit.formula,
        "family": built.family.name,
        "data": str(Path(spec.fit.data).resolve()),
        "sims": spec.sims,
        "ok": len(ok),
        "failed": len(failed),
        "divergent_sims": len(divergent),
        "divergent_sim_ids": sorted(r["sim"] for r in divergent),
        "failures": {str(r["sim"]): r.get("error", "") for r in sorted(failed, key=lambda r: r["sim"])[:50]},
        "alpha": spec.alpha,
        "simulate_priors": spec.simulate_priors,
        "fit_priors": {k: str(v) for k, v in fit_priors.items()},
        "generator_priors": {k: str(v) for k, v in gen_priors.items()},
        "parameterization": {k: v.kind for k, v in built.parameterization.items()},
        "parameterization_detail": {k: v.label for k, v in built.parameterization.items()},
        "sampler": spec.fit.sampler.model_dump(mode="json"),
        "wall_s": round(wall, 2),
        "workers": workers,
        "verdict": "pass" if len(summary) and (summary["verdict"] == "pass").all() else "fail",
    }
    if len(ranks):
        try:
            sbc_out.plot_ecdf(curves, summary, out / PLOT_FILE)
            files["plot"] = PLOT_FILE
        except Exception as err:  # noqa: BLE001 - the tables are the record
            state["plot"] = f"failed: {type(err).__name__}: {err}"
    state["files"] = files
    _write_json(out / STATE_FILE, state)
    try:
        sbc_out.write_report(out / REPORT_FILE, state, summary)
        files["report"] = REPORT_FILE
    except Exception as err:  # noqa: BLE001
        state["report"] = f"failed: {type(err).__name__}: {err}"
    _write_json(out / STATE_FILE, {**state, "files": files})
    return SbcResult(out, ranks, summary, spec.sims, len(ok), len(failed), len(divergent), wall, files, workers)


def spec_from_run(run_dir: Path, **overrides) -> FitSpec:
    """The FitSpec of a fitted run (``hlm sbc RUN``), with sampler/model overrides applied."""
    from hlm_cli.outputs import runinfo

    info = runinfo.read(Path(run_dir))
    config = dict(info["config"])
    sampler = dict(config.get("sampler") or {})
    for k, v in overrides.pop("sampler", {}).items():
        if v is not None:
            sampler[k] = v
    config["sampler"] = sampler
    for k, v in overrides.items():
        if v is not None:
            config[k] = v
    return FitSpec.model_validate(config)


RUN_SBC_DIR = "sbc"  # hlm sbc RUN writes into RUN/sbc unless --out is given; hlm report RUN shows it


def default_out(data, out):
    """``--out`` of ``hlm sbc``: as given, else ``RUN/sbc`` when DATA is a fitted run's directory
    (whose report.html then gains a "Calibration (SBC)" section), else None (refused later)."""
    if out is not None:
        return Path(out)
    data = Path(data)
    if data.is_dir() and (data / "run.json").is_file():
        return data / RUN_SBC_DIR
    return None


def check_options(*, data: Path, out: Path | None, formula: str | None, sims: int, workers: int | None,
                  alpha: float, config: Path | None) -> None:
    """Refuse ``hlm sbc`` options that cannot work, before anything is read."""
    from hlm_cli.errors import InputError, UsageError

    if out is None:
        raise ConfigError("hlm sbc needs --out", hint="e.g. --out results/sbc (sbc_summary.csv, sbc_ranks.csv and sbc_ecdf.png go there; "
                          "with a fitted run's directory they go to RUN/sbc by default)")
    if sims < 2:
        raise UsageError(f"--sims must be at least 2 (got {sims})", hint="SBC needs many simulations, e.g. --sims 200")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be >= 1 (got {workers})", hint="e.g. --workers 2 (leave it out to use all cores)")
    if not (0 < alpha < 1):
        raise UsageError(f"--alpha must be between 0 and 1 (got {alpha})", hint="e.g. --alpha 0.05")
    data = Path(data)
    if data.is_dir():
        if not (data / "run.json").is_file():
            raise InputError(f"{str(data)!r} is a directory without run.json", hint="give a CSV file, or the --out directory of an hlm fit")
        if formula is not None or config is not None:
            raise ConfigError("--formula and --config cannot be given with a run directory (its settings are reused)",
                              hint="give the CSV file instead: hlm sbc DATA --formula ...")
    elif not data.exists():
        raise InputError(f"data file {str(data)!r} does not exist", hint="check the path")


def fit_spec_for_sbc(data: Path, config: Path | None, *, defaults: dict, **flags) -> FitSpec:
    """The model and sampler settings of every refit: from DATA + flags (+ --config), or from
    a fitted run's run.json when DATA is a run directory. Sampler settings not given (by a flag,
    or in the config file) get the small SBC ``defaults`` (draws, tune, chains)."""
    from hlm_cli.spec import SAMPLER_KEYS, load_fit_spec, read_toml

    out = Path(flags.pop("out")) / "_fit"  # required by FitSpec; nothing is written there
    data = Path(data)
    given = {k for k, v in flags.items() if v is not None}
    if data.is_dir():
        sampler = {k: flags.pop(k) for k in list(flags) if k in SAMPLER_KEYS}
        model = {k: v for k, v in flags.items() if v is not None and k != "priors"}
        spec = spec_from_run(data, sampler=sampler, out=out, quiet=True, force=False, **model)
        if flags.get("priors"):
            raise ConfigError("--prior cannot be given with a run directory (its priors are reused)",
                              hint="give the CSV file instead: hlm sbc DATA --formula ... --prior ...")
    else:
        spec = load_fit_spec(config, data=data, out=out, **{k: v for k, v in flags.items() if k != "priors"},
                             priors=list(flags.get("priors") or []))
        if config is not None:
            raw = read_toml(config)
            given |= {k.replace("-", "_") for k in raw} | {k.replace("-", "_") for k in (raw.get("sampler") or {})}
    update = {k: v for k, v in defaults.items() if k not in given}
    if update:
        spec = spec.model_copy(update={"sampler": spec.sampler.model_copy(update=update)})
    return spec.model_copy(update={"plots": False, "quiet": True})


__all__ = ["check_options", "default_out", "fit_spec_for_sbc", "SbcSpec", "SbcResult", "SbcProgress", "run_sbc", "draw_truths", "generator_priors", "thin_factor", "rank_of",
           "fractional_ranks", "uniformity", "summarize", "ranks_table", "spec_from_run", "quantities"]
