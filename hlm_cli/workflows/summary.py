"""``hlm summary RUN``: a fit's parameter table again, at its own or another interval width.

At the width the run was fitted with, the table is summary.csv as written (checked against
run.json's checksum); at another ``--ci`` it is recomputed from posterior.nc with the same
call as the fit (:func:`hlm_cli.outputs.summary.summarize`), so the numbers agree with a fit
run with that ``--ci``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hlm_cli.errors import InputError


@dataclass
class SummaryResult:
    run_dir: Path
    summary: pd.DataFrame  # indexed by parameter, summary.csv's columns at width ``ci``
    ci: float
    recomputed: bool  # False: read from summary.csv; True: recomputed from posterior.nc
    info: dict  # run.json


def read_summary_csv(run_dir: Path, info: dict) -> pd.DataFrame:
    """summary.csv of a run, verified against run.json, indexed by parameter."""
    from hlm_cli.outputs import runinfo

    path = Path(run_dir) / "summary.csv"
    if not path.exists():
        raise InputError(f"{str(run_dir)!r} has no summary.csv", hint="give the --out directory of a finished 'hlm fit' run")
    runinfo.verify(Path(run_dir), "summary.csv", info)
    df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    df["group"] = df["group"].fillna("").astype(str)
    return df.set_index("parameter")


def params_of(info: dict):
    """The run's :class:`~hlm_cli.model.build.ParamInfo` from run.json's ``parameters``."""
    from hlm_cli.model.build import ParamInfo

    p = info.get("parameters")
    if not isinstance(p, dict) or not isinstance(p.get("population"), list):
        raise InputError("run.json has no parameter list (written by an older hlm?)", hint="refit the model with 'hlm fit ... --force'")
    return ParamInfo(population=list(p.get("population", [])), group_effects=dict(p.get("group_effects", {})),
                     group_sds=dict(p.get("group_sds", {})), correlations=dict(p.get("correlations", {})),
                     family=list(p.get("family", [])))


def run_summary(run_dir: Path, *, ci: float | None = None) -> SummaryResult:
    """The summary table of a run directory at width ``ci`` (default: the run's own).

    Raises
    ------
    InputError
        Not a run directory, or its files are damaged. ConfigError for a ``ci`` outside (0, 1).
    """
    from hlm_cli.outputs import runinfo
    from hlm_cli.outputs.summary import CI_PROB, ci_of, summarize

    run_dir = Path(run_dir)
    if ci is not None:
        from hlm_cli.workflows.contrast import check_prob

        check_prob(ci, "--ci")
    if not (run_dir / "run.json").exists():
        raise InputError(f"{str(run_dir)!r} is not an hlm run directory (no run.json)", hint="give the --out directory of an 'hlm fit' run")
    info = runinfo.read(run_dir)
    table = read_summary_csv(run_dir, info)
    own = ci_of(table) or CI_PROB
    if ci is None or abs(float(ci) - own) < 1e-9:
        return SummaryResult(run_dir, table, own, False, info)
    from hlm_cli.workflows.runs import open_tree

    tree = open_tree(run_dir)
    return SummaryResult(run_dir, summarize(tree, params_of(info), ci=float(ci)), float(ci), True, info)


__all__ = ["SummaryResult", "run_summary", "read_summary_csv", "params_of"]
