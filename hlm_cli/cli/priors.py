"""``hlm priors``: every prior a fit would use, by the names --prior accepts (brms's get_prior)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hlm_cli.cli.options import (
    Categorical,
    Config,
    Family,
    HuFormula,
    Levels,
    Link,
    PriorPreset,
    Priors,
    Reference,
    Se,
    Sep,
    SigmaFormula,
    ZiFormula,
)


def priors(
    data: Annotated[Path, typer.Argument(help="data file, e.g. sample_data/sleepstudy.csv", show_default=False)],
    formula: Annotated[str | None, typer.Option("--formula", "-f", help='lme4 formula, e.g. "Reaction ~ Days + (Days|Subject)"', show_default=False)] = None,
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
) -> None:
    """Show every prior 'hlm fit' would use for this model, without sampling (brms's get_prior).

    The 'set with' column is the name to give --prior, e.g. --prior "1|Subject=HalfNormal(30)".

    Example: hlm priors sample_data/sleepstudy.csv --formula "Reaction ~ Days + (Days|Subject)"
    """
    from hlm_cli.cli import render
    from hlm_cli.spec import load_fit_spec
    from hlm_cli.workflows.priors import run_priors

    spec = load_fit_spec(config, data=data, formula=formula, out=Path("hlm-priors-writes-nothing"), family=family,
                         priors=prior, prior_preset=prior_preset, reference=reference or None, categorical=categorical,
                         se=se, link=link, levels=levels or None, zi_formula=zi_formula, hu_formula=hu_formula, sep=sep, sigma_formula=sigma_formula)
    render.priors_result(run_priors(spec))
