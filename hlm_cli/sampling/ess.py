"""Sampling to a target effective sample size (``hlm fit --ess N``).

nutpie samples in the background (``nutpie.sample(..., blocking=False)``); the same chains run
on after warm-up, never re-tuned, and :func:`run_to_target` looks at them at *checkpoints*:
when every chain has ``d`` kept draws it takes a copy of the trace (``inspect()``), cuts every
chain to exactly ``d`` draws and measures the minimum bulk ESS (``arviz_stats.ess``, as the
diagnostics do) of the watched parameters on the user's scale. At or above the target it
stops the sampler and keeps those ``d`` draws; below, it plans the next checkpoint from the
ESS per draw so far (:func:`next_checkpoint`). When ``--draws`` is reached first, the full
trace is kept and the outcome says the target was missed.

Checkpoints are draw counts, not times, and each is chosen from the draws before it: the same
seed gives the same checkpoints, the same stopping point and the same posterior, however fast
the machine or busy its cores (nutpie's chains each have their own random stream).

The rule is written against a small interface (:class:`Handle`) so it can be tested with a
stand-in sampler and ESS function (tests/unit/test_ess.py); :class:`NutpieHandle` is the real
one.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np

_log = logging.getLogger("hlm_cli.sampling")

#: The first checkpoint is never below this many draws per chain: ESS from fewer is noise.
MIN_FIRST = 50
#: Later checkpoints come at least this many draws, and 10%, after the one before.
MIN_STEP = 25
#: Aim this much above the target when planning the next checkpoint (ESS is noisy).
AIM = 1.1
#: Sampling stops only when the watched parameters' R-hat is at most this too (the diagnostics'
#: threshold, hlm_cli.diagnostics.RHAT_MAX; a test keeps them equal): an ESS from chains that
#: disagree is not a reason to stop.
RHAT_MAX = 1.01
#: Seconds between looks at the chains' counters while waiting for a checkpoint.
POLL = 0.1


@dataclass(frozen=True)
class EssOutcome:
    """How sampling to a target ESS ended (run.json ``sampler.ess_stop``).

    Attributes
    ----------
    target : int
        The bulk ESS asked for (``--ess``).
    reached : bool
        The minimum bulk ESS reached the target (sampling stopped early, or at ``--draws``).
    ess : float
        The minimum bulk ESS of the watched parameters in the kept draws.
    parameter : str
        The parameter with that minimum.
    draws : int
        Kept draws per chain.
    max_draws : int
        ``--draws``: the most that were allowed per chain.
    checks : int
        Checkpoints measured.
    scope : str
        "top-level" (intercept, coefficients, SDs, correlations, family parameters) or "all"
        (``--ess-all``: also every group effect).
    """

    target: int
    reached: bool
    ess: float
    parameter: str
    draws: int
    max_draws: int
    checks: int
    scope: str = "top-level"
    rhat: float = math.nan  # the largest R-hat of the watched parameters in the kept draws

    @property
    def stopped_early(self) -> bool:
        return self.reached and self.draws < self.max_draws

    def to_json(self) -> dict:
        out = asdict(self)
        out["ess"] = None if not math.isfinite(self.ess) else round(float(self.ess), 1)
        out["rhat"] = None if not math.isfinite(self.rhat) else round(float(self.rhat), 4)
        return out

    def line(self) -> str:
        """One sentence for the terminal and run.json's diagnostics."""
        got = f"{self.ess:.0f}" if math.isfinite(self.ess) else "unknown"
        what = "bulk ESS" + (" (every parameter and group effect)" if self.scope == "all" else "")
        if self.stopped_early:
            return (f"--ess {self.target}: reached after {self.draws} of {self.max_draws} draws per chain "
                    f"(minimum {what} {got}, {self.parameter}); sampling stopped early")
        if self.reached:
            return f"--ess {self.target}: reached at --draws {self.max_draws} (minimum {what} {got}, {self.parameter})"
        if math.isfinite(self.ess) and self.ess >= self.target:
            return (f"--ess {self.target} not reached: --draws {self.max_draws} per chain used up with minimum {what} "
                    f"{got} ({self.parameter}) but R-hat {self.rhat:.3f} > {RHAT_MAX}")
        return (f"--ess {self.target} not reached: --draws {self.max_draws} per chain used up with minimum {what} "
                f"{got} ({self.parameter})")


class Handle(Protocol):
    """What :func:`run_to_target` needs of a sampler running in the background."""

    def kept(self) -> list[int]:
        """Kept (post-warm-up) draws so far, per chain."""

    def finished(self) -> bool:
        """All chains have all their draws."""

    def inspect(self):
        """A copy of the trace so far (a DataTree; chains padded with NaN to the longest)."""

    def wait(self):
        """Block until done; the full trace."""

    def cancel(self) -> None:
        """Stop sampling and discard what is left."""


def first_checkpoint(target: int, chains: int, max_draws: int) -> int:
    """Draws per chain at the first look: enough for ``target`` if every draw were independent."""
    return max(1, min(max_draws, max(MIN_FIRST, math.ceil(target / max(chains, 1)))))


def next_checkpoint(draws: int, ess: float, target: int, max_draws: int) -> int:
    """The next look, from ``ess`` measured at ``draws`` per chain (ESS grows about linearly
    in the draws): aim :data:`AIM` above the target (1.5x the draws when only R-hat held it back), at least :data:`MIN_STEP` draws and 10%
    further, at most twice as far, never past ``max_draws``."""
    low = draws + max(MIN_STEP, draws // 10)
    if not math.isfinite(ess) or ess <= 0:
        want = 2 * draws
    elif ess >= target:  # the ESS is there but R-hat is not yet (:func:`enough`)
        want = math.ceil(1.5 * draws)
    else:
        want = math.ceil(round(draws * AIM * target / ess, 6))  # round: 1.1 x 320 is 352, not 352.00000000000006
    return int(min(max_draws, max(low, min(want, 2 * draws))))


def truncate(tree, draws: int):
    """A shallow copy of ``tree`` with every group that has draws cut to the first ``draws`` of each chain."""
    tree = tree.copy(deep=False)
    for name in list(tree.children):
        ds = tree[name].to_dataset()
        if "draw" in ds.dims and int(ds.sizes["draw"]) > draws:
            tree[name] = ds.isel(draw=slice(0, draws))
    return tree


def complete_draws(tree) -> int:
    """Draws every chain of ``tree['posterior']`` has (trailing NaN rows are draws not yet made)."""
    post = tree["posterior"]
    for name in post.data_vars:
        arr = np.asarray(post[name].values)
        if arr.dtype.kind != "f" or arr.ndim < 2:
            continue
        flat = arr.reshape(arr.shape[0], arr.shape[1], -1)
        have = ~np.isnan(flat).all(axis=2)  # (chain, draw)
        per_chain = [int(np.argmin(row)) if not row.all() else row.size for row in have]
        return min(per_chain) if per_chain else 0
    return int(post.sizes.get("draw", 0))


def min_bulk_ess(dataset, names: list[str]) -> tuple[float, str, float]:
    """(minimum bulk ESS, its parameter, largest rank-normalised R-hat) over ``names`` in
    ``dataset`` (every element of a vector parameter counts), from arviz_stats as the
    diagnostics compute them; (nan, "", nan) when none is there."""
    from arviz_stats import ess, rhat

    names = [n for n in names if n in dataset.data_vars]
    if not names:
        return math.nan, "", math.nan
    sub = dataset[names]
    res = ess(sub, method="bulk")
    best, where = math.inf, ""
    for n in names:
        vals = np.asarray(res[n].values, dtype=float).ravel()
        vals = vals[np.isfinite(vals)]
        if vals.size and float(vals.min()) < best:
            best, where = float(vals.min()), n
    if not where:
        return math.nan, "", math.nan
    worst = math.nan
    if int(sub.sizes.get("chain", 1)) > 1:
        r = rhat(sub)
        worst = max((float(np.nanmax(np.asarray(r[n].values, dtype=float))) for n in names), default=math.nan)
    return best, where, worst


def enough(ess: float, rhat: float, target: int) -> bool:
    """The stopping rule: bulk ESS at the target and R-hat at most :data:`RHAT_MAX` (an
    unknown R-hat, one chain, does not block)."""
    return math.isfinite(ess) and ess >= target and not (math.isfinite(rhat) and rhat > RHAT_MAX)


def run_to_target(handle: Handle, *, target: int, chains: int, max_draws: int,
                  measure: Callable[[object], tuple[float, str, float]], scope: str = "top-level",
                  poll: float = POLL, sleep: Callable[[float], None] = time.sleep) -> tuple[object, EssOutcome]:
    """Let ``handle``'s chains run until ``measure`` gives at least ``target``, or all draws are made.

    Parameters
    ----------
    handle : Handle
    target : int
    chains, max_draws : int
        As sampled (``max_draws``: ``--draws``, per chain).
    measure : callable
        A trace cut to a checkpoint -> (minimum bulk ESS, its parameter, largest R-hat)
        (:func:`min_bulk_ess`); the rule is :func:`enough`.
    scope : str
        Recorded in the outcome.
    poll : float
        Seconds between looks at the counters.

    Returns
    -------
    (tree, EssOutcome)
        The trace with the kept draws, and how it ended. On any exception (Ctrl-C included) the
        sampler is cancelled and the exception propagates.
    """
    checkpoint = first_checkpoint(target, chains, max_draws)
    checks = 0
    try:
        while checkpoint < max_draws:
            if handle.finished():
                break
            if min(handle.kept() or [0]) < checkpoint:
                sleep(poll)
                continue
            tree = handle.inspect()
            if complete_draws(tree) < checkpoint:  # the trace lags the counters: look again soon
                sleep(poll)
                continue
            tree = truncate(tree, checkpoint)
            t0 = time.perf_counter()
            ess, where, rhat = measure(tree)
            checks += 1
            _log.debug("--ess checkpoint %d draws/chain: min bulk ESS %.0f (%s), R-hat %.4f; measured in %.2f s",
                       checkpoint, ess, where, rhat, time.perf_counter() - t0)
            if enough(ess, rhat, target):
                handle.cancel()
                return tree, EssOutcome(target, True, ess, where, checkpoint, max_draws, checks, scope, rhat)
            checkpoint = next_checkpoint(checkpoint, ess, target, max_draws)
        full = handle.wait()
    except BaseException:
        handle.cancel()
        raise
    # the chains finished first (a fast model): the checkpoints not yet looked at, on the full
    # trace, so the result does not depend on how fast the machine was
    while checkpoint < max_draws:
        tree = truncate(full, checkpoint)
        ess, where, rhat = measure(tree)
        checks += 1
        if enough(ess, rhat, target):
            return tree, EssOutcome(target, True, ess, where, checkpoint, max_draws, checks, scope, rhat)
        checkpoint = next_checkpoint(checkpoint, ess, target, max_draws)
    tree = truncate(full, max_draws)
    ess, where, rhat = measure(tree)
    checks += 1
    return tree, EssOutcome(target, enough(ess, rhat, target), ess, where, max_draws, max_draws, checks, scope, rhat)


class DoneHandle:
    """:class:`Handle` over a trace already sampled in full: :func:`run_to_target` then applies
    the checkpoints to it afterwards (same draws kept, no time saved)."""

    def __init__(self, tree) -> None:
        self.tree = tree

    def kept(self) -> list[int]:
        return [int(self.tree["posterior"].sizes["draw"])] * int(self.tree["posterior"].sizes["chain"])

    def finished(self) -> bool:
        return True

    def inspect(self):
        return self.tree

    def wait(self):
        return self.tree

    def cancel(self) -> None:
        pass


class NutpieHandle:
    """:class:`Handle` over nutpie's background sampler (``nutpie.sample(..., blocking=False)``).

    The per-chain counts come from a :class:`hlm_cli.sampling.DrawReporter` that nutpie's
    ``progress_callback`` feeds (with or without a progress display).
    """

    def __init__(self, sampler, reporter, tune: int) -> None:
        self.sampler = sampler
        self.reporter = reporter
        self.tune = int(tune)

    def kept(self) -> list[int]:
        rows = np.array(self.reporter.rows)
        return [max(int(f) - self.tune, 0) for f in rows[:, 0]]

    def finished(self) -> bool:
        try:
            return bool(self.sampler.is_finished)
        except TimeoutError:  # nutpie 0.16 raises this while the chains still run
            return False

    def inspect(self):
        return self.sampler.inspect()

    def wait(self):
        return self.sampler.wait()

    def cancel(self) -> None:
        try:
            self.sampler.cancel()
        except Exception:  # noqa: BLE001 - already finished or cancelled
            pass


__all__ = ["EssOutcome", "Handle", "NutpieHandle", "DoneHandle", "run_to_target", "first_checkpoint", "next_checkpoint",
           "min_bulk_ess", "enough", "RHAT_MAX", "truncate", "complete_draws"]
