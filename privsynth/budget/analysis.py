"""Privacy accounting math: composition of typed events and conversion to (epsilon, delta).

Pure functions of the events (:mod:`privsynth.budget.events`) and of ``delta``: exact rational
reading of float parameters, RDP curves on fixed grids of orders, the RDP -> (epsilon, delta)
conversion, Opacus' PRV bound for subsampled Gaussians, and the calibration of a zCDP
mechanism to a target (epsilon, delta).
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from fractions import Fraction
from functools import lru_cache

import numpy as np

from privsynth.budget.events import (
    ZCDP,
    ApproxDP,
    ApproxZCDP,
    PrivacyEvent,
    PureDP,
    SubsampledGaussian,
    as_events,
    check_param,
    event_summary,
)
from privsynth.errors import ConfigError

# ---------------------------------------------------------------------------------------------
# Exact reading of float parameters
# ---------------------------------------------------------------------------------------------
#
# Convention: a float privacy parameter is read as the *simplest rational number that rounds
# to that float* (the rational with the smallest denominator in the interval of reals whose
# nearest double is the float; found by the Stern-Brocot / continued-fraction walk below).
# So ``1/11`` typed in Python is accounted as exactly 1/11 and ``0.1`` as exactly 1/10.  Pure
# and approximate epsilons and all deltas are summed in :class:`fractions.Fraction`, so eleven
# spends of ``PureDP(1/11)`` compose to exactly 1 and fit a cap of 1, and a twelfth does not;
# with float sums the eleventh spend would already be refused (or, for other values, an
# over-spend let through).  The difference between the rational and the float itself is below
# half an ulp (about 1e-17 relative) per parameter.  Everything computed in floating point (RDP
# curves, the RDP -> (epsilon, delta) conversion, PRV bounds) is rounded *up* before it is
# added in, so the total is an upper bound; deltas handed to a float computation are rounded
# *down*, which can only make its epsilon larger.


@lru_cache(maxsize=65536)
def as_rational(x: float) -> Fraction:
    """The simplest rational that rounds to the float ``x`` (see the convention above).

    >>> as_rational(0.1), as_rational(1 / 11), as_rational(1e-9)
    (Fraction(1, 10), Fraction(1, 11), Fraction(1, 1000000000))
    """
    x = float(x)
    if not math.isfinite(x):
        raise ConfigError(f"cannot read {x!r} as a rational number")
    if x == 0:
        return Fraction(0)
    if x < 0:
        return -as_rational(-x)
    exact = Fraction(x)
    # The open interval of reals strictly closer to x than to its neighbouring doubles.
    below = Fraction(math.nextafter(x, 0.0))
    above = math.nextafter(x, math.inf)
    lo = (below + exact) / 2
    hi = (Fraction(above) + exact) / 2 if math.isfinite(above) else exact + (exact - below) / 2
    simple = _simplest_between(lo, hi)
    return simple if float(simple) == x else exact


def _simplest_between(lo: Fraction, hi: Fraction | None) -> Fraction:
    """The rational with the smallest denominator (then numerator) in the open ``(lo, hi)``.

    ``0 <= lo < hi``; ``hi=None`` means +infinity.
    """
    whole = math.floor(lo)
    if hi is None or whole + 1 < hi:
        return Fraction(whole + 1)
    # lo and hi lie in (whole, whole + 1]: continue on the reciprocal of the fractional parts.
    new_lo = 1 / (hi - whole)
    new_hi = None if lo == whole else 1 / (lo - whole)
    return whole + 1 / _simplest_between(new_lo, new_hi)


def float_up(x: Fraction | float) -> float:
    """The smallest double ``>= x``."""
    if isinstance(x, float):
        return x
    f = float(x)
    return math.nextafter(f, math.inf) if Fraction(f) < x else f


def float_down(x: Fraction | float) -> float:
    """The largest double ``<= x``."""
    f = float(x)
    return math.nextafter(f, -math.inf) if Fraction(f) > x else f


# ---------------------------------------------------------------------------------------------
# RDP curves over a fixed grid of orders
# ---------------------------------------------------------------------------------------------

#: Orders at which subsampled-Gaussian curves are computed (Opacus' default grid, which this
#: contains, extended down to 1.01 and up to 1024).  Computing Opacus' curve at very large
#: integer orders costs time linear in the order, hence the upper end.
SG_ORDERS: np.ndarray = np.array(
    sorted(
        {1 + x / 100 for x in range(1, 10)}
        | {1 + x / 10.0 for x in range(1, 100)}
        | set(range(11, 129))
        | set(range(136, 257, 8))
        | {320, 384, 512, 768, 1024}
    ),
    dtype=float,
)
SG_ORDERS.setflags(write=False)

#: Orders used when no subsampled Gaussian is involved (curves are then closed-form): a dense
#: log grid of alpha - 1 in [1e-4, 1e6] that contains :data:`SG_ORDERS`, so adding a
#: subsampled Gaussian never makes a composition look cheaper by changing grids.
DENSE_ORDERS: np.ndarray = np.unique(np.concatenate([SG_ORDERS, 1 + np.logspace(-4, 6, 20001)]))
DENSE_ORDERS.setflags(write=False)

#: Relative pad applied to every floating-point quantity that enters a bound (curve values,
#: conversion terms, PRV results).  Float error in these is ~1e-15 relative; Opacus' series for
#: fractional orders is truncated at ~1e-13.
REL_PAD = 1e-12

#: ``eps_error`` handed to Opacus' PRV accountant; it returns estimate + error bound.
PRV_EPS_ERROR = 0.01


@lru_cache(maxsize=8)
def _conversion_terms(orders_key: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = np.frombuffer(orders_key, dtype=float)
    # eps(alpha) = rdp(alpha) + log((alpha-1)/alpha) - log(alpha)/(alpha-1) - log(delta)/(alpha-1)
    const = np.log1p(-1 / a) - np.log(a) / (a - 1)
    inv = 1 / (a - 1)
    return a, const, inv


def rdp_to_epsilon(
    orders: Sequence[float] | np.ndarray, rdp: Sequence[float] | np.ndarray, delta: float
) -> float:
    """Convert an RDP curve to epsilon at ``delta`` (rounded up).

    Uses the conversion of Canonne, Kamath & Steinke (2020, Prop. 12) / Balle et al. (2020,
    Thm. 21), the one Opacus' ``get_privacy_spent`` implements, minimised over the given
    orders (all must be ``> 1``): ``eps = rdp(a) + log((a-1)/a) - (log(delta) + log(a))/(a-1)``.
    Returns ``inf`` when ``delta <= 0`` and the curve is not identically zero.
    """
    a = np.asarray(orders, dtype=float)
    r = np.asarray(rdp, dtype=float)
    if a.shape != r.shape or a.ndim != 1 or a.size == 0:
        raise ConfigError("orders and rdp must be non-empty 1-d sequences of the same length")
    if np.any(a <= 1) or np.any(np.isnan(a)):
        raise ConfigError("RDP orders must be > 1")
    if np.any(np.isnan(r)) or np.any(r < 0):
        raise ConfigError("RDP values must be >= 0 (inf allowed)")
    if not np.any(r > 0):
        return 0.0
    if delta <= 0:
        return math.inf
    _, const, inv = _conversion_terms(np.ascontiguousarray(a).tobytes())
    return _convert(r, const, inv, delta)


def _convert(rdp: np.ndarray, const: np.ndarray, inv: np.ndarray, delta: float) -> float:
    """Minimum over orders of the conversion, each term padded up; clamped at 0."""
    log_term = -math.log(delta) * inv
    with np.errstate(invalid="ignore", over="ignore"):
        eps = rdp + const + log_term
        err = REL_PAD * (np.abs(rdp) + np.abs(const) + np.abs(log_term)) + 1e-300
        eps = np.where(np.isnan(eps), math.inf, eps + err)
    return max(0.0, float(np.min(eps)))


@lru_cache(maxsize=512)
def _sg_step_curve(sample_rate: float, noise_multiplier: float) -> np.ndarray:
    """Opacus' RDP of one subsampled-Gaussian step on :data:`SG_ORDERS`, padded up."""
    from opacus.accountants.analysis.rdp import compute_rdp  # heavy import (torch): lazy

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        curve = np.asarray(
            compute_rdp(
                q=sample_rate,
                noise_multiplier=noise_multiplier,
                steps=1,
                orders=[float(a) for a in SG_ORDERS],
            ),
            dtype=float,
        )
    # Anything Opacus could not evaluate is treated as "no guarantee at this order".
    curve = np.where(np.isfinite(curve) & (curve >= 0), curve * (1 + REL_PAD), math.inf)
    curve.setflags(write=False)
    return curve


@lru_cache(maxsize=256)
def _prv_epsilon(groups: tuple[tuple[float, float, int], ...], delta: float) -> float:
    """Opacus' PRV upper bound (estimate + its error bound) for subsampled-Gaussian groups
    ``(sample_rate, noise_multiplier, steps)``; ``inf`` if it cannot be computed."""
    if delta <= 0 or sum(g[2] for g in groups) > 2_000_000:
        return math.inf
    from opacus.accountants import PRVAccountant  # heavy import (torch): lazy

    acc = PRVAccountant()
    acc.history = [(sigma, q, steps) for q, sigma, steps in groups]
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            eps = float(acc.get_epsilon(delta=delta, eps_error=PRV_EPS_ERROR))
    except Exception:  # numerical failure of the PRV route: fall back to RDP  # noqa: BLE001
        return math.inf
    if not math.isfinite(eps):
        return math.inf
    return max(0.0, eps) * (1 + REL_PAD) + 1e-15


def _pure_curve(epsilon: float, orders: np.ndarray) -> np.ndarray:
    """RDP of an epsilon-DP mechanism: min(eps, a*eps^2/2) (eps-DP => eps^2/2-zCDP)."""
    return np.minimum(epsilon, orders * (epsilon * epsilon / 2) * (1 + REL_PAD)) * (1 + REL_PAD)


def rdp_curve(
    events: PrivacyEvent | Iterable[PrivacyEvent],
    orders: Sequence[float] | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The composed RDP curve ``(orders, rdp)`` of ``events`` (rounded up).

    ZCDP(rho) -> rho*alpha; PureDP(eps) -> min(eps, alpha*eps^2/2); SubsampledGaussian -> Opacus'
    ``compute_rdp`` (then ``orders`` must be a subset of :data:`SG_ORDERS`; the default is
    :data:`SG_ORDERS` if there is one, else :data:`DENSE_ORDERS`).  ApproxDP has no RDP curve
    and raises :class:`ConfigError`.
    """
    evs = as_events(events)
    has_sg = any(isinstance(e, SubsampledGaussian) for e in evs)
    if orders is None:
        a = SG_ORDERS if has_sg else DENSE_ORDERS
    else:
        a = np.asarray(orders, dtype=float)
        if np.any(a <= 1):
            raise ConfigError("RDP orders must be > 1")
    idx = None
    if has_sg:
        idx = np.searchsorted(SG_ORDERS, a)
        if np.any(idx >= len(SG_ORDERS)) or np.any(
            SG_ORDERS[np.minimum(idx, len(SG_ORDERS) - 1)] != a
        ):
            raise ConfigError("subsampled-Gaussian curves are only available on SG_ORDERS")
    total = np.zeros_like(a)
    for e in evs:
        if isinstance(e, ZCDP):
            total = total + a * float_up(as_rational(e.rho)) * (1 + REL_PAD)
        elif isinstance(e, PureDP):
            total = total + _pure_curve(float_up(as_rational(e.epsilon)), a)
        elif isinstance(e, SubsampledGaussian):
            if e.sample_rate > 0 and e.steps > 0:
                total = total + _sg_step_curve(e.sample_rate, e.noise_multiplier)[idx] * e.steps
        else:
            raise ConfigError(f"{event_summary(e)} has no RDP curve (it is only (epsilon, delta))")
    return a, total * (1 + REL_PAD)


# ---------------------------------------------------------------------------------------------
# Composition and conversion to (epsilon, delta)
# ---------------------------------------------------------------------------------------------


def epsilon_spent_exact(
    events: PrivacyEvent | Iterable[PrivacyEvent], delta: float | Fraction, *, use_prv: bool = True
) -> Fraction | float:
    """Sound upper bound on the epsilon of composing ``events``, at total ``delta``, as an
    exact :class:`~fractions.Fraction` (or ``math.inf`` when no finite bound exists).

    Routes (the minimum is taken; each is a valid composition):

    * ApproxDP pieces always compose by basic composition: their epsilons add and their deltas
      are taken from ``delta`` first; the rest, ``delta_r``, is left for the RDP part.
      ApproxZCDP pieces give their delta the same way and their rho to the zCDP part.
    * Pure pieces, sorted by epsilon, are split: the smallest are folded into the RDP curve
      (eps-DP => eps^2/2-zCDP), the rest add exactly.  Every split point between distinct
      values is tried (within a run of equal values the cost is concave in how many are
      folded, so only the ends of a run matter) -- this includes "all by basic composition"
      and "all folded".
    * zCDP and subsampled-Gaussian pieces compose as RDP curves (sum), converted at
      ``delta_r`` with :func:`rdp_to_epsilon`.
    * If the RDP part is only subsampled Gaussians and ``use_prv``: Opacus' PRV upper bound at
      ``delta_r`` plus every pure piece by basic composition.

    If RDP pieces exist and ``delta_r <= 0`` the answer is ``inf``.
    """
    evs = as_events(events)
    delta_q = delta if isinstance(delta, Fraction) else as_rational(check_param("delta", delta))
    if delta_q >= 1:
        raise ConfigError(f"delta ({float(delta)!r}) must be < 1")
    counts = Counter(evs)  # events are frozen dataclasses: equal events are counted together
    pure: dict[Fraction, int] = {}
    approx_eps = Fraction(0)
    approx_delta = Fraction(0)
    rho = Fraction(0)
    sg: dict[tuple[float, float], int] = {}
    for e, n in counts.items():
        if isinstance(e, PureDP):
            eps = as_rational(e.epsilon)
            if eps > 0:
                pure[eps] = pure.get(eps, 0) + n
        elif isinstance(e, ApproxDP):
            approx_eps += as_rational(e.epsilon) * n
            approx_delta += as_rational(e.delta) * n
        elif isinstance(e, ZCDP):
            rho += as_rational(e.rho) * n
        elif isinstance(e, ApproxZCDP):
            # rho-zCDP off an event of probability delta: the deltas add (Bun & Steinke 2016,
            # Lemma 8.3), the rhos compose with the other zCDP pieces
            rho += as_rational(e.rho) * n
            approx_delta += as_rational(e.delta) * n
        elif isinstance(e, SubsampledGaussian) and e.sample_rate > 0 and e.steps > 0:
            key = (e.sample_rate, e.noise_multiplier)
            sg[key] = sg.get(key, 0) + e.steps * n
    delta_r = delta_q - approx_delta
    if delta_r < 0:
        return math.inf
    pure_total = sum((eps * m for eps, m in pure.items()), Fraction(0))
    has_rdp = rho > 0 or bool(sg)
    if not has_rdp and not pure:
        return approx_eps

    candidates: list[Fraction | float] = []
    if not has_rdp:
        candidates.append(approx_eps + pure_total)
    if delta_r > 0:
        d = float_down(delta_r)
        orders = SG_ORDERS if sg else DENSE_ORDERS
        _, const, inv = _conversion_terms(orders.tobytes())
        curve = orders * (float_up(rho) * (1 + REL_PAD))
        for (q, sigma), steps in sorted(sg.items()):
            curve = curve + _sg_step_curve(q, sigma) * (steps * (1 + REL_PAD))
        unfolded = pure_total
        if has_rdp:
            candidates.append(approx_eps + unfolded + _to_q(_convert(curve, const, inv, d)))
        for eps, m in sorted(pure.items()):
            curve = curve + _pure_curve(float_up(eps), orders) * (m * (1 + REL_PAD))
            unfolded -= eps * m
            candidates.append(approx_eps + unfolded + _to_q(_convert(curve, const, inv, d)))
        if sg and rho == 0 and use_prv:
            groups = tuple((q, s, steps) for (q, s), steps in sorted(sg.items()))
            candidates.append(approx_eps + pure_total + _to_q(_prv_epsilon(groups, d)))
    return min(candidates) if candidates else math.inf


def _to_q(x: float) -> Fraction | float:
    return x if math.isinf(x) else Fraction(x)


def epsilon_spent(
    events: PrivacyEvent | Iterable[PrivacyEvent], delta: float, *, use_prv: bool = True
) -> float:
    """Tightest sound epsilon of composing ``events`` at total ``delta``, rounded up to a float.

    See :func:`epsilon_spent_exact` for the routes.

    >>> epsilon_spent([PureDP(1 / 11)] * 11, delta=0.0)
    1.0
    >>> round(epsilon_spent(ZCDP(0.5), delta=1e-5), 6)
    4.728387
    """
    return float_up(epsilon_spent_exact(events, delta, use_prv=use_prv))


def epsilon_subsampled_gaussian(
    sample_rate: float, noise_multiplier: float, steps: int, delta: float
) -> float:
    """Sound epsilon of DP-SGD: the smaller of the RDP bound (on :data:`SG_ORDERS`) and Opacus'
    PRV accountant upper bound (estimate + error bound), rounded up."""
    return epsilon_spent(SubsampledGaussian(sample_rate, noise_multiplier, steps), delta)


def rho_for_epsilon(
    epsilon: float, delta: float, *, alongside: Iterable[PrivacyEvent] = ()
) -> float:
    """Largest rho (a float) such that ``ZCDP(rho)`` composed with the events ``alongside``
    is (epsilon, delta)-DP by :func:`epsilon_spent`; what a zCDP mechanism should be
    calibrated to for a release that must meet (epsilon, delta) together with them (0.0 if
    they alone already use it up)."""
    check_param("epsilon", epsilon)
    check_param("delta", delta)
    if not (epsilon > 0 and 0 < delta < 1):
        raise ConfigError(f"need epsilon > 0 and 0 < delta < 1 (got {epsilon!r}, {delta!r})")
    target = as_rational(epsilon)
    others = list(alongside)

    def fits(rho: float) -> bool:
        return epsilon_spent_exact([*others, ZCDP(rho)], delta) <= target

    lo, hi = 0.0, float(epsilon)  # rho <= eps always suffices as an upper bracket
    while fits(hi):
        lo, hi = hi, hi * 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo
