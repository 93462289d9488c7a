"""``hlm priors DATA --formula ...``: every prior a fit would use, without sampling (brms's
``get_prior``).

The model is built exactly as ``hlm fit`` builds it (:func:`hlm_cli.workflows.fit.prepare`:
the data are read and checked, data-scaled defaults computed, ``--prior`` applied), and each
parameter is listed with the name ``--prior`` accepts for it, its class and its prior.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from hlm_cli.spec import FitSpec

COLUMNS = ["parameter", "prior_name", "class", "group", "prior", "source"]


@dataclass
class PriorsResult:
    spec: FitSpec
    family: str
    link: str
    table: pd.DataFrame  # COLUMNS, one row per parameter with a prior


def prior_table(built) -> pd.DataFrame:
    """One row per prior of a built model: the printed parameter name (``sd(Intercept|gene)``),
    the name ``--prior`` takes (``1|gene``), its class (Intercept, b, sd, cor or the family
    parameter's name), its grouping factor, the prior and whether it is a default or the user's."""
    params = built.params
    sd_group = {v: f for f, vs in params.group_sds.items() for v in vs}
    aux = set(params.family)
    rows = []
    for name, prior in built.priors.items():
        group = ""
        if name == "Intercept":
            cls, key, shown = "Intercept", name, name
        elif name.startswith("sds("):  # a smooth's SD (brms's class sds)
            group, cls, key, shown = sd_group.get(name, ""), "sds", name, name
        elif name in sd_group or name.endswith("_sigma") and "|" in name:
            group = sd_group.get(name, name.split("|", 1)[-1].removesuffix("_sigma"))
            cls, key = "sd", name.removesuffix("_sigma")
            shown = f"sd({key.replace('1|', 'Intercept|', 1)})"
        elif name.startswith("cor("):
            group = name[4:-1]
            if group.startswith(("ar1(", "cs|")):  # a structured correlation: cor(ar1(week)|id), cor(cs|id)
                group = group.rsplit("|", 1)[-1]
            cls, key, shown = "cor", name, name
        elif name in aux or name.startswith(("sigma_", "zi_", "hu_")):
            cls, key, shown = "family", name, name
        else:
            cls, key, shown = "b", name, name
        rows.append({"parameter": shown, "prior_name": key, "class": cls, "group": group, "prior": str(prior),
                     "source": prior.source})
    order = {"Intercept": 0, "b": 1, "sd": 2, "cor": 3, "family": 4}
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df.sort_values("class", key=lambda c: c.map(order), kind="stable").reset_index(drop=True)


def run_priors(spec: FitSpec) -> PriorsResult:
    """Build the model of ``spec`` (no sampling, nothing written) and list its priors.

    Raises
    ------
    HlmError
        The same errors as ``hlm fit`` gives for the data, formula, family and ``--prior``.
    """
    from hlm_cli.workflows.fit import prepare

    prep = prepare(spec)
    built = prep.built
    return PriorsResult(spec, built.family.name, built.family.link, prior_table(built))


__all__ = ["PriorsResult", "run_priors", "prior_table", "COLUMNS"]
