"""``hlm fit``: parse the options, delegate to the workflow, render the result."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hlm_cli.cli.options import (
    MODEL,
    OUTPUT,
    SAMPLER,
    Adaptation,
    Categorical,
    Chains,
    Ci,
    Config,
    Draws,
    Dropna,
    Ess,
    EssAll,
    Family,
    HuFormula,
    Levels,
    Link,
    MaxTreedepth,
    NoCache,
    NoPlots,
    Parameterization,
    PriorPredictive,
    PriorPreset,
    Priors,
    Reference,
    Sampler,
    Se,
    Seed,
    Sep,
    SigmaFormula,
    TargetAccept,
    Tune,
    ZiFormula,
)

STAGES = {"load": "reading data", "compile": "compiling the model", "sample": "sampling", "predict": "log-likelihood and predictions",
          "write": "writing results", "prior": "prior predictive", "report": "writing the report"}


def fit(
    data: Annotated[Path, typer.Argument(help="CSV file, e.g. sample_data/cell_lines.csv", show_default=False)],
    formula: Annotated[list[str] | None, typer.Option("--formula", "-f", help='lme4 formula, e.g. "logfc ~ 1 + (1|gene) + (1|cell_line)"; also "y | se(sd) ~ ...", cbind(s, f) ~ .... Give it twice or more to fit each into OUT/m1, OUT/m2, ... and compare them with PSIS-LOO into OUT/loo (as hlm loo)', rich_help_panel=MODEL, show_default=False)] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="run directory to create, e.g. results/ko", rich_help_panel=OUTPUT, show_default=False)] = None,
    config: Config = None,
    family: Family = None,
    prior: Priors = None,
    prior_preset: PriorPreset = None,
    reference: Reference = None,
    categorical: Categorical = None,
    se: Se = None,
    link: Link = None,
    levels: Levels = None,
    sep: Sep = None,
    sigma_formula: SigmaFormula = None,
    zi_formula: ZiFormula = None,
    hu_formula: HuFormula = None,
    draws: Draws = None,
    tune: Tune = None,
    chains: Chains = None,
    cores: Annotated[int | None, typer.Option(help="chains run in parallel on this many cores [default: all]", rich_help_panel=SAMPLER, show_default=False)] = None,
    seed: Seed = None,
    target_accept: TargetAccept = None,
    max_treedepth: MaxTreedepth = None,
    sampler: Sampler = None,
    parameterization: Parameterization = None,
    adaptation: Adaptation = None,
    ess: Ess = None,
    ess_all: EssAll = None,
    dropna: Dropna = None,
    prior_predictive: PriorPredictive = None,
    force: Annotated[bool | None, typer.Option("--force", help="replace --out if it is an earlier hlm run directory (run.json and hlm's files only; anything else is refused, never deleted)", rich_help_panel=OUTPUT, show_default=False)] = None,
    quiet: Annotated[bool | None, typer.Option("--quiet", "-q", help="print only warnings and errors", rich_help_panel=OUTPUT, show_default=False)] = None,
    strict: Annotated[bool | None, typer.Option("--strict", help="exit with code 3 when diagnostics fail (results are still written)", rich_help_panel=OUTPUT, show_default=False)] = None,
    color_by: Annotated[str | None, typer.Option("--color-by", help="column that colours plots/pred_vs_obs.png, e.g. --color-by Treatment [default: the first predictor]", rich_help_panel=OUTPUT, show_default=False)] = None,
    svg: Annotated[bool | None, typer.Option("--svg", help="also save every figure as SVG beside its PNG", rich_help_panel=OUTPUT, show_default=False)] = None,
    ci: Ci = None,
    no_plots: NoPlots = False,
    no_cache: NoCache = False,
) -> None:
    """Fit a Bayesian mixed model to DATA and write summary.csv, posterior.nc, plots/ and run.json to --out.

    Example: hlm fit sample_data/cell_lines.csv --formula "logfc ~ 1 + (1|gene) + (1|cell_line)" --out results/ko
    """
    from hlm_cli.cli import render
    from hlm_cli.cli.options import command_line
    from hlm_cli.spec import formula_list, load_fit_spec

    formulas = formula_list(formula)
    spec = load_fit_spec(
        config,
        data=data, formula=formulas[0] if formulas else None, out=out, family=family, priors=prior, prior_preset=prior_preset, reference=reference or None, categorical=categorical, se=se, link=link, levels=levels or None, zi_formula=zi_formula, hu_formula=hu_formula, sep=sep, sigma_formula=sigma_formula,
        draws=draws, tune=tune, chains=chains, cores=cores, seed=seed, target_accept=target_accept,
        max_treedepth=max_treedepth, sampler=sampler, parameterization=parameterization, adaptation=adaptation, ess=ess, ess_all=ess_all,
        dropna=dropna, prior_predictive=prior_predictive, force=force, quiet=quiet, strict=strict,
        plots=False if no_plots else None, color_by=color_by, svg=svg, ci=ci, cache=False if no_cache else None,
        command=command_line(),
    )
    if len(formulas) > 1:
        _fit_and_compare(spec, formulas)
        return

    from hlm_cli.workflows.fit import run_fit

    with render.status("fitting", quiet=spec.quiet) as st:
        def progress(stage: str) -> None:
            if st is not None and hasattr(st, "update"):
                st.update(STAGES.get(stage, stage))

        result = run_fit(spec, on_progress=progress, on_draws=st.on_draws)
    render.fit_result(result)
    raise typer.Exit(result.exit_code)


def _fit_and_compare(spec, formulas: list[str]) -> None:
    """Several --formula: each model into OUT/m1, OUT/m2, ..., then the LOO comparison into OUT/loo."""
    from hlm_cli.cli import loo_render, render
    from hlm_cli.workflows import fit_compare
    from hlm_cli.workflows.fit import run_fit

    codes = []
    for i, sub in enumerate(fit_compare.prepare_models(spec, formulas), start=1):
        render.info(f"[bold]m{i}[/bold]: {render.escape(sub.formula)}", spec.quiet)
        with render.status(f"fitting m{i}", quiet=spec.quiet) as st:
            result = run_fit(sub, on_draws=st.on_draws)
        render.fit_result(result)
        codes.append(result.exit_code)
    with render.status("comparing with PSIS-LOO", quiet=spec.quiet):
        comparison, written = fit_compare.compare_models(spec, len(formulas))
    loo_render.result(comparison, out=fit_compare.loo_dir(spec), written=written)
    raise typer.Exit(max(codes))
