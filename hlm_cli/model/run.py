"""A fitted run in memory: its run.json, its posterior and its rebuilt model.

Only the container lives here, in the model layer, so that predictions
(:mod:`hlm_cli.model.linpred`) and the report (:mod:`hlm_cli.outputs.report`) can take one;
reading a run directory back into it is :func:`hlm_cli.workflows.runs.load_run`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class RunContext:
    run_dir: Path
    info: dict  # run.json
    tree: object  # xarray.DataTree from posterior.nc
    prepared: object  # hlm_cli.workflows.fit.Prepared (table, formula, family, built)

    @property
    def built(self):
        return self.prepared.built

    @property
    def spec(self):
        from hlm_cli.spec import FitSpec

        return FitSpec.model_validate(self.info["config"])
