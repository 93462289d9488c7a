"""``hlm hypothesis``: parse the options, delegate to the workflow, render the table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def hypothesis(
    run_dir: Annotated[Path, typer.Argument(help="run directory written by 'hlm fit --out', e.g. results/mice", show_default=False)],
    hypotheses: Annotated[list[str], typer.Argument(help='one or more hypotheses over the summary\'s parameter names, e.g. "Treatment > 0" "genotype[ko] - genotype[wt] = 0" "(1|mouse_sigma) / sigma < 1"', show_default=False)],
    hdi: Annotated[float, typer.Option("--ci", "--hdi", help="probability of the highest-density intervals, e.g. --ci 0.95 (brms's width)")] = 0.94,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="CSV to write [default: RUN_DIR/hypothesis.csv]", show_default=False)] = None,
) -> None:
    """Test hypotheses about a fit's parameters, as brms's hypothesis(): estimate, interval, posterior probability, evidence ratio.

    One-sided hypotheses (>, <) give the posterior probability and odds. Point hypotheses (=)
    give the Savage-Dickey Bayes factor BF01 when the run was fitted with --prior-predictive.
    Names are the parameter labels of summary.csv; operators: + - * / ( ) and numbers.

    Example: hlm hypothesis results/mice "Treatment > 0" "Treatment:Genotype = 0"
    """
    from hlm_cli.cli import render
    from hlm_cli.workflows.hypothesis import run_hypothesis

    result = run_hypothesis(run_dir, list(hypotheses), prob=hdi, out=out)
    render.hypothesis_result(result)
