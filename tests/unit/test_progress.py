"""Live sampling progress (issue 18): the numbers nutpie reports, the text shown, how often it is
shown (an injected clock, never wall time), logs vs terminals, --quiet, and that reporting
progress changes no draw. Nothing here samples: nutpie.sample is a fake."""

from __future__ import annotations

import io
import os
import re
from types import SimpleNamespace

import numpy as np
import pytest
from rich.console import Console

from hlm_cli.cli import render
from hlm_cli.sampling import DrawProgress, DrawReporter


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def chain(finished: int, divergences: int = 0):
    """What nutpie passes its progress callback, one per chain (nutpie.ChainProgress)."""
    return SimpleNamespace(finished_draws=finished, divergences=divergences, tuning=True, started=finished > 0)


def progress(finished, *, tune=1000, draws=1000, divergences=0, elapsed=5.0) -> DrawProgress:
    return DrawProgress(tune=tune, draws=draws, finished=tuple(finished), divergences=divergences, elapsed=elapsed)


# -- the numbers


def test_draw_progress_splits_warmup_from_kept_draws():
    p = progress((1500, 1200, 1000, 800), elapsed=6.0)
    assert (p.chains, p.warmup_done, p.draws_done, p.total) == (4, 3800, 700, 8000)
    assert p.fraction == pytest.approx(4500 / 8000)
    assert p.warming_up
    assert p.time_left == pytest.approx(6.0 * 3500 / 4500)
    assert not progress((2000,) * 4).warming_up
    assert progress((0, 0)).time_left is None  # nothing done yet: no estimate
    assert progress((2000, 2000)).time_left == 0.0


# -- the text


def test_duration_text():
    assert [render.duration(s) for s in (0, 7.4, 59.6, 65, 725, 3723)] == ["0:00", "0:07", "1:00", "1:05", "12:05", "1:02:03"]
    assert render.duration(None) == render.duration(float("nan")) == render.duration(-1) == "?"


def test_draws_text_full_and_compact():
    p = progress((1500, 1200, 1000, 800), divergences=3, elapsed=5.2)
    assert render.draws_text(p) == ("sampling 56% (4 chains): warmup 3,800/4,000, draws 700/4,000; "
                                    "3 divergences; 0:05 elapsed, ~0:04 left")
    assert render.draws_text(p, compact=True) == "sampling 56%: warmup 3800/4000, draws 700/4000; 3 divergences; ~0:04 left"
    assert len(render.draws_text(p, compact=True)) <= 76  # fits an 80-column terminal with the spinner


def test_draws_text_at_the_start_and_the_end():
    start = progress((0,), divergences=1, elapsed=0.0)
    assert render.draws_text(start) == "sampling 0% (1 chain): warmup 0/1,000, draws 0/1,000; 1 divergence; 0:00 elapsed"
    assert render.draws_text(start, compact=True).endswith("; 0:00 elapsed")
    done = progress((2000, 2000), elapsed=61.0)
    assert render.draws_text(done) == "sampling 100% (2 chains): warmup 2,000/2,000, draws 2,000/2,000; 0 divergences; 1:01 elapsed"
    almost = progress((2000, 1999))
    assert render.draws_text(almost).startswith("sampling 99% ")  # 100% only when every draw is done


def test_terminal_line_falls_back_to_compact_text_when_narrow():
    p = progress((1500, 1200, 1000, 800), divergences=3)
    narrow = render._draws_renderable(p, width=80)
    assert str(narrow) == render.draws_text(p, compact=True)
    assert any(span.style == "yellow" for span in narrow.spans)  # divergences stand out
    wide = render._draws_renderable(p, width=160)
    out = io.StringIO()
    Console(file=out, width=160, color_system=None).print(wide)
    assert render.draws_text(p) in out.getvalue() and "━" in out.getvalue()  # a bar before the full text


# -- how often


def test_throttle_lets_one_update_through_per_interval():
    clock = Clock()
    t = render.Throttle(0.2, clock)
    seen = []
    for _ in range(50):  # an update every 0.05 s for 2.5 s
        seen.append(t.ready())
        clock.t += 0.05
    assert seen[0] is True
    assert sum(seen) == 13  # t = 0, 0.2, ..., 2.4: at most 5 a second
    assert all(not any(seen[i + 1:i + 4]) for i, s in enumerate(seen) if s)
    assert t.ready(force=True)  # the last update (100%) is never dropped


def test_line_policy_prints_every_tenth_but_not_more_than_every_ten_seconds():
    clock = Clock()
    lines = render.LinePolicy(step=0.1, interval=10.0, clock=clock)
    due = []
    for i in range(1001):  # 100 s, an update every 0.1 s, progress linear 0 -> 1
        if lines.due(i / 1000):
            due.append(round(clock.t - 100.0, 1))
        clock.t += 0.1
    assert due == [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0]


def test_line_policy_slow_fit_waits_for_the_next_tenth_and_fast_fit_prints_nothing():
    clock = Clock()
    lines = render.LinePolicy(clock=clock)
    assert not lines.due(0.0)
    clock.t += 60
    assert not lines.due(0.05)  # a minute passed, but not 10% of the work
    assert lines.due(0.1)
    clock.t += 60
    assert lines.due(0.37)  # several tenths at once: one line
    assert not lines.due(0.39)  # same tenth
    clock.t += 1
    assert not lines.due(0.45)  # next tenth, but only 1 s later
    clock.t += 9
    assert lines.due(0.45)

    fast = render.LinePolicy(clock=(c := Clock()))
    for i in range(101):  # a 5 s fit
        assert not fast.due(i / 100)
        c.t += 0.05


# -- where it goes: terminal, log, --quiet


def _sequence(n: int = 400, *, chains: int = 4, tune: int = 100, draws: int = 100, seconds: float = 40.0):
    """n evenly spaced snapshots of one fit that takes ``seconds``."""
    total = tune + draws
    for i in range(n + 1):
        f = i / n
        yield i * seconds / n, progress([int(round(f * total))] * chains, tune=tune, draws=draws, elapsed=i * seconds / n)


def test_log_gets_a_few_lines_never_one_per_draw():
    clock = Clock()
    stream = io.StringIO()
    console = Console(file=io.StringIO(), force_terminal=False)
    with render.FitStatus("fitting", console=console, clock=clock, stream=stream) as st:
        assert not st.tty and st.on_draws == st.draws
        st.update("sampling")  # stage names are not printed in a log
        for t, p in _sequence():
            clock.t = 100.0 + t
            st.on_draws(p)
    lines = stream.getvalue().splitlines()
    assert 1 <= len(lines) <= 4  # 40 s: at most one line per 10 s
    assert all(line.startswith("sampling ") and "(4 chains)" in line and "divergences" in line for line in lines)
    assert lines[0].startswith("sampling 25% ")
    assert console.file.getvalue() == ""


def test_terminal_redraws_at_most_five_times_a_second_and_says_the_stage():
    clock = Clock()
    console = Console(file=io.StringIO(), force_terminal=True, width=80)
    shown = []
    with render.FitStatus("fitting", console=console, clock=clock) as st:
        assert st.tty
        spinner = st._spinner
        real_update = spinner.update
        spinner.update = lambda r: (shown.append(r), real_update(r))
        st.update("compiling the model")
        for t, p in _sequence(n=400, seconds=10.0):  # 40 updates a second
            clock.t = 100.0 + t
            st.draws(p)
    assert shown[0] == "compiling the model"
    redraws = shown[1:]
    assert 40 <= len(redraws) <= 52  # 10 s at 5 a second, plus the final 100%
    assert str(redraws[-1]).startswith("sampling 100%")
    assert st._spinner is None  # stopped: transient, nothing left on screen to update


def test_quiet_shows_nothing_and_installs_no_callback(capsys):
    stream = io.StringIO()
    console = Console(file=io.StringIO(), force_terminal=True)
    with render.FitStatus("fitting", quiet=True, console=console, clock=Clock(), stream=stream) as st:
        assert st.on_draws is None  # the sampler is not even asked for progress
        st.update("sampling")
        for _, p in _sequence(n=20, seconds=600):
            st.draws(p)
    assert stream.getvalue() == "" and console.file.getvalue() == ""
    with render.status("fitting", quiet=True) as st:
        assert st.on_draws is None
    assert capsys.readouterr() == ("", "")


# -- from nutpie's callback to the display


def test_reporter_turns_chain_progress_into_draw_progress():
    clock = Clock(50.0)
    got = []
    rep = DrawReporter(got.append, chains=3, tune=10, draws=20, clock=clock)
    clock.t = 53.5
    rep.callback()([chain(12, 1), chain(30, 2), chain(5)])
    assert got == [DrawProgress(tune=10, draws=20, finished=(12, 30, 5), divergences=3, elapsed=3.5)]
    rep.callback(2, emit=False)([chain(9)])  # another process's chain: recorded, not shown
    assert len(got) == 1 and rep.snapshot().finished == (12, 30, 9)
    kw = rep.nutpie_kwargs()
    assert set(kw) == {"progress_callback", "progress_rate"} and kw["progress_rate"] == 200


def test_a_failing_display_never_reaches_the_sampler(caplog):
    def broken(p):
        raise ValueError("terminal gone")

    rep = DrawReporter(broken, chains=1, tune=1, draws=1)
    with caplog.at_level("DEBUG", logger="hlm_cli.sampling"):
        rep.callback()([chain(1)])
        rep.callback()([chain(2)])  # no exception escapes (nutpie would print it)
    assert [r.getMessage() for r in caplog.records] == ["progress display failed: ValueError: terminal gone"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_shared_rows_carry_a_forked_processs_chains():
    rep = DrawReporter(None, chains=4, tune=5, draws=5)
    rep.share()
    pid = os.fork()
    if pid == 0:
        rep.callback(2, emit=False)([chain(7, 1), chain(10, 2)])
        os._exit(0)
    os.waitpid(pid, 0)
    rep.callback(0, emit=False)([chain(3), chain(4)])
    assert rep.snapshot().finished == (3, 4, 7, 10) and rep.snapshot().divergences == 3


# -- the draws do not depend on the display


def _fake_nutpie(calls):
    """nutpie.sample stand-in: draws from the seed; reports progress when asked, as nutpie does."""
    import xarray as xr

    def sample(compiled, *, chains, draws, tune, seed, cores, progress_callback=None, progress_rate=None, **kw):
        calls.append(dict(chains=chains, draws=draws, tune=tune, seed=seed, cores=cores, **kw))
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(chains, draws))
        if progress_callback is not None:
            for k in range(0, tune + draws + 1, 10):
                progress_callback([chain(k, int(k > tune)) for _ in range(chains)])
        return xr.DataTree.from_dict({"posterior": xr.Dataset({"mu": (("chain", "draw"), x)})})

    return sample


@pytest.mark.parametrize("mode,cores", [("compiled", 2), ("quick", 1), ("quick", 2)])
def test_progress_changes_no_draw(monkeypatch, mode, cores):
    import nutpie

    from hlm_cli import sampling
    from hlm_cli.model import reparam
    from hlm_cli.spec import SamplerSpec

    calls: list[dict] = []
    monkeypatch.setattr(nutpie, "sample", _fake_nutpie(calls))
    monkeypatch.setattr(sampling, "_compile", lambda built, use_cache, quick=False: (object(), mode))
    monkeypatch.setattr(reparam, "to_user_scale", lambda tree, built, seed: tree)
    monkeypatch.setattr(sampling, "complete", lambda built, tree, seed, **kw: tree)
    spec = SamplerSpec(draws=30, tune=20, chains=4, cores=cores, seed=7)
    built = SimpleNamespace(data_vars={})

    plain = sampling.sample(built, spec, use_cache=False).tree["posterior"]["mu"].values
    plain_calls = list(calls)
    calls.clear()
    seen: list[DrawProgress] = []
    shown = sampling.sample(built, spec, use_cache=False, on_draws=seen.append).tree["posterior"]["mu"].values

    assert np.array_equal(plain, shown)
    assert calls == plain_calls  # same seeds, chains and settings; only progress_* added
    assert seen and all(p.chains == 4 and p.tune == 20 and p.draws == 30 for p in seen)
    assert seen[-1].finished == (50, 50, 50, 50)  # every chain, those of a forked process too
    assert seen[-1].divergences == 4
    if mode == "quick" and cores == 2:
        assert len(calls) == 1  # the other group was sampled in a forked process



def _cli_passes_progress() -> bool:
    import inspect

    from hlm_cli.cli import fit as cli_fit

    return "on_draws" in inspect.getsource(cli_fit)


@pytest.mark.skipif(not _cli_passes_progress(), reason="until cli/fit.py passes on_draws=st.on_draws to run_fit")
@pytest.mark.parametrize("quiet", [False, True])
def test_hlm_fit_reports_sampling_progress_in_a_log_and_still_stops_on_ctrl_c(tmp_path, tiny_csv, capsys, monkeypatch, quiet):
    """hlm fit with stderr captured (a log): progress lines from nutpie's callback, then Ctrl-C
    (nutpie returns a partial trace) still ends with exit 130 and nothing written; --quiet: no line."""
    import signal

    import nutpie
    import xarray as xr

    from hlm_cli import sampling
    from hlm_cli.cli.app import main

    def fake_sample(compiled, *, chains, draws, tune, progress_callback=None, **kw):
        if progress_callback is not None:
            for k in (0, tune // 2, tune, tune + draws // 2):
                progress_callback([chain(k) for _ in range(chains)])
        try:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass
        except KeyboardInterrupt:
            pass
        return xr.DataTree.from_dict({"posterior": xr.Dataset({"mu": (("chain", "draw"), np.ones((chains, draws)))})})

    monkeypatch.setattr(render, "LINE_INTERVAL", 0.0)
    monkeypatch.setattr(render, "_said", [])  # main() says "interrupted" once per process
    monkeypatch.setattr(sampling, "_compile", lambda built, use_cache, quick=False: (object(), "compiled"))
    monkeypatch.setattr(nutpie, "sample", fake_sample)
    out = tmp_path / "run"
    args = ["fit", str(tiny_csv), "--formula", "y ~ x + (1|g)", "--out", str(out), "--no-plots", "--draws", "40", "--tune", "40",
            "--chains", "2", *(["--quiet"] if quiet else [])]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 130
    assert not out.exists() and list(tmp_path.glob(".run.*")) == []
    lines = err.splitlines()
    progress_lines = [line for line in lines if line.startswith("sampling ")]
    assert lines[len(progress_lines)].startswith("error: interrupted")
    if quiet:
        assert progress_lines == []
    else:
        heads = [line.split("; 0 divergences; ")[0] for line in progress_lines]  # then the (wall) times
        assert heads == ["sampling 25% (2 chains): warmup 40/80, draws 0/80",
                         "sampling 50% (2 chains): warmup 80/80, draws 0/80",
                         "sampling 75% (2 chains): warmup 80/80, draws 40/80"]
        assert all(re.search(r"; 0 divergences; \d+:\d\d elapsed, ~\d+:\d\d left$", line) for line in progress_lines)
