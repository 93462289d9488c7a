"""Variance partitioning (hlm varpart) on the recorded cell-line run: no sampling."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from hlm_cli.cli.app import main
from hlm_cli.errors import InputError
from hlm_cli.outputs import varpart as vp
from tests.conftest import copy_recorded_run


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    from hlm_cli.workflows.runs import load_run

    return load_run(copy_recorded_run(tmp_path_factory.mktemp("vp")))


def _post(ctx, name):
    a = np.asarray(ctx.tree["posterior"][name])
    return a.reshape(-1, *a.shape[2:])


def test_component_names_in_order(ctx):
    parts = vp.components(ctx.tree, ctx.built)
    assert list(parts) == ["gene", "cell_line", "fixed", "residual"]
    S = _post(ctx, "sigma").shape[0]
    assert all(np.shape(v) == (S,) for v in parts.values())


def test_intercept_term_is_sd_squared_and_residual_is_sigma_squared(ctx):
    parts = vp.components(ctx.tree, ctx.built)
    np.testing.assert_allclose(parts["gene"], _post(ctx, "1|gene_sigma") ** 2)
    np.testing.assert_allclose(parts["cell_line"], _post(ctx, "1|cell_line_sigma") ** 2)
    np.testing.assert_allclose(parts["residual"], _post(ctx, "sigma") ** 2)
    assert np.all(parts["fixed"] == 0.0)  # an intercept-only model: X beta is constant


def test_fractions_sum_to_one_per_draw(ctx):
    draws = vp.fraction_draws(vp.components(ctx.tree, ctx.built))
    np.testing.assert_allclose(draws.sum(axis=1), 1.0, rtol=1e-12)
    table = vp.fractions(ctx.tree, ctx.built, ci=0.9)
    assert list(table.columns) == ["component", "mean", "lower", "upper", "variance"]
    assert table["mean"].sum() == pytest.approx(1.0)
    assert (table["lower"] <= table["mean"]).all() and (table["mean"] <= table["upper"]).all()
    # the 90% interval is the 5% and 95% quantiles of the per-draw fractions
    assert table.set_index("component").loc["gene", "lower"] == pytest.approx(np.quantile(draws["gene"], 0.05))
    wider = vp.fractions(ctx.tree, ctx.built, ci=0.99).set_index("component")
    assert wider.loc["gene", "lower"] < table.set_index("component").loc["gene", "lower"]


def test_slope_term_uses_rows_covariates(ctx):
    """(1 + x|g): mean over rows of z' Sigma z, i.e. sd0^2 + 2 rho sd0 sd1 mean(x) + sd1^2 mean(x^2)."""
    g = ctx.built.design.groups[0]
    x = np.linspace(-1, 3, g.Z.shape[0])
    g2 = dataclasses.replace(g, Z=np.column_stack([np.ones_like(x), x]), columns=["Intercept", "x"])
    s0 = _post(ctx, "1|gene_sigma")
    s1 = _post(ctx, "1|cell_line_sigma")
    rho = np.full_like(s0, 0.3)
    import xarray as xr

    post = ctx.tree["posterior"].to_dataset()
    shape = post["sigma"].shape
    post["x|gene_sigma"] = (post["sigma"].dims, s1.reshape(shape))
    post["cor(Intercept,x|gene)"] = (post["sigma"].dims, rho.reshape(shape))
    tree = xr.DataTree.from_dict({"posterior": post})
    cov = vp._term_cov(tree, g2)
    v = np.einsum("skl,kl->s", cov, g2.Z.T @ g2.Z / len(x))
    expect = s0**2 + 2 * 0.3 * s0 * s1 * x.mean() + s1**2 * np.mean(x**2)
    np.testing.assert_allclose(v, expect)


@pytest.mark.parametrize("family,residual", [("bernoulli", np.pi**2 / 3), ("poisson", None)])
def test_latent_residuals(ctx, family, residual):
    from hlm_cli.model.families import get_family

    built = dataclasses.replace(ctx.built, family=get_family(family, None))
    parts = vp.components(ctx.tree, built)
    if residual is not None:
        assert np.all(parts["residual"] == pytest.approx(residual))
    else:  # log(1 + 1/lambda), lambda = exp(intercept + group variance / 2)
        lam = np.exp(_post(ctx, "Intercept") + (parts["gene"] + parts["cell_line"]) / 2)
        np.testing.assert_allclose(parts["residual"], np.log1p(1 / lam), rtol=1e-10)


def test_unsupported_family_is_refused(ctx):
    from hlm_cli.model.families import get_family

    built = dataclasses.replace(ctx.built, family=get_family("gamma", None))
    with pytest.raises(InputError, match="gamma") as err:
        vp.components(ctx.tree, built)
    assert "gaussian" in err.value.hint


def test_ci_out_of_range(ctx):
    with pytest.raises(InputError, match="--ci"):
        vp.fractions(ctx.tree, ctx.built, ci=1.5)


def test_cli_writes_csv(tmp_path, capsys):
    run = copy_recorded_run(tmp_path)
    assert main(["varpart", str(run), "--ci", "0.9"]) == 0
    out = capsys.readouterr().out
    assert "cell_line" in out and "residual" in out and "90% interval" in out
    table = pd.read_csv(run / "varpart.csv")
    assert table["component"].tolist() == ["gene", "cell_line", "fixed", "residual"]
    assert table["mean"].sum() == pytest.approx(1.0, abs=1e-5)
    other = tmp_path / "elsewhere" / "vp.csv"
    assert main(["varpart", str(run), "--out", str(other)]) == 0
    assert other.exists()


def test_cli_not_a_run(tmp_path, capsys):
    assert main(["varpart", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "not an hlm run directory" in err and "hint:" in err
    assert not (tmp_path / "varpart.csv").exists()


def test_fractions_from_run_matches_contract(tmp_path):
    from hlm_cli.workflows.varpart import fractions_from_run

    table = fractions_from_run(copy_recorded_run(tmp_path), ci=0.9)
    assert {"component", "mean", "lower", "upper"} <= set(table.columns)
    assert table["component"].tolist()[-2:] == ["fixed", "residual"]


def test_violin_order_and_png(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for f in range(30):
        a, b = rng.uniform(0.4, 0.6), rng.uniform(0.0, 0.2)
        rows += [(f"g{f}", "batch", b), (f"g{f}", "cell_line", a), (f"g{f}", "residual", 1 - a - b), (f"g{f}", "fixed", 0.0)]
    table = pd.DataFrame(rows, columns=["feature", "component", "mean"])
    assert vp.order_components(table) == ["cell_line", "batch", "fixed", "residual"]
    path = vp.plot_violin(table, tmp_path / "violin.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InputError, match="feature"):
        vp.plot_violin(table.drop(columns="feature"), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_report_section(ctx):
    from types import SimpleNamespace

    from hlm_cli.outputs.report import html as html_mod
    from hlm_cli.outputs.report.page import _varpart_table

    table = _varpart_table(ctx)
    assert table["component"].tolist() == ["gene", "cell_line", "fixed", "residual"]
    page = html_mod.section_varpart(table)
    assert page.startswith('<h2 id="varpart">Variance partition</h2>')
    assert page.count("<tr>") == 5 and "cell_line" in page
    # no grouping factor, or a family it does not handle: no section
    no_groups = SimpleNamespace(built=SimpleNamespace(design=SimpleNamespace(groups=[])), tree=ctx.tree)
    assert _varpart_table(no_groups) is None and html_mod.section_varpart(None) == ""
    from hlm_cli.model.families import get_family

    gamma = SimpleNamespace(built=dataclasses.replace(ctx.built, family=get_family("gamma", None)), tree=ctx.tree)
    assert _varpart_table(gamma) is None


def _tree_with(ctx, **extra):
    import xarray as xr

    post = ctx.tree["posterior"].to_dataset()
    for name, (dims, values) in extra.items():
        post[name] = (dims, values)
    return xr.DataTree.from_dict({"posterior": post})


def test_sigma_formula_residual_is_the_mean_of_sigma_i_squared(ctx):
    """--sigma-formula: sigma is a per-row deterministic; the residual is its mean square."""
    C, D = ctx.tree["posterior"]["sigma"].shape
    n = ctx.built.design.n
    rng = np.random.default_rng(1)
    sig = rng.uniform(0.5, 2.0, (C, D, n))
    tree = _tree_with(ctx, sigma=(("chain", "draw", "__obs__"), sig))
    design = dataclasses.replace(ctx.built.design, sigma=object())
    parts = vp.components(tree, dataclasses.replace(ctx.built, design=design))
    np.testing.assert_allclose(parts["residual"], (sig.reshape(C * D, n) ** 2).mean(axis=1))


def test_student_t_residual_and_draws_without_a_variance(ctx):
    from hlm_cli.model.families import get_family

    C, D = ctx.tree["posterior"]["sigma"].shape
    nu = np.full((C, D), 5.0)
    nu[0, :10] = 1.5  # no finite variance: left out of the summaries
    tree = _tree_with(ctx, nu=(("chain", "draw"), nu))
    built = dataclasses.replace(ctx.built, family=get_family("t", None))
    parts = vp.components(tree, built)
    sigma2 = _post(ctx, "sigma") ** 2
    np.testing.assert_allclose(parts["residual"][10:], sigma2[10:] * 5 / 3)
    assert np.isnan(parts["residual"][:10]).all()
    assert len(vp.fraction_draws(parts)) == C * D - 10
    assert vp.summarise(parts)["mean"].sum() == pytest.approx(1.0)


def test_python_api(tmp_path):
    import hlm_cli

    fit = hlm_cli.load(copy_recorded_run(tmp_path))
    t = fit.varpart(ci=0.8)
    assert t["component"].tolist() == ["gene", "cell_line", "fixed", "residual"]
    assert t["mean"].sum() == pytest.approx(1.0)
    assert not (tmp_path / "cell_lines_run" / "varpart.csv").exists()  # the API writes nothing
