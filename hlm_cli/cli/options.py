"""Options shared by ``hlm fit`` and ``hlm batch``: one definition each.

Each name is a typer ``Annotated`` alias, so a command declares ``draws: Draws = None`` and
both commands show the same option, default and help. Options whose meaning differs between
the commands (``--formula``, ``--out``, ``--cores``, ``--force``, ``--quiet``, ``--strict``)
are declared by the command itself. Only typer is imported here: ``hlm --help`` stays instant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

SAMPLER = "Sampler"
MODEL = "Model"
OUTPUT = "Output"
BATCH = "Batch"

# the names of hlm_cli.formula.families.NAMES (tests/e2e/test_fit_cli.py keeps them in step)
FAMILY_HELP = ("gaussian, t, bernoulli, binomial, poisson, negativebinomial, gamma, beta, lognormal, zero_inflated_poisson, "
               "zero_inflated_negbinomial, hurdle_poisson, hurdle_negbinomial, beta_binomial, weibull, exponential, "
               "cumulative [default: gaussian]")

Config = Annotated[Path | None, typer.Option(
    "--config", help="TOML run config, e.g. configs/cell_lines.toml; flags win over it", show_default=False)]
Sep = Annotated[str | None, typer.Option(
    "--sep", help="field separator of the data, e.g. --sep ';' or --sep tab [default: ',' for .csv, tab for .tsv/.txt, "
    "or what the header shows]", show_default=False)]

# -- model
Family = Annotated[str | None, typer.Option(help=FAMILY_HELP, rich_help_panel=MODEL, show_default=False)]
Link = Annotated[str | None, typer.Option(
    "--link", help="the family's link, e.g. --link probit (bernoulli, binomial, beta, beta_binomial: logit, probit, cloglog; "
    "counts, gamma, weibull, exponential: log, softplus; gaussian, t: identity, log; cumulative: logit, probit) [default: the family's own]",
    rich_help_panel=MODEL, show_default=False)]
ZiFormula = Annotated[str | None, typer.Option(
    "--zi-formula", help='model the zero-inflation probability (logit scale) of a zero_inflated_* family, e.g. --zi-formula "~ mined"',
    rich_help_panel=MODEL, show_default=False)]
HuFormula = Annotated[str | None, typer.Option(
    "--hu-formula", help='model the hurdle probability (logit scale) of a hurdle_* family, e.g. --hu-formula "~ mined"',
    rich_help_panel=MODEL, show_default=False)]
SigmaFormula = Annotated[str | None, typer.Option(
    "--sigma-formula", help='model the residual SD (log scale), e.g. --sigma-formula "~ group" for unequal variances (BEST)',
    rich_help_panel=MODEL, show_default=False)]
Priors = Annotated[list[str] | None, typer.Option(
    "--prior", help='TERM=Dist(args), repeatable, e.g. --prior "Intercept=Normal(0, 100)" --prior "sigma=HalfNormal(10)" '
    '--prior "1|gene=HalfNormal(1)" (group SD); classes: b, sd, cor', rich_help_panel=MODEL, show_default=False)]
PriorPreset = Annotated[str | None, typer.Option(
    "--prior-preset", help="whose default priors: hlm (default), brms (flat b, student_t(3, median(y), mad(y)) "
    "intercept, half student_t(3, 0, mad(y)) SDs and sigma) or rstanarm (autoscaled normals); --prior overrides them",
    rich_help_panel=MODEL, show_default=False)]
Reference = Annotated[list[str] | None, typer.Option(
    "--reference", help="a factor's reference level, COLUMN=LEVEL, e.g. --reference Genotype=wt (repeatable); "
    "the coefficients are then differences from it", rich_help_panel=MODEL, show_default=False)]
Categorical = Annotated[list[str] | None, typer.Option(
    "--categorical", help="treat a numeric column as a factor, e.g. --categorical cell_line (repeatable)",
    rich_help_panel=MODEL, show_default=False)]
Levels = Annotated[list[str] | None, typer.Option(
    "--levels", help="an ordinal response's levels, lowest first, COLUMN=LEVEL,LEVEL,..., e.g. --levels rating=low,mid,high "
    "(numbers sort numerically without it)", rich_help_panel=MODEL, show_default=False)]
Se = Annotated[str | None, typer.Option(
    "--se", help="column of known standard errors (same as 'y | se(COL) ~ ...'), e.g. --se sigma",
    rich_help_panel=MODEL, show_default=False)]

# -- sampler
Draws = Annotated[int | None, typer.Option(
    help="posterior draws per chain, e.g. 1000 [default: 1000]", rich_help_panel=SAMPLER, show_default=False)]
Tune = Annotated[int | None, typer.Option(
    help="warm-up iterations per chain, at least 1, e.g. 1000 [default: 1000]", rich_help_panel=SAMPLER, show_default=False)]
Chains = Annotated[int | None, typer.Option(
    help="number of chains, 1 to 128, e.g. 4 [default: 4]", rich_help_panel=SAMPLER, show_default=False)]
Seed = Annotated[int | None, typer.Option(
    help="random seed from 0 to 4294967295, e.g. 1 (same seed, same numbers)", rich_help_panel=SAMPLER, show_default=False)]
TargetAccept = Annotated[float | None, typer.Option(
    "--target-accept", help="NUTS target acceptance, between 0 and 1, e.g. 0.95 to cure divergences [default: 0.9]",
    rich_help_panel=SAMPLER, show_default=False)]
MaxTreedepth = Annotated[int | None, typer.Option(
    "--max-treedepth", help="NUTS maximum tree depth, 1 to 20, e.g. 12 [default: 10]", rich_help_panel=SAMPLER,
    show_default=False)]
Sampler = Annotated[str | None, typer.Option(
    help="nutpie (default), pymc, numpyro or blackjax", rich_help_panel=SAMPLER, show_default=False)]
Parameterization = Annotated[str | None, typer.Option(
    help="group terms: auto (default), centered, noncentered or zerosum", rich_help_panel=SAMPLER, show_default=False)]
Adaptation = Annotated[str | None, typer.Option(
    help="nutpie mass matrix: diag (default), draw_diag or low_rank", rich_help_panel=SAMPLER, show_default=False)]
Ess = Annotated[int | None, typer.Option(
    "--ess", help="sample until the minimum bulk ESS of the top-level parameters reaches N, e.g. --ess 400; "
    "--draws is then the most per chain (default: off, all --draws)", rich_help_panel=SAMPLER, show_default=False)]
EssAll = Annotated[bool | None, typer.Option(
    "--ess-all", help="--ess also watches every group effect (slower to reach)", rich_help_panel=SAMPLER, show_default=False)]

# -- data and outputs
Dropna = Annotated[bool | None, typer.Option(
    "--dropna/--no-dropna", help="drop rows with missing values in model columns (default), or refuse them",
    show_default=False)]
PriorPredictive = Annotated[bool | None, typer.Option(
    "--prior-predictive", help="also sample the prior predictive (saved in posterior.nc, plots/prior_ppc.png)",
    show_default=False)]
Ci = Annotated[float | None, typer.Option(
    "--ci", help="probability of every interval printed and written (summary.csv's hdi94_lb... carry it), "
    "e.g. --ci 0.95 as brms prints [default: 0.94]", rich_help_panel=OUTPUT, show_default=False)]
NoPlots = Annotated[bool, typer.Option(
    "--no-plots", help="skip the figures under plots/ and report.html (fastest)", rich_help_panel=OUTPUT)]
NoCache = Annotated[bool, typer.Option(
    "--no-cache", help="do not reuse or store compiled models (~/.cache/hlm, or $HLM_CACHE_DIR)", rich_help_panel=OUTPUT)]


def command_line() -> str | None:
    """The command as typed (for run.json), when hlm runs as the ``hlm`` program."""
    import shlex

    return shlex.join(["hlm", *sys.argv[1:]]) if sys.argv and sys.argv[0].endswith("hlm") else None
