"""The only place privacy noise is drawn.

Every function here wraps one OpenDP 0.16 measurement, calibrates it to the requested
privacy parameter *with OpenDP's own privacy map* (so the charge is what OpenDP proves, not
what we believe), runs it, and returns ``(value, charge)`` where ``charge`` is a typed event
from :mod:`privsynth.budget.events` for the ledger.

Neighbouring relation: add/remove one unit of privacy -- one row, or, inside
:func:`unit_of_privacy`, one person owning at most K rows (the caller has truncated every person
to K rows). Adding a row moves one count by 1; adding a person moves at most K counts by at most
K in total. So a vector of counts (a histogram or a marginal) has L1 and L2 sensitivity K (all K
rows may fall in one cell), a key->count map l0 = l1 = linf = K, a score with per-row
sensitivity s has sensitivity K*s, and a quantile's input moves by K rows. K = 1 outside the
block: one row is one person.

Noise is drawn by OpenDP from the operating system's CSPRNG; it cannot be seeded, on purpose.
Integer inputs get discrete (floating-point safe) Laplace/Gaussian noise.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

import numpy as np

# OpenDP's modules one by one: ``opendp.prelude`` also imports scikit-learn, which took about
# 0.8 s of every generator's start-up.
from opendp import measurements as dpm
from opendp.domains import atom_domain, map_domain, vector_domain
from opendp.measures import max_divergence, zero_concentrated_divergence
from opendp.metrics import (
    absolute_distance,
    l02inf_distance,
    l1_distance,
    l2_distance,
    linf_distance,
    symmetric_distance,
)
from opendp.mod import Measurement, binary_search_param, enable_features

from privsynth.budget.events import ZCDP, ApproxZCDP, PureDP, check_param
from privsynth.errors import ConfigError

enable_features("contrib")

# Add/remove one row moves one count by one.
COUNT_SENSITIVITY = 1

#: Rows one unit of privacy may own (K); set only by :func:`unit_of_privacy`.
_MAX_ROWS: ContextVar[int] = ContextVar("privsynth_max_rows_per_unit", default=1)


@contextlib.contextmanager
def unit_of_privacy(max_rows: int) -> Iterator[None]:
    """Calibrate every measurement in the block to a unit that owns up to ``max_rows`` rows.

    The caller must have bounded each person's rows to ``max_rows`` before counting
    (:func:`privsynth.persons.bound_rows`); the charges returned are then per person.
    """
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise ConfigError(f"max_rows ({max_rows!r}) must be a whole number >= 1")
    token = _MAX_ROWS.set(max_rows)
    try:
        yield
    finally:
        _MAX_ROWS.reset(token)


def count_sensitivity() -> int:
    """How far one unit of privacy moves a vector of counts, in L1 and L2: K rows."""
    return COUNT_SENSITIVITY * _MAX_ROWS.get()


def gaussian_sd(rho: float) -> float:
    """The sd of :func:`gaussian_counts`'s noise at ``rho`` for the current unit of privacy,
    K / sqrt(2 rho): what post-processing thresholds are set against."""
    return count_sensitivity() / math.sqrt(2 * rho)


def _positive(name: str, value: float) -> float:
    v = check_param(name, value)
    if v == 0:
        raise ConfigError(f"{name} ({value!r}) must be > 0")
    return v


def _calibrate(
    make: Callable[[float], Measurement], d_in: Any, d_out: float, guess: float
) -> Measurement:
    """A measurement whose OpenDP privacy map at ``d_in`` is <= ``d_out``.

    ``guess`` is the textbook scale for the target. OpenDP's map rounds conservatively, so it
    rejects the exact guess about half the time by a rounding error; the guess raised by a
    relative 1e-12 passed for 200 of 200 random targets. Only when neither passes does
    OpenDP's binary search (about 50 maps, ~5 ms) find the smallest scale that does.
    """
    for scale in (guess, guess * (1 + 1e-12)):
        meas = make(scale)
        if meas.map(d_in) <= d_out:
            return meas
    return make(binary_search_param(make, d_in=d_in, d_out=d_out))


def _int_counts(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    arr = np.asarray(counts)
    if arr.ndim != 1:
        raise ConfigError(f"counts must be a 1-d vector, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ConfigError(f"counts must be integers (dtype {arr.dtype}); noise them as counts")
    return arr.astype(np.int64, copy=False)


def gaussian_counts(counts: Sequence[int] | np.ndarray, rho: float) -> tuple[np.ndarray, ZCDP]:
    """Discrete Gaussian noise on a count vector, rho-zCDP.

    Math: for L2 sensitivity Δ (1 row, or K rows of one person) the discrete Gaussian with
    σ = Δ / sqrt(2ρ) is ρ-zCDP (Canonne, Kamath, Steinke 2020, Thm 14). OpenDP's map confirms
    the charge.

    Returns the noisy counts (int64; may be negative: post-process, don't clip here) and the
    charge.
    """
    rho = _positive("rho", rho)
    noisy, used = _noisy_counts(
        counts,
        dpm.make_gaussian,
        l2_distance(T="i64"),
        rho,
        count_sensitivity() / math.sqrt(2 * rho),
    )
    return noisy, ZCDP(used)


def laplace_counts(counts: Sequence[int] | np.ndarray, epsilon: float) -> tuple[np.ndarray, PureDP]:
    """Discrete Laplace (geometric) noise on a count vector, epsilon-DP.

    Math: for L1 sensitivity Δ (1 row, or K rows of one person), scale b = Δ / ε gives ε-DP
    (Ghosh, Roughgarden, Sundararajan 2012).
    """
    epsilon = _positive("epsilon", epsilon)
    noisy, used = _noisy_counts(
        counts, dpm.make_laplace, l1_distance(T="i64"), epsilon, count_sensitivity() / epsilon
    )
    return noisy, PureDP(used)


def _noisy_counts(
    counts: Sequence[int] | np.ndarray,
    make: Callable[..., Measurement],
    metric: Any,
    target: float,
    guess: float,
) -> tuple[np.ndarray, float]:
    """Run OpenDP's ``make`` (Gaussian or Laplace) on an integer count vector, calibrated to
    ``target`` at the unit's sensitivity; return the noisy counts and OpenDP's charge."""
    x = _int_counts(counts)
    d_in = count_sensitivity()
    space = vector_domain(atom_domain(T="i64")), metric
    meas = _calibrate(lambda s: make(*space, scale=s), d_in, target, guess=guess)
    noisy = np.asarray(meas(x), dtype=np.int64) if x.size else x.copy()
    return noisy, meas.map(d_in)


def select_max(
    scores: Sequence[float] | np.ndarray,
    *,
    sensitivity: float,
    epsilon: float | None = None,
    rho: float | None = None,
) -> tuple[int, PureDP | ZCDP]:
    """Private selection: the index of a high score (report-noisy-max).

    Give exactly one of ``epsilon`` (pure DP) or ``rho`` (zCDP). ``sensitivity`` is the most
    any one score can change when one row is added or removed; a person of K rows moves it
    K times as far, so the mechanism is calibrated to K * ``sensitivity``.

    Math: with L∞ sensitivity Δ, OpenDP adds exponential noise of scale s = 2Δ/ε for pure DP
    (equivalent to permute-and-flip, McKenna & Sheldon 2020), and Gumbel noise of scale
    s = Δ/sqrt(2ρ) for zCDP (the exponential mechanism, which is bounded-range and so
    (2Δ/s)²/8-zCDP, Cesar & Rogers 2021). OpenDP's map confirms the charge.
    """
    if (epsilon is None) == (rho is None):
        raise ConfigError("give exactly one of epsilon or rho to select_max")
    delta_in = _positive("sensitivity", sensitivity) * _MAX_ROWS.get()
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ConfigError("scores must be a non-empty 1-d vector")
    if not np.all(np.isfinite(x)):
        raise ConfigError("scores must be finite numbers")
    space = vector_domain(atom_domain(T=float, nan=False)), linf_distance(T=float)
    if epsilon is not None:
        target = _positive("epsilon", epsilon)
        measure, guess = max_divergence(), 2 * delta_in / target
    else:
        assert rho is not None  # exactly one of the two was given (checked above)
        target = _positive("rho", rho)
        measure, guess = zero_concentrated_divergence(), delta_in / math.sqrt(2 * target)
    meas = _calibrate(
        lambda s: dpm.make_noisy_max(*space, output_measure=measure, scale=s),
        delta_in,
        target,
        guess=guess,
    )
    used = meas.map(delta_in)
    return int(meas(x)), PureDP(used) if epsilon is not None else ZCDP(used)


def dp_quantile(
    values: Sequence[float] | np.ndarray,
    *,
    candidates: Sequence[float] | np.ndarray,
    alpha: float,
    epsilon: float,
) -> tuple[float, PureDP]:
    """The ``alpha``-quantile of ``values``, chosen among public ``candidates``, epsilon-DP.

    Math: the exponential mechanism over candidates scored by |#{x < c} − α·n|-style rank
    error (Smith 2011), as implemented by OpenDP's ``make_private_quantile``; adding or
    removing one row changes each score by at most 1, one person of K rows is K rows of
    symmetric distance. The answer is always a candidate, never a data value.
    """
    epsilon = _positive("epsilon", epsilon)
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha ({alpha!r}) must be in [0, 1]")
    cands = np.unique(np.asarray(candidates, dtype=np.float64))
    if cands.size < 2 or not np.all(np.isfinite(cands)):
        raise ConfigError("candidates must hold at least two distinct finite numbers")
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    space = vector_domain(atom_domain(T=float, nan=False)), symmetric_distance()
    d_in = count_sensitivity()
    meas = _calibrate(
        lambda s: dpm.make_private_quantile(
            *space, max_divergence(), candidates=cands.tolist(), alpha=alpha, scale=s
        ),
        d_in,
        epsilon,
        guess=d_in / epsilon,
    )
    return float(meas(x)), PureDP(meas.map(d_in))


def stable_histogram(
    counts: Mapping[str, int], *, rho: float, delta: float
) -> tuple[dict[str, int], ApproxZCDP]:
    """Noisy counts of the keys whose noisy count clears a threshold; (rho, delta)-approximate
    zCDP. This is how an unknown category list (or a numeric column's point masses) is
    learned: a key held by few rows is dropped with probability >= 1 - delta, so a value held
    by one person is never revealed except with probability delta. Being zCDP, it composes
    with the other measurements by adding rho.

    Math: discrete Gaussian of sd sigma = K/sqrt(2 rho) on each present key (rho-zCDP for a
    unit that moves up to K keys by K in total, Canonne, Kamath, Steinke 2020; K = 1 for a
    row); a key held by one unit only is released only if its count (<= K) plus Z clears T,
    so T is the smallest integer whose OpenDP map (``make_gaussian_threshold``, Rogers 2023)
    at d_in = (l0, l1, linf) = (K, K, K) gives delta. The release uses T + 1: OpenDP 0.16's
    Laplace twin charges P(Z >= T) where P(Z >= T - 1) is due (opendp/opendp#2922), and a
    higher threshold can only lower the true delta, so the charge holds whichever way the map
    reads T.
    """
    rho = _positive("rho", rho)
    delta = _positive("delta", delta)
    if delta >= 1:
        raise ConfigError(f"delta ({delta!r}) must be < 1")
    data = {str(k): int(v) for k, v in counts.items() if int(v) > 0}
    space = (
        map_domain(atom_domain(T=str), atom_domain(T="i64")),
        l02inf_distance(absolute_distance(T="i64")),
    )
    k = count_sensitivity()
    d_in = (k, k, k)
    scale = k / math.sqrt(2 * rho)
    while dpm.make_gaussian_threshold(*space, scale=scale, threshold=k).map(d_in)[0] > rho:
        scale = math.nextafter(scale, math.inf) * (1 + 1e-12)
    threshold = _threshold_for(
        lambda t: dpm.make_gaussian_threshold(*space, scale=scale, threshold=t), d_in, delta, k
    )
    rho_used, delta_used = dpm.make_gaussian_threshold(
        *space, scale=scale, threshold=threshold
    ).map(d_in)
    meas = dpm.make_gaussian_threshold(*space, scale=scale, threshold=threshold + 1)
    noisy = dict(meas(data)) if data else {}
    return {k: int(v) for k, v in noisy.items()}, ApproxZCDP(rho_used, delta_used)


def _threshold_for(make: Callable[[int], Measurement], d_in: Any, delta: float, lowest: int) -> int:
    """Smallest integer threshold >= ``lowest`` whose privacy map gives a delta <= ``delta``
    (OpenDP refuses a threshold below the l-infinity sensitivity)."""
    lo, hi = lowest, 2 * lowest
    while make(hi).map(d_in)[1] > delta:
        lo, hi = hi, hi * 2
        if hi > 2**40:
            raise ConfigError(f"no threshold reaches delta {delta}; raise delta or epsilon")
    while lo < hi:
        mid = (lo + hi) // 2
        if make(mid).map(d_in)[1] <= delta:
            hi = mid
        else:
            lo = mid + 1
    return hi
