"""``hlm sbc``: options -> SbcSpec -> run_sbc -> progress line and summary table."""

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
    Config,
    Family,
    HuFormula,
    Levels,
    Link,
    MaxTreedepth,
    NoCache,
    Parameterization,
    PriorPreset,
    Priors,
    Reference,
    Sampler,
    Se,
    Seed,
    Sep,
    SigmaFormula,
    TargetAccept,
    ZiFormula,
)

SBC = "SBC"
SBC_DRAWS = 500  # small sampler defaults: SBC refits hundreds of times
SBC_TUNE = 500
SBC_CHAINS = 2


def sbc(
    data: Annotated[Path, typer.Argument(help="CSV file whose design is kept (e.g. sample_data/cell_lines.csv), or the run directory of an hlm fit (its settings are reused)", show_default=False)],
    formula: Annotated[str | None, typer.Option("--formula", "-f", help='lme4 formula, e.g. "logfc ~ 1 + (1|gene) + (1|cell_line)" (not with a run directory)', rich_help_panel=MODEL, show_default=False)] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="directory for sbc_ranks.csv, sbc_summary.csv, sbc_ecdf.png, sbc_report.html", rich_help_panel=OUTPUT, show_default=False)] = None,
    sims: Annotated[int, typer.Option("--sims", help="number of simulations, e.g. 200", rich_help_panel=SBC)] = 200,
    simulate_prior: Annotated[list[str] | None, typer.Option("--simulate-prior", help='TERM=Dist(args), repeatable: a prior used by the simulator only, e.g. --simulate-prior "sigma=HalfNormal(4)" (a deliberate mismatch SBC should detect)', rich_help_panel=SBC, show_default=False)] = None,
    workers: Annotated[int | None, typer.Option(help="worker processes, e.g. 2 [default: all cores]", rich_help_panel=SBC, show_default=False)] = None,
    alpha: Annotated[float, typer.Option(help="family-wise level of the uniformity test over all quantities", rich_help_panel=SBC)] = 0.05,
    force: Annotated[bool, typer.Option("--force", help="start again in an --out that holds an SBC run with other settings", rich_help_panel=OUTPUT)] = False,
    config: Config = None,
    family: Family = None,
    link: Link = None,
    levels: Levels = None,
    zi_formula: ZiFormula = None,
    hu_formula: HuFormula = None,
    prior: Priors = None,
    prior_preset: PriorPreset = None,
    reference: Reference = None,
    categorical: Categorical = None,
    se: Se = None,
    sep: Sep = None,
    sigma_formula: SigmaFormula = None,
    draws: Annotated[int | None, typer.Option(help=f"posterior draws per chain of each refit [default: {SBC_DRAWS}]", rich_help_panel=SAMPLER, show_default=False)] = None,
    tune: Annotated[int | None, typer.Option(help=f"warm-up iterations per chain of each refit [default: {SBC_TUNE}]", rich_help_panel=SAMPLER, show_default=False)] = None,
    chains: Annotated[int | None, typer.Option(help=f"chains per refit [default: {SBC_CHAINS}]", rich_help_panel=SAMPLER, show_default=False)] = None,
    seed: Seed = None,
    target_accept: TargetAccept = None,
    max_treedepth: MaxTreedepth = None,
    sampler: Sampler = None,
    parameterization: Parameterization = None,
    adaptation: Adaptation = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress line", rich_help_panel=OUTPUT)] = False,
    no_cache: NoCache = False,
) -> None:
    """Simulation-based calibration: draw parameters from the priors, simulate responses on DATA's
    design, refit each one and check that the ranks of the true values are uniform.

    Exit code: 0 every quantity passes, 3 some quantity fails (see sbc_summary.csv).

    Example: hlm sbc sample_data/cell_lines.csv --formula "logfc ~ 1 + (1|gene) + (1|cell_line)" --sims 200 --out results/sbc
    """
    from hlm_cli.cli import render
    from hlm_cli.cli.options import command_line
    from hlm_cli.workflows.sbc import SbcSpec, check_options, default_out, fit_spec_for_sbc, run_sbc

    out = default_out(data, out)
    check_options(data=data, out=out, formula=formula, sims=sims, workers=workers, alpha=alpha, config=config)
    parallel = (workers or 2) > 1
    fit_spec = fit_spec_for_sbc(
        data, config, out=out, formula=formula, family=family, priors=prior, prior_preset=prior_preset,
        reference=reference or None, categorical=categorical, se=se, sep=sep, sigma_formula=sigma_formula,
        link=link, levels=levels or None, zi_formula=zi_formula, hu_formula=hu_formula,
        draws=draws, tune=tune, chains=chains, seed=seed, target_accept=target_accept, max_treedepth=max_treedepth,
        sampler=sampler, parameterization=parameterization, adaptation=adaptation,
        cache=False if no_cache else None, defaults={"draws": SBC_DRAWS, "tune": SBC_TUNE, "chains": SBC_CHAINS},
        cores=1 if parallel else None,
    )
    simulate = _simulate_priors(simulate_prior)
    spec = SbcSpec(fit=fit_spec, out=out, sims=sims, simulate_priors=simulate, workers=workers, force=force,
                   alpha=alpha, command=command_line())
    try:
        with render.status("SBC", quiet=quiet) as st:
            def progress(p) -> None:
                if st is not None and hasattr(st, "update"):
                    st.update(render.sbc_progress_text(p))

            result = run_sbc(spec, on_progress=progress)
    except KeyboardInterrupt:
        render.error("interrupted; finished simulations are kept", f"run the same command again to fit the rest (in {out}/sims)")
        raise
    render.sbc_result(result)
    if Path(data).is_dir() and Path(out).resolve() == (Path(data) / "sbc").resolve():
        render.info(f"run 'hlm report {data}' to add the calibration to its report.html")
    raise typer.Exit(result.exit_code)


def _simulate_priors(texts: list[str] | None) -> dict[str, str]:
    from hlm_cli.errors import PriorError

    out: dict[str, str] = {}
    for text in texts or []:
        term, sep, dist = text.partition("=")
        if not sep or not term.strip() or not dist.strip():
            raise PriorError(f"--simulate-prior {text!r} is not TERM=Dist(args)", hint='e.g. --simulate-prior "sigma=HalfNormal(4)"')
        out[term.strip()] = dist.strip()
    return out
