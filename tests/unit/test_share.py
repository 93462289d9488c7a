"""hlm batch --share: the hyperprior estimation on synthetic posterior summaries (no sampling)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hlm_cli.workflows import share


def _moments(rng, n_inputs: int, *, log_sigma_mu: float, log_sigma_tau: float, within_sd: float,
             slope_tau: float) -> pd.DataFrame:
    rows = []
    for i in range(n_inputs):
        true_ls = rng.normal(log_sigma_mu, log_sigma_tau)
        rows.append((f"in{i}", "sigma", "sigma", true_ls + rng.normal(0, within_sd), within_sd**2))
        true_sd = rng.normal(-1.0, 0.0)  # every input has the same group SD
        rows.append((f"in{i}", "1|g_sigma", "sd", true_sd + rng.normal(0, within_sd), within_sd**2))
        true_b = rng.normal(0, slope_tau)
        rows.append((f"in{i}", "x", "b", true_b + rng.normal(0, within_sd), within_sd**2))
    return pd.DataFrame(rows, columns=["input", "parameter", "kind", "mean", "var"])


def test_method_of_moments_recovers_the_spread():
    rng = np.random.default_rng(3)
    m = _moments(rng, 4000, log_sigma_mu=0.5, log_sigma_tau=0.4, within_sd=0.3, slope_tau=2.0)
    t = share.estimate_hyperpriors(m).set_index("parameter")
    assert t.loc["sigma", "center"] == pytest.approx(0.5, abs=0.03)
    assert t.loc["sigma", "scale"] == pytest.approx(0.4, abs=0.03)  # corrected for the posterior sd 0.3
    assert t.loc["sigma", "prior"].startswith("LogNormal(0.5")
    assert t.loc["x", "scale"] == pytest.approx(2.0, rel=0.05)
    assert t.loc["x", "prior"].startswith("Normal(0, ")
    # no spread between inputs beyond the posterior noise: the floor
    assert t.loc["1|g_sigma", "scale"] == pytest.approx(share.TAU_FLOOR_LOG)
    assert t.loc["1|g_sigma", "center"] == pytest.approx(-1.0, abs=0.02)
    assert (t["n_inputs"] == 4000).all()


def test_slopes_all_null_hit_the_floor():
    rng = np.random.default_rng(4)
    m = _moments(rng, 3000, log_sigma_mu=0.0, log_sigma_tau=0.2, within_sd=0.5, slope_tau=0.0)
    t = share.estimate_hyperpriors(m).set_index("parameter")
    assert t.loc["x", "scale"] == pytest.approx(share.SLOPE_FLOOR * 0.5, rel=0.5)
    assert t.loc["x", "scale"] < 0.2  # strong shrinkage towards 0 when no input has an effect


def test_slope_prior_is_centred_at_zero_and_counts_a_common_shift():
    """Effects all near +3: the zero-centred prior must be wide enough to reach them."""
    m = pd.DataFrame({"input": [f"i{k}" for k in range(5)], "parameter": "x", "kind": "b",
                      "mean": [2.9, 3.0, 3.1, 3.0, 3.05], "var": 0.01})
    t = share.estimate_hyperpriors(m).set_index("parameter")
    assert t.loc["x", "center"] == 0.0
    assert t.loc["x", "scale"] > 2.9


def test_too_few_inputs_keep_the_usual_prior():
    m = pd.DataFrame({"input": ["a", "b"], "parameter": "sigma", "kind": "sigma", "mean": [0.1, 0.2], "var": 0.01})
    assert share.estimate_hyperpriors(m).empty
    assert len(share.estimate_hyperpriors(m, min_inputs=2)) == 1


def test_posterior_moments_of_the_recorded_run(recorded_run):
    import json

    from hlm_cli.workflows.runs import open_tree

    tree = open_tree(recorded_run)
    params = json.loads((recorded_run / "run.json").read_text())["parameters"]
    m = share.posterior_moments(tree, params).set_index("parameter")
    assert set(m.index) == {"sigma", "1|gene_sigma", "1|cell_line_sigma"}  # the intercept is not moderated
    logs = np.log(np.asarray(tree["posterior"]["sigma"]).ravel())
    assert m.loc["sigma", "mean"] == pytest.approx(logs.mean())
    assert m.loc["sigma", "var"] == pytest.approx(logs.var(ddof=1))


def test_several_formulas_refused(tmp_path):
    from hlm_cli.errors import ConfigError
    from hlm_cli.workflows.batch import BatchSpec

    spec = BatchSpec(inputs=["x.csv"], out=tmp_path / "o", specs=[object(), object()], share=True)
    with pytest.raises(ConfigError, match="one --formula"):
        share.run_shared_batch(spec)
    assert not (tmp_path / "o").exists()


def test_batch_report_shows_the_shared_priors(tmp_path):
    import json

    from hlm_cli.outputs.report import write_batch_report

    pd.DataFrame({"input": ["a.csv"], "run_dir": ["a"], "status": ["ok"]}).to_csv(tmp_path / "batch_status.csv", index=False)
    page = write_batch_report(tmp_path).read_text()
    assert "Shared priors" not in page  # a plain batch
    (tmp_path / share.SHARED_PRIORS).write_text(json.dumps({
        "inputs_fitted": 5, "priors": {"sigma": "LogNormal(0.1, 0.2)"},
        "table": [{"parameter": "sigma", "kind": "sigma", "n_inputs": 5}, {"parameter": "x", "kind": "b", "n_inputs": 5}]}))
    page = write_batch_report(tmp_path).read_text()
    assert "<h2>Shared priors (--share)</h2>" in page and "LogNormal(0.1, 0.2)" in page
    assert "yours (--prior)" in page  # x was the user's own prior
    assert page.index("Shared priors") < page.index("<div class='tablewrap'>")
