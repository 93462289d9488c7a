"""Issue 15: formulas and data that used to end in RecursionError, NotImplementedError,
LinAlgError or a traceback are refused with one FormulaError/InputError (message + hint)."""

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hlm_cli.errors import FormulaError, HlmError, InputError
from hlm_cli.formula import parse
from hlm_cli.formula.design import build_design
from hlm_cli.formula.parser import MAX_DEPTH, MAX_TERMS

COLS = ["y", "x", "z", "g"]


# -- size limits, checked before any recursion ------------------------------------------------


@pytest.mark.parametrize(
    "formula",
    [
        "y ~ " + "(" * 200 + "x" + ")" * 200,
        "y ~ I(" + "(" * 200 + "x" + ")" * 200 + ")",
        "y ~ log(" * 200 + "x" + ")" * 200,
        "(" * 1000 + "y" + ")" * 1000 + " ~ x",
        "y ~ " + "(" * 5000,
    ],
)
def test_deep_nesting_is_refused_with_the_limit(formula):
    with pytest.raises(FormulaError) as ei:
        parse(formula, COLS)
    assert f"more than {MAX_DEPTH} deep" in str(ei.value)
    assert f"at most {MAX_DEPTH} nested brackets" in ei.value.hint


def test_nesting_at_the_limit_still_parses():
    f = parse("y ~ " + "(" * (MAX_DEPTH - 1) + "x" + ")" * (MAX_DEPTH - 1), COLS)
    assert f.columns == {"y", "x"}


@pytest.mark.parametrize(
    "formula",
    [
        "y ~ " + " + ".join(["x"] * 1000),
        "y ~ x" + " - z" * 1000,
        "y ~ " + ":".join(["x"] * 600),
        "y ~ " + "-" * 2000 + "x",
    ],
)
def test_thousands_of_terms_are_refused_with_the_limit(formula):
    with pytest.raises(FormulaError) as ei:
        parse(formula, COLS)
    assert f"hlm accepts at most {MAX_TERMS}" in str(ei.value)
    assert ei.value.hint


def test_a_product_that_expands_to_thousands_of_terms_is_refused():
    cols = [f"x{i}" for i in range(12)] + ["y"]
    with pytest.raises(FormulaError) as ei:
        parse("y ~ " + " * ".join(cols[:12]), cols)  # 2^12 - 1 = 4095 terms
    assert "expands to" in str(ei.value) and f"at most {MAX_TERMS}" in str(ei.value)
    with pytest.raises(FormulaError, match="expands to"):
        parse("y ~ (" + " + ".join(cols[:12]) + ")^6", cols)
    # a modest product is fine
    assert parse("y ~ x0 * x1 * x2", cols).fixed == "1 + x0 * x1 * x2"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="yx ~+-*:()^`|IlogGröße.", max_size=400))
def test_any_text_ends_in_a_clean_error_never_a_recursion_error(text):
    try:
        parse(text, COLS + ["Größe"])
    except HlmError as err:
        assert str(err)


# -- '.' and names that need backticks ---------------------------------------------------------


def test_dot_is_refused_listing_the_columns():
    cols = ["y", "dose", "cell line", "batch"]
    with pytest.raises(FormulaError) as ei:
        parse("y ~ .", cols)
    assert "'.' (all other columns) is not supported" in str(ei.value)
    assert "attribute access" not in str(ei.value)
    assert "columns: y, dose, `cell line`, batch" in ei.value.hint


def test_unquoted_non_ascii_name_hints_at_backticks():
    with pytest.raises(FormulaError) as ei:
        parse("y ~ Größe + x", ["y", "x", "Größe"])
    assert "unexpected character 'ö'" in str(ei.value)
    assert "backticks: `Größe`" in ei.value.hint


@pytest.mark.parametrize("formula", ["y ~ cell line", "y ~ x + cell line + z", "y ~ log(cell line)"])
def test_unquoted_spaced_name_hints_at_backticks(formula):
    with pytest.raises(FormulaError) as ei:
        parse(formula, ["y", "x", "z", "cell line"])
    assert "backticks: `cell line`" in ei.value.hint


def test_part_of_a_spaced_name_hints_at_backticks():
    with pytest.raises(FormulaError) as ei:
        parse("y ~ cell", ["y", "cell line"])
    assert "column 'cell' is not in the data" in str(ei.value)
    assert "`cell line`" in ei.value.hint


def test_backticked_names_parse_and_render_for_formulae():
    f = parse("`Größe` ~ `cell line` + log(`Größe 2` + 1) + (1 | `plate id`)", ["Größe", "cell line", "Größe 2", "plate id"])
    assert f.response.expr == "Größe"
    assert f.fixed == "1 + `cell line` + log(`Größe 2` + 1)"
    assert f.groups[0].factor == ("plate id",)


def test_a_backticked_name_is_only_ever_a_column(tmp_path):
    """Code in backticks is a (missing) column name; as a real column it is just data."""
    marker = tmp_path / "pwned"
    hostile = f"__import__('os').system('touch {marker}')"
    with pytest.raises(FormulaError, match="is not in the data"):
        parse(f"y ~ `{hostile}`", COLS)
    df = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0], hostile: [0.5, 1.5, 2.0, 3.5]})
    d = build_design(parse(f"y ~ `{hostile}` + log(`{hostile}`)", list(df.columns)), df)
    shown = hostile.replace("/", "\u2215")  # '/' in a parameter name is stored as U+2215 (design.DIVISION_SLASH)
    assert d.x_labels == ["Intercept", shown, f"log({shown})"]
    assert not marker.exists()


# -- transforms that give inf or nan -----------------------------------------------------------


@pytest.fixture
def data():
    return pd.DataFrame(
        {
            "y": [1.0, 2.0, -1.0, 4.0, 0.0, 6.0],
            "x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            "z": [1.0, 0.0, 2.0, 3.0, 4.0, 5.0],
            "g": ["a", "b"] * 3,
        }
    )


@pytest.mark.parametrize(
    "formula, message, hint",
    [
        ("log(y) ~ x", "the response log(y) gives nan at data row 3 (y = -1.0); 2 rows in all", "log() needs values > 0"),
        ("sqrt(y) ~ x", "the response sqrt(y) gives nan at data row 3 (y = -1.0)", "sqrt() needs values >= 0"),
        ("y ~ I(x/z)", "the term I(x / z) gives inf at data row 2 (x = 2.0, z = 0.0)", "division by zero"),
        ("y ~ log(z)", "the term log(z) gives -inf at data row 2 (z = 0.0)", "log() needs values > 0"),
        ("y ~ sqrt(x - 3)", "the term sqrt(x - 3) gives nan at data row 1 (x = 1.0); 2 rows in all", "sqrt() needs values >= 0"),
        ("y ~ exp(x * 1000)", "the term exp(x * 1000) gives inf at data row 1 (x = 1.0); 6 rows in all", "overflow"),
        ("y ~ x + (1 + log(z) | g)", "the term log(z) in (1 + log(z)|g) gives -inf at data row 2 (z = 0.0)", "log() needs values > 0"),
        ("y ~ x + offset(log(z))", "the term offset(log(z)) gives -inf at data row 2 (z = 0.0)", "log() needs values > 0"),
        ("y ~ x:log(z)", "the term x:log(z) gives -inf at data row 2 (x = 2.0, z = 0.0)", "log() needs values > 0"),
    ],
)
def test_non_finite_transforms_are_refused_naming_term_row_and_values(data, formula, message, hint):
    with pytest.raises(InputError) as ei:
        build_design(parse(formula, list(data.columns)), data)
    assert str(ei.value) == message
    assert hint in ei.value.hint


def test_csv_lines_are_named_when_given(data):
    with pytest.raises(InputError) as ei:
        build_design(parse("log(y) ~ x", list(data.columns)), data, lines=np.arange(len(data)) + 2)
    assert "at CSV line 4 (y = -1.0)" in str(ei.value)


def test_infinite_value_in_a_plain_column(data):
    bad = data.assign(x=[1.0, 2.0, np.inf, 4.0, 5.0, 6.0])
    with pytest.raises(InputError) as ei:
        build_design(parse("y ~ x", list(bad.columns)), bad)
    assert str(ei.value) == "the term x is inf at data row 3"
    assert "finite" in ei.value.hint


def test_non_finite_number_of_trials(data):
    df = data.assign(s=[1, 2, 0, 1, 0, 2], n=[2.0, 0.0, 3.0, 4.0, 1.0, 2.0])
    with pytest.raises(InputError) as ei:
        build_design(parse("s | trials(log(n)) ~ x", list(df.columns)), df)
    assert re.match(r"the number of trials log\(n\) gives -inf at data row 2 \(n = 0\.0\)", str(ei.value))


def test_sigma_formula_transform_is_checked(data):
    from hlm_cli.formula.design import build_sigma_design

    with pytest.raises(InputError) as ei:
        build_sigma_design(parse("~ log(z)", list(data.columns)).fixed, data)
    assert str(ei.value).startswith("--sigma-formula term log(z) gives -inf at data row 2")


def test_finite_transforms_build(data):
    d = build_design(parse("y ~ log(x) + I(x / (z + 1))", list(data.columns)), data)
    np.testing.assert_allclose(d.X[:, 1], np.log(data["x"]))
    assert np.isfinite(d.X).all()
