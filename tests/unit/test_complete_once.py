"""The fit's log-likelihood and posterior predictive come from one pass over the linear
predictor (sampling._complete_pointwise): the same numbers as computing it twice."""

import numpy as np

from hlm_cli import sampling
from hlm_cli.model import likelihood, linpred
from hlm_cli.workflows.runs import load_run


def test_one_pass_gives_the_two_pass_numbers(recorded_run):
    ctx = load_run(recorded_run)
    built, tree = ctx.built, ctx.tree
    for group in ("log_likelihood", "posterior_predictive"):
        if group in tree.children:
            del tree[group]
    sampling._complete_pointwise(built, tree, seed=7)
    name, d = built.response_name, built.design
    ll = np.asarray(tree["log_likelihood"][name]).reshape(-1, d.n)
    ppc = np.asarray(tree["posterior_predictive"][name]).reshape(-1, d.n)
    # the two-pass way: the log-likelihood, then the linear predictor again for the predictive
    np.testing.assert_array_equal(ll, likelihood.pointwise(tree, built))
    rng = np.random.default_rng(7)
    chunk = likelihood.chunk_size(d.n)
    expect = np.empty_like(ppc)
    for start in range(0, ll.shape[0], chunk):
        sl = slice(start, min(ll.shape[0], start + chunk))
        expect[sl] = linpred.simulate(built.family, tree, linpred.eta_draws(tree, built, draws=sl), trials=d.trials,
                                      se=d.se, draws=sl, rng=rng, terms=getattr(d, "terms", None))
    np.testing.assert_array_equal(ppc, expect)
    assert np.isfinite(ll).all() and ppc.std() > 0
