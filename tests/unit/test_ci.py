"""--ci: the interval width of summary.csv, the printed tables, hypothesis, and `hlm summary`;
fixed decimals per printed column; `hlm priors` (recorded run / tiny data: never samples)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import DATA, SAMPLE


@pytest.fixture(scope="module")
def tree_and_params():
    from xarray import open_datatree

    from hlm_cli.outputs import runinfo
    from hlm_cli.workflows.summary import params_of

    run = DATA / "cell_lines_run"
    return open_datatree(run / "posterior.nc", engine="h5netcdf").load(), params_of(runinfo.read(run))


@pytest.mark.parametrize(("prob", "tag"), [(0.94, "94"), (0.95, "95"), (0.9, "90"), (0.975, "97.5"), (0.5, "50")])
def test_ci_tag_and_columns(prob, tag):
    from hlm_cli.outputs.summary import ci_of, ci_tag, columns

    assert ci_tag(prob) == tag
    cols = columns(prob)
    assert cols[5:9] == [f"hdi{tag}_lb", f"hdi{tag}_ub", f"eti{tag}_lb", f"eti{tag}_ub"]
    assert ci_of(pd.DataFrame(columns=cols)) == pytest.approx(prob)


def test_summarize_default_matches_the_recorded_summary_csv(tree_and_params):
    from hlm_cli.outputs.summary import COLUMNS, summarize

    tree, params = tree_and_params
    s = summarize(tree, params)
    assert ["parameter", *s.columns] == COLUMNS
    rec = pd.read_csv(DATA / "cell_lines_run" / "summary.csv").set_index("parameter")
    cols = ["mean", "sd", "hdi94_lb", "hdi94_ub", "eti94_lb", "eti94_ub"]
    np.testing.assert_allclose(s.loc[rec.index, cols].to_numpy(float), rec[cols].to_numpy(float), rtol=1e-4)


def test_summarize_at_0_9_is_narrower_and_named_90(tree_and_params):
    from hlm_cli.outputs.summary import summarize

    tree, params = tree_and_params
    wide, narrow = summarize(tree, params, ci=0.94), summarize(tree, params, ci=0.9)
    assert {"hdi90_lb", "hdi90_ub", "eti90_lb", "eti90_ub"} <= set(narrow.columns)
    assert not any(c.startswith(("hdi94", "eti94")) for c in narrow.columns)
    for k in ("hdi", "eti"):
        w = wide[f"{k}94_ub"] - wide[f"{k}94_lb"]
        n = narrow[f"{k}90_ub"] - narrow[f"{k}90_lb"]
        assert (n < w).all(), k
    # equal-tailed intervals nest (HDIs of two widths need not)
    assert (narrow["eti90_lb"] >= wide["eti94_lb"]).all() and (narrow["eti90_ub"] <= wide["eti94_ub"]).all()
    pd.testing.assert_series_equal(wide["mean"], narrow["mean"])


def test_stats_names_its_columns_by_width(tree_and_params):
    from hlm_cli.outputs.summary import stats

    tree, _ = tree_and_params
    assert {"eti80_lb", "eti80_ub"} <= set(stats(tree, ["Intercept"], ci_kind="eti", ci=0.8).columns)
    assert {"hdi94_lb", "hdi94_ub"} <= set(stats(tree, ["Intercept"]).columns)


def test_spec_takes_ci_from_flags_and_config(tmp_path):
    from hlm_cli.errors import ConfigError
    from hlm_cli.spec import load_fit_spec

    assert load_fit_spec(None, data="a.csv", formula="y ~ 1", out="o").ci == 0.94
    assert load_fit_spec(None, data="a.csv", formula="y ~ 1", out="o", ci=0.95).ci == 0.95
    cfg = tmp_path / "c.toml"
    cfg.write_text('formula = "y ~ 1"\nci = 0.9\n')
    assert load_fit_spec(cfg, data="a.csv", out="o").ci == 0.9
    with pytest.raises(ConfigError, match=r"--ci must be < 1"):
        load_fit_spec(None, data="a.csv", formula="y ~ 1", out="o", ci=1.5)
    cfg.write_text('formula = "y ~ 1"\nci = "wide"\n')
    with pytest.raises(ConfigError, match="ci"):
        load_fit_spec(cfg, data="a.csv", out="o")


# -- printing: fixed decimals per column


def test_column_format_fixed_decimals_no_e_notation():
    from hlm_cli.cli.render import column_format, decimals

    assert decimals([251234.5, 3.2]) == 2
    f = column_format([251234.5, 3.2, -0.004])
    assert [f(v) for v in (251234.5, 3.2, -0.004)] == ["251234.50", "3.20", "0.00"]
    assert decimals([0.035, 0.01]) == 3
    assert column_format([0.0043, 0.0012])(0.0012) == "0.0012"
    assert column_format([1.0])(float("nan")) == "nan"
    assert "e" in column_format([1e-7, 2e-7])(1e-7)  # only a column of tiny values is scientific


def test_summary_command_reprints_and_recomputes(recorded_run, capsys):
    from hlm_cli.cli.app import main

    assert main(["summary", str(recorded_run)]) == 0
    out94 = capsys.readouterr().out
    assert "l-94% HDI" in out94 and "from summary.csv" in out94 and "sd(Intercept|gene)" in out94
    rec = pd.read_csv(recorded_run / "summary.csv").set_index("parameter")
    assert f"{rec.loc['Intercept', 'hdi94_lb']:.2f}" in out94

    assert main(["summary", str(recorded_run), "--ci", "0.5"]) == 0
    out50 = capsys.readouterr().out
    assert "l-50% HDI" in out50 and "recomputed from posterior.nc" in out50 and "94%" not in out50
    assert f"{rec.loc['Intercept', 'hdi94_lb']:.2f}" not in out50.split("Intercept", 2)[-1].split("\n")[0]


def test_summary_command_errors(recorded_run, tmp_path, capsys):
    from hlm_cli.cli.app import main

    assert main(["summary", str(recorded_run), "--ci", "1.5"]) == 1
    assert "--ci must be between 0 and 1 (got 1.5)" in capsys.readouterr().err
    assert main(["summary", str(tmp_path)]) == 1
    assert "is not an hlm run directory" in capsys.readouterr().err


def test_summary_layout_golden(recorded_run, capsys, golden):
    """The printed layout: fixed decimals per column, aligned (brms-like)."""
    from hlm_cli.cli import render
    from hlm_cli.workflows.summary import run_summary

    render.summary_tables  # noqa: B018 - the function under test
    for t in render.summary_tables(run_summary(recorded_run).summary):
        render._out.print(t)
    golden("summary_tables_cell_lines.txt", capsys.readouterr().out)


def test_hypothesis_ci_changes_the_interval(recorded_run, tmp_path, capsys):
    from hlm_cli.cli.app import main

    widths = {}
    for ci in ("0.5", "0.95"):
        out = tmp_path / f"h{ci}.csv"
        assert main(["hypothesis", str(recorded_run), "Intercept < 0", "--ci", ci, "--out", str(out)]) == 0
        assert f"l-{round(float(ci) * 100)}% HDI" in capsys.readouterr().out
        row = pd.read_csv(out).iloc[0]
        assert row["ci_prob"] == float(ci)
        widths[ci] = row["upper"] - row["lower"]
    assert widths["0.5"] < widths["0.95"]


# -- hlm priors


def test_priors_lists_every_prior_by_its_prior_name(capsys):
    from hlm_cli.cli.app import main

    code = main(["priors", str(SAMPLE / "sleepstudy.csv"), "--formula", "Reaction ~ Days + (Days|Subject)",
                 "--prior", "1|Subject=HalfNormal(30)"])
    assert code == 0
    out = capsys.readouterr().out
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.strip()}
    assert "1|Subject" in lines["sd(Intercept|Subject)"] and "HalfNormal(sigma=30)" in lines["sd(Intercept|Subject)"]
    assert "user" in lines["sd(Intercept|Subject)"]
    assert "Days|Subject" in lines["sd(Days|Subject)"] and "default" in lines["sd(Days|Subject)"]
    assert "LKJ(eta=1)" in lines["cor(Subject)"]
    assert "Normal(mu=0" in lines["Days"] and "HalfStudentT" in lines["sigma"]


def test_priors_table_names_are_accepted_by_prior():
    """Every 'set with --prior' name builds: the table and --prior speak the same names."""
    from hlm_cli.spec import load_fit_spec
    from hlm_cli.workflows.priors import run_priors

    base = dict(data=SAMPLE / "sleepstudy.csv", formula="Reaction ~ Days + (Days|Subject)", out="unused")
    table = run_priors(load_fit_spec(None, **base)).table
    assert list(table["class"]) == ["Intercept", "b", "sd", "sd", "cor", "family"]
    dists = {"cor": "LKJ(2)", "sd": "HalfNormal(7)", "family": "HalfNormal(7)"}
    priors = [f"{r.prior_name}={dists.get(r._3, 'Normal(0, 7)')}" for r in table.itertuples()]
    again = run_priors(load_fit_spec(None, priors=priors, **base)).table
    assert (again["source"] == "user").all()


def test_priors_refuses_an_unknown_name(capsys):
    from hlm_cli.cli.app import main

    code = main(["priors", str(SAMPLE / "sleepstudy.csv"), "--formula", "Reaction ~ Days + (1|Subject)", "--prior", "1|Subjct=HalfNormal(3)"])
    assert code == 1
    assert "not a parameter of this model" in capsys.readouterr().err
