"""Population-level column names (issue 16): one deterministic label per design column.

Every column is named from its components: numeric ``x``, factor ``f[v]`` (non-reference
levels), logical ``flag[True]``, transform ``log(z)`` / ``I(x^2)``, joined by ``:`` in
interactions. The posterior variable of each column (what summary.csv, --prior, hypothesis
and contrast see) must read exactly as that label. Python keywords and builtins are ordinary
column names. Nothing here samples.
"""

import itertools

import numpy as np
import pandas as pd
import pytest

from hlm_cli.formula import parse
from hlm_cli.formula.design import build_design

N = 48


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "y": rng.normal(size=N),
            "x": rng.normal(size=N),
            "w": rng.normal(size=N),
            "z": rng.uniform(1, 5, size=N),
            "f": np.tile(["u", "v", "w"], N // 3),  # string factor, reference "u"
            "h": np.tile(["r", "s"], N // 2),  # string factor, reference "r"
            "flag": np.tile([True, False, False, True], N // 4),  # logical
            "g": np.repeat([f"g{i}" for i in range(6)], N // 6),
        }
    )


# formula text of each kind of predictor and the labels its columns get (reduced coding)
KINDS = {
    "numeric": ("x", ["x"]),
    "numeric2": ("w", ["w"]),
    "factor": ("f", ["f[v]", "f[w]"]),
    "factor2": ("h", ["h[s]"]),
    "logical": ("flag", ["flag[True]"]),
    "log": ("log(z)", ["log(z)"]),
    "power": ("I(x^2)", ["I(x^2)"]),
}


def _summary_names(design) -> list[str]:
    """The names arviz gives each column: ``var`` for a scalar, ``var[coord]`` for a vector,
    with coords as hlm's model builder derives them from the labels."""
    out = []
    for key, sl in design.fixed_slices.items():
        labels = design.x_labels[sl]
        if len(labels) == 1 and labels[0] == key:
            out.append(key)
        else:
            out.extend(f"{key}[{lab[len(key):].strip('[]')}]" for lab in labels)
    return out


def _combos(order: int):
    return list(itertools.combinations(KINDS, order))


@pytest.mark.parametrize("combo", _combos(2) + _combos(3), ids=lambda c: "*".join(c))
def test_interaction_columns_are_named_from_their_components(frame, combo):
    texts = [KINDS[k][0] for k in combo]
    d = build_design(parse("y ~ " + " * ".join(texts), list(frame.columns)), frame)
    # the highest-order term: every component in reduced coding, in formula order
    expected = [":".join(p) for p in itertools.product(*(KINDS[k][1] for k in combo))]
    assert d.x_labels[-len(expected):] == expected
    # and every lower-order term too: the labels are exactly the products of the subsets
    want = ["Intercept"]
    for r in range(1, len(combo) + 1):
        for sub in itertools.combinations(combo, r):
            want += [":".join(p) for p in itertools.product(*(KINDS[k][1] for k in sub))]
    assert sorted(d.x_labels) == sorted(want)
    assert len(d.x_labels) == d.X.shape[1] == len(set(d.x_labels))
    # each column's posterior name is its label (no "FoodTreatment:SexParent[:SexParent[Male]")
    assert _summary_names(d) == d.x_labels


def test_the_issue_examples(frame):
    df = frame.rename(columns={"f": "recipe", "x": "temp", "h": "SexParent"})
    df["FoodTreatment"] = np.tile(["Deprived", "Satiated"], N // 2)[np.random.default_rng(0).permutation(N)]
    d = build_design(parse("y ~ FoodTreatment * SexParent + recipe * temp", list(df.columns)), df)
    assert "FoodTreatment[Satiated]:SexParent[s]" in d.x_labels
    assert d.x_labels[-2:] == ["recipe[v]:temp", "recipe[w]:temp"]
    assert _summary_names(d) == d.x_labels
    # a factor main effect stays one variable with a level dimension; an interaction of a
    # factor with another term is one scalar variable per column, named by its label
    assert d.x_labels[d.fixed_slices["recipe"]] == ["recipe[v]", "recipe[w]"]
    assert d.fixed_slices["recipe[w]:temp"].stop - d.fixed_slices["recipe[w]:temp"].start == 1
    assert "recipe:temp" not in d.fixed_slices
    assert d.term_labels["recipe:temp"] == ["recipe[v]:temp", "recipe[w]:temp"]


def test_numeric_first_interaction_is_one_variable_named_like_its_labels(frame):
    d = build_design(parse("y ~ x:f", list(frame.columns)), frame)
    assert d.x_labels == ["Intercept", "x:f[u]", "x:f[v]", "x:f[w]"]
    assert d.x_labels[d.fixed_slices["x:f"]] == ["x:f[u]", "x:f[v]", "x:f[w]"]
    assert _summary_names(d) == d.x_labels


def test_order_three_with_two_factors_and_a_number(frame):
    df = frame.assign(a=np.tile(["1", "2", "3"], N // 3), b=np.tile(["x", "y"], N // 2))
    d = build_design(parse("y ~ a*b*w", list(df.columns)), df)
    assert d.x_labels[-2:] == ["a[2]:b[y]:w", "a[3]:b[y]:w"]
    assert _summary_names(d) == d.x_labels


def test_transform_names_read_as_written(frame):
    d = build_design(parse("y ~ log(z) + I(x^2) + I(x**3) + scale(w) + exp(x):f", list(frame.columns)), frame)
    assert d.x_labels[:5] == ["Intercept", "log(z)", "I(x^2)", "I(x^3)", "scale(w)"]
    assert d.x_labels[5:] == ["exp(x):f[u]", "exp(x):f[v]", "exp(x):f[w]"]
    assert _summary_names(d) == d.x_labels


def test_logical_column_is_named_with_its_level_and_matches_group_slopes(frame):
    d = build_design(parse("y ~ flag + (1 + flag | g)", list(frame.columns)), frame)
    assert d.x_labels == ["Intercept", "flag[True]"]
    np.testing.assert_array_equal(d.X[:, 1], frame["flag"].to_numpy(dtype=float))
    assert d.groups[0].columns == ["Intercept", "flag[True]"]  # same label: centering can match it
    assert d.groups[0].effect_names == ["1|g", "flag[True]|g"]


def test_group_slope_names_use_the_same_labels(frame):
    d = build_design(parse("y ~ I(x^2) + f:x + (1 + I(x^2) + f:x | g)", list(frame.columns)), frame)
    assert set(d.groups[0].columns) - {"Intercept"} <= set(d.x_labels)


def test_model_variables_and_prior_targets_use_the_labels(frame):
    """The PyMC variables (what summary.csv lists) and --prior keys are the labels."""
    from hlm_cli.model.build import build_model
    from hlm_cli.model.families import get_family
    from hlm_cli.model.priors import parse_priors

    d = build_design(parse("y ~ f * h + f * x + flag + (1|g)", list(frame.columns)), frame)
    built = build_model(d, get_family("gaussian"), parse_priors(["f[w]:h[s]=Normal(0, 2)", "f[v]:x=Normal(0, 3)"]))
    # sampled directly, or (centered + QR design) as a deterministic of the rotated coefficients
    names = {v.name for v in built.model.free_RVs + built.model.deterministics}
    for key in ("f[v]:h[s]", "f[w]:h[s]", "f[v]:x", "f[w]:x"):
        assert key in names
    assert built.priors["f[w]:h[s]"].args == (("mu", 0.0), ("sigma", 2.0))
    assert built.priors["f[v]:x"].args == (("mu", 0.0), ("sigma", 3.0))
    coords = built.model.coords
    assert list(coords["f_dim"]) == ["v", "w"] and list(coords["flag_dim"]) == ["True"]


# -- Python keywords and builtins are column names ----------------------------------------------

KEYWORDS = ["yield", "class", "lambda", "in", "sum", "type", "def", "print", "import", "not", "None", "True"]


@pytest.mark.parametrize("name", KEYWORDS)
def test_keyword_columns_as_response_predictor_group_and_interaction(name):
    rng = np.random.default_rng(1)
    num = rng.uniform(1, 3, size=24)
    df = pd.DataFrame({name: num, "x": rng.normal(size=24), "k": np.tile(["a", "b", "c"], 8), "g": np.repeat(list("pqrs"), 6)})
    # response
    d = build_design(parse(f"{name} ~ x + (1|g)", list(df.columns)), df)
    np.testing.assert_array_equal(d.y, num)
    # predictor, transform and interaction
    d = build_design(parse(f"x ~ {name} + log({name}) + {name}:k", list(df.columns)), df)
    assert d.x_labels == ["Intercept", name, f"log({name})", f"{name}:k[b]", f"{name}:k[c]"]
    np.testing.assert_allclose(d.X[:, 2], np.log(num))
    # grouping factor and its interaction with a number
    fac = df.assign(**{name: np.tile(["lo", "hi"], 12)}, x2=rng.normal(size=24))
    d = build_design(parse(f"x ~ {name} * x2 + (1|{name})", list(fac.columns)), fac)
    assert d.x_labels == ["Intercept", f"{name}[lo]", "x2", f"{name}[lo]:x2"]
    assert d.groups[0].factor == name and d.groups[0].levels == ["hi", "lo"]


def test_keyword_columns_keep_the_sigma_literal_in_se():
    """``sigma = TRUE`` stays a logical even when a column is named TRUE."""
    cols = ["y", "s", "g", "TRUE"]
    f = parse("y | se(s, sigma = TRUE) ~ 1 + (1|g)", cols)
    assert f.response.se == "s" and f.response.se_sigma is True
    assert "TRUE" not in f.columns


def test_backticked_names_with_spaces_and_non_ascii():
    rng = np.random.default_rng(2)
    df = pd.DataFrame(
        {
            "Wachstum rate": rng.normal(size=24),
            "Größe": rng.uniform(1, 2, size=24),
            "cell line": np.tile(["A549", "HeLa"], 12),
            "_id": np.repeat(list("abcd"), 6),
        }
    )
    f = parse("`Wachstum rate` ~ `cell line` * log(`Größe`) + (1 + `Größe` | `_id`)", list(df.columns))
    assert f.response.expr == "Wachstum rate"
    assert f.columns == {"Wachstum rate", "Größe", "cell line", "_id"}
    d = build_design(f, df)
    assert d.x_labels == ["Intercept", "cell line[HeLa]", "log(Größe)", "cell line[HeLa]:log(Größe)"]
    np.testing.assert_array_equal(d.y, df["Wachstum rate"].to_numpy())
    assert d.groups[0].factor == "_id" and d.groups[0].effect_names == ["1|_id", "Größe|_id"]


def test_a_division_in_a_term_name_is_stored_with_a_division_slash(frame):
    """'/' separates groups in PyMC's and HDF5's names: I(x / z) is named I(x ∕ z) (U+2215),
    so the model builds and posterior.nc can be written (it used to fail after sampling)."""
    from hlm_cli.model.build import build_model
    from hlm_cli.model.families import get_family

    frame = frame.assign(z=frame["x"].abs() + 1.0)
    d = build_design(parse("y ~ I(x / z) + (1|g)", list(frame.columns)), frame)
    assert d.x_labels == ["Intercept", "I(x \u2215 z)"]
    built = build_model(d, get_family("gaussian"), [])
    assert "I(x \u2215 z)" in {v.name for v in built.model.free_RVs + built.model.deterministics}


def test_a_prior_on_a_whole_interaction_term_reaches_each_of_its_columns(frame):
    """``--prior "f:x=..."`` names the term as written; each column it was split into gets it."""
    from hlm_cli.model.build import build_model
    from hlm_cli.model.families import get_family
    from hlm_cli.model.priors import parse_priors

    d = build_design(parse("y ~ f * x + (1|g)", list(frame.columns)), frame)
    built = build_model(d, get_family("gaussian"), parse_priors(["f:x=Normal(0, 7)"]))
    split = [lab for lab in d.x_labels if lab.startswith("f[") and lab.endswith(":x")]
    assert split and all(built.priors[lab].args == (("mu", 0.0), ("sigma", 7.0)) for lab in split)
