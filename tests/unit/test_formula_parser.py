"""The closed lme4 formula parser: forms, term names, and refusals (nothing is evaluated)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hlm_cli.errors import FormulaError, HlmError
from hlm_cli.formula import parse

COLS = ["y", "x", "z", "g", "h", "a", "b", "s", "f", "n", "t", "Days", "Subject", "sigma", "batch", "cask"]


def test_crossed_intercepts():
    f = parse("y ~ 1 + (1|g) + (1|h)", COLS)
    assert f.fixed == "1"
    assert [(t.expr, t.factor, t.correlated) for t in f.groups] == [("1", ("g",), True), ("1", ("h",), True)]
    assert f.response.expr == "y" and f.response.kind == "plain"


def test_correlated_slope_and_implicit_intercept():
    f = parse("y ~ Days + (Days | Subject)", COLS)
    assert f.fixed == "1 + Days"
    assert f.groups[0].expr == "1 + Days" and f.groups[0].correlated


def test_double_bar_splits_into_independent_terms():
    f = parse("y ~ Days + (Days || Subject)", COLS)
    assert [(t.expr, t.correlated) for t in f.groups] == [("1", False), ("0 + Days", False)]


def test_no_intercept_group_term():
    f = parse("y ~ (0 + x | g)", COLS)
    assert f.groups[0].expr == "0 + x"
    f = parse("y ~ (-1 + x | g)", COLS)
    assert f.groups[0].expr == "0 + x"


def test_nesting_expands_like_lme4():
    f = parse("y ~ 1 + (1 | batch/cask)", COLS)
    assert [t.factor for t in f.groups] == [("batch",), ("batch", "cask")]
    f = parse("y ~ 1 + (1 | a/b/g)", COLS)
    assert [t.factor for t in f.groups] == [("a",), ("a", "b"), ("a", "b", "g")]


def test_interaction_grouping_factor():
    assert parse("y ~ (1 | a:b)", COLS).groups[0].factor == ("a", "b")


def test_several_bars_for_one_factor():
    f = parse("y ~ x + (1|g) + (0 + x|g)", COLS)
    assert [(t.expr, t.factor) for t in f.groups] == [("1", ("g",)), ("0 + x", ("g",))]


def test_fixed_part_keeps_interactions_and_transforms():
    f = parse("y ~ x * z + I(x^2) + log(z + 1) + scale(x) + center(z) + C(g)", COLS)
    assert f.fixed == "1 + x * z + I(x**2) + log(z + 1) + scale(x) + center(z) + C(g)"
    assert parse("y ~ (x + z)^2", COLS).fixed == "1 + (x + z)**2"
    assert parse("y ~ x %in% g", COLS).fixed == "1 + x:g"


def test_removing_intercept():
    assert parse("y ~ 0 + x", COLS).has_intercept is False
    assert parse("y ~ x - 1", COLS).has_intercept is False


def test_binomial_responses():
    r = parse("cbind(s, f) ~ x + (1|g)", COLS).response
    assert (r.kind, r.expr, r.failures) == ("binomial", "s", "f")
    r = parse("cbind(s, n - s) ~ x", COLS).response
    assert r.failures == "n - s"
    r = parse("p(s, n) ~ x", COLS).response
    assert (r.kind, r.trials) == ("binomial", "n")
    r = parse("s | trials(n) ~ x", COLS).response
    assert (r.kind, r.trials) == ("binomial", "n")


def test_known_standard_errors():
    r = parse("y | se(sigma) ~ 1 + (1|g)", COLS).response
    assert (r.se, r.se_sigma) == ("sigma", False)
    assert parse("y | se(sigma, sigma = TRUE) ~ 1", COLS).response.se_sigma is True


def test_offset_is_kept_in_fixed_part():
    assert "offset(log(t))" in parse("y ~ x + offset(log(t))", COLS).fixed


def test_columns_collected():
    assert parse("cbind(s, f) ~ x + (1|g)", COLS).columns == {"s", "f", "x", "g"}


def test_predictor_columns_exclude_response_and_grouping_only_columns():
    f = parse("y | se(sigma) ~ x + log(`a b`) + (1 + z | g)", COLS + ["a b"])
    assert f.predictor_columns == {"x", "a b", "z"}


@pytest.mark.parametrize(
    "formula, fragment",
    [
        ("y ~ os.system('echo pwned')", "'os.system' is not allowed"),
        ("y ~ __import__('os')", "'__import__' is not allowed"),
        ("y ~ open('/etc/passwd')", "'open' is not allowed"),
        ("y ~ eval('1')", "'eval' is not allowed"),
        ("y ~ x.__class__", "not allowed"),
        ("y ~ lambda: 1", "column 'lambda' is not in the data"),  # a keyword is a column name
        ("y ~ x[0]", "syntax error"),
        ("y ~ (1|g", "expected ')'"),
        ("y ~ 1 + (1|g))", "unexpected ')'"),
        ("y", "no '~'"),
        ("y ~ ", "nothing after '~'"),
        ("y ~ x ~ z", "exactly one '~'"),
        ("y ~ 2", "bare number"),
        ("y ~ nope", "column 'nope' is not in the data"),
        ("y ~ (1 | x + z)", "expected ')'"),
        ("y ~ se(sigma)", "left-hand side"),
        ("y ~ `weird name`", "column 'weird name' is not in the data"),
        ("y ~ `x", "backtick-quoted name is not closed"),
        ("y ~ ``", "empty backtick"),
        ("y ~ .", "'.' (all other columns) is not supported"),
        ("y ~ x + (1|g):z", "must stand on its own"),
    ],
)
def test_refusals(formula, fragment):
    with pytest.raises(FormulaError) as ei:
        parse(formula, COLS)
    assert fragment in str(ei.value) + (ei.value.hint or "")


def test_syntax_error_shows_position():
    with pytest.raises(FormulaError) as ei:
        parse("y ~ 1 + (1|g))", COLS)
    assert "character 14" in str(ei.value)
    assert ei.value.hint.splitlines()[1] == " " * 13 + "^"


def test_unknown_column_suggests_closest():
    with pytest.raises(FormulaError) as ei:
        parse("y ~ 1 + (1|Subjects)", COLS)
    assert "did you mean 'Subject'" in ei.value.hint


def test_refused_formula_runs_nothing(tmp_path, monkeypatch):
    """A hostile formula is refused before any evaluation: the side effect never happens."""
    marker = tmp_path / "pwned"
    for f in (f"y ~ os.system('touch {marker}')", f"y ~ __import__('os').system('touch {marker}')",
              f"y ~ I(open('{marker}', 'w'))"):
        with pytest.raises(FormulaError):
            parse(f, COLS)
    assert not marker.exists()


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="yxgz ~+-*/:|()^0123456789._'\"[],=osI", max_size=40))
def test_any_text_parses_or_raises_a_clean_error(text):
    try:
        parse(text, COLS)
    except HlmError:
        pass
