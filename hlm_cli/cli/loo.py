"""``hlm loo``: parse the options, delegate to :func:`hlm_cli.workflows.loo.compare_runs`, render."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

REPAIR = "Repairing high Pareto k"
OUTPUT = "Output"


def loo(
    run_dirs: Annotated[list[Path], typer.Argument(help="run directories written by 'hlm fit --out', e.g. results/m1 results/m2", show_default=False)],
    criterion: Annotated[str, typer.Option("--criterion", help="loo (PSIS-LOO, default), waic, or kfold (K-fold for every model), e.g. --criterion waic")] = "loo",
    fix: Annotated[str, typer.Option("--fix", help="where Pareto k is too high: auto (exact refits when at most 10 observations, else a recommendation), reloo, kfold or none, e.g. --fix reloo", rich_help_panel=REPAIR)] = "auto",
    kfold: Annotated[int | None, typer.Option("--kfold", min=2, help="K-fold cross-validation with K refits per model, e.g. --kfold 10 (with --fix kfold: K for the models that need it)", rich_help_panel=REPAIR, show_default=False)] = None,
    group: Annotated[str | None, typer.Option("--group", help="K-fold leaves out whole groups of this column, e.g. --group Subject", rich_help_panel=REPAIR, show_default=False)] = None,
    seed: Annotated[int | None, typer.Option("--seed", min=0, help="seed of the folds and the refits, e.g. 1 [default: the first run's sampler seed, as 'hlm fit --formula A --formula B' uses, so its refits are reused]", show_default=False, rich_help_panel=REPAIR)] = None,
    data: Annotated[Path | None, typer.Option("--data", help="the data file for refits, if it moved since the fits (same sha256), e.g. data/sleepstudy.csv", rich_help_panel=REPAIR, show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="compare runs fit to different data (warns) instead of refusing")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="write the results as JSON to stdout instead of tables", rich_help_panel=OUTPUT)] = False,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="also write loo.csv, compare.csv, pointwise.csv, loo.json, pareto_k.png and compare.png here, e.g. results/loo", rich_help_panel=OUTPUT, show_default=False)] = None,
) -> None:
    """Estimate and compare models' predictive accuracy by PSIS-LOO (or WAIC / K-fold).

    Prints elpd_loo with its SE, p_loo, looic and the Pareto k table per run, and for two or
    more runs the comparison: rank, elpd_diff and its SE against the best model, stacking
    weights. Observations with high Pareto k are repaired by exact refits (--fix).

    Example: hlm loo results/slopes results/intercepts --out results/loo
    """
    from hlm_cli.cli import loo_render
    from hlm_cli.workflows.loo import compare_runs

    if out is not None:
        from hlm_cli.outputs import loo_out

        loo_out.check_out(out)
    with loo_render.status("estimating", quiet=json_out) as st:

        def progress(message: str) -> None:
            if st is not None and hasattr(st, "update"):
                st.update(message)

        result = compare_runs(
            run_dirs, criterion=criterion.lower(), fix=fix.lower(), kfold=kfold, group=group,
            force=force, seed=seed, on_progress=progress, data=data,
        )
    written = None
    if out is not None:
        from hlm_cli.outputs import loo_out

        written = loo_out.write(result, out)
    if json_out:
        loo_render.json_result(result)
    else:
        loo_render.result(result, out=out, written=written)
