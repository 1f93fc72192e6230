"""DP-correctness of every noise mechanism in :mod:`privsynth.mechanisms`, measured (issue #9).

For each mechanism, on fixed inputs:

(a) calibration: the empirical law of the outputs matches the law the docstring's math
    promises (Kolmogorov-Smirnov distance for numeric outputs, a binomial test for the
    selections), and the same test *rejects* a reference whose noise scale is off by 10%
    (x1.1 and /1.1; 20% for the selections, see below): the tolerances are tight enough to
    catch a wrong scale;
(b) neighbours: for inputs at sensitivity 1 from each other, every binned event A obeys
    P[A] <= e^eps P'[A] + delta, with (eps, delta) the charge the mechanism returns (for
    zCDP, the (eps, delta) the ledger's conversion gives).

Seeding: OpenDP draws noise from the OS CSPRNG, which cannot be seeded (on purpose). The inputs
are fixed and every tolerance is a finite-sample bound, valid whatever the draw, that a correct
mechanism violates with probability at most ALPHA = 1e-8. This file uses fewer than 50 such
bounds, so a correct implementation fails it with probability < 5e-7 (union bound).

- DKW (Massart 1990): P(sup_x |F_n(x) - F(x)| > t) <= 2 exp(-2 n t^2) for any law F, so with
  t = sqrt(ln(2 / ALPHA) / (2 n)) the KS distance, and every half-line event {X <= x} and
  {X > x} at once, is within t of the truth.
- Clopper-Pearson: the exact binomial interval at level 1 - ALPHA for one event's probability.

Power: a reference whose KS distance to the true law exceeds 2t is rejected whenever the true
law is accepted (triangle inequality), so each test asserts that its mis-scaled references are
more than 2t away (computed, not hoped) and that they are rejected. For the selections, the
chance that the Clopper-Pearson interval covers the mis-scaled probability is computed exactly
from the binomial law and asserted to be <= ALPHA.

The inputs are chosen for power per draw: the selection tests pit one candidate against 299
tied ones at the gap that makes the winner's probability most sensitive to the noise scale.
A selection returns one index per call (~1 ms, calibration included), so they are held to a
20% scale error (500 calls each); 10% would take ~1,600 calls per mechanism.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from privsynth import mechanisms
from privsynth.budget import epsilon_spent
from privsynth.budget.events import ZCDP, ApproxZCDP, PureDP

ALPHA = 1e-8
WRONG = (1.1, 1 / 1.1)  # mis-scaled references: noise scale 10% too large / too small
WRONG_SELECTION = (1.2, 1 / 1.2)  # the same, 20%, for the selections (see above)


def dkw(n: int) -> float:
    return math.sqrt(math.log(2 / ALPHA) / (2 * n))


# --------------------------------------------------------------- integer-valued outputs
def _cdf_on(grid: np.ndarray, samples: np.ndarray) -> np.ndarray:
    assert samples.min() >= grid[0] and samples.max() <= grid[-1], "grid must cover the draws"
    return np.searchsorted(np.sort(samples), grid, side="right") / len(samples)


def _fold(grid: np.ndarray, pmf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The law of |X| for X ~ pmf on the integer ``grid``."""
    absolute = np.abs(grid)
    return np.arange(absolute.max() + 1), np.bincount(absolute, weights=pmf)


def check_fit(samples: np.ndarray, grid: np.ndarray, pmf: np.ndarray, wrong=()) -> float:
    """Assert the KS distance of ``samples`` to ``pmf`` is within the DKW bound, and that each
    law in ``wrong`` is far enough to be caught (> 2t) and is caught (> t). For integer
    outputs the supremum over the reals is attained on the integer grid."""
    t = dkw(len(samples))
    emp, cdf = _cdf_on(grid, samples), np.cumsum(pmf)
    d = float(np.max(np.abs(emp - cdf)))
    assert d <= t, f"KS distance {d:.4f} > {t:.4f}: the noise does not follow its calibration"
    for w in wrong:
        wcdf = np.cumsum(w)
        assert np.max(np.abs(cdf - wcdf)) > 2 * t, "test too weak to see a 10% scale error"
        assert np.max(np.abs(emp - wcdf)) > t, "a mis-scaled reference was not rejected"
    return d


def check_neighbours(a: np.ndarray, b: np.ndarray, eps: float, delta: float) -> float:
    """Assert P[A] <= e^eps P'[A] + delta both ways for every half-line event A, up to the DKW
    slack: with both empirical CDFs within t of the truth, a true law obeying the bound gives
    P_hat[A] - e^eps P_hat'[A] - delta <= t + e^eps t. Half-lines are the worst events for
    noise added to a number (monotone likelihood ratio); their differences are all the bins.
    Returns the largest (empirical) excess, for the record."""
    grid = np.arange(min(a.min(), b.min()), max(a.max(), b.max()) + 1)
    fa, fb = _cdf_on(grid, a), _cdf_on(grid, b)
    slack = dkw(len(a)) + math.exp(eps) * dkw(len(b))
    slack = max(slack, dkw(len(b)) + math.exp(eps) * dkw(len(a)))
    worst = -math.inf
    for p, q in ((fa, fb), (fb, fa), (1 - fa, 1 - fb), (1 - fb, 1 - fa)):
        worst = max(worst, float(np.max(p - math.exp(eps) * q - delta)))
    assert worst <= slack, f"neighbours differ by more than e^eps: excess {worst:.4f}"
    return worst


def discrete_gaussian(sigma: float, grid: np.ndarray) -> np.ndarray:
    p = np.exp(-(grid.astype(float) ** 2) / (2 * sigma**2))
    return p / p.sum()


def discrete_laplace(scale: float, grid: np.ndarray) -> np.ndarray:
    p = np.exp(-np.abs(grid) / scale)
    return p / p.sum()


def test_gaussian_counts_follow_their_calibration_and_neighbours_stay_within_eps_delta():
    rho, n = 0.02, 30_000
    sigma = 1 / math.sqrt(2 * rho)  # CKS20: sigma = Delta_2 / sqrt(2 rho) = 5
    noisy, charge = mechanisms.gaussian_counts(np.zeros(n, dtype=np.int64), rho)
    assert isinstance(charge, ZCDP) and charge.rho == pytest.approx(rho)
    grid = np.arange(-int(14 * sigma), int(14 * sigma) + 1)  # mass beyond: < 1e-40
    check_fit(noisy, grid, discrete_gaussian(sigma, grid))
    # |noise| carries the scale most sharply: a 10% error moves its CDF by ~0.047.
    fgrid, fpmf = _fold(grid, discrete_gaussian(sigma, grid))
    wrong = [_fold(grid, discrete_gaussian(sigma * w, grid))[1] for w in WRONG]
    check_fit(np.abs(noisy), fgrid, fpmf, wrong)
    # Neighbour: every count one higher (add one row). zCDP implies (eps, delta) for all delta.
    shifted, _ = mechanisms.gaussian_counts(np.ones(n, dtype=np.int64), rho)
    delta = 1e-3
    check_neighbours(noisy, shifted, epsilon_spent([charge], delta), delta)


def test_laplace_counts_follow_their_calibration_and_neighbours_stay_within_eps():
    eps, n = 1.0, 32_000
    noisy, charge = mechanisms.laplace_counts(np.zeros(n, dtype=np.int64), eps)
    assert isinstance(charge, PureDP) and charge.epsilon == pytest.approx(eps)
    scale = 1 / eps  # GRS12: b = Delta_1 / eps
    grid = np.arange(-60, 61)  # mass beyond: < e^-60
    check_fit(noisy, grid, discrete_laplace(scale, grid))
    fgrid, fpmf = _fold(grid, discrete_laplace(scale, grid))
    wrong = [_fold(grid, discrete_laplace(scale * w, grid))[1] for w in WRONG]
    check_fit(np.abs(noisy), fgrid, fpmf, wrong)
    shifted, _ = mechanisms.laplace_counts(np.ones(n, dtype=np.int64), eps)
    check_neighbours(noisy, shifted, charge.epsilon, 0.0)


def p_top_exponential(k0: int, gap: float, scale: float) -> float:
    """P(the top candidate wins) in report-noisy-max with Exponential(scale) noise, one
    candidate ``gap`` above ``k0`` tied ones: int_0^inf f(e) F(gap + e)^k0 de with
    u = exp(-e / scale) gives (1 - (1 - a)^(k0 + 1)) / (a (k0 + 1)), a = exp(-gap / scale)."""
    a = math.exp(-gap / scale)
    return (1 - (1 - a) ** (k0 + 1)) / (a * (k0 + 1))


def p_top_gumbel(k0: int, gap: float, scale: float) -> float:
    """The same with Gumbel(scale) noise: the softmax (exponential mechanism)."""
    w = math.exp(gap / scale)
    return w / (k0 + w)


def clopper_pearson(k, n: int):
    k = np.asarray(k)
    lo = np.where(k > 0, stats.beta.ppf(ALPHA / 2, k, n - k + 1), 0.0)
    hi = np.where(k < n, stats.beta.isf(ALPHA / 2, k + 1, n - k), 1.0)
    return lo, hi


def check_binomial(wins: int, n: int, p: float, wrong=()) -> None:
    """Assert ``p`` is in the Clopper-Pearson interval of ``wins`` / ``n``; for each
    mis-scaled ``wrong`` probability, assert the exact chance that the interval would cover it
    is <= ALPHA (power), and that it does not."""
    lo, hi = clopper_pearson(wins, n)
    assert lo <= p <= hi, f"{wins}/{n} wins; calibrated probability {p:.4f} outside [{lo}, {hi}]"
    ks = np.arange(n + 1)
    all_lo, all_hi = clopper_pearson(ks, n)
    for pw in wrong:
        covered = (all_lo <= pw) & (pw <= all_hi)
        assert stats.binom.pmf(ks[covered], n, p).sum() <= ALPHA, "too weak to see the scale error"
        assert not lo <= pw <= hi, "a mis-scaled reference was not rejected"


def check_binary_neighbours(w_a: int, n_a: int, w_b: int, n_b: int, eps, delta) -> None:
    """P[A] <= e^eps P'[A] + delta for A = {top wins} and its complement, both ways, judged
    on Clopper-Pearson bounds: the lower bound of one side against the upper of the other."""
    (lo_a, hi_a), (lo_b, hi_b) = clopper_pearson(w_a, n_a), clopper_pearson(w_b, n_b)
    e = math.exp(eps)
    assert lo_a <= e * hi_b + delta and lo_b <= e * hi_a + delta
    assert 1 - hi_a <= e * (1 - lo_b) + delta and 1 - hi_b <= e * (1 - lo_a) + delta


K0 = 299  # tied candidates against one top candidate


@pytest.mark.parametrize("measure", ["epsilon", "rho"])
def test_select_max_follows_its_noise_law_and_neighbours_stay_within_eps(measure):
    # Sensitivity 1. Pure DP at eps = 2: Exponential noise of scale 2 Delta / eps = 1
    # (report-noisy-max). zCDP at rho = 0.5: Gumbel noise of scale Delta / sqrt(2 rho) = 1.
    n, n_neighbour = 500, 200
    if measure == "epsilon":  # the gaps with most power per draw (see the module docstring)
        p_top, param, gap = p_top_exponential, 2.0, 5.5
    else:
        p_top, param, gap = p_top_gumbel, 0.5, 6.5
    scores = np.r_[np.zeros(K0), gap]
    wins = 0
    for _ in range(n):
        idx, charge = mechanisms.select_max(scores, sensitivity=1.0, **{measure: param})
        wins += idx == K0
    check_binomial(wins, n, p_top(K0, gap, 1.0), [p_top(K0, gap, w) for w in WRONG_SELECTION])
    # Neighbour: every score moves by the sensitivity, towards each other (gap - 2).
    near = np.r_[np.ones(K0), gap - 1]
    w_b = sum(
        mechanisms.select_max(near, sensitivity=1.0, **{measure: param})[0] == K0
        for _ in range(n_neighbour)
    )
    delta = 0.0 if measure == "epsilon" else 1e-3
    eps = charge.epsilon if measure == "epsilon" else epsilon_spent([charge], delta)
    check_binary_neighbours(wins, n, w_b, n_neighbour, eps, delta)


def test_dp_quantile_follows_its_noise_law_and_neighbours_stay_within_eps():
    # Median (alpha = 1/2) of 12 values, 6 at 1.5 and 6 at 3.5. Candidate 2.0 has rank error
    # |#{x < c} - n/2| = 0; each of 299 candidates in [0, 1] has error 6. OpenDP scores in
    # units of 1/2 rank with sensitivity 1 and adds Exponential noise (pure DP): in rank units
    # the scale is 1/eps, so at eps = 1 the median wins with p_top_exponential(299, 6, 1).
    eps, n, n_neighbour = 1.0, 600, 200
    x = [1.5] * 6 + [3.5] * 6
    cands = np.r_[np.linspace(0, 1, K0), 2.0]
    wins = 0
    for _ in range(n):
        q, charge = mechanisms.dp_quantile(x, candidates=cands, alpha=0.5, epsilon=eps)
        assert q in cands
        wins += q == 2.0
    assert isinstance(charge, PureDP) and charge.epsilon <= eps
    wrong = [p_top_exponential(K0, 6, w / eps) for w in WRONG_SELECTION]
    check_binomial(wins, n, p_top_exponential(K0, 6, 1 / eps), wrong)
    # Neighbour: one row at 3.5 removed; errors become 5.5 and 0.5 (gap 5).
    w_b = sum(
        mechanisms.dp_quantile(x[:-1], candidates=cands, alpha=0.5, epsilon=eps)[0] == 2.0
        for _ in range(n_neighbour)
    )
    check_binary_neighbours(wins, n, w_b, n_neighbour, charge.epsilon, 0.0)


def test_stable_histogram_follows_its_calibration_and_hides_a_one_row_key_with_prob_delta():
    rho, delta = 0.125, 1e-2
    sigma = 1 / math.sqrt(2 * rho)  # 2: discrete Gaussian, CKS20
    grid = np.arange(-40, 41)  # 20 sd: mass beyond < 1e-80
    gauss = discrete_gaussian(sigma, grid)
    # Release threshold from the docstring's math: the smallest T with P(1 + Z >= T) <= delta
    # (T = 7 here: P(Z >= 6) = 0.0013, P(Z >= 5) = 0.0062... for sd 2), released at T + 1.
    tail = {k: gauss[grid >= k].sum() for k in range(1, 40)}
    threshold = next(t for t in range(2, 40) if tail[t - 1] <= delta)
    keep_at = threshold + 1
    high, at, above, ones = 32_000, 20_000, 20_000, 20_000
    counts = {f"h{i}": keep_at + 30 for i in range(high)}  # never censored (15 sd)
    counts |= {f"a{i}": keep_at for i in range(at)}  # censored about half the time
    counts |= {f"b{i}": keep_at + 1 for i in range(above)}  # its neighbour, one row more
    counts |= {f"o{i}": 1 for i in range(ones)}  # a value held by one row
    kept, charge = mechanisms.stable_histogram(counts, rho=rho, delta=delta)
    assert isinstance(charge, ApproxZCDP) and charge.rho <= rho and charge.delta <= delta

    def released(prefix: str, n: int) -> np.ndarray:  # a dropped key reads as keep_at - 1
        return np.array([kept.get(f"{prefix}{i}", keep_at - 1) for i in range(n)])

    def censored(count: int) -> tuple[np.ndarray, np.ndarray]:
        values = np.maximum(count + grid, keep_at - 1)
        support = np.arange(keep_at - 1, values.max() + 1)
        return support, np.bincount(values - support[0], weights=gauss)

    # The scale, on keys far above the threshold, folded around their count.
    fgrid, fpmf = _fold(grid, gauss)
    wrong = [_fold(grid, discrete_gaussian(sigma * w, grid))[1] for w in WRONG]
    check_fit(np.abs(released("h", high) - (keep_at + 30)), fgrid, fpmf, wrong)
    # The threshold rule (keep noisy >= T + 1), on keys at it.
    at_released = released("a", at)
    check_fit(at_released, *censored(keep_at))
    # Neighbours: one row more in a key; zCDP rho gives (eps, delta') for any delta'.
    d = 1e-3
    check_neighbours(at_released, released("b", above), epsilon_spent([ZCDP(charge.rho)], d), d)
    # Absent vs present with one row: P[released] <= delta (the approximate part).
    n_out = sum(f"o{i}" in kept for i in range(ones))
    assert clopper_pearson(n_out, ones)[0] <= charge.delta, (
        f"{n_out}/{ones} one-row keys released; delta {charge.delta}"
    )
