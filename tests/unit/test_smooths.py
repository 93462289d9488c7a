"""Smooths s(x) and spline bases cr()/bs() (issue 19): parser, basis, design, model graph, errors.
No sampling here: the e2e fit is tests/e2e/test_smooth.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hlm_cli.cli.app import main
from hlm_cli.errors import FormulaError, InputError
from hlm_cli.formula.design import build_design
from hlm_cli.formula.parser import parse
from hlm_cli.formula.smooths import CubicBasis, Smooth, mixed_model_split


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    n = 80
    x = rng.uniform(0, 10, n)
    f = rng.choice(["a", "b"], n)
    return pd.DataFrame({"y": np.sin(x) + rng.normal(0, 0.3, n), "x": x, "f": f, "g": rng.choice(list("pqrs"), n),
                         "code": rng.integers(0, 3, n)})


def design(text, df):
    return build_design(parse(text, list(df.columns)), df)


# --------------------------------------------------------------------------- parser


def test_parser_records_smooths_and_passes_them_to_formulae():
    f = parse("y ~ f + s(x, k = 5, by = f) + s(z) + bs(x, df = 4) + cr(x, df = 3)")
    assert [(s.text, s.x, s.k, s.by) for s in f.smooths] == [("s(x, k=5, by=f)", "x", 5, "f"), ("s(z)", "z", None, None)]
    assert [s.label for s in f.smooths] == ["s(x, k=5)", "s(z)"]
    assert f.fixed == "1 + f + s(x, k=5, by=f) + s(z) + bs(x, df=4) + cr(x, df=3)"


@pytest.mark.parametrize(("text", "fragment", "hint"), [
    ("y ~ x + (s(x) | g)", "s() cannot be used in a group-level term", "s(x, by = f)"),
    ("y ~ s(x):f", "s() must be a term of its own", "s(x, by = f)"),
    ("y ~ log(s(x))", "s() must be a term of its own", "population-level term"),
    ("s(y) ~ x", "s() belongs on the right-hand side", "population-level term"),
    ('y ~ s(x, bs = "tp")', 'basis bs = "tp" is not available', 'bs = "cr"'),
    ("y ~ s(x, k = 2)", "k must be a whole number >= 3, not 2", "k = 10"),
    ("y ~ s(x, k = 4.5)", "k must be a whole number >= 3, not 4.5", "basis dimension"),
    ("y ~ s(x, z)", "s() takes one column", "s(x) + s(z)"),
    ("y ~ s(x, m = 2)", "s() has no option 'm'", "s(x, k = 10)"),
    ("y ~ s(x, by = 3)", "by must be a column", "by = treatment"),
])
def test_parser_refuses_misused_smooths(text, fragment, hint):
    with pytest.raises(FormulaError) as err:
        parse(text)
    assert fragment in str(err.value)
    assert hint in err.value.hint


# --------------------------------------------------------------------------- basis


def test_cubic_basis_is_cardinal_natural_and_linear_outside():
    knots = np.array([0.0, 1.0, 2.5, 4.0, 7.0])
    B = CubicBasis(knots)
    assert np.allclose(B(knots), np.eye(5))  # cardinal: basis j is 1 at knot j, 0 at the others
    x = np.linspace(0, 7, 50)
    assert np.allclose(B(x).sum(axis=1), 1.0)  # reproduces constants
    assert np.allclose(B(x) @ knots, x)  # and straight lines (natural spline)
    # beyond the end knots each function continues as a straight line
    out = B(np.array([-3.0, -2.0, -1.0]))
    assert np.allclose(np.diff(out, 2, axis=0), 0.0)
    # the penalty is the integrated squared second derivative: zero on lines, x'Sx > 0 otherwise
    S = B.penalty()
    assert np.allclose(S @ np.ones(5), 0) and np.allclose(S @ knots, 0)
    # f(x) = knot values of x^2: f'' of the interpolating natural spline integrates to > 0
    assert knots**2 @ S @ knots**2 > 0


def test_mixed_model_split_gives_centered_line_and_unit_penalty():
    x = np.linspace(0, 1, 40)
    B = CubicBasis(np.quantile(x, np.linspace(0, 1, 8)))
    X = B(x)
    F, R = mixed_model_split(X, B.penalty())
    assert F.shape == (8, 1) and R.shape == (8, 6)
    lin = X @ F
    assert abs(lin.sum()) < 1e-8 and np.isclose(lin.std(), 1.0)
    assert np.allclose(np.diff(lin[:, 0], 2), 0, atol=1e-10)  # a straight line in x
    assert np.allclose((X @ R).sum(axis=0), 0, atol=1e-8)  # penalized columns centered too


def test_smooth_reproduces_its_basis_at_new_x(data):
    d = design("y ~ s(x, k = 6) + (1|g)", data)
    assert d.x_labels == ["Intercept", "s(x, k=6)_lin"]
    (sm,) = d.smooths
    assert sm.label == "s(x, k=6)" and sm.sd_name == "sds(s(x, k=6))" and sm.Z.shape == (80, 4)
    # the same rows as new data give the same columns (knots and transforms are the fit's)
    new = data.iloc[[5, 0, 17]].reset_index(drop=True)
    assert np.allclose(sm.basis(new), sm.Z[[5, 0, 17]])
    nd = d.common.evaluate_new_data(new)
    assert np.allclose(np.asarray(nd.design_matrix)[:, 1], d.X[[5, 0, 17], 1])
    # new x values do not move the knots: an x outside the range is a linear extrapolation
    far = pd.DataFrame({"x": [20.0, 30.0, 40.0], "g": ["p"] * 3})
    z = sm.basis(far)
    assert np.allclose(np.diff(z, 2, axis=0), 0)
    assert np.allclose(sm.transform.basis.knots, np.quantile(np.unique(data["x"]), np.linspace(0, 1, 6)))


def test_smooth_by_factor_has_one_curve_per_level(data):
    d = design("y ~ f + s(x, by = f)", data)
    assert d.x_labels == ["Intercept", "f[b]", "s(x):fa_lin", "s(x):fb_lin"]
    assert [s.label for s in d.smooths] == ["s(x):fa", "s(x):fb"]
    a = (data["f"] == "a").to_numpy()
    assert np.all(d.smooths[0].Z[~a] == 0) and np.all(d.smooths[1].Z[a] == 0)
    assert np.allclose(d.smooths[0].Z[a].sum(axis=0), 0, atol=1e-8)  # centered within its level
    with pytest.raises(InputError, match="level 'c' of the by= factor was not in the fitted data"):
        d.smooths[0].basis(pd.DataFrame({"x": [1.0], "f": ["c"]}))


def test_plain_spline_bases_are_population_columns(data):
    d = design("y ~ cr(x, df = 4) + bs(x, df = 3)", data)
    assert d.x_labels == ["Intercept"] + [f"cr(x, df=4)[{i}]" for i in range(4)] + [f"bs(x, df=3)[{i}]" for i in range(3)]
    assert not d.smooths
    assert np.allclose(d.X[:, 1:5].sum(axis=0), 0, atol=1e-8)  # cr is centered: no second intercept
    nd = d.common.evaluate_new_data(data.iloc[:4])
    assert np.allclose(np.asarray(nd.design_matrix), d.X[:4])


@pytest.mark.parametrize(("text", "fragment", "hint"), [
    ("y ~ s(f)", "'f' is not numeric", "s(x, by = f)"),
    ("y ~ s(code)", "has only 3 distinct values, fewer than k = 10", "s(code, k = 3)"),
    ("y ~ s(x, by = code)", "by = code is numeric", "--categorical code"),
])
def test_design_refuses_smooths_it_cannot_build(data, text, fragment, hint):
    with pytest.raises(FormulaError) as err:
        design(text, data)
    assert fragment in str(err.value) and hint in err.value.hint


def test_cli_error_for_smooth_in_group_term(tmp_path, data, capsys):
    path = tmp_path / "d.csv"
    data.to_csv(path, index=False)
    assert main(["fit", str(path), "--formula", "y ~ x + (s(x) | g)", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "error: s() cannot be used in a group-level term" in err and "hint:" in err
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- model


def test_model_has_sds_and_penalized_coefficients(data):
    from hlm_cli.model.build import build_model
    from hlm_cli.model.families import FAMILIES

    d = design("y ~ s(x, k = 6)", data)
    built = build_model(d, FAMILIES["gaussian"])
    names = {v.name for v in built.model.free_RVs}
    assert {"sds(s(x, k=6))", "_z(s(x, k=6))"} <= names
    assert built.params.group_sds == {"s(x, k=6)": ["sds(s(x, k=6))"]}
    assert built.priors["sds(s(x, k=6))"].dist == "HalfNormal"
    assert "_Zs0" in built.data_vars and built.data_vars["_Zs0"].shape == (80, 4)
    # nutpie's trace splits dimension names at commas: the coefficients' dimension has none
    assert list(built.model.coords["s(x; k=6)_dim"]) == [1, 2, 3, 4]
    # the compiled-model key separates a smooth from the same model without it
    other = build_model(design("y ~ s(x, k = 7)", data), FAMILIES["gaussian"])
    assert other.structure_key != built.structure_key


def test_sds_prior_can_be_set(data):
    from hlm_cli.model.build import resolve_priors
    from hlm_cli.model.families import FAMILIES
    from hlm_cli.model.priors import Prior

    d = design("y ~ s(x)", data)
    priors, used = resolve_priors(d, FAMILIES["gaussian"], {"sds": Prior("Exponential", (("lam", 2.0),))})
    assert priors["sds(s(x))"].dist == "Exponential" and used == {"sds": "sds(s(x))"}


def test_smooth_contribution_in_eta_draws(data):
    """eta_draws adds Z @ b of each smooth, on the fit's rows and on new rows alike."""
    import xarray as xr

    from hlm_cli.model.build import build_model
    from hlm_cli.model.families import FAMILIES
    from hlm_cli.model.linpred import eta_draws

    d = design("y ~ s(x, k = 5)", data)
    built = build_model(d, FAMILIES["gaussian"])
    rng = np.random.default_rng(1)
    post = xr.Dataset({
        "Intercept": (("chain", "draw"), rng.normal(size=(1, 3))),
        "s(x, k=5)_lin": (("chain", "draw"), rng.normal(size=(1, 3))),
        "s(x, k=5)": (("chain", "draw", "s(x, k=5)_dim"), rng.normal(size=(1, 3, 3))),
    })
    tree = xr.DataTree.from_dict({"posterior": post})
    eta = eta_draws(tree, built)
    b = post["s(x, k=5)"].values[0]
    expect = post["Intercept"].values[0][:, None] + post["s(x, k=5)_lin"].values[0][:, None] * d.X[:, 1] + b @ d.smooths[0].Z.T
    assert np.allclose(eta, expect)
    assert np.allclose(eta_draws(tree, built, data.iloc[:6].reset_index(drop=True)), expect[:, :6])


def test_penalized_columns_match_mgcv_smooth2random():
    """mgcv 1.8-41 on validation/smooth/gamsim.csv: smooth2random(smoothCon(s(x2, bs = "cr"), d,
    absorb.cons = TRUE)[[1]], names(d), type = 2)$rand[[1]] has these column SDs (sorted)."""
    from pathlib import Path

    x = pd.read_csv(Path(__file__).parents[2] / "validation" / "smooth" / "gamsim.csv")["x2"].to_numpy()
    s = Smooth()
    s(x)
    (Z,) = s.random(x)
    mgcv = [0.1797308, 0.2574703, 0.3455137, 0.4846622, 0.7508178, 1.1910442, 2.2857861, 6.0191510]
    assert np.allclose(np.sort(Z.std(axis=0, ddof=1)), mgcv, rtol=1e-5)
