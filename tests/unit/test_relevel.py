"""relevel(x, ref = "wt") and C(x, levels = [...]) in formulas: the same effect as --reference
(the first level is the reference, the term keeps the plain column name), and clear errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from hlm_cli.errors import FormulaError
from hlm_cli.formula.design import build_design
from hlm_cli.formula.parser import parse


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = 24
    return pd.DataFrame({
        "y": rng.normal(size=n),
        "G": ["ko", "wt", "het"] * (n // 3),
        "x": rng.normal(size=n),
        "m": [f"m{i % 6}" for i in range(n)],
        "p": [1, 2, 3, 4] * (n // 4),
    })


def design(text, frame, reference=None):
    return build_design(parse(text, list(frame.columns)), frame, reference=reference)


@pytest.mark.parametrize("text", [
    'y ~ relevel(G, ref = "wt") + (1|m)',
    'y ~ relevel(G, "wt") + (1|m)',
    "y ~ relevel(G, ref = 'wt') + (1|m)",
])
def test_relevel_equals_reference_flag(frame, text):
    via_formula = design(text, frame)
    via_flag = design("y ~ G + (1|m)", frame, reference={"G": "wt"})
    assert via_formula.x_labels == via_flag.x_labels == ["Intercept", "G[het]", "G[ko]"]
    np.testing.assert_array_equal(via_formula.X, via_flag.X)
    assert via_formula.levels["G"] == ["wt", "het", "ko"]
    # the default (sorted) coding differs: the test can tell them apart
    assert design("y ~ G + (1|m)", frame).x_labels == ["Intercept", "G[ko]", "G[wt]"]


@pytest.mark.parametrize("levels", ['["wt", "ko", "het"]', 'c("wt", "ko", "het")'])
def test_C_levels_sets_the_full_order(frame, levels):
    d = design(f"y ~ C(G, levels = {levels}) * x + (1|m)", frame)
    assert d.x_labels == ["Intercept", "G[ko]", "G[het]", "x", "G[ko]:x", "G[het]:x"]
    assert d.levels["G"] == ["wt", "ko", "het"]
    assert "G" in d.fixed_slices  # one posterior variable named by the plain column


def test_parsed_formula_is_plain_column(frame):
    f = parse('y ~ relevel(G, ref = "wt"):x + (relevel(G, ref = "wt") | m)', list(frame.columns))
    assert f.fixed == "1 + G:x"
    assert f.groups[0].expr == "1 + G"
    assert [(o.column, o.values, o.full) for o in f.levels] == [("G", ("wt",), False)] * 2
    assert "relevel" not in f.fixed


def test_group_term_left_side(frame):
    d = design('y ~ x + (relevel(G, ref = "wt") | m)', frame)
    assert d.groups[0].columns == ["Intercept", "G[het]", "G[ko]"]
    d2 = design('y ~ x + (C(G, levels = ["het", "wt", "ko"]) | m)', frame)
    assert d2.groups[0].columns == ["Intercept", "G[wt]", "G[ko]"]


def test_numeric_column_through_C(frame):
    d = design("y ~ C(p, levels = [2, 1, 3, 4]) + (1|m)", frame)
    assert d.x_labels == ["Intercept", "p[1]", "p[3]", "p[4]"]
    d = design("y ~ relevel(C(p), ref = 3) + (1|m)", frame)
    assert d.x_labels == ["Intercept", "p[1]", "p[2]", "p[4]"]


def test_relevel_on_a_number_is_refused_with_C_hint(frame):
    with pytest.raises(FormulaError) as err:
        design("y ~ relevel(p, ref = 2) + (1|m)", frame)
    assert "p is a number" in str(err.value)
    assert "C(p, levels = [2, 1, 3, 4])" in err.value.hint


def test_unknown_level_lists_levels(frame):
    with pytest.raises(FormulaError) as err:
        design('y ~ relevel(G, ref = "wx") + (1|m)', frame)
    assert "'wx' is not a level of 'G'" in str(err.value)
    assert "'het', 'ko', 'wt'" in err.value.hint
    with pytest.raises(FormulaError, match="'wx' is not a level"):
        design('y ~ C(G, levels = ["wt", "wx", "ko"]) + (1|m)', frame)


def test_C_levels_must_list_every_level(frame):
    with pytest.raises(FormulaError) as err:
        design('y ~ C(G, levels = ["wt", "ko"]) + (1|m)', frame)
    assert "leaves out the level(s) 'het'" in str(err.value)
    with pytest.raises(FormulaError, match="listed twice"):
        parse('y ~ C(G, levels = ["wt", "wt", "ko"])', ["y", "G"])


def test_conflicts(frame):
    with pytest.raises(FormulaError) as err:
        design('y ~ relevel(G, ref = "wt") + (1|m)', frame, reference={"G": "ko"})
    assert "--reference G=ko disagrees with" in str(err.value)
    assert "one place" in err.value.hint
    # the same reference both ways is fine
    assert design('y ~ relevel(G, ref = "wt") + (1|m)', frame, reference={"G": "wt"}).x_labels[1:] == ["G[het]", "G[ko]"]
    with pytest.raises(FormulaError, match="two different level orders"):
        design('y ~ relevel(G, ref = "ko") + (relevel(G, ref = "wt") | m)', frame)
    # relevel agreeing with C's reference keeps C's order
    d = design('y ~ C(G, levels = ["wt", "ko", "het"]) + (relevel(G, ref = "wt") | m)', frame)
    assert d.x_labels[1:] == ["G[ko]", "G[het]"]


@pytest.mark.parametrize("text, fragment", [
    ("y ~ relevel(G) + x", "takes a column and its reference level"),
    ("y ~ relevel(G, ref = x)", "string or number"),
    ('y ~ relevel(log(x), ref = "a")', "column name"),
    ('y ~ log(relevel(G, ref = "wt"))', "cannot stand inside log()"),
    ('relevel(G, ref = "wt") ~ x', "right-hand side"),
    ("y ~ C(G, levels = x)", "list of the column's levels"),
    ('y ~ c("a", "b")', "'c' is not allowed"),
])
def test_malformed_calls(text, fragment):
    with pytest.raises(FormulaError) as err:
        parse(text, ["y", "G", "x"])
    assert fragment in str(err.value)


def test_new_data_follows_the_fitted_order(frame):
    """predict/contrast evaluate new rows through the fitted formulae design: ref = wt is zero."""
    d = design('y ~ relevel(G, ref = "wt") + (1|m)', frame)
    new = pd.DataFrame({"G": ["wt", "ko", "het"], "m": ["m1"] * 3})
    X = np.asarray(d.common.evaluate_new_data(new).design_matrix)
    np.testing.assert_array_equal(X, [[1, 0, 0], [1, 0, 1], [1, 1, 0]])


def test_cli_priors_names_and_errors(tmp_path, frame):
    csv = tmp_path / "d.csv"
    frame.to_csv(csv, index=False)
    hlm = [sys.executable, "-m", "hlm_cli"]
    ok = subprocess.run(hlm + ["priors", str(csv), "--formula", 'y ~ relevel(G, ref = "wt") + (1|m)'],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "G[het]" in ok.stdout and "G[ko]" in ok.stdout and "G[wt]" not in ok.stdout
    bad = subprocess.run(hlm + ["priors", str(csv), "--formula", 'y ~ relevel(G, ref = "wt") + (1|m)',
                                "--reference", "G=ko"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert "error: --reference G=ko disagrees" in bad.stderr and "Traceback" not in bad.stderr
