"""Power-scaling prior sensitivity: the log prior of the draws, the table, the command."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hlm_cli import diagnostics
from hlm_cli.cli.app import main
from hlm_cli.model.log_prior import log_prior, prior_logpdf
from hlm_cli.model.priors import Prior


def P(dist, **kw):
    return Prior(dist, tuple(kw.items()))


# each prior against scipy's density: equal up to one additive constant over the support
CASES = [
    (P("Normal", mu=1.0, sigma=2.0), stats.norm(1.0, 2.0), np.linspace(-5, 7, 9)),
    (P("StudentT", nu=3.0, mu=-1.0, sigma=0.5), stats.t(3.0, -1.0, 0.5), np.linspace(-4, 3, 9)),
    (P("Cauchy", alpha=0.5, beta=2.0), stats.cauchy(0.5, 2.0), np.linspace(-9, 9, 9)),
    (P("Laplace", mu=0.0, b=1.5), stats.laplace(0.0, 1.5), np.linspace(-4, 4, 9)),
    (P("HalfNormal", sigma=1.7), stats.halfnorm(0, 1.7), np.linspace(0.01, 5, 9)),
    (P("HalfStudentT", nu=4.0, sigma=0.7), stats.t(4.0, 0, 0.7), np.linspace(0.01, 4, 9)),
    (P("HalfCauchy", beta=1.0), stats.halfcauchy(0, 1.0), np.linspace(0.01, 9, 9)),
    (P("Exponential", lam=2.0), stats.expon(0, 0.5), np.linspace(0.01, 3, 9)),
    (P("Gamma", alpha=2.0, beta=0.1), stats.gamma(2.0, 0, 10.0), np.linspace(0.1, 60, 9)),
    (P("InverseGamma", alpha=3.0, beta=2.0), stats.invgamma(3.0, 0, 2.0), np.linspace(0.1, 5, 9)),
    (P("LogNormal", mu=0.3, sigma=0.8), stats.lognorm(0.8, 0, np.exp(0.3)), np.linspace(0.05, 6, 9)),
    (P("Beta", alpha=2.0, beta=5.0), stats.beta(2.0, 5.0), np.linspace(0.01, 0.99, 9)),
    (P("Uniform", lower=-1.0, upper=3.0), stats.uniform(-1.0, 4.0), np.linspace(-0.9, 2.9, 9)),
]


@pytest.mark.parametrize("prior,ref,x", CASES, ids=[c[0].dist for c in CASES])
def test_prior_logpdf_is_scipys_density_up_to_a_constant(prior, ref, x):
    diff = prior_logpdf(prior, x) - ref.logpdf(x)
    assert np.ptp(diff) < 1e-9, diff


@pytest.mark.parametrize("dist", ["HalfNormal", "HalfStudentT", "HalfCauchy", "Exponential", "Gamma", "LogNormal"])
def test_positive_priors_are_minus_infinity_below_zero(dist):
    prior = {d: p for p, _, _ in CASES for d in [p.dist]}[dist]
    assert np.isneginf(prior_logpdf(prior, np.array([-0.5]))).all()
    assert np.isfinite(prior_logpdf(prior, np.array([0.5]))).all()


def test_flat_prior_contributes_nothing():
    assert np.all(prior_logpdf(P("Flat"), np.array([-1e6, 0.0, 3.0])) == 0.0)


def test_log_prior_of_the_recorded_run_evaluates_each_recorded_prior_on_its_draws(recorded_run):
    from hlm_cli.workflows.runs import load_run

    ctx = load_run(recorded_run)
    lp = log_prior(ctx.tree, ctx.built)
    assert set(lp) == set(ctx.built.priors)  # Intercept, both group SDs, sigma
    post = ctx.tree["posterior"]
    for name in ("Intercept", "1|gene_sigma", "sigma"):  # intercept-only design: centered = plain
        pr = ctx.built.priors[name]
        x = post[name].values
        assert lp[name].shape == x.shape
        assert np.ptp(lp[name] - prior_logpdf(pr, x)) < 1e-12
    # the Intercept's Normal prior, against scipy
    pr = ctx.built.priors["Intercept"].kwargs
    diff = lp["Intercept"] - stats.norm.logpdf(post["Intercept"].values, pr["mu"], pr["sigma"])
    assert np.ptp(diff) < 1e-9


def _table(recorded_run, **kw):
    from hlm_cli.workflows.runs import load_run

    ctx = load_run(recorded_run)
    return diagnostics.sensitivity(ctx.tree, ctx.built, **kw)


def test_sensitivity_table_uses_printed_names_and_diagnoses_by_threshold(recorded_run):
    t = _table(recorded_run)
    assert list(t.columns) == diagnostics.SENSITIVITY_COLUMNS
    assert list(t.parameter) == ["Intercept", "sd(Intercept|gene)", "sd(Intercept|cell_line)", "sigma"]
    assert (t[["prior", "likelihood"]] >= 0).all().all()
    # the data determine sigma (90 rows): its likelihood sensitivity is far above its prior's
    s = t.set_index("parameter").loc["sigma"]
    assert s.likelihood > 0.05 > s.prior
    # every row sensitive to both at a tiny threshold; none at a huge one
    assert set(_table(recorded_run, threshold=1e-9).diagnosis) == {diagnostics.CONFLICT}
    assert set(_table(recorded_run, threshold=10.0).diagnosis) == {""}


def test_findings_are_notes_one_per_diagnosis():
    t = pd.DataFrame({"parameter": ["a", "b", "c", "d"], "prior": [0.2, 0.3, 0.1, 0.01],
                      "likelihood": [0.01, 0.02, 0.2, 0.3],
                      "diagnosis": [diagnostics.WEAK, diagnostics.WEAK, diagnostics.CONFLICT, ""]})
    f = diagnostics.sensitivity_findings(t)
    assert [x.severity for x in f] == ["note", "note"]
    conflict = next(x for x in f if diagnostics.CONFLICT in x.message)
    weak = next(x for x in f if diagnostics.WEAK in x.message)
    assert conflict.params == ["c"] and weak.params == ["a", "b"] and weak.value == pytest.approx(0.3)
    assert diagnostics.sensitivity_findings(t[t.diagnosis == ""]) == []


def test_hlm_sensitivity_rewrites_the_csv_and_agrees_with_a_stored_log_prior(recorded_run, capsys):
    assert not (recorded_run / "sensitivity.csv").exists()  # make_recorded_run.py keeps run.json, summary.csv, posterior.nc
    assert main(["sensitivity", str(recorded_run)]) == 0
    out = capsys.readouterr().out
    assert "Power-scaling sensitivity" in out and "sd(Intercept|gene)" in out
    first = pd.read_csv(recorded_run / "sensitivity.csv", keep_default_na=False)
    assert list(first.parameter) == ["Intercept", "sd(Intercept|gene)", "sd(Intercept|cell_line)", "sigma"]
    assert np.allclose(first.prior, _table(recorded_run).prior, atol=1e-4)


def test_a_stored_log_prior_group_gives_the_same_table_without_the_model(recorded_run):
    """A fit stores log_prior in posterior.nc; then only the parameter list is needed."""
    from hlm_cli.model.log_prior import log_prior_dataset
    from hlm_cli.workflows.runs import load_run

    ctx = load_run(recorded_run)
    old = ctx.tree.copy()  # a run written before hlm stored log_prior: rebuilt from the model
    if "log_prior" in old.children:
        del old["log_prior"]
    rebuilt = diagnostics.sensitivity(old, ctx.built)
    tree = ctx.tree.copy()
    tree["log_prior"] = log_prior_dataset(tree, ctx.built)
    if "log_prior" in ctx.tree.children:  # the fit stored the same values
        for name in tree["log_prior"].data_vars:
            assert np.allclose(tree["log_prior"][name].values, ctx.tree["log_prior"][name].values)

    class ParamsOnly:
        params = ctx.built.params

    stored = diagnostics.sensitivity(tree, ParamsOnly())
    pd.testing.assert_frame_equal(stored, rebuilt)


def test_hlm_sensitivity_on_a_directory_that_is_not_a_run(tmp_path, capsys):
    assert main(["sensitivity", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "not an hlm run directory" in err and "hint:" in err


def test_a_vector_parameter_sums_its_elements_prior():
    """An ordinal model's thresholds ``Intercept`` (chain, draw, K-1): one prior per element."""
    import xarray as xr

    from hlm_cli.model.log_prior import log_prior

    cut = np.random.default_rng(0).normal(size=(2, 5, 3))
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset({"Intercept": (("chain", "draw", "Intercept_dim"), cut)})})

    class Design:
        fixed_slices: dict = {}
        x_labels: list = []
        groups: list = []
        sigma = None
        X = np.zeros((4, 0))

    class Built:
        design = Design()
        priors = {"Intercept": P("StudentT", nu=3.0, mu=0.0, sigma=2.5)}

    lp = log_prior(tree, Built())["Intercept"]
    assert lp.shape == (2, 5)
    expected = stats.t.logpdf(cut, 3.0, 0.0, 2.5).sum(axis=2)
    assert np.ptp(lp - expected) < 1e-9


@pytest.mark.parametrize("prefix", ["sigma", "zi"])
def test_a_distributional_intercept_prior_is_on_the_centered_intercept(prefix):
    """--sigma-formula and --zi/--hu-formula intercepts are sampled centered (build.py): their
    prior is evaluated at intercept + mean(x) * slope, not at the reported intercept."""
    import xarray as xr

    from hlm_cli.model.log_prior import log_prior

    rng = np.random.default_rng(3)
    icpt, slope = rng.normal(size=(1, 6)), rng.normal(size=(1, 6))
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset({
        f"{prefix}_Intercept": (("chain", "draw"), icpt), f"{prefix}_x": (("chain", "draw"), slope)})})
    X = np.column_stack([np.ones(4), [1.0, 2.0, 3.0, 6.0]])  # mean(x) = 3

    class Sub:
        pass

    sub = Sub()
    sub.prefix, sub.X, sub.labels = prefix, X, ["Intercept", "x"]
    sub.names = lambda: {f"{prefix}_Intercept": ["Intercept"], f"{prefix}_x": ["x"]}

    class Design:
        fixed_slices: dict = {}
        x_labels: list = []
        groups: list = []
        sigma = sub if prefix == "sigma" else None
        dpar = sub if prefix != "sigma" else None
        X = np.zeros((4, 0))

    class Built:
        design = Design()
        priors = {f"{prefix}_Intercept": P("Normal", mu=0.0, sigma=1.5), f"{prefix}_x": P("Normal", mu=0.0, sigma=1.0)}

    lp = log_prior(tree, Built())
    assert np.ptp(lp[f"{prefix}_Intercept"] - stats.norm.logpdf(icpt + 3.0 * slope, 0, 1.5)) < 1e-9
    assert np.ptp(lp[f"{prefix}_x"] - stats.norm.logpdf(slope, 0, 1.0)) < 1e-9
