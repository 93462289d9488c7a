"""``hlm batch``: the options of ``hlm fit`` over many inputs -> BatchSpec -> run_batch -> progress bar and report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hlm_cli.cli.options import (
    BATCH,
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
    TargetAccept,
    Tune,
    ZiFormula,
)


def batch(
    inputs: Annotated[list[str] | None, typer.Argument(help='CSV files, globs or directories, e.g. "data/*.csv" (quote globs) or data/', show_default=False)] = None,
    formula: Annotated[list[str] | None, typer.Option("--formula", "-f", help='lme4 formula, e.g. "logfc ~ 1 + (1|gene) + (1|cell_line)"; repeat it to fit several models per input (OUT/INPUT/m1, m2, ... and compare.csv)', rich_help_panel=MODEL, show_default=False)] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="batch directory, e.g. results/screens: one run directory per input, batch_summary.csv, batch_status.csv", rich_help_panel=OUTPUT, show_default=False)] = None,
    manifest: Annotated[Path | None, typer.Option("--manifest", help="text file listing inputs, one path or glob per line (relative to the file), e.g. list.txt", rich_help_panel=BATCH, show_default=False)] = None,
    config: Config = None,
    workers: Annotated[int | None, typer.Option(help="worker processes, e.g. 4 [default: all cores]", rich_help_panel=BATCH, show_default=False)] = None,
    scheduler: Annotated[str | None, typer.Option(help="run on a Dask cluster, e.g. tcp://10.0.0.5:8786; --out must be on a filesystem the workers share (docs/batch.md)", rich_help_panel=BATCH, show_default=False)] = None,
    rerun_failed: Annotated[bool, typer.Option("--rerun-failed", help="fit again the inputs whose last attempt failed (a re-run skips them otherwise)", rich_help_panel=BATCH)] = False,
    force: Annotated[bool, typer.Option("--force", help="fit every input again, even those already done", rich_help_panel=BATCH)] = False,
    no_compare: Annotated[bool, typer.Option("--no-compare", help="with several --formula, skip the per-input LOO comparison (compare.csv)", rich_help_panel=BATCH)] = False,
    share: Annotated[bool, typer.Option("--share", help="share information across inputs (empirical Bayes, limma-style): fit all, learn priors for sigma, the group SDs and the slopes from them (OUT/shared_priors.json), refit all with those priors", rich_help_panel=BATCH)] = False,
    by: Annotated[str | None, typer.Option("--by", help="split ONE table by this feature column and fit each feature, e.g. --by gene (OUT/features.csv with lfsr, OUT/varpart.csv; docs/screens.md)", rich_help_panel=BATCH, show_default=False)] = None,
    lfsr: Annotated[float | None, typer.Option("--lfsr", help="with --by: select the features whose local false sign rate is below this, e.g. --lfsr 0.05 (features_selected.csv, with the estimated false sign rate among them)", rich_help_panel=BATCH, show_default=False)] = None,
    full_features: Annotated[bool, typer.Option("--full-features", help="with --by: write each feature's full run directory (figures, report.html, log-likelihood for hlm loo, sensitivity.csv); off by default: they take most of a small feature's time", rich_help_panel=BATCH)] = False,
    ci: Ci = None,
    family: Family = None,
    link: Link = None,
    zi_formula: ZiFormula = None,
    hu_formula: HuFormula = None,
    prior: Priors = None,
    prior_preset: PriorPreset = None,
    reference: Reference = None,
    categorical: Categorical = None,
    se: Se = None,
    levels: Levels = None,
    sep: Sep = None,
    draws: Draws = None,
    tune: Tune = None,
    chains: Chains = None,
    cores: Annotated[int | None, typer.Option(help="threads per fit, e.g. 2 [default: 1 with several workers, else all]", rich_help_panel=SAMPLER, show_default=False)] = None,
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
    quiet: Annotated[bool | None, typer.Option("--quiet", "-q", help="no progress bar; print only the failures", rich_help_panel=OUTPUT, show_default=False)] = None,
    strict: Annotated[bool | None, typer.Option("--strict", help="count inputs with diagnostics warnings as failed in the exit code", rich_help_panel=OUTPUT, show_default=False)] = None,
    no_plots: NoPlots = False,
    no_cache: NoCache = False,
) -> None:
    """Fit one model (or several) to every input file; resumable, failures isolated.

    Writes OUT/INPUT/ (the hlm fit run directory of each input), OUT/batch_summary.csv and
    OUT/batch_status.csv. Run the same command again to finish an interrupted batch.
    Exit code: 0 all inputs fitted, 4 some failed, 1 none fitted.

    Example: hlm batch "data/*.csv" --formula "logfc ~ 1 + (1|gene) + (1|cell_line)" --out results/screens
    """
    from hlm_cli.cli import render
    from hlm_cli.cli.options import command_line
    from hlm_cli.spec import check_batch_options, load_batch_specs
    from hlm_cli.workflows.batch import BatchSpec, run_batch
    from hlm_cli.workflows.screen import check_screen_options

    check_batch_options(out=out, inputs=inputs, manifest=manifest, workers=workers, scheduler=scheduler)
    check_screen_options(by=by, lfsr=lfsr, full_features=full_features, inputs=inputs, manifest=manifest)
    command = command_line()
    specs = load_batch_specs(
        config, out=out, formulas=formula, priors=prior, prior_preset=prior_preset, reference=reference or None,
        family=family, categorical=categorical, se=se, link=link, levels=levels or None, zi_formula=zi_formula, hu_formula=hu_formula, sep=sep, draws=draws, tune=tune, chains=chains,
        cores=cores, seed=seed, target_accept=target_accept, max_treedepth=max_treedepth, sampler=sampler,
        parameterization=parameterization, adaptation=adaptation, ess=ess, ess_all=ess_all, dropna=dropna,
        prior_predictive=prior_predictive, strict=strict, plots=False if no_plots else None,
        cache=False if no_cache else None, **({"ci": ci} if ci is not None else {}),
    )
    spec = BatchSpec(
        inputs=list(inputs or []), out=out, specs=specs, manifest=manifest, workers=workers,
        scheduler=scheduler, rerun_failed=rerun_failed, force=force, strict=bool(specs[0].strict),
        compare=not no_compare, command=command, share=share,
    )
    show = not (quiet or specs[0].quiet)
    try:
        with render.BatchProgress(enabled=show) as bar:
            stage = bar.stage if show else None
            if by is not None:
                from hlm_cli.workflows.screen import run_screen

                screen = run_screen(spec, by, lfsr=lfsr, full=full_features, on_progress=bar.update, on_stage=stage)
                result = screen.batch
                shared = screen.shared
            elif share:
                from hlm_cli.workflows.share import run_shared_batch

                shared = run_shared_batch(spec, on_progress=bar.update, on_stage=stage)
                result = shared.result
            else:
                shared = None
                result = run_batch(spec, on_progress=bar.update)
    except KeyboardInterrupt:
        render.error("interrupted; finished inputs are kept", f"run the same command again to fit the rest (see {out}/batch_status.csv)")
        raise
    if shared is not None:
        render.shared_priors(shared, quiet=not show)
    render.batch_result(result, quiet=not show)
    if by is not None:
        from hlm_cli.workflows.screen import screen_lines

        for line in screen_lines(screen):
            print(line)
    raise typer.Exit(result.exit_code)
