"""--prior parsing: safe, exact, with clear refusals."""

import pytest

from hlm_cli.errors import PriorError
from hlm_cli.formula.priors import DISTRIBUTIONS, EXAMPLES, POSITIVE_ARGS, parse_prior, parse_priors


def test_positional_and_keyword_arguments():
    term, p = parse_prior("Intercept=Normal(0, 100)")
    assert term == "Intercept" and p.dist == "Normal" and p.kwargs == {"mu": 0.0, "sigma": 100.0}
    _, p = parse_prior("sigma = HalfStudentT(nu=4, sigma=2.5)")
    assert p.kwargs == {"nu": 4.0, "sigma": 2.5}
    _, p = parse_prior("b=Normal(-1, 2)")
    assert p.kwargs["mu"] == -1.0
    assert parse_prior("1|gene=HalfNormal(1)")[0] == "1|gene"


@pytest.mark.parametrize("text, message, hint", [
    ("Intercept", "--prior 'Intercept' has no '='", "TERM=Dist(args)"),
    ("=Normal(0,1)", "names no term", "sigma=HalfNormal(10)"),
    ("Intercept=Nrmal(0, 1)", "unknown prior distribution 'Nrmal'", "did you mean 'Normal'?"),
    ("Intercept=Normal(0)", "--prior 'Intercept=Normal(0)': Normal needs sigma (Normal(mu, sigma))", "e.g. Normal(0, 10)"),
    ("Intercept=Normal(0, 1, 2)", "Normal takes 2 argument(s) (mu, sigma), got 3", "Normal(mu, sigma) with sigma > 0"),
    ("Intercept=Normal(0, -1)", "Normal's sigma must be > 0 (got -1)", "e.g. Normal(0, 10)"),
    ("Intercept=Normal(0, 0)", "Normal's sigma must be > 0 (got 0)", "sigma > 0"),
    ("sigma=HalfNormal(-1)", "--prior 'sigma=HalfNormal(-1)': HalfNormal's sigma must be > 0 (got -1)", "e.g. HalfNormal(1)"),
    ("sigma=HalfNormal(1e999999)", "HalfNormal's sigma must be a finite number (got inf)", "e.g. HalfNormal(1)"),
    ("sigma=HalfNormal(-1e999999)", "HalfNormal's sigma must be a finite number (got -inf)", "all finite numbers"),
    ("sigma=HalfNormal(inf)", "HalfNormal's sigma must be a finite number (got inf)", "e.g. HalfNormal(1)"),
    ("sigma=HalfNormal(nan)", "HalfNormal's sigma must be a finite number (got nan)", "e.g. HalfNormal(1)"),
    ("sigma=HalfNormal(" + "9" * 400 + ")", "HalfNormal's sigma must be a finite number (got inf)", "e.g. HalfNormal(1)"),
    ("x=Normal(1e999, 1)", "Normal's mu must be a finite number (got inf)", "e.g. Normal(0, 10)"),
    ("x=Gamma(-2, 1)", "Gamma's alpha must be > 0 (got -2)", "Gamma(alpha, beta) with alpha > 0 and beta > 0"),
    ("x=Beta(1, 0)", "Beta's beta must be > 0 (got 0)", "e.g. Beta(2, 2)"),
    ("x=InverseGamma(0, 1)", "InverseGamma's alpha must be > 0 (got 0)", "e.g. InverseGamma(3, 1)"),
    ("x=StudentT(0, 0, 1)", "StudentT's nu must be > 0 (got 0)", "e.g. StudentT(3, 0, 10)"),
    ("x=LogNormal(0, -1)", "LogNormal's sigma must be > 0 (got -1)", "e.g. LogNormal(0, 1)"),
    ("x=Uniform(1, 1)", "Uniform's lower must be below upper (got 1 and 1)", "lower < upper"),
    ("x=Flat(1)", "Flat takes 0 argument(s) (none), got 1", "e.g. Flat()"),
    ("x=Normal(0, 1, mu=2)", "Normal's mu is given twice", "e.g. Normal(0, 10)"),
    ("Intercept=Normal(mu=0, scale=1)", "Normal has no parameter 'scale'", "Normal(mu, sigma)"),
    ("Intercept=Normal(0, x)", "Normal's sigma must be a number (got 'x')", "e.g. Normal(0, 10)"),
    ("Intercept=Normal(0, True)", "Normal's sigma must be a number (got 'True')", "e.g. Normal(0, 10)"),
    ("Intercept=Normal(0, 1j)", "Normal's sigma must be a number (got '1j')", "e.g. Normal(0, 10)"),
    ("Intercept=Normal(0, 2**2)", "Normal's sigma must be a number (got '2 ** 2')", "e.g. Normal(0, 10)"),
    ("Intercept=Normal(*[0, 1])", "must be a number", "e.g. Normal(0, 10)"),
    ("Intercept=Normal(**{})", "Normal has no parameter None", "e.g. Normal(0, 10)"),
    ("Intercept=__import__('os').system('x')", "expected a distribution", "known: Normal"),
    ("Intercept=Normal(0,", "cannot read", "e.g. Normal(0, 10)"),
    ("Intercept=Normal(0, 1)\x00", "cannot read", "Dist(arg, ...)"),
    ("x=" + "-" * 2000 + "1", "is too long", "Intercept=Normal(0, 100)"),
    ("x=Normal(" + "(" * 220 + "0" + ")" * 220 + ", 1)", "cannot read", "Normal(0, 10)"),
])
def test_refusals_name_the_value_and_the_rule(text, message, hint):
    with pytest.raises(PriorError) as ei:
        parse_prior(text)
    assert message in str(ei.value)
    assert hint in (ei.value.hint or "")


def test_every_refusal_has_a_hint_with_a_valid_example():
    for name, example in EXAMPLES.items():
        term, prior = parse_prior(f"x={example}")
        assert prior.dist == name
        for bad in POSITIVE_ARGS.get(name, ()):
            args = {p: 1.0 for p in DISTRIBUTIONS[name][0]} | {bad: -1.0}
            with pytest.raises(PriorError) as ei:
                parse_prior(f"x={name}(" + ", ".join(f"{k}={v}" for k, v in args.items()) + ")")
            assert f"{name}'s {bad} must be > 0 (got -1)" in str(ei.value)
            assert f"e.g. {example}" in ei.value.hint


def test_where_names_the_config_key():
    with pytest.raises(PriorError) as ei:
        parse_prior("sigma=HalfNormal(-1)", where="run.toml: priors.sigma = 'HalfNormal(-1)'")
    assert str(ei.value).startswith("run.toml: priors.sigma = 'HalfNormal(-1)': HalfNormal's sigma must be > 0")


def test_signed_and_keyword_values():
    assert parse_prior("x=Normal(--1, +2)")[1].kwargs == {"mu": 1.0, "sigma": 2.0}
    assert parse_prior("x=Cauchy(-3, 1)")[1].kwargs == {"alpha": -3.0, "beta": 1.0}  # alpha is the location
    assert parse_prior("x=Uniform(lower=-1, upper=1e3)")[1].kwargs == {"lower": -1.0, "upper": 1000.0}


def test_unknown_distribution_suggests():
    with pytest.raises(PriorError) as ei:
        parse_prior("sigma=HalfNormel(1)")
    assert "HalfNormal" in ei.value.hint


def test_duplicate_terms():
    with pytest.raises(PriorError, match="two priors"):
        parse_priors(["sigma=HalfNormal(1)", "sigma=HalfNormal(2)"])


def test_str_roundtrip_is_readable():
    assert str(parse_prior("sigma=HalfNormal(10)")[1]) == "HalfNormal(sigma=10)"


def test_the_model_uses_the_one_prior_parser():
    from hlm_cli.formula import priors as syntax
    from hlm_cli.model import priors as model

    for name in ("DISTRIBUTIONS", "EXAMPLES", "POSITIVE_ARGS", "MAX_PRIOR_CHARS", "Prior", "parse_prior", "parse_priors"):
        assert getattr(model, name) is getattr(syntax, name), name
    _, p = parse_prior("b=Normal(0, 2.5)")
    assert str(p) == "Normal(mu=0, sigma=2.5)" and p.to_json()["args"] == {"mu": 0.0, "sigma": 2.5}
