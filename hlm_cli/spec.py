"""Run specifications: a TOML config and command-line flags merged, then validated.

Sources merge in a stated order, lowest first: built-in defaults < ``--config FILE`` <
command-line flags. Specs are frozen and forbid unknown keys, so a typo in a config file is an
error that names the key, the rule and the value, never silently ignored.

A config file mirrors the flags (``configs/cell_lines.toml``)::

    formula = "logfc ~ 1 + (1|gene) + (1|cell_line)"
    family = "gaussian"
    categorical = ["cell_line"]

    [sampler]
    draws = 1000
    target_accept = 0.9

    [priors]
    Intercept = "Normal(0, 5)"
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hlm_cli.errors import ConfigError

Sampler = Literal["nutpie", "pymc", "numpyro", "blackjax"]
Adaptation = Literal["diag", "draw_diag", "low_rank"]
Parameterization = Literal["auto", "centered", "noncentered", "zerosum"]


class Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SamplerSpec(Spec):
    draws: Annotated[int, Field(gt=0, description="posterior draws per chain")] = 1000
    tune: Annotated[int, Field(ge=0, description="warm-up iterations per chain")] = 1000
    chains: Annotated[int, Field(gt=0)] = 4
    cores: Annotated[int | None, Field(gt=0)] = None  # None: all cores
    seed: Annotated[int, Field(ge=0)] = 20240601
    target_accept: Annotated[float, Field(gt=0, lt=1)] = 0.9
    sampler: Sampler = "nutpie"
    adaptation: Adaptation = "diag"
    parameterization: Parameterization = "auto"
    max_treedepth: Annotated[int, Field(gt=0, le=20)] = 10


class FitSpec(Spec):
    data: Path
    formula: str
    out: Path
    family: str = "gaussian"
    priors: dict[str, str] = Field(default_factory=dict)
    categorical: list[str] = Field(default_factory=list)
    se: str | None = None  # --se COL: same as "y | se(COL) ~ ..."
    sigma_formula: str | None = None  # --sigma-formula "~ group": log(sigma) regression
    dropna: bool = True
    prior_predictive: bool = False
    force: bool = False
    quiet: bool = False
    strict: bool = False
    plots: bool = True  # figures under plots/ and report.html
    color_by: str | None = None  # column colouring plots/pred_vs_obs.png
    svg: bool = False
    cache: bool = True
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)
    config_file: Path | None = None
    command: str | None = None

    @field_validator("formula")
    @classmethod
    def _formula_not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v


SAMPLER_KEYS = set(SamplerSpec.model_fields)


def read_toml(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {str(path)!r} does not exist", hint="check the path given to --config")
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path.name} is not valid TOML: {err}", hint="see configs/ for examples") from None


def deep_merge(*layers: dict[str, Any]) -> dict[str, Any]:
    """Merge dicts left to right; later layers win, nested tables merge key by key."""
    out: dict[str, Any] = {}
    for layer in layers:
        for k, v in layer.items():
            if isinstance(v, dict) and isinstance(out.get(k), dict):
                out[k] = deep_merge(out[k], v)
            else:
                out[k] = v
    return out


def nest(flags: dict[str, Any]) -> dict[str, Any]:
    """Put sampler flags (--draws, --tune, ...) under ``sampler``; drop those not given."""
    out: dict[str, Any] = {}
    sampler: dict[str, Any] = {}
    for k, v in flags.items():
        if v is None or (isinstance(v, (list, tuple)) and not v and k in ("priors", "categorical")):
            continue
        (sampler if k in SAMPLER_KEYS else out)[k] = v
    if sampler:
        out["sampler"] = sampler
    return out


def _normalize_config(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """Accept the flag spellings in TOML too (target-accept, prior list)."""
    out: dict[str, Any] = {}
    for k, v in raw.items():
        key = k.replace("-", "_")
        if key == "prior":
            key = "priors"
        if key == "priors" and isinstance(v, list):
            from hlm_cli.model.priors import parse_prior

            v = {t: x.partition("=")[2].strip() for t, x in ((parse_prior(x)[0], x) for x in v)}
        if isinstance(v, dict) and key == "sampler":
            out.setdefault("sampler", {}).update({kk.replace("-", "_"): vv for kk, vv in v.items()})
            continue
        if key in SAMPLER_KEYS:
            out.setdefault("sampler", {})[key] = v
        else:
            out[key] = v
    return out


def load_fit_spec(config: Path | None, **flags: Any) -> FitSpec:
    """Merge ``--config`` (if any) and flags into a validated :class:`FitSpec`.

    ``priors`` in flags is a list of ``"TERM=Dist(args)"`` strings; in a config file it is a
    ``[priors]`` table of ``TERM = "Dist(args)"`` (a list of strings works too).
    """
    source = str(config) if config else "command line"
    base = _normalize_config(read_toml(config), source) if config else {}
    prior_flags = flags.pop("priors", None) or []
    layer = nest(flags)
    if prior_flags:
        from hlm_cli.model.priors import parse_prior

        layer["priors"] = {}
        for text in prior_flags:
            term, _ = parse_prior(text)
            layer["priors"][term] = text.partition("=")[2].strip()
    merged = deep_merge(base, layer)
    if config:
        merged["config_file"] = config
    try:
        return FitSpec.model_validate(merged)
    except ValidationError as err:
        raise from_validation(err, source) from None


def from_validation(err: ValidationError, source: str) -> ConfigError:
    e = err.errors()[0]
    loc = ".".join(str(p) for p in e["loc"])
    msg = e["msg"]
    if e["type"] == "extra_forbidden":
        fields = sorted(set(FitSpec.model_fields) - {"config_file", "command"}) + [f"sampler.{k}" for k in SAMPLER_KEYS]
        from hlm_cli.errors import closest_match

        return ConfigError(f"{source}: unknown setting {loc!r}", hint=closest_match(loc.split(".")[-1], fields, what="settings"))
    if e["type"] == "missing":
        flag = "--" + loc.replace("_", "-")
        return ConfigError(f"{source}: {loc} is required", hint=f"give {flag} on the command line or {loc} = ... in the config file")
    got = e.get("input")
    return ConfigError(f"{source}: {loc}: {msg.lower()} (got {got!r})", hint=None)
