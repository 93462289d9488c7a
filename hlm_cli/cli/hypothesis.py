"""``hlm hypothesis``: parse the options, delegate to the workflow, render the table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def hypothesis(
    run_dir: Annotated[Path, typer.Argument(help="run directory written by 'hlm fit --out', e.g. results/mice", show_default=False)],
    hypotheses: Annotated[list[str], typer.Argument(help='one or more hypotheses over the summary\'s parameter names, e.g. "Treatment > 0" "genotype[ko] - genotype[wt] = 0" "(1|mouse_sigma) / sigma < 1"', show_default=False)],
    hdi: Annotated[float, typer.Option("--hdi", help="probability of the highest-density intervals, e.g. 0.9")] = 0.94,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="CSV to write [default: RUN_DIR/hypothesis.csv]", show_default=False)] = None,
) -> None:
    """Test hypotheses about a fit's parameters, as brms's hypothesis(): estimate, interval, posterior probability, evidence ratio.

    One-sided hypotheses (>, <) give the posterior probability and odds. Point hypotheses (=)
    give the Savage-Dickey Bayes factor BF01 when the run was fitted with --prior-predictive.
    Names are the parameter labels of summary.csv; operators: + - * / ( ) and numbers.

    Example: hlm hypothesis results/mice "Treatment > 0" "Treatment:Genotype = 0"
    """
    from hlm_cli.workflows.hypothesis import run_hypothesis

    result = run_hypothesis(run_dir, list(hypotheses), prob=hdi, out=out)
    render_result(result)


def render_result(result) -> None:
    from rich.table import Table
    from rich.text import Text

    from hlm_cli.cli import render

    pct = f"{result.prob:.0%}"
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("Hypothesis", overflow="fold")
    for c in ("Estimate", "Est.Error", f"l-{pct} HDI", f"u-{pct} HDI", "Evid.Ratio", "Post.Prob"):
        table.add_column(c, justify="right", no_wrap=True)
    table.add_column("Evidence", no_wrap=True)
    notes = []
    for i, r in enumerate(result.table.itertuples(), start=1):
        mark = ""
        if r.note:
            notes.append(f"[{i}] {r.note}")
            mark = f" [{i}]"
        er = "inf" if r.evid_ratio == float("inf") else render._fmt(r.evid_ratio)
        pp = "" if r.post_prob != r.post_prob else f"{r.post_prob:.3f}"
        er = "" if r.evid_ratio != r.evid_ratio else er
        table.add_row(Text(r.hypothesis + mark), render._fmt(r.estimate), render._fmt(r.est_error), render._fmt(r.lower), render._fmt(r.upper), er, pp, r.evidence)
    render._out.print(table)
    for n in notes + [f"note: {n}" for n in result.notes]:
        render._out.print(n, markup=False)
    render._out.print(f"Wrote {result.csv}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("hypothesis", no_args_is_help=True)(hypothesis)
