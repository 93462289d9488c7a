"""summary.csv's convergence columns for all parameters at once.

arviz_stats (``arviz_stats.base.array_stats``: ``ess``, ``rhat``, ``mcse``) loops in Python
over parameters: ``make_ufunc`` calls ``_ess`` once per parameter and estimator, about 20,000
calls for InstEval's 4,120 group effects. The functions here compute exactly the same
estimators on an array of shape ``(K, chain, draw)`` with whole-array NumPy operations and
return arrays of K values:

* :func:`ess_bulk`: rank-normalized split ESS (``_ess_bulk``),
* :func:`ess_tail`: min of the split ESS of the indicators ``x <= quantile(x, p)`` for the two
  tail probabilities (``_ess_tail``),
* :func:`mcse_mean`, :func:`mcse_sd` (``_mcse_mean``, ``_mcse_sd``),
* :func:`rhat_rank`: max of the rank-normalized split R-hat and the folded one (``_rhat_rank``).

Every step follows arviz_stats' code (``base/diagnostics.py``, ``base/core.py``): chains split
in halves (``ary[:, :n//2]`` and ``ary[:, -(n//2):]``), ranks with ``scipy.stats.rankdata``
(average ties) over all split draws, Blom's ``(r - 3/8) / (S + 1/4)`` and ``ndtri``, FFT
autocovariance padded to ``next_fast_len(2 n)``, Geyer's initial positive sequence (with its
``t < n - 3`` stop, the "improve estimation" step and the pair left out when its sum is
negative) and initial monotone sequence, ``tau >= 1 / log10(S)``, ``S`` returned when
``max - min`` is below ``finfo(float).resolution``, NaN where arviz_stats gives NaN (fewer than
4 draws, fewer than 2 chains for R-hat, any NaN draw, constant draws for R-hat and MCSE of sd).
tests/unit/test_diag_fast.py compares each function with arviz_stats'.
"""

from __future__ import annotations

import numpy as np
from scipy import special
from scipy.fftpack import next_fast_len  # arviz_stats pads to scipy.fftpack's 5-smooth length

_RESOLUTION = np.finfo(float).resolution


def _invalid(x: np.ndarray, min_chains: int = 1) -> np.ndarray:
    """arviz_stats' ``not_valid`` per parameter: any NaN, too few chains or draws."""
    k, c, n = x.shape
    bad = np.isnan(x).any(axis=(1, 2))
    if c < min_chains or n < 4:
        bad[:] = True
    return bad


def _split(x: np.ndarray) -> np.ndarray:
    """(K, C, N) -> (K, 2C, N//2): first and last halves of each chain as chains."""
    half = x.shape[2] // 2
    return np.concatenate((x[:, :, :half], x[:, :, x.shape[2] - half:]), axis=1)


def _rank_average(a: np.ndarray) -> np.ndarray:
    """``scipy.stats.rankdata(row, method="average")`` of each row of (K, S) (no NaN): the same
    numbers (ranks and averages of tied ranks are exact in float), with an unstable argsort."""
    k, size = a.shape
    order = np.argsort(a, axis=1)
    s = np.take_along_axis(a, order, axis=1)
    pos = np.arange(size)
    avg = np.broadcast_to((pos + 1).astype(float), (k, size))
    tied = s[:, 1:] == s[:, :-1]
    rows = np.flatnonzero(tied.any(axis=1))
    if rows.size:
        new = np.ones((rows.size, size), dtype=bool)
        new[:, 1:] = ~tied[rows]
        end = np.ones((rows.size, size), dtype=bool)
        end[:, :-1] = new[:, 1:]
        start = np.maximum.accumulate(np.where(new, pos, 0), axis=1)
        stop = np.minimum.accumulate(np.where(end, pos, size)[:, ::-1], axis=1)[:, ::-1]
        avg = avg.copy()
        avg[rows] = (start + stop + 2) / 2.0
    ranks = np.empty((k, size))
    np.put_along_axis(ranks, order, avg, axis=1)
    return ranks


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Rank-normalize each parameter over all its (split) draws."""
    k, c, n = x.shape
    size = c * n
    rank = _rank_average(np.ascontiguousarray(x).reshape(k, size))
    return special.ndtri((rank - 3 / 8) / (size - 2 * (3 / 8) + 1)).reshape(k, c, n)


def _autocov(x: np.ndarray) -> np.ndarray:
    """Autocovariance of every chain at every lag (``_CoreBase.autocov`` along the last axis)."""
    n = x.shape[-1]
    m = next_fast_len(2 * n)
    x = x - x.mean(axis=-1, keepdims=True)
    f = np.fft.rfft(x, n=m, axis=-1)
    f *= np.conjugate(f)
    cov = np.fft.irfft(f, n=m, axis=-1)[..., :n]
    cov /= n
    return cov


def _ess(x: np.ndarray) -> np.ndarray:
    """``_DiagnosticsBase._ess`` (not relative) for each of K arrays (M chains, n draws)."""
    x = np.asarray(x, dtype=float)
    k, n_chain, n_draw = x.shape
    out = np.full(k, np.nan)
    flat = x.reshape(k, -1)
    const = (flat.max(axis=1) - flat.min(axis=1)) < _RESOLUTION
    out[const] = n_chain * n_draw
    rows = np.flatnonzero(~const)
    if rows.size == 0:
        return out
    x = x[rows]
    with np.errstate(invalid="ignore", divide="ignore"):
        acov = _autocov(x)
        chain_mean = x.mean(axis=2)
        # the mean over chains at each lag, summed in the order np.mean(acov[:, t]) sums
        acov_mean = np.ascontiguousarray(np.swapaxes(acov, 1, 2)).mean(axis=2)  # (K, n)
        mean_var = acov_mean[:, 0] * n_draw / (n_draw - 1.0)
        var_plus = mean_var * (n_draw - 1.0) / n_draw
        if n_chain > 1:
            var_plus += chain_mean.var(axis=1, ddof=1)
        rho = 1.0 - (mean_var[:, None] - acov_mean) / var_plus[:, None]  # (K, n)

    kk = rows.size
    rho_t = np.zeros((kk, n_draw))
    rho_t[:, 0] = 1.0
    rho_t[:, 1] = rho[:, 1]
    # pairs j = 1..jcap: (rho[2j], rho[2j+1]); the loop runs t = 2j - 1 while t < n - 3
    jcap = 0
    while 2 * (jcap + 1) - 1 < n_draw - 3:
        jcap += 1
    even = np.ones(kk)
    s0 = 1.0 + rho[:, 1]
    if jcap > 0:
        ev = rho[:, 2:2 * jcap + 1:2]
        od = rho[:, 3:2 * jcap + 2:2]
        s = ev + od  # (kk, jcap)
        # L: the number of pairs the loop computes (stops after the first sum <= 0)
        stop = ~(s > 0)
        first = np.where(stop.any(axis=1), stop.argmax(axis=1) + 1, jcap)
        n_pairs = np.where(s0 > 0, first, 0)
        j = np.arange(1, jcap + 1)
        keep = (j[None, :] <= n_pairs[:, None]) & (s >= 0)
        rho_t[:, 2:2 * jcap + 1:2] = np.where(keep, ev, 0.0)
        rho_t[:, 3:2 * jcap + 2:2] = np.where(keep, od, 0.0)
        last = n_pairs > 0
        even[last] = ev[last, n_pairs[last] - 1]
    else:
        n_pairs = np.zeros(kk, dtype=int)
    max_t = 2 * n_pairs - 1
    idx = np.arange(kk)
    # "improve estimation": the last even autocorrelation when positive
    pos = even > 0
    rho_t[idx[pos], max_t[pos] + 1] = even[pos]
    # Geyer's initial monotone sequence over pairs 1..L-1: a pair whose sum exceeds the
    # (already corrected) previous one becomes two halves of that previous sum
    if jcap > 1:
        m = jcap
        sums = rho_t[:, 0:2 * m:2] + rho_t[:, 1:2 * m + 1:2]  # pairs 0..m-1
        run = np.minimum.accumulate(sums, axis=1)
        active = np.arange(1, m)[None, :] <= (n_pairs[:, None] - 1)
        change = active & (sums[:, 1:] > run[:, :-1])
        half = run[:, :-1] / 2.0
        ev = rho_t[:, 2:2 * m:2]
        od = rho_t[:, 3:2 * m + 1:2]
        rho_t[:, 2:2 * m:2] = np.where(change, half, ev)
        rho_t[:, 3:2 * m + 1:2] = np.where(change, half, od)
    # tau = -1 + 2 * sum(rho_t[:max_t + 1]) + rho_t[max_t + 1], summed row by row as arviz does
    total = np.empty(kk)
    for L in np.unique(n_pairs):
        sel = n_pairs == L
        total[sel] = rho_t[sel, : 2 * L].sum(axis=1)
    ess = float(n_chain * n_draw)
    tau = -1.0 + 2.0 * total + rho_t[idx, max_t + 1]
    tau = np.maximum(tau, 1 / np.log10(ess))
    res = ess / tau
    res[np.isnan(rho_t).any(axis=1)] = np.nan
    out[rows] = res
    return out


def ess_bulk(x: np.ndarray) -> np.ndarray:
    """Bulk ESS (rank-normalized split-chain ESS) of each of K parameters, x: (K, chain, draw)."""
    x = np.asarray(x, dtype=float)
    out = np.full(x.shape[0], np.nan)
    ok = ~_invalid(x)
    if ok.any():
        out[ok] = _ess(_z_scale(_split(x[ok])))
    return out


def _ess_quantile(x: np.ndarray, prob: float) -> np.ndarray:
    q = np.quantile(x.reshape(x.shape[0], -1), prob, axis=1)
    return _ess(_split(x <= q[:, None, None]).astype(float))


def ess_tail(x: np.ndarray, prob: float) -> np.ndarray:
    """Tail ESS: min of the ESS of the ``prob`` and ``1 - prob`` quantile indicators."""
    x = np.asarray(x, dtype=float)
    lo, hi = sorted((prob, 1 - prob))
    out = np.full(x.shape[0], np.nan)
    ok = ~_invalid(x)
    if ok.any():
        a, b = _ess_quantile(x[ok], lo), _ess_quantile(x[ok], hi)
        out[ok] = np.where(b < a, b, a)  # Python's min(a, b)
    return out


def mcse_mean(x: np.ndarray) -> np.ndarray:
    """MCSE of the mean: sd (ddof 1, all draws) / sqrt(split ESS of the raw draws)."""
    x = np.asarray(x, dtype=float)
    out = np.full(x.shape[0], np.nan)
    ok = ~_invalid(x)
    if ok.any():
        xo = x[ok]
        ess = _ess(_split(xo))
        sd = xo.reshape(xo.shape[0], -1).std(axis=1, ddof=1)
        out[ok] = sd / np.sqrt(ess)
    return out


def mcse_sd(x: np.ndarray) -> np.ndarray:
    """MCSE of the sd (arviz_stats' ``_mcse_sd``: delta method on the variance)."""
    x = np.asarray(x, dtype=float)
    out = np.full(x.shape[0], np.nan)
    ok = ~_invalid(x)
    if ok.any():
        xo = x[ok]
        k = xo.shape[0]
        sims_c = xo - xo.reshape(k, -1).mean(axis=1)[:, None, None]
        sq = sims_c**2
        ess = _ess(_split(sq))
        evar = sq.reshape(k, -1).mean(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            varvar = ((sims_c**4).reshape(k, -1).mean(axis=1) - evar**2) / ess
            varsd = varvar / evar / 4
            out[ok] = np.sqrt(varsd)
    return out


def _rhat(x: np.ndarray) -> np.ndarray:
    n = x.shape[2]
    with np.errstate(invalid="ignore", divide="ignore"):
        chain_mean = x.mean(axis=2)
        chain_var = x.var(axis=2, ddof=1)
        between = n * chain_mean.var(axis=1, ddof=1)
        within = chain_var.mean(axis=1)
        return np.sqrt((between / within + n - 1) / n)


def rhat_rank(x: np.ndarray) -> np.ndarray:
    """Rank-normalized split R-hat: max of the bulk and the folded (tail) one."""
    x = np.asarray(x, dtype=float)
    out = np.full(x.shape[0], np.nan)
    ok = ~_invalid(x, min_chains=2)
    if ok.any():
        split = _split(x[ok])
        k = split.shape[0]
        bulk = _rhat(_z_scale(split))
        med = np.median(split.reshape(k, -1), axis=1)
        tail = _rhat(_z_scale(np.abs(split - med[:, None, None])))
        out[ok] = np.where(tail > bulk, tail, bulk)  # Python's max(bulk, tail)
    return out


def hdi_nearest(flat: np.ndarray, prob: float) -> np.ndarray:
    """HDI ("nearest", arviz_stats' ``_hdi_linear_nearest_common``) of each row of (K, S): (K, 2)."""
    flat = np.sort(np.asarray(flat), axis=1)
    n = flat.shape[1]
    inc = min(int(np.floor(prob * n)), n - 1)
    width = np.subtract(flat[:, inc:], flat[:, : n - inc], dtype=np.float64)
    lo = np.argmin(width, axis=1)
    rows = np.arange(flat.shape[0])
    return np.stack((flat[rows, lo], flat[rows, lo + inc]), axis=1)


CHUNK_VALUES = 1 << 17  #: draws (parameters x chains x draws) per block of summary_diagnostics


def summary_diagnostics(x: np.ndarray, prob: float) -> dict[str, np.ndarray]:
    """summary.csv's ``mcse_mean``, ``mcse_sd``, ``ess_bulk``, ``ess_tail`` (tail probability
    ``prob``) and ``r_hat`` of each of K parameters, x: (K, chain, draw); the values of the
    functions above, sharing the split chains and their rank normalization. Parameters are
    taken in blocks of about :data:`CHUNK_VALUES` draws: the temporaries (FFTs twice the chain
    length) then stay a few MB, reused by the allocator instead of fresh pages each time."""
    x = np.asarray(x)
    k = x.shape[0]
    step = max(1, CHUNK_VALUES // max(1, x.shape[1] * x.shape[2]))
    if k <= step:
        return _summary_block(x, prob)
    parts = [_summary_block(x[i:i + step], prob) for i in range(0, k, step)]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def _summary_block(x: np.ndarray, prob: float) -> dict[str, np.ndarray]:
    x = np.ascontiguousarray(x, dtype=float)
    k, c, _ = x.shape
    out = {name: np.full(k, np.nan) for name in ("mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat")}
    ok = ~_invalid(x)
    if not ok.any():
        return out
    xo = x[ok] if not ok.all() else x
    ko = xo.shape[0]
    flat = xo.reshape(ko, -1)
    split = _split(xo)
    z = _z_scale(split)
    out["ess_bulk"][ok] = _ess(z)
    lo, hi = sorted((prob, 1 - prob))
    q_lo, q_hi = np.quantile(flat, [lo, hi], axis=1)
    a = _ess(_split(xo <= q_lo[:, None, None]).astype(float))
    b = _ess(_split(xo <= q_hi[:, None, None]).astype(float))
    out["ess_tail"][ok] = np.where(b < a, b, a)
    out["mcse_mean"][ok] = flat.std(axis=1, ddof=1) / np.sqrt(_ess(split))
    sims_c = xo - flat.mean(axis=1)[:, None, None]
    sq = sims_c**2
    ess = _ess(_split(sq))
    evar = sq.reshape(ko, -1).mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        varvar = ((sims_c**4).reshape(ko, -1).mean(axis=1) - evar**2) / ess
        out["mcse_sd"][ok] = np.sqrt(varvar / evar / 4)
    if c >= 2:
        bulk = _rhat(z)
        med = np.median(split.reshape(ko, -1), axis=1)
        tail = _rhat(_z_scale(np.abs(split - med[:, None, None])))
        out["r_hat"][ok] = np.where(tail > bulk, tail, bulk)
    return out
