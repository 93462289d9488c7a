"""summary.csv comes from one stacked array (outputs.summary.summarize); it must equal the
arviz_stats.summary-based reference byte for byte, for every kind of parameter and interval."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hlm_cli.outputs import summary as summary_mod
from hlm_cli.workflows.runs import load_run
from tests.unit.test_figures import make_run


def _csv(table, path) -> str:
    summary_mod.write(table, path)
    return path.read_text()


@pytest.fixture(scope="module")
def slope_run(tmp_path_factory):
    """Correlated slopes, a factor, a family parameter: every kind of summary row."""
    rng = np.random.default_rng(11)
    g = np.repeat([f"s{i}" for i in range(7)], 6)
    x = np.tile(np.arange(6.0), 7)
    cond = np.tile(["a", "b", "c"], 14)
    y = 2 + 0.5 * x + rng.normal(0, 1, 7)[np.repeat(np.arange(7), 6)] + rng.normal(0, 0.5, 42)
    frame = pd.DataFrame({"y": y, "x": x, "cond": cond, "g": g})
    return make_run(tmp_path_factory.mktemp("slopes"), frame, "y ~ x + cond + (x|g)")


@pytest.mark.parametrize("ci", [0.94, 0.9, 0.5])
def test_summary_equals_the_arviz_stats_reference(slope_run, recorded_run, tmp_path, ci):
    for run in (slope_run, recorded_run):
        ctx = load_run(run)
        fast = summary_mod.summarize(ctx.tree, ctx.built.params, ci=ci)
        ref = summary_mod.summarize_reference(ctx.tree, ctx.built.params, ci=ci)
        assert list(fast.index) == list(ref.index) and list(fast.columns) == list(ref.columns)
        assert {"population", "group_sd", "group_effect"} <= set(fast["kind"])
        if run == slope_run:
            assert "correlation" in set(fast["kind"]) and "family" in set(fast["kind"])
        np.testing.assert_allclose(fast.select_dtypes("number"), ref.select_dtypes("number"), rtol=1e-12, atol=1e-12)
        assert _csv(fast, tmp_path / "a.csv") == _csv(ref, tmp_path / "b.csv")


def test_summary_reacts_to_the_draws(recorded_run):
    """Not a copy of a stored table: changing one draw changes the mean it enters."""
    ctx = load_run(recorded_run)
    before = summary_mod.summarize(ctx.tree, ctx.built.params).loc["Intercept", "mean"]
    post = ctx.tree["posterior"].to_dataset()
    post["Intercept"] = post["Intercept"] + 1.0
    ctx.tree["posterior"] = post
    after = summary_mod.summarize(ctx.tree, ctx.built.params).loc["Intercept", "mean"]
    assert after == pytest.approx(before + 1.0)
