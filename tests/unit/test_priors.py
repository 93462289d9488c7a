"""--prior parsing: safe, exact, with clear refusals."""

import pytest

from hlm_cli.errors import PriorError
from hlm_cli.model.priors import parse_prior, parse_priors


def test_positional_and_keyword_arguments():
    term, p = parse_prior("Intercept=Normal(0, 100)")
    assert term == "Intercept" and p.dist == "Normal" and p.kwargs == {"mu": 0.0, "sigma": 100.0}
    _, p = parse_prior("sigma = HalfStudentT(nu=4, sigma=2.5)")
    assert p.kwargs == {"nu": 4.0, "sigma": 2.5}
    _, p = parse_prior("b=Normal(-1, 2)")
    assert p.kwargs["mu"] == -1.0
    assert parse_prior("1|gene=HalfNormal(1)")[0] == "1|gene"


@pytest.mark.parametrize("text, fragment", [
    ("Intercept", "no '='"),
    ("=Normal(0,1)", "names no term"),
    ("Intercept=Nrmal(0, 1)", "unknown prior distribution 'Nrmal'"),
    ("Intercept=Normal(0)", "needs sigma"),
    ("Intercept=Normal(0, 1, 2)", "takes 2 argument"),
    ("Intercept=Normal(0, -1)", "sigma must be > 0"),
    ("Intercept=Normal(mu=0, scale=1)", "no parameter 'scale'"),
    ("Intercept=Normal(0, x)", "must be numbers"),
    ("Intercept=__import__('os').system('x')", "expected a distribution"),
    ("Intercept=Normal(0,", "cannot read"),
])
def test_refusals(text, fragment):
    with pytest.raises(PriorError) as ei:
        parse_prior(text)
    assert fragment in str(ei.value) + (ei.value.hint or "")


def test_unknown_distribution_suggests():
    with pytest.raises(PriorError) as ei:
        parse_prior("sigma=HalfNormel(1)")
    assert "HalfNormal" in ei.value.hint


def test_duplicate_terms():
    with pytest.raises(PriorError, match="two priors"):
        parse_priors(["sigma=HalfNormal(1)", "sigma=HalfNormal(2)"])


def test_str_roundtrip_is_readable():
    assert str(parse_prior("sigma=HalfNormal(10)")[1]) == "HalfNormal(sigma=10)"
