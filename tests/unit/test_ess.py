"""Sampling to a target ESS (``--ess N``, issue 22): the stopping rule with a stand-in sampler and
ESS function, the checkpoint plan, the outcome's words, the spec checks and the ESS itself on
fixed arrays. Nothing here samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

from hlm_cli import diagnostics
from hlm_cli.errors import ConfigError, UsageError
from hlm_cli.sampling import ess as ess_mod
from hlm_cli.sampling.ess import EssOutcome, first_checkpoint, next_checkpoint, run_to_target
from hlm_cli.spec import SamplerSpec, spec_from_layers

CHAINS = 2
MAX = 1000


def full_trace(draws: int = MAX, chains: int = CHAINS, seed: int = 0):
    """A trace as nutpie returns it: posterior and sample_stats, ``draws`` per chain."""
    rng = np.random.default_rng(seed)
    post = xr.Dataset({"Intercept": (("chain", "draw"), rng.normal(size=(chains, draws))),
                       "b": (("chain", "draw", "b_dim"), rng.normal(size=(chains, draws, 3)))},
                      coords={"chain": np.arange(chains), "draw": np.arange(draws)})
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((chains, draws), dtype=bool))},
                       coords={"chain": np.arange(chains), "draw": np.arange(draws)})
    return xr.DataTree.from_dict({"posterior": post, "sample_stats": stats})


def padded(tree, have: list[int]):
    """``tree`` as ``inspect()`` shows a run in progress: chain c has ``have[c]`` draws, NaN after."""
    post = tree["posterior"].to_dataset()
    out = {}
    for name, da in post.data_vars.items():
        arr = np.array(da.values, dtype=float)
        for c, n in enumerate(have):
            arr[c, n:] = np.nan
        out[name] = (da.dims, arr)
    return xr.DataTree.from_dict({"posterior": xr.Dataset(out, coords=post.coords),
                                  "sample_stats": tree["sample_stats"].to_dataset()})


class FakeSampler:
    """A background sampler whose chains advance ``speed`` draws per ``sleep`` (warm-up done);
    ``lag``: the trace shows that many draws fewer than the counters on the first look."""

    def __init__(self, *, speed: int = 10, max_draws: int = MAX, lag: int = 0, chains: int = CHAINS, uneven: int = 0):
        self.full = full_trace(max_draws, chains)
        self.max_draws = max_draws
        self.speed = speed
        self.lag = lag
        self.uneven = uneven
        self.done = [0] * chains
        self.cancelled = self.waited = 0
        self.inspected = 0

    def sleep(self, seconds: float) -> None:
        self.done = [min(self.max_draws, d + self.speed + (self.uneven if c == 0 else 0)) for c, d in enumerate(self.done)]

    def kept(self) -> list[int]:
        return list(self.done)

    def finished(self) -> bool:
        return min(self.done) >= self.max_draws

    def inspect(self):
        self.inspected += 1
        lag, self.lag = self.lag, 0
        return padded(self.full, [max(0, d - lag) for d in self.done])

    def wait(self):
        self.waited += 1
        self.done = [self.max_draws] * len(self.done)
        return self.full

    def cancel(self) -> None:
        self.cancelled += 1


def ess_per_draw(rate: float, rhat_at: dict | None = None, seen: list | None = None):
    """A measure: bulk ESS = rate x chains x draws of the trace it gets; R-hat 1.0 unless
    ``rhat_at`` gives another for that many draws. Records the draws it saw in ``seen``."""

    def measure(tree):
        post = tree["posterior"]
        d = int(post.sizes["draw"])
        assert not np.isnan(np.asarray(post["Intercept"].values)).any(), "measured a trace with missing draws"
        if seen is not None:
            seen.append(d)
        return rate * int(post.sizes["chain"]) * d, "b", (rhat_at or {}).get(d, 1.0)

    return measure


# -- the checkpoint plan


def test_first_checkpoint_is_target_over_chains_but_at_least_50_and_at_most_draws():
    assert first_checkpoint(400, 2, 1000) == 200
    assert first_checkpoint(400, 4, 1000) == 100
    assert first_checkpoint(100, 4, 1000) == ess_mod.MIN_FIRST
    assert first_checkpoint(5000, 2, 1000) == 1000
    assert first_checkpoint(400, 2, 30) == 30


def test_next_checkpoint_scales_with_the_ess_per_draw_within_bounds():
    # ESS 250 at 200 draws, target 400: 1.1 x 320 (linear) = 352
    assert next_checkpoint(200, 250.0, 400, 1000) == 352
    assert next_checkpoint(200, 200.0, 400, 1000) == 400  # 440 wanted, at most twice as far
    # far off: at most twice as far
    assert next_checkpoint(200, 10.0, 400, 1000) == 400
    # nearly there: at least 25 draws and 10% further
    assert next_checkpoint(300, 399.0, 400, 1000) == 331
    assert next_checkpoint(100, 399.0, 400, 1000) == 125
    # never past --draws; an unknown ESS doubles
    assert next_checkpoint(800, 100.0, 400, 1000) == 1000
    assert next_checkpoint(100, math.nan, 400, 1000) == 200
    # ESS there but R-hat not: 1.5x
    assert next_checkpoint(200, 500.0, 400, 1000) == 300


# -- the stopping rule


def test_stops_at_the_first_checkpoint_that_reaches_the_target_and_keeps_exactly_those_draws():
    fake = FakeSampler(speed=10)
    seen: list[int] = []
    # ESS = 0.4 x 2 chains x draws: 200 draws give 160 (550 wanted, 2x cap: 400); 400 give 320 (550 wanted);
    # 550 give 440 >= 400
    tree, out = run_to_target(fake, target=400, chains=CHAINS, max_draws=MAX, measure=ess_per_draw(0.4, seen=seen),
                              sleep=fake.sleep)
    assert seen == [200, 400, 550]
    assert out.reached and out.stopped_early and out.draws == 550 and out.checks == 3
    assert out.ess == pytest.approx(440.0) and out.parameter == "b"
    assert int(tree["posterior"].sizes["draw"]) == 550 and int(tree["sample_stats"].sizes["draw"]) == 550
    np.testing.assert_array_equal(tree["posterior"]["Intercept"].values, fake.full["posterior"]["Intercept"].values[:, :550])
    assert fake.cancelled == 1 and fake.waited == 0
    assert "reached after 550 of 1000 draws per chain" in out.line() and "stopped early" in out.line()



def test_draws_used_up_below_the_target_is_a_warning_never_a_silent_success():
    fake = FakeSampler(speed=50)
    tree, out = run_to_target(fake, target=400, chains=CHAINS, max_draws=MAX, measure=ess_per_draw(0.1), sleep=fake.sleep)
    assert not out.reached and not out.stopped_early
    assert out.draws == MAX and int(tree["posterior"].sizes["draw"]) == MAX
    assert out.ess == pytest.approx(200.0)
    assert fake.waited == 1
    assert "--ess 400 not reached: --draws 1000 per chain used up with minimum bulk ESS 200 (b)" == out.line()
    finding = diagnostics.ess_target_finding(out)
    assert finding.severity == "warning" and finding.code == "ess_target" and "raise --draws" in finding.remedy
    assert diagnostics.ess_target_finding(None) is None


def test_reached_only_at_the_last_draw_is_reached_but_not_early():
    fake = FakeSampler(speed=100)
    # ESS = 0.2 x 2 x draws: 400 exactly at 1000 draws
    _, out = run_to_target(fake, target=400, chains=CHAINS, max_draws=MAX, measure=ess_per_draw(0.2), sleep=fake.sleep)
    assert out.reached and not out.stopped_early and out.draws == MAX
    assert "reached at --draws 1000" in out.line()
    assert diagnostics.ess_target_finding(out).severity == "note"


def test_a_high_r_hat_holds_sampling_back_even_when_the_ess_is_there():
    fake = FakeSampler(speed=10)
    seen: list[int] = []
    # ESS 2 x 2 x draws is over 400 from the first look (200 draws) but R-hat is 1.05 there
    _, out = run_to_target(fake, target=400, chains=CHAINS, max_draws=MAX,
                           measure=ess_per_draw(2.0, rhat_at={200: 1.05}, seen=seen), sleep=fake.sleep)
    assert seen == [200, 300]
    assert out.reached and out.draws == 300 and out.rhat == pytest.approx(1.0)
    assert ess_mod.RHAT_MAX == diagnostics.RHAT_MAX


def test_r_hat_above_the_limit_at_the_last_draw_is_not_reached_and_says_why():
    fake = FakeSampler(speed=500)
    rhats = {d: 1.2 for d in range(MAX + 1)}
    _, out = run_to_target(fake, target=400, chains=CHAINS, max_draws=MAX, measure=ess_per_draw(2.0, rhat_at=rhats),
                           sleep=fake.sleep)
    assert not out.reached and "R-hat 1.200 > 1.01" in out.line()


def test_a_fast_sampler_that_finished_before_a_look_gives_the_same_draws_as_a_slow_one():
    slow, fast = FakeSampler(speed=5), FakeSampler(speed=MAX)
    tree_slow, out_slow = run_to_target(slow, target=400, chains=CHAINS, max_draws=MAX, measure=ess_per_draw(0.5), sleep=slow.sleep)
    tree_fast, out_fast = run_to_target(fast, target=400, chains=CHAINS, max_draws=MAX, measure=ess_per_draw(0.5), sleep=fast.sleep)
    assert fast.waited == 1 and fast.inspected == 0 and slow.waited == 0
    assert out_fast.draws == out_slow.draws == 400 and out_fast.reached and out_fast.stopped_early
    np.testing.assert_array_equal(tree_fast["posterior"]["b"].values, tree_slow["posterior"]["b"].values)


def test_a_trace_sampled_in_full_gets_the_same_checkpoints_afterwards():
    slow = FakeSampler(speed=5)
    tree_slow, out_slow = run_to_target(slow, target=400, chains=CHAINS, max_draws=MAX, measure=ess_per_draw(0.5), sleep=slow.sleep)
    tree_done, out_done = run_to_target(ess_mod.DoneHandle(full_trace()), target=400, chains=CHAINS, max_draws=MAX,
                                        measure=ess_per_draw(0.5))
    assert out_done == out_slow
    np.testing.assert_array_equal(tree_done["posterior"]["b"].values, tree_slow["posterior"]["b"].values)


def test_chains_at_different_speeds_are_cut_to_the_same_checkpoint():
    fake = FakeSampler(speed=10, uneven=7)  # chain 0 runs ahead: the trace is NaN-padded for chain 1
    tree, out = run_to_target(fake, target=400, chains=CHAINS, max_draws=MAX, measure=ess_per_draw(1.0), sleep=fake.sleep)
    assert out.draws == 200 and not np.isnan(tree["posterior"]["Intercept"].values).any()


def test_a_trace_that_lags_the_counters_is_looked_at_again_not_measured_short():
    fake = FakeSampler(speed=10, lag=30)
    seen: list[int] = []
    _, out = run_to_target(fake, target=400, chains=CHAINS, max_draws=MAX, measure=ess_per_draw(1.0, seen=seen), sleep=fake.sleep)
    assert seen == [200] and fake.inspected == 2 and out.draws == 200


def test_ctrl_c_while_waiting_cancels_the_sampler_and_propagates():
    fake = FakeSampler(speed=10)
    calls = {"n": 0}

    def sleep(_s):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        fake.sleep(_s)

    with pytest.raises(KeyboardInterrupt):
        run_to_target(fake, target=400, chains=CHAINS, max_draws=MAX, measure=ess_per_draw(0.5), sleep=sleep)
    assert fake.cancelled == 1


def test_a_measure_that_fails_cancels_the_sampler():
    fake = FakeSampler(speed=100)

    def broken(tree):
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        run_to_target(fake, target=400, chains=CHAINS, max_draws=MAX, measure=broken, sleep=fake.sleep)
    assert fake.cancelled == 1


# -- pieces


def test_complete_draws_counts_the_draws_every_chain_has():
    tree = padded(full_trace(100), [70, 40])
    assert ess_mod.complete_draws(tree) == 40
    assert ess_mod.complete_draws(full_trace(100)) == 100


def test_truncate_leaves_the_original_alone():
    tree = full_trace(100)
    cut = ess_mod.truncate(tree, 30)
    assert int(cut["posterior"].sizes["draw"]) == 30 and int(cut["sample_stats"].sizes["draw"]) == 30
    assert int(tree["posterior"].sizes["draw"]) == 100


def test_min_bulk_ess_names_the_worst_parameter_and_the_largest_r_hat():
    rng = np.random.default_rng(3)
    walk = np.cumsum(rng.normal(size=(2, 400)), axis=1)  # strongly autocorrelated: low ESS
    ds = xr.Dataset({"Intercept": (("chain", "draw"), rng.normal(size=(2, 400))),
                     "sigma": (("chain", "draw"), walk),
                     "b": (("chain", "draw", "b_dim"), rng.normal(size=(2, 400, 2)))})
    value, name, rhat = ess_mod.min_bulk_ess(ds, ["Intercept", "sigma", "b", "not_there"])
    assert name == "sigma" and value < 50 and rhat > 1.01
    value, name, rhat = ess_mod.min_bulk_ess(ds, ["Intercept", "b"])
    assert name in ("Intercept", "b") and value > 300 and rhat < 1.02
    assert math.isnan(ess_mod.min_bulk_ess(ds, ["nothing"])[0])


def test_ess_names_adds_every_group_effect_with_ess_all():
    from types import SimpleNamespace

    from hlm_cli.model.build import ParamInfo
    from hlm_cli.sampling import ess_names

    params = ParamInfo(population=["Intercept", "b"], group_effects={"g": ["1|g"]}, group_sds={"g": ["1|g_sigma"]},
                       family=["sigma"])
    built = SimpleNamespace(params=params)
    assert ess_names(built) == ["Intercept", "b", "1|g_sigma", "sigma"]
    assert ess_names(built, every=True) == ["Intercept", "b", "1|g_sigma", "sigma", "1|g"]


def test_outcome_json_rounds_and_keeps_every_field():
    out = EssOutcome(400, True, 412.345, "sigma", 350, 1000, 2, "all", 1.00234)
    assert out.to_json() == {"target": 400, "reached": True, "ess": 412.3, "parameter": "sigma", "draws": 350,
                             "max_draws": 1000, "checks": 2, "scope": "all", "rhat": 1.0023}
    assert "every parameter and group effect" in out.line()


# -- the settings


def _spec(**flags):
    return spec_from_layers({}, "command line", data="d.csv", formula="y ~ x", out="o", **flags)


def test_ess_is_off_by_default_and_goes_under_sampler():
    assert SamplerSpec().ess is None and SamplerSpec().ess_all is False
    spec = _spec(ess=400, ess_all=True)
    assert spec.sampler.ess == 400 and spec.sampler.ess_all is True


@pytest.mark.parametrize("flags, fragment, kind", [
    ({"ess_all": True}, "--ess-all needs --ess N", UsageError),
    ({"ess": 400, "sampler": "pymc"}, "--ess works with --sampler nutpie, not pymc", UsageError),
    ({"ess": 0}, "--ess", UsageError),
])
def test_impossible_ess_settings_are_refused_with_a_hint(flags, fragment, kind):
    with pytest.raises(kind) as err:
        _spec(**flags)
    assert fragment in err.value.message and err.value.hint


def test_a_config_file_gives_ess_and_its_errors_name_the_file():
    spec = spec_from_layers({"sampler": {"ess": 300}}, "run.toml", data="d.csv", formula="y ~ x", out="o")
    assert spec.sampler.ess == 300
    with pytest.raises(ConfigError) as err:
        spec_from_layers({"sampler": {"ess": 300, "sampler": "numpyro"}}, "run.toml", data="d.csv", formula="y ~ x", out="o")
    assert err.value.message.startswith("run.toml: --ess works with --sampler nutpie")
