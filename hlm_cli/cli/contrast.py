"""``hlm contrast``: parse the options, delegate to the workflow, render the table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

OUTPUT = "Output"


def contrast(
    run_dir: Annotated[Path, typer.Argument(help="run directory written by 'hlm fit --out', e.g. results/drug", show_default=False)],
    term: Annotated[str, typer.Option("--term", "-t", help="data column to compare, e.g. --term treatment (a factor: each level minus the first) or --term dose (numeric: +1 unit; a 0/1 column: 1 minus 0)", show_default=False)],
    by: Annotated[str | None, typer.Option("--by", help="also per level of this column, over that level's rows with its own group effects, e.g. --by group", show_default=False)] = None,
    contrast_: Annotated[str | None, typer.Option("--contrast", help="FROM,TO: report TO minus FROM, e.g. --contrast placebo,drug or --contrast 0,10", show_default=False)] = None,
    rope: Annotated[str | None, typer.Option("--rope", help="region of practical equivalence LOW,HIGH (in the difference's units), e.g. --rope=-0.5,0.5", show_default=False)] = None,
    rope_on: Annotated[str, typer.Option("--rope-on", help="apply --rope to the 'difference' or to the 'effect-size' (gaussian/t; e.g. Kruschke's --rope=-0.1,0.1)")] = "difference",
    hdi: Annotated[float, typer.Option("--ci", "--hdi", help="probability of the highest-density intervals, e.g. --ci 0.95 (brms's width)")] = 0.94,
    new_group: Annotated[bool, typer.Option("--new-group", help="add the contrast for a group not in the data (its effects drawn from the group-level distribution)")] = False,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="CSV to write (the plot goes beside it as .png) [default: RUN_DIR/contrast_TERM.csv]", rich_help_panel=OUTPUT, show_default=False)] = None,
    data: Annotated[Path | None, typer.Option("--data", help="the fitted CSV, if it moved since the fit (its sha256 must match)", show_default=False)] = None,
    no_plot: Annotated[bool, typer.Option("--no-plot", help="skip the PNG", rich_help_panel=OUTPUT)] = False,
    seed: Annotated[int, typer.Option(min=0, help="seed for --new-group draws")] = 0,
) -> None:
    """Posterior of the difference between levels of TERM (or of +1 unit), overall and per --by level.

    Example: hlm contrast results/drug --term treatment --contrast placebo,drug --by group --rope=-0.5,0.5
    """
    from hlm_cli.cli import render
    from hlm_cli.workflows.contrast import ContrastSpec, parse_pair, parse_rope, run_contrast

    spec = ContrastSpec(
        run_dir=run_dir, term=term, by=by,
        contrast=parse_pair(contrast_, "--contrast") if contrast_ else None,
        rope=parse_rope(rope) if rope else None,
        rope_on=rope_on.replace("-", "_"), prob=hdi, out=out, new_group=new_group, data=data,
        plot=not no_plot, seed=seed,
    )
    result = run_contrast(spec)
    render.contrast_result(result)
