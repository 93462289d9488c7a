"""``hlm fit``: CSV + formula -> checked data -> PyMC model -> posterior -> run directory.

Everything cheap (spec, output directory, CSV, formula, priors, data checks) happens before
the first PyMC call, so a user mistake costs milliseconds and leaves nothing on disk.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hlm_cli import data as data_mod
from hlm_cli.errors import ExitCode, InputError
from hlm_cli.spec import FitSpec

#: sample_stats kept in a lean run's posterior.nc (hlm batch --by): what diagnostics and reports read
LEAN_SAMPLE_STATS = ("diverging", "maxdepth_reached", "reached_max_treedepth", "depth", "tree_depth", "energy",
                     "step_size")


@dataclass
class Prepared:
    """A checked table and a built (not yet sampled) model."""

    table: object
    formula: object
    family: object
    built: object
    timings: dict[str, float]


@dataclass
class FitResult:
    spec: FitSpec
    out: Path
    summary: pd.DataFrame
    findings: list
    built: object
    timings: dict[str, float]
    table: object
    plots: dict[str, str] = field(default_factory=dict)
    compile_mode: str = ""  # see hlm_cli.sampling.Posterior
    tree: object = None  # the posterior DataTree as written to posterior.nc
    ess: object | None = None  # how --ess ended (hlm_cli.sampling.ess.EssOutcome), None without it

    @property
    def exit_code(self) -> int:
        failed = any(f.severity == "warning" for f in self.findings)
        return int(ExitCode.DIAGNOSTICS) if (self.spec.strict and failed) else int(ExitCode.OK)

    @property
    def compile_cached(self) -> bool:
        return self.compile_mode == "cache"


def prepare(spec: FitSpec, *, table=None) -> Prepared:
    """Read and check the data, parse the formula, build the model. No sampling."""
    from hlm_cli.formula import parse
    from hlm_cli.formula.families import LINKS, check_link
    from hlm_cli.model.families import check_response, get_family
    from hlm_cli.model.priors import parse_priors

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    link_for_binomial = spec.family == "gaussian" and spec.link not in (None, *LINKS["gaussian"])
    # --link probit with cbind() and no --family: the link is the implied binomial family's
    family = get_family(spec.family, None if link_for_binomial else spec.link)
    user_priors = parse_priors(spec.priors, preset=spec.prior_preset)
    if table is None:
        table = data_mod.read_csv(spec.data, sep=getattr(spec, "sep", None))
    formula = parse(spec.formula, list(table.frame.columns), source=table.source.name)
    _check_levels(spec, formula, family)
    if spec.se is not None:
        if formula.response.se is not None and formula.response.se != spec.se:
            raise InputError(
                f"--se {spec.se} conflicts with se({formula.response.se}) in the formula",
                hint="give the standard errors once",
            )
        formula = dataclasses.replace(formula, response=dataclasses.replace(formula.response, se=spec.se))
    sigma_formula = None
    if spec.sigma_formula:
        text = spec.sigma_formula.strip()
        sigma_formula = parse(text if text.startswith("~") else f"~ {text}", list(table.frame.columns), source=table.source.name)
        if sigma_formula.groups or sigma_formula.autocor is not None:
            raise InputError("--sigma-formula takes population-level terms only", hint='e.g. --sigma-formula "~ group"')
        if "sigma" not in family.aux:
            raise InputError(f"--sigma-formula needs a family with a residual SD (gaussian, t, lognormal), not {family.name}")
    dpar_formula = _dpar_formula(spec, family, table, parse)
    needed = set(formula.columns) | ({formula.response.se} if formula.response.se else set())
    if sigma_formula is not None:
        needed |= set(sigma_formula.columns)
    if dpar_formula is not None:
        needed |= set(dpar_formula.columns)
    data_mod.require_columns(table, needed)
    group_columns = {c for t in formula.groups for c in t.factor} | set(formula.autocor.gr if formula.autocor else ())
    data_mod.check_columns(table, needed - group_columns - {formula.response.expr}, categorical=spec.categorical)
    if formula.response.se and family.name not in ("gaussian", "t"):
        raise InputError(
            f"se() gives known standard errors for gaussian or t responses, not {family.name}",
            hint="use --family gaussian (the meta-analysis model)",
        )
    if formula.response.kind == "binomial" and not family.trials:
        if spec.family == "gaussian":  # cbind()/p() imply binomial unless a family was asked for
            family = get_family("binomial", spec.link if link_for_binomial else None)
        else:
            raise InputError(f"cbind()/p()/trials() responses need --family binomial or beta_binomial, not {family.name}")
    if link_for_binomial and family.name == "gaussian":
        check_link("gaussian", spec.link)  # refused: the gaussian family has no such link
    if family.name == "beta_binomial" and formula.response.kind != "binomial":
        raise InputError("the beta_binomial family needs the number of trials",
                         hint="write the response as cbind(successes, failures), p(successes, trials) or successes | trials(n)")
    if formula.response.term_columns or formula.response.trunc_lb or formula.response.trunc_ub:
        from hlm_cli.model.censoring import check_family

        check_family(formula.response, family)
    # cens(c, y2): y2 is empty on the rows that are not interval-censored (as in brms)
    table = data_mod.handle_missing(table, needed - {formula.response.cens_y2}, dropna=spec.dropna)
    if spec.categorical:
        table = data_mod.make_categorical(table, spec.categorical)
    if formula.response.se:
        data_mod.check_se(table, formula.response.se)
    timings["load"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    from hlm_cli.formula.design import build_design
    from hlm_cli.model.build import build_model

    frame = table.frame.reset_index(drop=True)
    lines = data_mod.csv_lines(table)
    labels = None
    if family.ordinal:  # categories -> codes 1..K in their order (hlm_cli.model.ordinal)
        from hlm_cli.model.ordinal import response_codes

        name = formula.response.expr
        codes, labels = response_codes(frame[name], name, (getattr(spec, "levels", None) or {}).get(name), lines)
        frame[name] = codes
    _check_response_column(formula, frame, family, lines)
    design = build_design(formula, frame, lines=lines, reference=spec.reference or None,
                          group_levels=getattr(spec, "group_levels", None) or None)
    if family.ordinal:
        from hlm_cli.model.ordinal import drop_intercept

        drop_intercept(design)
        design.response_levels = labels
    if sigma_formula is not None:
        from hlm_cli.formula.design import build_sigma_design, set_reference

        # --reference applies to the sigma formula's factors too
        design.sigma = build_sigma_design(sigma_formula.fixed, set_reference(frame, spec.reference or None), lines=lines)
    if dpar_formula is not None:
        from hlm_cli.formula.design import build_sigma_design, set_reference

        # --reference applies to the zi/hu formula's factors too
        design.dpar = build_sigma_design(dpar_formula.fixed, set_reference(frame, spec.reference or None), lines=lines,
                                         prefix=family.dpar)
    design.y = check_response(family, design.y, formula.response.expr, design.trials, lines)
    built = build_model(design, family, user_priors, parameterization=spec.sampler.parameterization)
    _check_memory(spec, design)
    timings["build"] = time.perf_counter() - t1
    return Prepared(table, formula, family, built, timings)


def _check_levels(spec: FitSpec, formula, family) -> None:
    """``--levels`` orders an ordinal response; a cumulative formula has the intercept."""
    levels = getattr(spec, "levels", None) or {}
    if family.ordinal:
        from hlm_cli.model.ordinal import check_formula

        check_formula(formula)
        name = formula.response.expr
        if name not in formula.columns:
            raise InputError(f"an ordinal response must be a column of the data, not {name!r}",
                             hint="make the column first (the categories are its values)")
    for col in levels:
        if not family.ordinal or col != formula.response.expr:
            raise InputError(f"--levels {col}=... orders the categories of an ordinal response, and {col!r} is not one",
                             hint=f"use it with --family cumulative and the response ({formula.response.expr})"
                             if not family.ordinal else f"name the response: --levels {formula.response.expr}=...")


def _dpar_formula(spec: FitSpec, family, table, parse):
    """The parsed ``--zi-formula`` / ``--hu-formula`` (None without one), refused for a family
    without that parameter."""
    given = [(flag, text) for flag, text in (("zi", spec.zi_formula), ("hu", spec.hu_formula)) if text]
    if not given:
        return None
    if len(given) > 1:
        raise InputError("--zi-formula and --hu-formula were both given",
                         hint="zero_inflated_* families take --zi-formula, hurdle_* families --hu-formula")
    flag, text = given[0]
    if family.dpar != flag:
        fams = "zero_inflated_poisson or zero_inflated_negbinomial" if flag == "zi" else "hurdle_poisson or hurdle_negbinomial"
        raise InputError(f"--{flag}-formula models the {'zero-inflation' if flag == 'zi' else 'hurdle'} probability, "
                         f"which the {family.name} family does not have",
                         hint=f"use --family {fams}" + (f", or --{family.dpar}-formula" if family.dpar else ""))
    text = text.strip()
    parsed = parse(text if text.startswith("~") else f"~ {text}", list(table.frame.columns), source=table.source.name)
    if parsed.groups:
        raise InputError(f"--{flag}-formula takes population-level terms only", hint=f'e.g. --{flag}-formula "~ mined"')
    return parsed


def _check_memory(spec: FitSpec, design) -> None:
    """Refuse draws whose posterior (parameters, log-likelihood, predictions) cannot fit in
    memory, before anything is compiled or sampled."""
    from hlm_cli.spec import check_memory

    n_params = design.X.shape[1] + sum(len(g.levels) * (len(g.columns) + 1) for g in design.groups) + 8
    if design.sigma is not None:
        n_params += 2 * int(np.asarray(getattr(design.sigma, "X", np.zeros((0, 1)))).shape[-1])
    if getattr(design, "dpar", None) is not None:
        n_params += 2 * int(design.dpar.X.shape[-1])
    from hlm_cli.model import scale

    S = spec.sampler.chains * spec.sampler.draws  # a large run stores no rows x draws log-likelihood
    check_memory(spec.sampler.chains, spec.sampler.draws, n_params, scale.memory_rows(design.n, S))


def _check_response_column(formula, frame: pd.DataFrame, family, lines) -> None:
    name = formula.response.expr
    if name in frame.columns and family.support != "binary":
        col = frame[name]
        if not pd.api.types.is_numeric_dtype(col):
            conv = pd.to_numeric(col, errors="coerce")
            bad = conv.isna().to_numpy()
            i = int(np.argmax(bad))
            raise InputError(
                f"response {name!r} is not numeric, but the {family.name} family needs numbers; "
                f"CSV line {lines[i]} has {col.iloc[i]!r}",
                hint="fix that value (text such as 'n/a' or '1,5' makes the column non-numeric)",
            )


def run_fit(spec: FitSpec, *, on_progress: Callable[[str], None] | None = None, table=None, quick: bool = True,
            on_draws: Callable | None = None) -> FitResult:
    """Run one fit end to end and write the run directory.

    Parameters
    ----------
    spec : FitSpec
    on_progress : callable, optional
        Receives stage names: load, build, compile, sample, predict, write.
    table : hlm_cli.data.Table, optional
        Already-read data (batch reuses this).
    quick : bool
        Optimise for a single fit: the quick first fit of a small model not yet in the cache
        (:mod:`hlm_cli.sampling.quick`) and a figure helper forked at the start
        (:func:`hlm_cli.outputs.report.start_helper`). Batch turns both off: it fits one
        structure many times, in worker processes that may run threads of their own.
    on_draws : callable, optional
        Receives live sampling progress (:class:`hlm_cli.sampling.DrawProgress`, about 5 times
        a second, from a sampler thread); see :func:`hlm_cli.sampling.sample`.

    Returns
    -------
    FitResult
    """
    from hlm_cli.outputs import rundir

    say = on_progress or (lambda s: None)
    t_start = time.perf_counter()
    rundir.check_out(spec.out, force=spec.force, protect=_protected(spec))
    helper = None
    if spec.plots and quick:  # the figure process: imports matplotlib while this one reads, builds and samples
        from hlm_cli.outputs import report as report_mod

        helper = report_mod.start_helper(spec.data if table is None else None, draws=spec.sampler.chains * spec.sampler.draws,
                                         color_by=spec.color_by, svg=spec.svg)
    try:
        say("load")
        prep = prepare(spec, table=table)
        built = prep.built
        if spec.plots and spec.color_by:
            from hlm_cli.outputs.report import check_color_by

            check_color_by(prep.table.frame.columns, spec.color_by)
        timings = dict(prep.timings)

        from hlm_cli import sampling

        prior_tree = None
        if spec.prior_predictive:
            say("prior")
            t = time.perf_counter()
            prior_tree = sampling.sample_prior_predictive(built, draws=500, seed=spec.sampler.seed)
            timings["prior_predictive"] = time.perf_counter() - t
        return _sample_and_write(spec, prep, timings, prior_tree, helper, quick, say, t_start, on_draws)
    finally:
        if helper is not None:
            helper.close()


def _sample_and_write(spec: FitSpec, prep, timings: dict, prior_tree, helper, quick: bool, say, t_start: float,
                      on_draws=None) -> FitResult:
    from hlm_cli import diagnostics, sampling
    from hlm_cli.outputs import rundir
    from hlm_cli.outputs import summary as summary_mod

    built = prep.built
    live = {"on_draws": on_draws} if on_draws is not None else {}
    lean = bool(getattr(spec, "lean", False))
    # hlm batch --by's lean runs: no pointwise log-likelihood or predictive draws at all
    posterior = sampling.sample(built, spec.sampler, use_cache=spec.cache, quick=quick, on_progress=say,
                                pointwise=not lean, **live)
    timings.update(posterior.timings)
    tree = posterior.tree
    if lean:  # only what the screen's tables and the diagnostics need
        keep = set(_names(built.params.to_json()))  # the reported parameters, not the sampler's internal ones
        post = tree["posterior"].to_dataset()
        if keep & set(post.data_vars):
            tree["posterior"] = post[[v for v in post.data_vars if v in keep]]
        if "sample_stats" in tree.children:  # every variable costs ~10 ms to write: keep the diagnostics'
            stats = tree["sample_stats"].to_dataset()
            tree["sample_stats"] = stats[[v for v in LEAN_SAMPLE_STATS if v in stats]]
    else:
        from hlm_cli.model.log_prior import log_prior_dataset

        tree["log_prior"] = log_prior_dataset(tree, built)  # for power-scaling sensitivity (sensitivity.csv)
    if prior_tree is not None:
        for group in ("prior", "prior_predictive"):
            if group in prior_tree.children:
                tree[group] = prior_tree[group]

    say("write")
    t_w = time.perf_counter()
    done: dict[str, object] = {}

    def write_tables(stage: Path) -> None:
        """summary.csv, posterior.nc and run.json: this process's share while a forked child
        starts drawing the figures (hlm_cli.outputs.parallel)."""
        with rundir.writing(stage / "posterior.nc"):
            summary_mod.write_posterior(tree, stage / "posterior.nc")
        # the figure helper computes the table meanwhile (it has arviz_stats loaded already)
        # the figure helper computes the table at the default width only
        early = (helper.early_result() if helper is not None else None) or {}
        summ = early.get("summary") if spec.ci == summary_mod.CI_PROB else None
        if summ is None:
            summ = summary_mod.summarize(tree, built.params, ci=spec.ci)
        sens = early.get("sensitivity")
        if sens is None:
            sens = pd.DataFrame(columns=diagnostics.SENSITIVITY_COLUMNS) if lean else diagnostics.sensitivity(tree, built)
        findings = diagnostics.check(tree, summ[summ["kind"] != "group_effect"], built)
        findings += diagnostics.sensitivity_findings(sens)
        ess_note = diagnostics.ess_target_finding(posterior.ess)
        if ess_note is not None:
            findings.append(ess_note)
        findings += [diagnostics.Finding("data", note, "see the note", severity="note") for note in built.design.notes]
        with rundir.writing(stage / "summary.csv"):
            summary_mod.write(summ, stage / "summary.csv")
        with rundir.writing(stage / "sensitivity.csv"):
            summary_mod.write_sensitivity(sens, stage / "sensitivity.csv")
        timings["write"] = time.perf_counter() - t_w
        timings["total"] = time.perf_counter() - t_start
        _write_runinfo(stage / "run.json", spec, prep, posterior, findings, {}, timings)
        done.update(summ=summ, findings=findings)

    plots: dict[str, str] = {}
    with rundir.staged(spec.out, force=spec.force, protect=_protected(spec)) as stage:
        if spec.plots:
            say("report")
            why = _write_report(stage, tree, built, prep.table, spec, parent_first=lambda: write_tables(stage), helper=helper)
            if not done:  # the report failed before its figures started
                write_tables(stage)
            if why:
                _record_report_failure(stage, why)
            plots = _plots_of(stage)
        else:
            write_tables(stage)
    return FitResult(spec, Path(spec.out), done["summ"], done["findings"], built, timings, prep.table, plots, posterior.compile_mode,
                     tree, posterior.ess)


def _names(tree) -> list[str]:
    """Every string in a nested dict/list (the variable names of ParamInfo.to_json())."""
    if isinstance(tree, str):
        return [tree]
    items = tree.values() if isinstance(tree, dict) else tree if isinstance(tree, (list, tuple)) else []
    return [n for x in items for n in _names(x)]


def _protected(spec: FitSpec) -> tuple[Path, ...]:
    """Inputs that ``--force`` must never delete with the directory it replaces."""
    return tuple(Path(p) for p in (spec.data, spec.config_file) if p is not None)


def _plots_of(stage: Path) -> dict[str, str]:
    import json

    try:
        return dict(json.loads((stage / "run.json").read_text()).get("plots") or {})
    except (OSError, ValueError):
        return {}


def _write_report(stage: Path, tree, built, table, spec: FitSpec, parent_first, helper=None) -> str | None:
    """report.html, with ``parent_first`` (the tables) run while its figures are drawn.

    Returns None, or why the page failed: a failure of the page is recorded in run.json and
    never loses the finished fit, while a failure of ``parent_first`` (e.g. a full disk
    while writing posterior.nc) propagates as it would without the report.
    """
    from hlm_cli.errors import HlmError
    from hlm_cli.outputs import report as report_mod

    failed: list[BaseException] = []

    def first() -> None:
        try:
            parent_first()
        except BaseException as err:
            failed.append(err)
            raise

    try:
        report_mod.write_report(stage, tree=tree, built=built, table=table, color_by=spec.color_by, svg=spec.svg,
                                parent_first=first, config=spec.model_dump(mode="json"), helper=helper)
    except HlmError:
        raise
    except Exception as err:  # noqa: BLE001 - the posterior is more valuable than the page
        if failed:
            raise failed[0] from None
        return f"failed: {type(err).__name__}: {err}"
    return None


def _record_report_failure(stage: Path, why: str) -> None:
    from hlm_cli.outputs import runinfo

    runinfo.update(stage / "run.json", report=why)


def _response_terms_json(resp, terms) -> dict | None:
    """cens(), trunc(), weights() as run.json records them (docs/response-terms.md)."""
    if terms is None:
        return None
    out: dict = {}
    if resp.cens is not None:
        out["cens"] = {"column": resp.cens, "y2": resp.cens_y2, "rows": terms.counts(),
                       "definition": "right: P(Y > y); left: P(Y <= y); interval: P(y < Y <= y2) (brms)"}
    if resp.trunc_lb is not None or resp.trunc_ub is not None:
        out["trunc"] = {"lb": resp.trunc_lb, "ub": resp.trunc_ub}
    if resp.weights is not None:
        out["weights"] = {"column": resp.weights, "type": resp.weights_type,
                          "definition": "Var(y_i) = sigma^2 / w_i (lme4)" if resp.weights_type == "precision"
                          else "each row's log-likelihood times w_i (brms, glmmTMB)"}
    return out


def _write_runinfo(path: Path, spec: FitSpec, prep: Prepared, posterior, findings, plots, timings) -> None:
    from hlm_cli.outputs import runinfo

    built = prep.built
    table = prep.table
    design = built.design
    info = {
        "command": spec.command or shlex.join(["hlm", *sys.argv[1:]]),
        "config": spec.model_dump(mode="json"),
        "formula": spec.formula,
        "family": {"name": built.family.name, "link": built.family.link},
        "response": built.response_name,
        **({"response_levels": {str(k): lab for k, lab in enumerate(design.response_levels, start=1)}} if design.response_levels else {}),
        "response_terms": _response_terms_json(prep.formula.response, design.terms),
        "priors": {k: v.to_json() for k, v in built.priors.items()},
        "parameterization": {k: dataclasses.asdict(v) for k, v in built.parameterization.items()},
        # how the sampler's log density sums the data (docs/scale.md): the same model either way
        "likelihood": getattr(built, "likelihood", "rows"),
        "parameters": built.params.to_json(),
        "data": {
            "file": str(Path(spec.data).resolve()),
            "sha256": table.sha256,
            "sep": getattr(table, "sep", None),
            "decimal": getattr(table, "decimal", None),
            "rows_read": table.rows_read,
            "rows_used": table.rows_used,
            "rows_dropped": table.dropped,
            "dropped_by_column": table.dropped_by_column,
            "groups": {g.factor: {"levels": len(g.levels), "min_per_level": int(g.n_obs_per_level.min()), "max_per_level": int(g.n_obs_per_level.max())} for g in design.groups},
            "categorical": list(spec.categorical),
        },
        "sampler": {**spec.sampler.model_dump(mode="json"), "compile_cached": posterior.compile_cached, "compile_mode": posterior.compile_mode, "structure_key": built.structure_key,
                    **({"ess_stop": posterior.ess.to_json(), "draws_kept": posterior.ess.draws} if getattr(posterior, "ess", None) is not None else {})},
        "seed": posterior.seed,
        "timings": {k: round(v, 4) for k, v in timings.items()},
        "diagnostics": {"ok": not any(f.severity == "warning" for f in findings), "findings": [f.to_json() for f in findings]},
        "plots": plots,
        "files": ["summary.csv", "posterior.nc", "run.json", "plots/"],
        "checksums": runinfo.checksums(Path(path).parent),
    }
    from hlm_cli.model import scale

    tree = getattr(posterior, "tree", None)
    if tree is not None and "posterior" in tree.children and not scale.stores_loglik(tree):  # a large run (docs/scale.md)
        info["storage"] = scale.storage_json(tree, design.n)
    if design.smooths:  # s(): the basis of each smooth (hlm_cli.formula.smooths), to reproduce it outside hlm
        info["smooths"] = [sm.to_json() for sm in design.smooths]
    runinfo.write(path, info)
