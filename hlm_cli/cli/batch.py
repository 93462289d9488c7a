"""``hlm batch``: the options of ``hlm fit`` over many inputs; progress bar and a short report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

SAMPLER = "Sampler"
MODEL = "Model"
OUTPUT = "Output"
BATCH = "Batch"


def batch(
    inputs: Annotated[list[str] | None, typer.Argument(help='CSV files, globs or directories, e.g. "data/*.csv" (quote globs) or data/', show_default=False)] = None,
    formula: Annotated[list[str] | None, typer.Option("--formula", "-f", help='lme4 formula, e.g. "logfc ~ 1 + (1|gene) + (1|cell_line)"; repeat it to fit several models per input (OUT/INPUT/m1, m2, ... and compare.csv)', rich_help_panel=MODEL, show_default=False)] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="batch directory, e.g. results/screens: one run directory per input, batch_summary.csv, batch_status.csv", rich_help_panel=OUTPUT, show_default=False)] = None,
    manifest: Annotated[Path | None, typer.Option("--manifest", help="text file listing inputs, one path or glob per line (relative to the file), e.g. list.txt", rich_help_panel=BATCH, show_default=False)] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML run config, as for hlm fit, e.g. configs/cell_lines.toml; flags win over it", show_default=False)] = None,
    workers: Annotated[int | None, typer.Option(help="worker processes, e.g. 4 [default: all cores]", rich_help_panel=BATCH, show_default=False)] = None,
    scheduler: Annotated[str | None, typer.Option(help="run on a Dask cluster, e.g. tcp://10.0.0.5:8786; --out must be on a filesystem the workers share (docs/batch.md)", rich_help_panel=BATCH, show_default=False)] = None,
    rerun_failed: Annotated[bool, typer.Option("--rerun-failed", help="fit again the inputs whose last attempt failed (a re-run skips them otherwise)", rich_help_panel=BATCH)] = False,
    force: Annotated[bool, typer.Option("--force", help="fit every input again, even those already done", rich_help_panel=BATCH)] = False,
    no_compare: Annotated[bool, typer.Option("--no-compare", help="with several --formula, skip the per-input LOO comparison (compare.csv)", rich_help_panel=BATCH)] = False,
    family: Annotated[str | None, typer.Option(help="gaussian, t, bernoulli, binomial, poisson, negativebinomial, gamma, beta, lognormal [default: gaussian]", rich_help_panel=MODEL, show_default=False)] = None,
    prior: Annotated[list[str] | None, typer.Option("--prior", help='TERM=Dist(args), repeatable, e.g. --prior "1|gene=HalfNormal(1)"', rich_help_panel=MODEL, show_default=False)] = None,
    categorical: Annotated[list[str] | None, typer.Option("--categorical", help="treat a numeric column as a factor, e.g. --categorical cell_line (repeatable)", rich_help_panel=MODEL, show_default=False)] = None,
    se: Annotated[str | None, typer.Option("--se", help="column of known standard errors, e.g. --se sigma", rich_help_panel=MODEL, show_default=False)] = None,
    sep: Annotated[str | None, typer.Option("--sep", help="field separator of the data, e.g. --sep ';' or --sep tab [default: ',' for .csv, tab for .tsv/.txt, or what the header shows]", show_default=False)] = None,
    draws: Annotated[int | None, typer.Option(help="posterior draws per chain, e.g. 1000 [default: 1000]", rich_help_panel=SAMPLER, show_default=False)] = None,
    tune: Annotated[int | None, typer.Option(help="warm-up iterations per chain, at least 1, e.g. 1000 [default: 1000]", rich_help_panel=SAMPLER, show_default=False)] = None,
    chains: Annotated[int | None, typer.Option(help="number of chains, 1 to 128, e.g. 4 [default: 4]", rich_help_panel=SAMPLER, show_default=False)] = None,
    cores: Annotated[int | None, typer.Option(help="threads per fit, e.g. 2 [default: 1 with several workers, else all]", rich_help_panel=SAMPLER, show_default=False)] = None,
    seed: Annotated[int | None, typer.Option(help="random seed of every input, 0 to 4294967295, e.g. 1 (same seed, same numbers)", rich_help_panel=SAMPLER, show_default=False)] = None,
    target_accept: Annotated[float | None, typer.Option("--target-accept", help="NUTS target acceptance, e.g. 0.95 [default: 0.9]", rich_help_panel=SAMPLER, show_default=False)] = None,
    max_treedepth: Annotated[int | None, typer.Option("--max-treedepth", help="NUTS maximum tree depth, 1 to 20, e.g. 12 [default: 10]", rich_help_panel=SAMPLER, show_default=False)] = None,
    sampler: Annotated[str | None, typer.Option(help="nutpie (default), pymc, numpyro or blackjax", rich_help_panel=SAMPLER, show_default=False)] = None,
    parameterization: Annotated[str | None, typer.Option(help="group terms: auto (default), centered, noncentered or zerosum", rich_help_panel=SAMPLER, show_default=False)] = None,
    adaptation: Annotated[str | None, typer.Option(help="nutpie mass matrix: diag (default), draw_diag or low_rank", rich_help_panel=SAMPLER, show_default=False)] = None,
    dropna: Annotated[bool | None, typer.Option("--dropna/--no-dropna", help="drop rows with missing values in model columns (default), or refuse them", show_default=False)] = None,
    prior_predictive: Annotated[bool | None, typer.Option("--prior-predictive", help="also sample the prior predictive of every input", show_default=False)] = None,
    quiet: Annotated[bool | None, typer.Option("--quiet", "-q", help="no progress bar; print only the failures", rich_help_panel=OUTPUT, show_default=False)] = None,
    strict: Annotated[bool | None, typer.Option("--strict", help="count inputs with diagnostics warnings as failed in the exit code", rich_help_panel=OUTPUT, show_default=False)] = None,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="skip the figures under each INPUT/plots/ (faster)", rich_help_panel=OUTPUT)] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="do not reuse or store compiled models (~/.cache/hlm)", rich_help_panel=OUTPUT)] = False,
) -> None:
    """Fit one model (or several) to every input file; resumable, failures isolated.

    Writes OUT/INPUT/ (the hlm fit run directory of each input), OUT/batch_summary.csv and
    OUT/batch_status.csv. Run the same command again to finish an interrupted batch.
    Exit code: 0 all inputs fitted, 4 some failed, 1 none fitted.

    Example: hlm batch "data/*.csv" --formula "logfc ~ 1 + (1|gene) + (1|cell_line)" --out results/screens
    """
    import shlex

    from hlm_cli.errors import ConfigError, UsageError
    from hlm_cli.spec import load_fit_spec
    from hlm_cli.workflows.batch import BatchSpec, run_batch

    if out is None:
        raise ConfigError("hlm batch needs --out", hint="e.g. --out results/batch (one run directory per input goes there)")
    if not inputs and manifest is None:
        raise ConfigError("no input files given", hint='e.g. hlm batch "data/*.csv" --formula ... --out results/batch, or --manifest list.txt')
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be >= 1 (got {workers})", hint="--workers takes a whole number >= 1, e.g. --workers 4 (leave it out to use all cores)")
    if scheduler is not None and not scheduler.strip():
        raise ConfigError("--scheduler is empty", hint="give the Dask scheduler's address, e.g. --scheduler tcp://10.0.0.5:8786, or leave it out to run here")
    command = shlex.join(["hlm", *sys.argv[1:]]) if sys.argv and sys.argv[0].endswith("hlm") else None
    flags = dict(
        family=family, categorical=categorical, se=se, sep=sep, draws=draws, tune=tune, chains=chains,
        cores=cores, seed=seed, target_accept=target_accept, max_treedepth=max_treedepth, sampler=sampler,
        parameterization=parameterization, adaptation=adaptation, dropna=dropna,
        prior_predictive=prior_predictive, strict=strict, plots=False if no_plots else None,
        cache=False if no_cache else None,
    )
    formulas = list(dict.fromkeys(formula)) if formula else [None]
    # data and out differ per input; these placeholders only let the shared settings validate
    specs = [load_fit_spec(config, data=Path("INPUT"), out=out / "INPUT", formula=f, priors=list(prior or []), **flags)
             for f in formulas]
    spec = BatchSpec(
        inputs=list(inputs or []), out=out, specs=specs, manifest=manifest, workers=workers,
        scheduler=scheduler, rerun_failed=rerun_failed, force=force, strict=bool(specs[0].strict),
        compare=not no_compare, command=command,
    )
    show = not (quiet or specs[0].quiet)
    try:
        with _Progress(enabled=show) as bar:
            result = run_batch(spec, on_progress=bar.update)
    except KeyboardInterrupt:
        from hlm_cli.cli import render

        render.error("interrupted; finished inputs are kept", f"run the same command again to fit the rest (see {out}/batch_status.csv)")
        raise
    _report(result, quiet=not show)
    raise typer.Exit(result.exit_code)


class _Progress:
    """A Rich progress bar on stderr (done / failed / running, ETA); in logs, a line per fit."""

    def __init__(self, enabled: bool) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)
        self.log = enabled and not self.console.is_terminal  # e.g. a SLURM job's log file
        self.enabled = enabled and self.console.is_terminal
        self.bar = None
        self.task = None
        self.finished = 0

    def __enter__(self):
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                SpinnerColumn(), TextColumn("fitting"), BarColumn(), MofNCompleteColumn(),
                TextColumn("[green]{task.fields[ok]} ok[/] [yellow]{task.fields[warn]} warn[/] [red]{task.fields[failed]} failed[/] {task.fields[running]} running"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=self.console, transient=False,
            )
            self.bar.__enter__()
        return self

    def update(self, p) -> None:
        if self.log and p.done + p.failed > self.finished:
            self.finished = p.done + p.failed
            print(f"[{self.finished}/{p.total}] {p.last}", file=sys.stderr, flush=True)
        if self.bar is None:
            return
        fields = dict(ok=p.done - p.warnings, warn=p.warnings, failed=p.failed, running=p.running)
        if self.task is None:
            if p.skipped:
                self.console.print(f"skipping {p.skipped} finished fit(s); fitting {p.total} with {p.workers or '?'} worker(s)")
            self.task = self.bar.add_task("fitting", total=p.total or None, **fields)
        self.bar.update(self.task, completed=p.done + p.failed, **fields)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def _report(result, quiet: bool) -> None:
    from rich.console import Console

    from hlm_cli.cli import render

    out = Console(highlight=False, soft_wrap=True)
    status = result.status
    failed = status[status["status"] == "failed"]
    n = len(status)
    if not quiet:
        warn = result.count("diagnostics-warning")
        pending = result.count("pending")
        extra = f", {pending} not finished" if pending else ""
        out.print(
            f"Fitted {result.count('ok') + warn} of {n} ({warn} with diagnostics warnings, {len(failed)} failed{extra}); "
            f"{result.fitted} run now, {result.skipped} already done; {result.wall_s:.1f} s"
            + (f" with {result.workers} worker(s)" if result.workers else "")
        )
    for _, row in failed.iterrows():
        print(f"failed: {row['run_dir']} ({row['input']}): {row['error']}", file=sys.stderr)
    if not quiet:
        report = result.summary_path.parent / "batch_report.html"
        extra = f" and {report}" if report.exists() else ""
        out.print(f"Wrote {result.summary_path}, {result.status_path}{extra}")
    if n and result.succeeded == 0 and len(failed):
        first = failed.iloc[0]
        render.error(f"no input was fitted ({len(failed)} failed); first: {first['error']}",
                     first["hint"] or f"see {result.status_path}")


def register(app: typer.Typer) -> None:
    app.command("batch", no_args_is_help=True)(batch)
