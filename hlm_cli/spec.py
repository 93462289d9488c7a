"""Run specifications: a TOML config and command-line flags merged, then validated.

Sources merge in a stated order, lowest first: built-in defaults < ``--config FILE`` <
command-line flags. Specs are frozen and forbid unknown keys, so a typo in a config file is an
error that names the key, the rule and the value, never silently ignored. Every validation
error names the setting as the user wrote it (``--target-accept`` on the command line,
``sampler.target_accept`` in a config file), the rule, the value it got, and a hint with the
valid range (the ``SETTINGS`` table).

A config file mirrors the flags (``configs/cell_lines.toml``)::

    formula = "logfc ~ 1 + (1|gene) + (1|cell_line)"
    family = "gaussian"
    categorical = ["cell_line"]

    [sampler]
    draws = 1000
    target_accept = 0.9

    [priors]
    Intercept = "Normal(0, 5)"

Numbers and switches are strict: ``draws = true`` or ``draws = "10"`` or ``chains = 2.5`` is
an error, not 1, 10 or 2 (TOML has real integers and booleans; the command line gives them
too).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from hlm_cli.errors import ConfigError, PriorError, UsageError, closest_match
from hlm_cli.formula.families import LINKS, check_link, family_key
from hlm_cli.formula.families import NAMES as FAMILY_NAMES
from hlm_cli.formula.priors import parse_prior

Sampler = Literal["nutpie", "pymc", "numpyro", "blackjax"]
Adaptation = Literal["diag", "draw_diag", "low_rank"]
Parameterization = Literal["auto", "centered", "noncentered", "zerosum"]

MIN_TUNE = 1  # nutpie (0.16) panics with tune = 0 (a Rust PoisonError); 1 runs, ~200+ adapts well
MAX_DRAWS = 10_000_000  # draws x chains (and tune): a sanity bound; check_memory does the real check
MAX_CHAINS = 128
MAX_CORES = 4096
# nutpie takes a u64 and numpy's Generator any size, but numpy's legacy seeding and JAX's
# PRNG keys take 32 bits, and hlm derives seeds as seed + k; 2^32 - 1 keeps every user in range
MAX_SEED = 2**32 - 1


class Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SamplerSpec(Spec):
    draws: Annotated[StrictInt, Field(ge=1, le=MAX_DRAWS, description="posterior draws per chain")] = 1000
    tune: Annotated[StrictInt, Field(ge=MIN_TUNE, le=MAX_DRAWS, description="warm-up iterations per chain")] = 1000
    chains: Annotated[StrictInt, Field(ge=1, le=MAX_CHAINS)] = 4
    cores: Annotated[StrictInt | None, Field(ge=1, le=MAX_CORES)] = None  # None: all cores
    seed: Annotated[StrictInt, Field(ge=0, le=MAX_SEED)] = 20240601
    target_accept: Annotated[float, Field(gt=0, lt=1, strict=True, allow_inf_nan=False)] = 0.9
    sampler: Sampler = "nutpie"
    adaptation: Adaptation = "diag"
    parameterization: Parameterization = "auto"
    max_treedepth: Annotated[StrictInt, Field(ge=1, le=20)] = 10
    # --ess N: sample until the minimum bulk ESS reaches N or draws run out (hlm_cli.sampling.ess)
    ess: Annotated[StrictInt | None, Field(ge=1, le=MAX_DRAWS)] = None
    ess_all: StrictBool = False  # --ess-all: --ess watches every group effect too


def _not_blank(v: str | None) -> str | None:
    if v is not None and not v.strip():
        raise ValueError("must not be empty")
    return v


def _path_text(v: Any) -> Any:
    if isinstance(v, str):
        if not v.strip():
            raise ValueError("must not be empty")
        if "\x00" in v:
            raise ValueError("must not contain a NUL character")
    return v


class FitSpec(Spec):
    data: Path
    formula: StrictStr
    out: Path
    family: StrictStr = "gaussian"
    priors: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    prior_preset: Literal["hlm", "brms", "rstanarm"] | None = None  # whose default priors (--prior-preset)
    reference: dict[StrictStr, StrictStr] = Field(default_factory=dict)  # --reference COL=LEVEL: a factor's first level
    categorical: list[StrictStr] = Field(default_factory=list)
    se: StrictStr | None = None  # --se COL: same as "y | se(COL) ~ ..."
    sigma_formula: StrictStr | None = None  # --sigma-formula "~ group": log(sigma) regression
    link: StrictStr | None = None  # --link probit: the family's link [default: the family's own]
    levels: dict[StrictStr, list[StrictStr]] = Field(default_factory=dict)  # --levels y=low,mid,high: an ordinal response's order
    zi_formula: StrictStr | None = None  # --zi-formula "~ x": logit(zi) regression (zero-inflated families)
    hu_formula: StrictStr | None = None  # --hu-formula "~ x": logit(hu) regression (hurdle families)
    sep: StrictStr | None = None  # --sep ';': field separator [default: from the extension and header]
    dropna: StrictBool = True
    prior_predictive: StrictBool = False
    force: StrictBool = False
    quiet: StrictBool = False
    strict: StrictBool = False
    plots: StrictBool = True  # figures under plots/ and report.html
    color_by: StrictStr | None = None  # column colouring plots/pred_vs_obs.png
    svg: StrictBool = False
    ci: Annotated[float, Field(gt=0, lt=1, strict=True, allow_inf_nan=False)] = 0.94  # interval width (hdi94_lb, ...)
    cache: StrictBool = True
    # set by ``hlm batch --by``: every level of each grouping factor in the whole table, so that
    # features with fewer observed levels keep one model structure (hlm_cli.workflows.screen)
    group_levels: dict[StrictStr, list[StrictStr]] = Field(default_factory=dict)
    # set by ``hlm batch --by`` (unless --full-features): a lean run directory, i.e. posterior.nc
    # without log_likelihood/posterior_predictive/log_prior, no power-scaling sensitivity
    lean: StrictBool = False
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)
    config_file: Path | None = None
    command: str | None = None

    @field_validator("formula", "family", "se", "sigma_formula", "color_by", "link", "zi_formula", "hu_formula")
    @classmethod
    def _text_not_empty(cls, v: str | None) -> str | None:
        return _not_blank(v)

    @field_validator("link")
    @classmethod
    def _link_lower(cls, v: str | None) -> str | None:
        return v.strip().lower() if v is not None else v

    @field_validator("reference", mode="before")
    @classmethod
    def _reference_pairs(cls, v: Any) -> Any:
        """``--reference Genotype=wt`` (repeatable) or a config's ``[reference]`` table."""
        if isinstance(v, (list, tuple)):
            out: dict[str, str] = {}
            for item in v:
                col, eq, level = str(item).partition("=")
                if not eq or not col.strip() or not level.strip():
                    raise ValueError(f"expected COLUMN=LEVEL such as Genotype=wt (got {item!r})")
                if col.strip() in out:
                    raise ValueError(f"two reference levels given for {col.strip()!r}")
                out[col.strip()] = level.strip()
            return out
        return v

    @field_validator("levels", mode="before")
    @classmethod
    def _level_lists(cls, v: Any) -> Any:
        """``--levels y=low,mid,high`` (repeatable) or a config's ``levels = { y = ["low", ...] }``."""
        items = v if isinstance(v, (list, tuple)) else None
        if items is None and isinstance(v, dict):
            return {col: [s.strip() for s in lv.split(",")] if isinstance(lv, str) else lv for col, lv in v.items()}
        if items is None:
            return v
        out: dict[str, list[str]] = {}
        for item in items:
            col, eq, text = str(item).partition("=")
            levels = [s.strip() for s in text.split(",")]
            if not eq or not col.strip() or not all(levels):
                raise ValueError(f"expected COLUMN=LEVEL,LEVEL,... such as rating=low,mid,high (got {item!r})")
            if col.strip() in out:
                raise ValueError(f"two orders given for {col.strip()!r}")
            out[col.strip()] = levels
        return out

    @field_validator("sep")
    @classmethod
    def _one_separator(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from hlm_cli.data import parse_sep

        try:
            return parse_sep(v)
        except ConfigError as err:
            raise ValueError("must be one separator character such as ',' ';' or tab") from err

    @field_validator("categorical")
    @classmethod
    def _columns_not_empty(cls, v: list[str]) -> list[str]:
        for name in v:
            _not_blank(name)
        return v

    @field_validator("data", "out", "config_file", mode="before")
    @classmethod
    def _path_ok(cls, v: Any) -> Any:
        return _path_text(v)


SAMPLER_KEYS = set(SamplerSpec.model_fields)
INTERNAL_KEYS = {"config_file", "command", "group_levels", "lean"}  # set by hlm, not settings a config file may give

# setting -> (what it takes, an example value as TOML writes it); hints are built from these
SETTINGS: dict[str, tuple[str, str]] = {
    "data": ("the path of the data file", '"data/ko.csv"'),
    "formula": ("an lme4 formula", '"logfc ~ 1 + (1|gene)"'),
    "out": ("the run directory to create", '"results/ko"'),
    "family": (", ".join(FAMILY_NAMES[:-1]) + " or " + FAMILY_NAMES[-1], '"gaussian"'),
    "priors": ('a table of TERM = "Dist(args)" strings', '{ Intercept = "Normal(0, 5)", sigma = "HalfNormal(1)" }'),
    "prior_preset": ("hlm, brms or rstanarm: whose default priors to use", '"brms"'),
    "reference": ("a table of COLUMN = \"LEVEL\": each factor's reference level", '{ Genotype = "wt" }'),
    "categorical": ("a list of column names", '["cell_line"]'),
    "se": ("the column of known standard errors", '"sigma"'),
    "sep": ("one separator character: ',' ';' '|' or tab", '";"'),
    "sigma_formula": ("a one-sided formula for log(sigma)", '"~ group"'),
    "link": ("the family's link: logit, probit or cloglog (binary, binomial, beta), log or softplus (counts, "
             "positive), identity or log (gaussian, t), logit or probit (cumulative)", '"probit"'),
    "levels": ('a table of COLUMN = ["LEVEL", ...]: an ordinal response\'s levels, lowest first', '{ rating = ["low", "mid", "high"] }'),
    "zi_formula": ("a one-sided formula for logit(zi) (zero-inflated families)", '"~ mined"'),
    "hu_formula": ("a one-sided formula for logit(hu) (hurdle families)", '"~ mined"'),
    "color_by": ("a column name", '"Treatment"'),
    "ci": ("a probability strictly between 0 and 1: the width of every interval (brms prints 0.95)", "0.95"),
    "sampler": ("a table of sampler settings (draws, tune, chains, ...)", "{ draws = 1000 }"),
    "sampler.draws": (f"a whole number from 1 to {MAX_DRAWS} (draws x chains at most {MAX_DRAWS})", "1000"),
    "sampler.tune": (f"a whole number from {MIN_TUNE} to {MAX_DRAWS} (nutpie needs at least {MIN_TUNE} warm-up "
                     "iteration; fewer than ~200 adapt poorly)", "1000"),
    "sampler.chains": (f"a whole number from 1 to {MAX_CHAINS}", "4"),
    "sampler.cores": (f"a whole number from 1 to {MAX_CORES} (leave it out to use all cores)", "4"),
    "sampler.seed": (f"a whole number from 0 to {MAX_SEED} (2^32 - 1)", "1"),
    "sampler.target_accept": ("a number strictly between 0 and 1; raise it towards 0.99 to cure divergences", "0.95"),
    "sampler.max_treedepth": ("a whole number from 1 to 20", "12"),
    "sampler.sampler": ("nutpie, pymc, numpyro or blackjax", '"nutpie"'),
    "sampler.adaptation": ("diag, draw_diag or low_rank", '"diag"'),
    "sampler.parameterization": ("auto, centered, noncentered or zerosum", '"auto"'),
    "sampler.ess": (f"a whole number from 1 to {MAX_DRAWS}: the minimum bulk ESS to sample to (at most --draws per chain)", "400"),
    "sampler.ess_all": ("true or false", "true"),
}
for _flag in ("dropna", "prior_predictive", "force", "quiet", "strict", "plots", "svg", "cache"):
    SETTINGS[_flag] = ("true or false", "true")

# settings whose command-line spelling is not --name-with-dashes
FLAG_NAMES = {"data": "DATA", "priors": "--prior", "plots": "--no-plots", "cache": "--no-cache",
              "dropna": "--dropna/--no-dropna", "sampler": "--sampler"}


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML config, refusing a missing, unreadable, non-UTF-8 or invalid file."""
    path = Path(path)
    name = str(path)
    if not path.exists():
        raise ConfigError(f"config file {name!r} does not exist", hint="check the path given to --config")
    if path.is_dir():
        raise ConfigError(f"--config {name!r} is a directory, not a file", hint="give a TOML file, e.g. --config configs/cell_lines.toml")
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as err:
        raise ConfigError(f"cannot read config file {name!r}: {err.strerror or err}", hint="check the file's permissions") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ConfigError(f"config file {name!r} is not UTF-8 text (byte {raw[err.start]:#04x} on line {line})",
                          hint="save it as UTF-8; TOML files must be UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path.name} is not valid TOML: {err}", hint="see configs/ for examples") from None
    except (RecursionError, MemoryError):
        raise ConfigError(f"{path.name} is nested too deeply to read", hint="see configs/ for examples") from None


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


def _unknown(source: str, written: str) -> ConfigError:
    fields = sorted(set(FitSpec.model_fields) - INTERNAL_KEYS) + [f"sampler.{k}" for k in sorted(SAMPLER_KEYS)]
    return ConfigError(f"{source}: unknown setting {written!r}",
                       hint=closest_match(written.split(".")[-1], fields, what="settings"))


def _normalize_config(raw: dict[str, Any], source: str) -> tuple[dict[str, Any], dict[tuple, str]]:
    """Accept the flag spellings in TOML too (target-accept, top-level draws, a prior list).

    Returns the normalized settings and, for each normalized key path, the key as written in
    the file (for messages).
    """
    out: dict[str, Any] = {}
    written: dict[tuple, str] = {}
    for k, v in raw.items():
        k = str(k)
        key = k.replace("-", "_")
        if key == "prior":
            key = "priors"
        if key in INTERNAL_KEYS:
            raise _unknown(source, k)
        if key == "priors" and isinstance(v, list):
            v = _prior_list(v, source, k)
        if key == "sampler" and isinstance(v, dict):
            written.setdefault(("sampler",), k)
            for kk, vv in v.items():
                nk = str(kk).replace("-", "_")
                out.setdefault("sampler", {})[nk] = vv
                written[("sampler", nk)] = f"{k}.{kk}"
            continue
        if key in SAMPLER_KEYS:
            out.setdefault("sampler", {})[key] = v
            written[("sampler", key)] = k
        else:
            out[key] = v
            written[(key,)] = k
    return out, written


def _prior_list(items: list, source: str, key: str) -> dict[str, str]:
    """``priors = ["sigma=HalfNormal(1)", ...]`` in a config file, as the flags write them."""
    table: dict[str, str] = {}
    for i, text in enumerate(items):
        where = f"{source}: {key}[{i}]"
        if not isinstance(text, str):
            raise ConfigError(f"{where} must be text such as \"sigma=HalfNormal(1)\" (got {_show(text)})",
                              hint=f'e.g. {key} = ["Intercept=Normal(0, 5)", "sigma=HalfNormal(1)"]')
        term, _ = parse_prior(text, where=f"{where} = {text!r}")
        if term in table:
            raise PriorError(f"{source}: two priors given for {term!r} in {key}", hint="give each term one prior")
        table[term] = text.partition("=")[2].strip()
    return table


def _flag_priors(texts: list[str]) -> dict[str, str]:
    table: dict[str, str] = {}
    for text in texts:
        term, _ = parse_prior(text)
        if term in table:
            raise PriorError(f"two --prior given for {term!r}", hint="give each term one --prior")
        table[term] = text.partition("=")[2].strip()
    return table


def load_fit_spec(config: Path | None, **flags: Any) -> FitSpec:
    """Merge ``--config`` (if any) and flags into a validated :class:`FitSpec`.

    ``priors`` in flags is a list of ``"TERM=Dist(args)"`` strings; in a config file it is a
    ``[priors]`` table of ``TERM = "Dist(args)"`` (a list of strings works too).

    Raises
    ------
    ConfigError, PriorError
        Naming the setting as the user wrote it, the rule and the value, with a hint. Nothing
        is read but the config file.
    """
    source = str(config) if config else "command line"
    raw = read_toml(config) if config else {}
    return spec_from_layers(raw, source, config_file=config, **flags)


def formula_list(formulas: list[str] | None) -> list[str]:
    """The ``--formula`` values of ``hlm fit`` (one model each); a later one may not be empty.

    The first is validated with the rest of the spec (``formula`` is required and not blank).
    """
    texts = list(formulas or [])
    for i, text in enumerate(texts[1:], start=2):
        if not text.strip():
            raise ConfigError(f"--formula number {i} is empty", hint='give a formula each time, e.g. --formula "logfc ~ 1 + (1|gene)"')
    return texts


def check_batch_options(*, out: Path | None, inputs: list[str] | None, manifest: Path | None,
                        workers: int | None, scheduler: str | None) -> None:
    """Refuse ``hlm batch`` options that cannot work, before any input is looked at."""
    if out is None:
        raise ConfigError("hlm batch needs --out", hint="e.g. --out results/batch (one run directory per input goes there)")
    if not inputs and manifest is None:
        raise ConfigError("no input files given", hint='e.g. hlm batch "data/*.csv" --formula ... --out results/batch, or --manifest list.txt')
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be >= 1 (got {workers})", hint="--workers takes a whole number >= 1, e.g. --workers 4 (leave it out to use all cores)")
    if scheduler is not None and not scheduler.strip():
        raise ConfigError("--scheduler is empty", hint="give the Dask scheduler's address, e.g. --scheduler tcp://10.0.0.5:8786, or leave it out to run here")


def load_batch_specs(config: Path | None, *, out: Path, formulas: list[str] | None, priors: list[str] | None,
                     **flags: Any) -> list[FitSpec]:
    """One :class:`FitSpec` template per distinct ``--formula`` of ``hlm batch`` (in order).

    ``data`` and ``out`` differ per input; the placeholders ``INPUT`` and ``OUT/INPUT`` only
    let the shared settings validate (the batch workflow replaces them).
    """
    texts = list(dict.fromkeys(formulas)) if formulas else [None]
    return [load_fit_spec(config, data=Path("INPUT"), out=out / "INPUT", formula=f, priors=list(priors or []), **flags)
            for f in texts]


def spec_from_layers(raw: dict[str, Any], source: str, *, config_file: Path | None = None, **flags: Any) -> FitSpec:
    """Validate an already-read config table ``raw`` (from ``source``) merged with flags.

    The part of :func:`load_fit_spec` after the file is read; any input gives a
    :class:`FitSpec` or an :class:`~hlm_cli.errors.HlmError`.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a table of settings (got {_show(raw)})", hint="see configs/ for examples")
    base, written = _normalize_config(raw, source)
    prior_flags = flags.pop("priors", None) or []
    layer = nest(flags)
    if prior_flags:
        layer["priors"] = _flag_priors(list(prior_flags))
    merged = deep_merge(base, layer)
    if config_file:
        merged["config_file"] = config_file
    try:
        spec = FitSpec.model_validate(merged)
    except ValidationError as err:
        raise from_validation(err, source, flags=layer, written=written) from None
    _check_totals(spec, source, layer, written)
    _check_ess(spec, source, layer, written)
    _check_family_and_priors(spec, source, layer, written)
    return spec


def _check_totals(spec: FitSpec, source: str, layer: dict, written: dict) -> None:
    s = spec.sampler
    if s.draws * s.chains > MAX_DRAWS:
        cli = _in(layer, ("sampler", "draws")) or _in(layer, ("sampler", "chains"))
        d = _name(("sampler", "draws"), source, layer, written)
        raise (UsageError if cli else ConfigError)(
            ("" if cli else f"{source}: ") + f"{d} {s.draws} with {s.chains} chains is {s.draws * s.chains} draws in all, "
            f"more than hlm keeps (draws x chains at most {MAX_DRAWS})",
            hint="use fewer draws: 1000-5000 per chain are plenty for means and 94% intervals",
        )


def ess_problem(s: SamplerSpec) -> tuple[str, str] | None:
    """(message, hint) when ``--ess``/``--ess-all`` cannot work with the other sampler settings."""
    if s.ess_all and s.ess is None:
        return "--ess-all needs --ess N (the bulk ESS to reach)", "e.g. --ess 400 --ess-all"
    if s.ess is not None and s.sampler != "nutpie":
        return f"--ess works with --sampler nutpie, not {s.sampler}", "leave out --sampler (nutpie is the default), or leave out --ess"
    return None


def _check_ess(spec: FitSpec, source: str, layer: dict, written: dict) -> None:
    problem = ess_problem(spec.sampler)
    if problem is not None:
        cli = any(_in(layer, ("sampler", k)) for k in ("ess", "ess_all", "sampler"))
        raise (UsageError if cli else ConfigError)(("" if cli else f"{source}: ") + problem[0], hint=problem[1])


def _check_family_and_priors(spec: FitSpec, source: str, layer: dict, written: dict) -> None:
    """Unknown families and config-file priors fail here, before any data is read."""
    try:
        family_key(spec.family)
    except ConfigError as err:
        if "family" in layer:
            raise  # the message names the value given to --family
        raise ConfigError(f"{source}: {written.get(('family',), 'family')}: {err.message}", hint=err.hint) from None
    try:
        # a binomial link with the default family: cbind() may imply binomial (checked with the data)
        if not (family_key(spec.family) == "gaussian" and spec.link in LINKS["binomial"]):
            check_link(spec.family, spec.link)
    except ConfigError as err:
        if "link" in layer:
            raise
        raise ConfigError(f"{source}: {written.get(('link',), 'link')}: {err.message}", hint=err.hint) from None
    from_flags = layer.get("priors", {})
    for term, text in spec.priors.items():
        if term in from_flags:
            continue  # parsed as written on the command line
        key = written.get(("priors",), "priors")
        parse_prior(f"{term}={text}", where=f"{source}: {key}.{term} = {text!r}")


def _in(tree: dict, path: tuple) -> bool:
    node: Any = tree
    for p in path:
        if not isinstance(node, dict) or p not in node:
            return False
        node = node[p]
    return True


def _name(path: tuple, source: str, layer: dict, written: dict) -> str:
    """The setting at ``path`` as the user wrote it: ``--draws``, or ``run.toml: sampler.draws``."""
    keys = tuple(p for p in path if isinstance(p, str))
    if _in(layer, keys[:2]):
        if keys[0] == "sampler" and len(keys) > 1:
            return "--" + keys[1].replace("_", "-")
        return FLAG_NAMES.get(keys[0], "--" + keys[0].replace("_", "-"))
    for n in (2, 1):
        if tuple(path[:n]) in written:
            text, rest = written[tuple(path[:n])], path[n:]
            break
    else:
        n = 2 if keys[:1] == ("sampler",) else 1
        text, rest = ".".join(str(p) for p in path[:n]), path[n:]
    for p in rest:
        text += f"[{p}]" if isinstance(p, int) else f".{p}"
    return text


def _show(value: Any) -> str:
    """A short description of a value for a message."""
    if isinstance(value, bool):
        return f"{str(value).lower()}, a boolean"
    if isinstance(value, int):
        digits = str(abs(value)) if abs(value) < 10**4000 else ""
        return repr(value) if len(digits) <= 24 else f"a {len(digits) or 'huge'}-digit number" if digits else "a huge number"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_RULES = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be text (a quoted string)",
    "list_type": "must be a list",
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "path_type": "must be a path (a quoted string)",
    "literal_error": "must be one of {expected}",
}


def _rule(e: dict) -> str:
    template = _RULES.get(e["type"])
    if template:
        try:
            return template.format(**(e.get("ctx") or {}))
        except (KeyError, IndexError):
            pass
    msg = str(e.get("msg", "is not valid"))
    msg = msg.removeprefix("Value error, ")
    return msg.replace("Input should be", "must be").replace("input should be", "must be")


def from_validation(err: ValidationError, source: str, *, flags: dict | None = None,
                    written: dict | None = None) -> ConfigError:
    """A :class:`ConfigError` for the first problem pydantic found, naming the setting as the
    user wrote it (``flags``: the command-line layer; ``written``: key paths as in the file),
    the rule and the value, with the valid range as the hint."""
    flags, written = flags or {}, written or {}
    e = err.errors()[0]
    loc = tuple(e["loc"])
    if e["type"] == "extra_forbidden":
        return _unknown(source, _name(loc, source, {}, written))
    keys = tuple(p for p in loc if isinstance(p, str))
    if keys and keys[0] == "sampler" and len(keys) > 1 and keys[1] not in SAMPLER_KEYS:
        keys = keys[:1]  # the literal/union branch names pydantic appends
    if e["type"] == "missing":
        flag = FLAG_NAMES.get(keys[-1], "--" + keys[-1].replace("_", "-"))
        where = ".".join(keys)
        return ConfigError(f"{source}: {where} is required", hint=f"give {flag} on the command line or {where} = ... in the config file")
    key = ".".join(keys[:2]) if keys[:1] == ("sampler",) else keys[0]
    from_cli = _in(flags, keys[:2])
    name = _name(loc if e["type"] not in ("literal_error",) else keys, source, flags, written)
    rule = _rule(e)
    what, example = SETTINGS.get(key, ("a valid value", "..."))
    got = _show(e.get("input"))
    if from_cli:
        cli_example = example if " " in example else example.strip('"')
        hint = f"{name} takes {what}" + (f", e.g. {name} {cli_example}" if key.startswith("sampler.") or what != "true or false" else "")
        kind = UsageError if key.startswith("sampler.") else ConfigError  # a sampler number out of range: usage (exit 2)
        return kind(f"{name} {rule} (got {got})", hint=hint)
    bare = _name(keys[:2] if key.startswith("sampler.") else keys[:1], source, {}, written)
    return ConfigError(f"{source}: {name} {rule} (got {got})", hint=f"{bare} takes {what}, e.g. {bare} = {example}")


# -- memory ---------------------------------------------------------------------------------

BYTES_PER_VALUE = 8  # float64


def estimate_posterior_bytes(chains: int, draws: int, n_params: int, n_rows: int) -> int:
    """Bytes the kept posterior takes in memory, as float64.

    The pointwise log-likelihood and the posterior predictive each hold one value per row,
    chain and draw (``n_rows x chains x draws x 8`` bytes each); the parameters one per
    parameter, chain and draw.

    Parameters
    ----------
    chains, draws : int
        As sampled (``draws`` per chain, after warm-up).
    n_params : int
        Scalar parameters stored per draw (population effects, group effects, SDs, ...).
    n_rows : int
        Data rows the model uses.

    Returns
    -------
    int
    """
    per_draw = 2 * max(int(n_rows), 0) + max(int(n_params), 0)
    return max(int(chains), 0) * max(int(draws), 0) * per_draw * BYTES_PER_VALUE


def available_memory(meminfo: str | Path = "/proc/meminfo") -> int | None:
    """Bytes of memory available to new allocations: ``MemAvailable`` from /proc/meminfo
    (Linux), else free physical pages (``os.sysconf``), else None (unknown)."""
    try:
        with open(meminfo, encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    parts = line.split()
                    unit = parts[2].lower() if len(parts) > 2 else "kb"
                    return int(parts[1]) * (1024 if unit == "kb" else 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES")
        size = os.sysconf("SC_PAGE_SIZE")
        if pages > 0 and size > 0:
            return int(pages) * int(size)
    except (AttributeError, ValueError, OSError):
        pass
    return None


def _gb(n: float) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.1f} GB"
    return f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def check_memory(chains: int, draws: int, n_params: int, n_rows: int, *, available: int | None = None,
                 headroom: float = 2.0) -> int:
    """Refuse a run whose posterior would not fit in memory, before sampling starts.

    The posterior is held in memory while it is completed (user-scale parameters,
    log-likelihood, predictions) and written, which takes about ``headroom`` times the
    estimate of :func:`estimate_posterior_bytes`.

    Parameters
    ----------
    chains, draws, n_params, n_rows : int
        See :func:`estimate_posterior_bytes`.
    available : int, optional
        Bytes available; read from the system (:func:`available_memory`) when None. When it
        cannot be read either, nothing is refused.
    headroom : float
        Copies of the posterior alive at the peak.

    Returns
    -------
    int
        The estimate in bytes.

    Raises
    ------
    ConfigError
        Naming the estimate and the available memory, with a hint (fewer draws or chains).
    """
    need = estimate_posterior_bytes(chains, draws, n_params, n_rows)
    have = available_memory() if available is None else available
    if have is None or need * headroom <= have:
        return need
    per_draw = estimate_posterior_bytes(chains, 1, n_params, n_rows)  # one draw in every chain
    fits = int(have / headroom // max(per_draw, 1))
    if fits >= 1:
        hint = (f"use fewer draws: --draws {fits} or fewer would fit (1000-5000 per chain are plenty for "
                "means and 94% intervals), or fewer --chains")
    else:
        hint = "even one draw per chain does not fit: use fewer --chains, or a machine with more memory"
    raise ConfigError(
        f"the posterior would take about {_gb(need)} in memory ({chains} chains x {draws} draws x "
        f"({n_rows} rows x 2 + {n_params} parameters) x 8 bytes), about {_gb(need * headroom)} at its peak "
        f"while it is written, but only {_gb(have)} is available",
        hint=hint,
    )
