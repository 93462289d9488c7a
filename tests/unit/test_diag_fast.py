"""outputs.diag_fast computes arviz_stats' ESS / MCSE / R-hat / HDI for all parameters at once:
each function must give arviz_stats.base.array_stats' numbers (rtol 1e-10, NaN where it gives
NaN) on awkward arrays."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from arviz_stats.base import array_stats as a

from hlm_cli.outputs import diag_fast as d

TAIL_PROB = 0.89


def _ar1(rng, k, chains, draws, phi):
    e = rng.standard_normal((k, chains, draws))
    x = np.empty_like(e)
    x[..., 0] = e[..., 0]
    for t in range(1, draws):
        x[..., t] = phi[:, None] * x[..., t - 1] + e[..., t]
    return x


def _awkward(chains: int, draws: int, seed: int) -> np.ndarray:
    """(K, chains, draws): AR(1) rows from antithetic to nearly a random walk, then a constant,
    a nearly constant (below and above float resolution), heavy tails, ties, an alternating
    series, a random walk and a row with one NaN."""
    rng = np.random.default_rng(seed)
    x = _ar1(rng, 20, chains, draws, np.array([-0.95, -0.5, 0.0, 0.3, 0.6, 0.9, 0.97, 0.995] * 3)[:20])
    shape = (chains, draws)
    x[0] = 3.0
    x[1] = 1 + 1e-17 * rng.standard_normal(shape)
    x[2] = 1 + 1e-12 * rng.standard_normal(shape)
    x[3] = rng.standard_cauchy(shape)
    x[4] = rng.standard_t(1.5, shape) * 1e6
    x[5] = np.round(rng.standard_normal(shape))
    x[6] = np.where(np.arange(draws) % 2 == 0, 1.0, -1.0) + 1e-3 * rng.standard_normal(shape)
    x[7] = np.cumsum(rng.standard_normal(shape), axis=-1)
    x[8] = rng.standard_normal(shape)
    x[8, 0, draws // 2] = np.nan
    x[9] = rng.exponential(size=shape) ** 3
    return x


CASES = [(1, 4), (1, 101), (1, 683), (2, 5), (2, 7), (2, 100), (2, 683), (4, 50), (4, 333), (3, 1000)]

FUNCTIONS = {
    "ess_bulk": (d.ess_bulk, lambda x: a.ess(x, method="bulk")),
    "ess_tail": (lambda x: d.ess_tail(x, TAIL_PROB), lambda x: a.ess(x, method="tail", prob=TAIL_PROB)),
    "mcse_mean": (d.mcse_mean, lambda x: a.mcse(x, method="mean")),
    "mcse_sd": (d.mcse_sd, lambda x: a.mcse(x, method="sd")),
    "r_hat": (d.rhat_rank, lambda x: a.rhat(x)),
}


def _both(name, x):
    fast, ref = FUNCTIONS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fast(x), np.asarray(ref(x), dtype=float)


@pytest.mark.parametrize("name", list(FUNCTIONS))
@pytest.mark.parametrize(("chains", "draws"), CASES)
def test_equals_arviz_stats(name, chains, draws):
    x = _awkward(chains, draws, seed=chains * 1000 + draws)
    got, want = _both(name, x)
    assert got.shape == (x.shape[0],)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=0, equal_nan=True)
    # the row with a NaN draw gives NaN, the others (enough draws) a number
    assert np.isnan(got[8])
    if draws >= 4 and (name != "r_hat" or chains >= 2):
        assert np.isfinite(got[[3, 4, 5, 6, 7, 9, 10, 15]]).all()


def test_the_awkward_cases_hit_the_nan_and_clamp_branches():
    """Constant draws: ESS is the draw count (arviz_stats' resolution check), R-hat and the MCSE
    of the sd are NaN, the MCSE of the mean is 0; one chain gives no R-hat; < 4 draws nothing."""
    x = _awkward(2, 100, seed=5)
    assert d.ess_bulk(x)[0] == 200 and d.ess_tail(x, TAIL_PROB)[0] == 200
    assert np.isnan(d.rhat_rank(x)[0]) and np.isnan(np.asarray(a.rhat(x))[0])
    assert np.isnan(d.mcse_sd(x)[0]) and d.mcse_mean(x)[0] == 0.0
    assert np.isnan(d.rhat_rank(x[:, :1])).all()
    short = x[:, :, :3]
    for name in FUNCTIONS:
        assert np.isnan(FUNCTIONS[name][0](short)).all()
    # antithetic and alternating chains reach the clamp tau >= 1 / log10(S): ESS = S log10(S);
    # a random walk gives an ESS far below the draw count
    ess = d.ess_bulk(x)
    assert ess[6] == pytest.approx(200 * np.log10(200), rel=1e-12) and ess[16] == ess[6]
    assert ess[7] < 20


def test_strided_input_like_summarize_builds_it():
    """summarize passes np.moveaxis(..., 2, 0): a non-contiguous (K, chain, draw) view."""
    rng = np.random.default_rng(3)
    base = np.moveaxis(_ar1(rng, 300, 2, 683, rng.uniform(-0.5, 0.99, 300)), 0, 2).copy()
    x = np.moveaxis(base, 2, 0)
    assert not x.flags.c_contiguous
    for name in FUNCTIONS:
        got, want = _both(name, x)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=0)


@pytest.mark.parametrize(("chains", "draws"), [(1, 101), (2, 683), (4, 50)])
def test_summary_diagnostics_equals_the_single_functions(chains, draws):
    x = _awkward(chains, draws, seed=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = d.summary_diagnostics(x, TAIL_PROB)
        for name, (fast, _) in FUNCTIONS.items():
            np.testing.assert_array_equal(got[name], fast(x))


@pytest.mark.parametrize("prob", [0.94, 0.5, 0.9999, 0.01])
def test_hdi_equals_arviz_stats(prob):
    x = _awkward(2, 151, seed=9).reshape(20, -1)
    x = x[~np.isnan(x).any(axis=1)]
    np.testing.assert_array_equal(d.hdi_nearest(x, prob), np.asarray(a.hdi(x, prob, axis=-1)))


def test_summary_diagnostics_in_blocks_gives_the_same_numbers(monkeypatch):
    """Blocks of 3 parameters (20 rows: 7 blocks, the last one short) equal one block."""
    x = _awkward(2, 101, seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = d.summary_diagnostics(x, TAIL_PROB)
        monkeypatch.setattr(d, "CHUNK_VALUES", 3 * 2 * 101)
        blocks = d.summary_diagnostics(x, TAIL_PROB)
    for name in whole:
        assert blocks[name].shape == (20,)
        np.testing.assert_array_equal(blocks[name], whole[name])
