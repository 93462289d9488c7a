"""The gaussian likelihood from cross-products (hlm_cli.model.suffstat) is the row-wise one.

Each model is built twice, with ``HLM_SUFFSTAT=off`` (rows) and ``on`` (cross-products), and
the two log densities are compared at random points of the unconstrained space: equal up to
rounding, gradients too. Also: which models are eligible, and that the automatic choice takes
cross-products only for large data with small cross-products.
"""

import numpy as np
import pandas as pd
import pytest

from hlm_cli.formula import parse
from hlm_cli.formula.design import build_design
from hlm_cli.model import suffstat
from hlm_cli.model.build import SUFFSTAT_LOGLIK, build_model
from hlm_cli.model.families import get_family


def design(df, formula):
    return build_design(parse(formula, list(df.columns)), df)


@pytest.fixture
def crossed() -> pd.DataFrame:
    """Two crossed factors (unbalanced, some cells empty, some repeated), a numeric x, an offset."""
    rng = np.random.default_rng(3)
    n = 300
    g = rng.integers(0, 12, n)
    h = rng.integers(0, 5, n)
    x = rng.normal(size=n)
    y = 50.0 + 0.4 * x + rng.normal(0, 1, 12)[g] + rng.normal(0, 0.5, 5)[h] + rng.normal(0, 0.3, n)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g], "h": [f"h{i}" for i in h],
                         "cond": np.where(rng.random(n) < 0.5, "a", "b"), "off": rng.normal(0, 0.1, n)})


def _logp_and_grad(built, seed):
    model = built.model
    # Python implementations (no C compilation): seconds, not minutes, for a unit test
    fn = model.compile_fn([model.logp(), model.dlogp()], mode="FAST_COMPILE")
    rng = np.random.default_rng(seed)
    start = model.initial_point()
    out = []
    for _ in range(3):
        point = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in start.items()}
        lp, grad = fn(point)
        out.append((float(lp), np.asarray(grad)))
    return out


FORMULAS = [
    "y ~ 1 + (1|g) + (1|h)",
    "y ~ x + cond + (1 + x | g) + (1|h)",
    "y ~ 0 + x + (1|g)",
    "y ~ x + offset(off) + (1|g:h)",
]


@pytest.mark.parametrize("formula,parameterization", [(f, "auto") for f in FORMULAS] + [(FORMULAS[0], "noncentered")])
def test_cross_products_give_the_row_wise_log_density(crossed, formula, parameterization, monkeypatch):
    d = design(crossed, formula)
    fam = get_family("gaussian")
    monkeypatch.setenv("HLM_SUFFSTAT", "off")
    rows = build_model(d, fam, parameterization=parameterization)
    monkeypatch.setenv("HLM_SUFFSTAT", "on")
    cross = build_model(d, fam, parameterization=parameterization)
    assert SUFFSTAT_LOGLIK in [p.name for p in cross.model.potentials] and cross.likelihood == "cross-products"
    assert not rows.model.potentials and rows.model.observed_RVs and rows.likelihood == "rows"
    assert rows.structure_key != cross.structure_key  # a different graph: never the same cache entry
    assert [v.name for v in rows.model.free_RVs] == [v.name for v in cross.model.free_RVs]
    for (lp_r, g_r), (lp_c, g_c) in zip(_logp_and_grad(rows, 1), _logp_and_grad(cross, 1), strict=True):
        assert np.isfinite(lp_r)
        assert lp_c == pytest.approx(lp_r, rel=1e-9, abs=1e-6)
        np.testing.assert_allclose(g_c, g_r, rtol=1e-7, atol=1e-6)


@pytest.mark.parametrize("formula,family", [
    ("y ~ 1 + (1|g)", "student_t"),
    ("y | se(s) ~ 1 + (1|g)", "gaussian"),
    ("y | weights(w) ~ 1 + (1|g)", "gaussian"),
    ("y | cens(c) ~ 1 + (1|g)", "gaussian"),
])
def test_only_the_plain_gaussian_is_eligible(crossed, formula, family, monkeypatch):
    monkeypatch.setenv("HLM_SUFFSTAT", "on")
    df = crossed.assign(s=0.5, w=1.0, c="none")
    built = build_model(design(df, formula), get_family(family))
    assert SUFFSTAT_LOGLIK not in [p.name for p in built.model.potentials]


def test_rows_that_differ_in_variance_are_not_eligible(crossed):
    import dataclasses

    d = design(crossed, "y ~ 1 + (1|g)")
    fam = get_family("gaussian")
    assert suffstat.eligible(d, fam)
    assert not suffstat.eligible(dataclasses.replace(d, sigma=object()), fam)  # --sigma-formula
    assert not suffstat.eligible(dataclasses.replace(d, autocor=object()), fam)  # residual AR
    assert not suffstat.eligible(d, dataclasses.replace(fam, link="log"))


def test_automatic_choice_is_for_many_rows_and_small_cross_products(monkeypatch):
    monkeypatch.delenv("HLM_SUFFSTAT", raising=False)

    def gather(levels, n):
        return suffstat.Piece("gather", None, idx=np.zeros(n, dtype=int), levels=levels)

    dense = suffstat.Piece("dense", None, D=np.ones((10, 1)))
    # a screen: 16,000 x 64 cross-product (1M entries) against 1,024,000 rows x 3 pieces
    assert suffstat.entries([dense, gather(16_000, 10), gather(64, 10)]) == 1 + 16_000 + 64 + 16_000 + 16_000 * 64 + 64
    assert suffstat.worth_it(1_024_000, [dense, gather(16_000, 10), gather(64, 10)])
    # InstEval-like: 2,972 x 1,128 crossed levels on 73,421 rows: rows are cheaper
    assert not suffstat.worth_it(73_421, [dense, gather(2_972, 10), gather(1_128, 10)])
    # small data: rows
    assert not suffstat.worth_it(900, [dense, gather(30, 10)])
    monkeypatch.setenv("HLM_SUFFSTAT", "off")
    assert not suffstat.worth_it(1_024_000, [dense, gather(16_000, 10), gather(64, 10)])
    monkeypatch.setenv("HLM_SUFFSTAT", "on")
    assert suffstat.worth_it(900, [dense, gather(30, 10)])


def test_a_complete_crossing_is_one_number_and_the_same_density(monkeypatch):
    """Every g meets every h twice: the g x h cross-product is the constant 2 (a scalar in the
    graph, a different structure key), and the density is still the row-wise one."""
    rng = np.random.default_rng(5)
    g, h = np.meshgrid(np.arange(7), np.arange(4), indexing="ij")
    g, h = np.repeat(g.ravel(), 2), np.repeat(h.ravel(), 2)
    y = 3.0 + rng.normal(0, 1, 7)[g] + rng.normal(0, 0.5, 4)[h] + rng.normal(0, 0.2, g.size)
    df = pd.DataFrame({"y": y, "g": [f"g{i}" for i in g], "h": [f"h{i}" for i in h]})
    d = design(df, "y ~ 1 + (1|g) + (1|h)")
    fam = get_family("gaussian")
    monkeypatch.setenv("HLM_SUFFSTAT", "off")
    rows = build_model(d, fam, parameterization="noncentered")
    monkeypatch.setenv("HLM_SUFFSTAT", "on")
    cross = build_model(d, fam, parameterization="noncentered")
    assert np.ndim(cross.data_vars["_ss_quad1_2"]) == 0 and float(cross.data_vars["_ss_quad1_2"]) == 2.0
    unbalanced = build_model(design(df.iloc[1:], "y ~ 1 + (1|g) + (1|h)"), fam, parameterization="noncentered")
    assert np.shape(unbalanced.data_vars["_ss_quad1_2"]) == (7, 4)
    assert unbalanced.structure_key != cross.structure_key
    for (lp_r, g_r), (lp_c, g_c) in zip(_logp_and_grad(rows, 4), _logp_and_grad(cross, 4), strict=True):
        assert lp_c == pytest.approx(lp_r, rel=1e-9, abs=1e-6)
        np.testing.assert_allclose(g_c, g_r, rtol=1e-7, atol=1e-6)
