"""``hlm fit``: parse the options, delegate to the workflow, render the result."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

SAMPLER = "Sampler"
MODEL = "Model"
OUTPUT = "Output"


def fit(
    data: Annotated[Path, typer.Argument(help="CSV file, e.g. sample_data/cell_lines.csv", show_default=False)],
    formula: Annotated[list[str] | None, typer.Option("--formula", "-f", help='lme4 formula, e.g. "logfc ~ 1 + (1|gene) + (1|cell_line)"; also "y | se(sd) ~ ...", cbind(s, f) ~ .... Give it twice or more to fit each into OUT/m1, OUT/m2, ... and compare them with PSIS-LOO into OUT/loo (as hlm loo)', rich_help_panel=MODEL, show_default=False)] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="run directory to create, e.g. results/ko", rich_help_panel=OUTPUT, show_default=False)] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML run config, e.g. configs/cell_lines.toml; flags win over it", show_default=False)] = None,
    family: Annotated[str | None, typer.Option(help="gaussian, t, bernoulli, binomial, poisson, negativebinomial, gamma, beta, lognormal [default: gaussian]", rich_help_panel=MODEL, show_default=False)] = None,
    prior: Annotated[list[str] | None, typer.Option("--prior", help='TERM=Dist(args), repeatable, e.g. --prior "Intercept=Normal(0, 100)" --prior "sigma=HalfNormal(10)" --prior "1|gene=HalfNormal(1)" (group SD); classes: b, sd, cor', rich_help_panel=MODEL, show_default=False)] = None,
    categorical: Annotated[list[str] | None, typer.Option("--categorical", help="treat a numeric column as a factor, e.g. --categorical cell_line (repeatable)", rich_help_panel=MODEL, show_default=False)] = None,
    se: Annotated[str | None, typer.Option("--se", help="column of known standard errors (same as 'y | se(COL) ~ ...'), e.g. --se sigma", rich_help_panel=MODEL, show_default=False)] = None,
    sep: Annotated[str | None, typer.Option("--sep", help="field separator of the data, e.g. --sep ';' or --sep tab [default: ',' for .csv, tab for .tsv/.txt, or what the header shows]", show_default=False)] = None,
    sigma_formula: Annotated[str | None, typer.Option("--sigma-formula", help='model the residual SD (log scale), e.g. --sigma-formula "~ group" for unequal variances (BEST)', rich_help_panel=MODEL, show_default=False)] = None,
    draws: Annotated[int | None, typer.Option(help="posterior draws per chain, e.g. 1000 [default: 1000]", rich_help_panel=SAMPLER, show_default=False)] = None,
    tune: Annotated[int | None, typer.Option(help="warm-up iterations per chain, at least 1, e.g. 1000 [default: 1000]", rich_help_panel=SAMPLER, show_default=False)] = None,
    chains: Annotated[int | None, typer.Option(help="number of chains, 1 to 128, e.g. 4 [default: 4]", rich_help_panel=SAMPLER, show_default=False)] = None,
    cores: Annotated[int | None, typer.Option(help="chains run in parallel on this many cores [default: all]", rich_help_panel=SAMPLER, show_default=False)] = None,
    seed: Annotated[int | None, typer.Option(help="random seed from 0 to 4294967295, e.g. 1 (same seed, same numbers)", rich_help_panel=SAMPLER, show_default=False)] = None,
    target_accept: Annotated[float | None, typer.Option("--target-accept", help="NUTS target acceptance, between 0 and 1, e.g. 0.95 to cure divergences [default: 0.9]", rich_help_panel=SAMPLER, show_default=False)] = None,
    max_treedepth: Annotated[int | None, typer.Option("--max-treedepth", help="NUTS maximum tree depth, 1 to 20, e.g. 12 [default: 10]", rich_help_panel=SAMPLER, show_default=False)] = None,
    sampler: Annotated[str | None, typer.Option(help="nutpie (default), pymc, numpyro or blackjax", rich_help_panel=SAMPLER, show_default=False)] = None,
    parameterization: Annotated[str | None, typer.Option(help="group terms: auto (default), centered, noncentered or zerosum", rich_help_panel=SAMPLER, show_default=False)] = None,
    adaptation: Annotated[str | None, typer.Option(help="nutpie mass matrix: diag (default), draw_diag or low_rank", rich_help_panel=SAMPLER, show_default=False)] = None,
    dropna: Annotated[bool | None, typer.Option("--dropna/--no-dropna", help="drop rows with missing values in model columns (default), or refuse them", show_default=False)] = None,
    prior_predictive: Annotated[bool | None, typer.Option("--prior-predictive", help="also sample the prior predictive (saved in posterior.nc, plots/prior_ppc.png)", show_default=False)] = None,
    force: Annotated[bool | None, typer.Option("--force", help="replace --out if it is an earlier hlm run directory (run.json and hlm's files only; anything else is refused, never deleted)", rich_help_panel=OUTPUT, show_default=False)] = None,
    quiet: Annotated[bool | None, typer.Option("--quiet", "-q", help="print only warnings and errors", rich_help_panel=OUTPUT, show_default=False)] = None,
    strict: Annotated[bool | None, typer.Option("--strict", help="exit with code 3 when diagnostics fail (results are still written)", rich_help_panel=OUTPUT, show_default=False)] = None,
    color_by: Annotated[str | None, typer.Option("--color-by", help="column that colours plots/pred_vs_obs.png, e.g. --color-by Treatment [default: the first predictor]", rich_help_panel=OUTPUT, show_default=False)] = None,
    svg: Annotated[bool | None, typer.Option("--svg", help="also save every figure as SVG beside its PNG", rich_help_panel=OUTPUT, show_default=False)] = None,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="skip the figures under plots/ and report.html (fastest)", rich_help_panel=OUTPUT)] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="do not reuse or store compiled models (~/.cache/hlm, or $HLM_CACHE_DIR)", rich_help_panel=OUTPUT)] = False,
) -> None:
    """Fit a Bayesian mixed model to DATA and write summary.csv, posterior.nc, plots/ and run.json to --out.

    Example: hlm fit sample_data/cell_lines.csv --formula "logfc ~ 1 + (1|gene) + (1|cell_line)" --out results/ko
    """
    import shlex
    import sys

    from hlm_cli.cli import render
    from hlm_cli.spec import load_fit_spec

    formulas = list(formula or [])
    for i, text in enumerate(formulas[1:], start=2):
        if not text.strip():
            from hlm_cli.errors import ConfigError

            raise ConfigError(f"--formula number {i} is empty", hint='give a formula each time, e.g. --formula "logfc ~ 1 + (1|gene)"')
    spec = load_fit_spec(
        config,
        data=data, formula=formulas[0] if formulas else None, out=out, family=family, priors=prior, categorical=categorical, se=se, sep=sep, sigma_formula=sigma_formula,
        draws=draws, tune=tune, chains=chains, cores=cores, seed=seed, target_accept=target_accept,
        max_treedepth=max_treedepth, sampler=sampler, parameterization=parameterization, adaptation=adaptation,
        dropna=dropna, prior_predictive=prior_predictive, force=force, quiet=quiet, strict=strict,
        plots=False if no_plots else None, color_by=color_by, svg=svg, cache=False if no_cache else None,
        command=shlex.join(["hlm", *sys.argv[1:]]) if sys.argv and sys.argv[0].endswith("hlm") else None,
    )
    from hlm_cli.workflows.fit import run_fit

    if len(formulas) > 1:
        _fit_and_compare(spec, formulas)
        return

    stages = {"load": "reading data", "compile": "compiling the model", "sample": "sampling", "predict": "log-likelihood and predictions", "write": "writing results", "prior": "prior predictive", "report": "writing the report"}
    with render.status("fitting", quiet=spec.quiet) as st:
        def progress(stage: str) -> None:
            if st is not None and hasattr(st, "update"):
                st.update(stages.get(stage, stage))

        result = run_fit(spec, on_progress=progress)
    render.fit_result(result)
    raise typer.Exit(result.exit_code)


def _fit_and_compare(spec, formulas: list[str]) -> None:
    """Several --formula: each model into OUT/m1, OUT/m2, ..., then the LOO comparison into OUT/loo."""
    from hlm_cli.cli import loo_render, render
    from hlm_cli.outputs import loo_out, rundir
    from hlm_cli.workflows.fit import run_fit
    from hlm_cli.workflows.loo import compare_runs

    protect = tuple(p for p in (spec.data, spec.config_file) if p is not None)
    rundir.check_out(spec.out, force=spec.force, protect=protect, foreign_of=loo_out.compare_foreign_entries)
    spec.out.mkdir(parents=True, exist_ok=True)
    dirs = []
    codes = []
    for i, f in enumerate(formulas, start=1):
        sub = spec.model_copy(update={"formula": f, "out": spec.out / f"m{i}", "force": True})
        render.info(f"[bold]m{i}[/bold]: {render.escape(f)}", spec.quiet)
        with render.status(f"fitting m{i}", quiet=spec.quiet):
            result = run_fit(sub)
        render.fit_result(result)
        dirs.append(sub.out)
        codes.append(result.exit_code)
    with render.status("comparing with PSIS-LOO", quiet=spec.quiet):
        comparison = compare_runs(dirs, seed=spec.sampler.seed)
    written = loo_out.write(comparison, spec.out / "loo")
    loo_render.result(comparison, out=spec.out / "loo", written=written)
    raise typer.Exit(max(codes))
