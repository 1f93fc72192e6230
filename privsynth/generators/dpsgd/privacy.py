"""Calibrating DP-SGD: the sample rate, steps and noise multiplier of one fit, and Opacus'
own accountant as a cross-check.

Math. Each DP-SGD step releases the sum of the Poisson-sampled rows' clipped gradients plus
Gaussian noise of sd sigma * C (C the clipping norm): a Poisson-subsampled Gaussian mechanism
of rate q and noise multiplier sigma, composed over ``steps`` steps. Its privacy curve is the
ledger's :class:`~privsynth.budget.events.SubsampledGaussian` (RDP over
:data:`~privsynth.budget.analysis.SG_ORDERS`, or Opacus' PRV accountant, whichever is
tighter). :func:`calibrate_sigma` is the one place that turns (q, steps, epsilon, delta) into
sigma. Everything here is a function of parameters and DP outputs: it spends nothing.

Why choosing (q, sigma, steps) after a DP measurement is sound: they are functions of DP
outputs only, and RDP composition with adaptively chosen parameters is valid as long as the
total is fixed in advance (Feldman & Zrnic 2021, "Individual privacy accounting via a Renyi
filter", Thm. 3.1: a filter that stops before the fixed RDP total is exceeded). Every
parameter is chosen so that the composed total stays within the (epsilon, delta) fixed before
the data was read, so the whole fit is (epsilon, delta)-DP.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from privsynth.budget.analysis import PRV_EPS_ERROR, SG_ORDERS, as_rational, epsilon_spent_exact
from privsynth.budget.events import ZCDP, ApproxZCDP, PrivacyEvent, SubsampledGaussian
from privsynth.errors import ConfigError


@dataclass(frozen=True)
class SGDPlan:
    """The DP-SGD parameters of one fit, all functions of public inputs and DP outputs."""

    sample_rate: float
    noise_multiplier: float
    steps: int
    expected_batch_size: float

    @property
    def event(self) -> SubsampledGaussian:
        return SubsampledGaussian(self.sample_rate, self.noise_multiplier, self.steps)


#: Integer RDP orders of the cheap bracket in :func:`calibrate_sigma` (Opacus evaluates them
#: in closed form; the fractional orders of :data:`SG_ORDERS` are costly to evaluate).
_BRACKET_ORDERS = (2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 16.0, 20.0, 24.0, 32.0, 48.0, 64.0)


def _bracket_sigma(
    sample_rate: float,
    steps: int,
    alongside: tuple[PrivacyEvent, ...],
    epsilon: float,
    delta: float,
) -> float:
    """A noise multiplier that surely fits: the DP-SGD part calibrated alone, on integer
    orders, to what basic composition leaves (epsilon and delta minus the pure and approximate
    pieces alongside). Basic composition is one of the ledger's routes, so the ledger's
    epsilon for it is no larger."""
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

    eps_left = epsilon - sum(getattr(e, "epsilon", 0.0) for e in alongside)
    delta_left = delta - sum(getattr(e, "delta", 0.0) for e in alongside)
    if (
        eps_left <= 0
        or delta_left <= 0
        or any(isinstance(e, (ZCDP, ApproxZCDP)) for e in alongside)
    ):
        return 1.0  # no cheap bracket: start the doubling search at 1

    def eps(sigma: float) -> float:
        rdp = compute_rdp(
            q=sample_rate, noise_multiplier=sigma, steps=steps, orders=list(_BRACKET_ORDERS)
        )
        with warnings.catch_warnings():  # "optimal order is the largest alpha": a bracket only
            warnings.simplefilter("ignore")
            spent = get_privacy_spent(orders=list(_BRACKET_ORDERS), rdp=rdp, delta=delta_left)
        return float(spent[0])

    lo, hi = 1e-2, 1.0
    while eps(hi) > eps_left:
        lo, hi = hi, hi * 2
        if hi > 1e6:
            return hi
    while hi / lo > 1 + 1e-2:
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if eps(mid) <= eps_left else (mid, hi)
    return hi


@lru_cache(maxsize=64)
def calibrate_sigma(
    sample_rate: float,
    steps: int,
    alongside: tuple[PrivacyEvent, ...],
    epsilon: float,
    delta: float,
    *,
    rel_tol: float = 1e-2,
) -> float:
    """Smallest noise multiplier (to ``rel_tol``) such that ``alongside`` and
    SubsampledGaussian(sample_rate, sigma, steps) compose to at most (epsilon, delta) by the
    ledger's accountant; the returned sigma is one for which that bound was checked.

    A pure function of its arguments, so it is cached (each sigma tried costs an evaluation
    of the accountant's curves; :func:`plan_sgd` puts the sample rate on a grid so that
    refits hit the cache).
    """
    target = as_rational(epsilon)

    def eps(sigma: float) -> Fraction | float:
        events = [*alongside, SubsampledGaussian(sample_rate, sigma, steps)]
        return epsilon_spent_exact(events, delta)

    # Bracket [lo, hi] with eps(hi) <= epsilon < eps(lo), starting from the cheap bound.
    hi = _bracket_sigma(sample_rate, steps, alongside, epsilon, delta) * (1 + 1e-6)
    e_hi = eps(hi)
    while e_hi > target:
        hi *= 1.25
        if hi > 1e6:
            raise ConfigError(
                f"no noise multiplier reaches epsilon={epsilon!r} with {steps} steps at sample "
                f"rate {sample_rate:.3g}; lower epochs or raise epsilon"
            )
        e_hi = eps(hi)
    lo, e_lo = hi / 1.15, eps(hi / 1.15)  # the PRV route rarely saves more than this
    while e_lo <= target:
        hi, e_hi = lo, e_lo
        lo, e_lo = lo / 1.15, eps(lo / 1.15)
    # log(epsilon) is nearly linear in log(sigma) here: aim by the secant, a little high, then
    # confirm with one step of rel_tol; fall back to bisection. Every answer was checked.
    while hi / lo > 1 + rel_tol:
        frac = math.log(e_lo / target) / math.log(e_lo / e_hi) if e_hi > 0 else 0.5
        mid = lo * (hi / lo) ** min(max(frac, 0.0), 1.0) * (1 + rel_tol / 2)
        if not lo < mid < hi:
            mid = math.sqrt(lo * hi)
        e_mid = eps(mid)
        if e_mid <= target:
            hi, e_hi = mid, e_mid
            probe = hi / (1 + rel_tol)
        else:
            lo, e_lo = mid, e_mid
            probe = lo * (1 + rel_tol)
        if lo < probe < hi:
            e_probe = eps(probe)
            if e_probe <= target:
                hi, e_hi = probe, e_probe
            else:
                lo, e_lo = probe, e_probe
    return hi


#: The DP row estimate is rounded down to this grid (16 points per doubling) before it sets
#: the sample rate: post-processing, and it lets refits reuse a cached calibration.
ROWS_GRID_PER_DOUBLING = 16


def plan_sgd(
    n_hat: float,
    *,
    batch_size: int,
    epochs: float,
    alongside: list[PrivacyEvent],
    epsilon: float,
    delta: float,
) -> SGDPlan:
    """q, steps and sigma from the DP row estimate ``n_hat`` (post-processing)."""
    k = ROWS_GRID_PER_DOUBLING
    rows = 2 ** (math.floor(k * math.log2(max(float(n_hat), 1.0))) / k)
    q = min(1.0, batch_size / rows)
    steps = max(1, math.ceil(epochs / q))
    sigma = calibrate_sigma(q, steps, tuple(alongside), epsilon, delta)
    return SGDPlan(q, sigma, steps, q * rows)


def opacus_epsilon(plan: SGDPlan, steps_taken: int, delta: float) -> float:
    """Opacus' own accountants' epsilon for ``steps_taken`` steps of ``plan`` at ``delta``: the
    smaller of its RDP accountant (on the ledger's orders :data:`SG_ORDERS`) and its PRV
    accountant's upper bound -- the routes the ledger takes, on Opacus' code path."""
    from opacus.accountants import PRVAccountant, RDPAccountant

    if steps_taken == 0:
        return 0.0
    history = [(plan.noise_multiplier, plan.sample_rate, steps_taken)]
    rdp = RDPAccountant()
    rdp.history = list(history)
    acc = PRVAccountant()
    acc.history = list(history)
    with warnings.catch_warnings():
        # "Optimal order is the largest alpha" (few steps): the RDP route is then loose, and
        # the PRV route, taken alongside, is the tight one.
        warnings.simplefilter("ignore")
        eps = float(rdp.get_epsilon(delta, alphas=[float(a) for a in SG_ORDERS]))
        return min(eps, float(acc.get_epsilon(delta=delta, eps_error=PRV_EPS_ERROR)))
