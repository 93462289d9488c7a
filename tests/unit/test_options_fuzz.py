"""Property tests of the option/config layer: any settings give a FitSpec or an HlmError.

Nothing here reads data or samples: the spec loader (``spec_from_layers``, the part of
``load_fit_spec`` after the TOML file is read, and ``load_fit_spec`` on generated TOML text)
and the prior parser are fed arbitrary values, and must answer with a valid spec or a
one-line error with a hint, never another exception.
"""

import json
import math
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hlm_cli.errors import HlmError
from hlm_cli.formula.priors import DISTRIBUTIONS, Prior, parse_prior, parse_priors
from hlm_cli.spec import (
    MAX_CHAINS,
    MAX_DRAWS,
    MAX_SEED,
    MIN_TUNE,
    FitSpec,
    SamplerSpec,
    load_fit_spec,
    spec_from_layers,
)

TOP = sorted(set(FitSpec.model_fields) | {"prior", "target-accept", "max-treedepth", "prior-predictive", "color-by"})
SAMPLER = sorted(SamplerSpec.model_fields)
KEYS = st.one_of(st.sampled_from(TOP + SAMPLER), st.sampled_from(SAMPLER), st.text(max_size=12))

scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2**32 - 1, 2**32, 2**63, 2**64, 10**400, MAX_DRAWS, MAX_DRAWS + 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1.0, 0.5, 0.999, float("inf"), float("-inf"), float("nan"), 2.5]),
    st.booleans(),
    st.text(max_size=20),
    st.sampled_from(["", " ", "nutpie", "stan", "gaussian", "y ~ x", "Normal(0, 1)", "sigma=HalfNormal(1)",
                     "HalfNormal(-1)", "\x00", "diag", "auto"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=12,
)
configs = st.dictionaries(KEYS, values, max_size=8)
sampler_tables = st.dictionaries(st.sampled_from(SAMPLER + ["target-accept", "draw"]), values, max_size=5)


def check_outcome(call):
    """Call; a FitSpec must satisfy every documented bound, an HlmError must read well."""
    try:
        spec = call()
    except HlmError as err:
        assert str(err) and "\n" not in str(err)
        assert err.hint, f"no hint for: {err}"
        return None
    s = spec.sampler
    for v in (s.draws, s.tune, s.chains, s.seed, s.max_treedepth):
        assert type(v) is int
    assert 1 <= s.draws and s.draws * s.chains <= MAX_DRAWS
    assert MIN_TUNE <= s.tune <= MAX_DRAWS and 1 <= s.chains <= MAX_CHAINS and 0 <= s.seed <= MAX_SEED
    assert 0 < s.target_accept < 1 and 1 <= s.max_treedepth <= 20
    assert spec.formula.strip() and spec.family.strip()
    assert all(type(getattr(spec, f)) is bool for f in ("dropna", "force", "quiet", "strict", "plots", "svg", "cache"))
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in spec.priors.items())
    assert all(isinstance(c, str) and c.strip() for c in spec.categorical)
    return spec


@settings(max_examples=400, deadline=None)
@given(configs, sampler_tables)
def test_any_config_table_gives_a_spec_or_a_clean_error(raw, sampler):
    raw = dict(raw)
    if sampler:
        raw["sampler"] = sampler
    raw.setdefault("formula", "y ~ x")
    check_outcome(lambda: spec_from_layers(raw, "run.toml", data=Path("d.csv"), out=Path("o")))


# values near the edges of what each setting takes, valid and not, so that many specs pass
EDGES = {
    "draws": [1, 1000, MAX_DRAWS // 4, MAX_DRAWS // 4 + 1, MAX_DRAWS, 0, -1, True, 2.0, "10"],
    "tune": [MIN_TUNE, 1000, MAX_DRAWS, 0, MAX_DRAWS + 1, False, 1.5],
    "chains": [1, 4, MAX_CHAINS, 0, MAX_CHAINS + 1, 2.5, True],
    "cores": [1, 8, 0, -2, 4096, 4097],
    "seed": [0, 1, MAX_SEED, MAX_SEED + 1, -1, 2**64, 10**400, True],
    "target_accept": [0.5, 0.99, 1, 0, 1.0, 0.0, -0.1, float("nan"), float("inf"), True, "0.9"],
    "target-accept": [0.8, 1.5],
    "max_treedepth": [1, 10, 20, 0, 21, 12.0],
    "sampler": ["nutpie", "pymc", "numpyro", "stan", "", 3],
    "adaptation": ["diag", "low_rank", "full"],
    "parameterization": ["auto", "zerosum", "none"],
}
TOP_EDGES = {
    "formula": ["y ~ x", "", "  ", 3],
    "family": ["gaussian", "t", "Poisson", "", "gausian", 1],
    "categorical": [[], ["g"], "g", [1], [""], ["g", "h"]],
    "priors": [{}, {"sigma": "HalfNormal(1)"}, {"sigma": "HalfNormal(-1)"}, {"x": "Normal(0, 1e999)"}, 3,
               ["sigma=HalfNormal(2)"], ["sigma"], {"sigma": 1}],
    "dropna": [True, False, 1, "yes"],
    "plots": [True, False, 0],
    "out": ["o", "", "a\x00b", 5],
}
near_valid = st.fixed_dictionaries({}, optional={k: st.sampled_from(v) for k, v in {**EDGES, **TOP_EDGES}.items()})


@settings(max_examples=400, deadline=None)
@given(near_valid, st.booleans())
def test_values_near_the_edges(raw, in_table):
    raw = dict(raw)
    raw.setdefault("formula", "y ~ x")
    if in_table:  # the same settings under [sampler], as the file usually writes them
        raw["sampler"] = {k: raw.pop(k) for k in list(raw) if k in EDGES and k != "sampler"}
    check_outcome(lambda: spec_from_layers(raw, "run.toml", data=Path("d.csv"), out=None if "out" in raw else Path("o")))


flag_values = {
    "draws": st.one_of(st.none(), st.integers(min_value=-(2**70), max_value=2**70)),
    "tune": st.one_of(st.none(), st.integers(min_value=-(2**70), max_value=2**70)),
    "chains": st.one_of(st.none(), st.integers(min_value=-5, max_value=2000)),
    "cores": st.one_of(st.none(), st.integers(min_value=-5, max_value=10**6)),
    "seed": st.one_of(st.none(), st.integers(min_value=-(2**70), max_value=2**70)),
    "target_accept": st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    "max_treedepth": st.one_of(st.none(), st.integers(min_value=-5, max_value=200)),
    "sampler": st.one_of(st.none(), st.text(max_size=10), st.sampled_from(["nutpie", "pymc"])),
    "family": st.one_of(st.none(), st.text(max_size=10), st.sampled_from(["gaussian", "t", "poisson"])),
    "formula": st.one_of(st.none(), st.text(max_size=20), st.just("y ~ x")),
    "priors": st.one_of(st.none(), st.lists(st.text(max_size=30), max_size=3),
                        st.lists(st.sampled_from(["sigma=HalfNormal(1)", "x=Normal(0, 1)", "sigma=HalfNormal(-1)"]), max_size=3)),
    "categorical": st.one_of(st.none(), st.lists(st.text(max_size=5), max_size=3)),
    "dropna": st.one_of(st.none(), st.booleans()),
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({}, optional=flag_values), configs)
def test_any_command_line_values_give_a_spec_or_a_clean_error(flags, raw):
    raw = {"formula": "y ~ x", **raw}
    check_outcome(lambda: spec_from_layers(raw, "run.toml" if raw else "command line", data=Path("d.csv"),
                                           out=Path("o"), **flags))


def toml_value(v) -> str:
    """A TOML spelling of a generated value (inline tables and arrays)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(configs, st.text(max_size=40))
def test_any_config_file_gives_a_spec_or_a_clean_error(tmp_path, raw, noise):
    cfg = tmp_path / "run.toml"
    text = "".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in raw.items())
    cfg.write_text('formula = "y ~ x"\nout = "o"\n' + text if "formula" not in raw and "out" not in raw else text)
    check_outcome(lambda: load_fit_spec(cfg, data=Path("d.csv"), out=None))
    cfg.write_text(noise)  # arbitrary text: invalid TOML is an error like any other
    check_outcome(lambda: load_fit_spec(cfg, data=Path("d.csv"), out=Path("o"), formula="y ~ x"))
    cfg.write_bytes(noise.encode("utf-8", "surrogatepass") + b"\xff")
    check_outcome(lambda: load_fit_spec(cfg, data=Path("d.csv"), out=Path("o"), formula="y ~ x"))


NAMES = sorted(DISTRIBUTIONS) + ["Nrmal", "__import__", "eval", "x"]
args = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e999999", "-1e999999", "9" * 400, "nan", "inf", "-0", "True", "None", "x", "1j", "2**3",
                     "'1'", "(1)", "[1]", "sigma=1", "mu=-2", "nu=0", "lower=1", "upper=0", "**{}", "*[1]"]),
)
numbers = st.one_of(st.sampled_from(["1", "2.5", "0.1", "-1", "0", "1e3", "1e999999", "-1e999999", "9" * 400, "nan", "inf"]),
                    st.floats(allow_nan=False, allow_infinity=False).map(repr))
well_formed = st.sampled_from(sorted(DISTRIBUTIONS)).flatmap(
    lambda name: st.lists(numbers, min_size=len(DISTRIBUTIONS[name][0]), max_size=len(DISTRIBUTIONS[name][0])).map(
        lambda a: f"x={name}({', '.join(a)})"))
prior_texts = st.one_of(
    well_formed,
    st.text(max_size=60),
    st.text(alphabet="=()Normal, -+.0123456789eEinfa_|x", max_size=40),
    st.builds(lambda t, n, a: f"{t}={n}({', '.join(a)})", st.sampled_from(["x", "sigma", "1|g", " ", ""]),
              st.sampled_from(NAMES), st.lists(args, max_size=4)),
)


def check_prior(term: str, prior: Prior) -> None:
    params, positive = DISTRIBUTIONS[prior.dist]
    kw = prior.kwargs
    assert term.strip() and tuple(kw) == params
    assert all(isinstance(v, float) and math.isfinite(v) for v in kw.values())
    for p in ("sigma", "beta", "lam", "nu", "eta", "b"):
        if p in kw:
            assert kw[p] > 0
    if prior.dist in ("Gamma", "InverseGamma", "Beta"):
        assert kw["alpha"] > 0
    if prior.dist == "Uniform":
        assert kw["lower"] < kw["upper"]


@settings(max_examples=400, deadline=None)
@given(prior_texts)
def test_any_prior_text_parses_to_a_valid_prior_or_a_clean_error(text):
    try:
        term, prior = parse_prior(text)
    except HlmError as err:
        assert str(err) and err.hint, f"no hint for: {err}"
        return
    check_prior(term, prior)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.lists(prior_texts, max_size=4), st.dictionaries(st.text(max_size=8), prior_texts, max_size=4)))
def test_parse_priors_over_lists_and_tables(texts):
    try:
        parsed = parse_priors(texts)
    except HlmError as err:
        assert err.hint, f"no hint for: {err}"
        return
    for term, prior in parsed.items():
        check_prior(term, prior)
