"""Noise calibration checks.

OpenDP draws noise from the OS CSPRNG, which cannot be seeded (on purpose), so these tests
are not seeded: each tolerance is set from the sampling distribution so that a correct
implementation fails with probability below about 1e-6 per assertion (stated at each).
"""

import math

import numpy as np
import pytest

from privsynth import mechanisms
from privsynth.budget.accounting import ZCDP, ApproxDP, PureDP
from privsynth.errors import ConfigError

N = 40_000


def _discrete_cdf(pmf_unnorm, support):
    p = pmf_unnorm(support)
    return np.cumsum(p / p.sum())


def _ks_ok(samples, support, cdf):
    emp = np.searchsorted(np.sort(samples), support, side="right") / len(samples)
    # DKW inequality: P(sup|F_n - F| > t) <= 2 exp(-2 n t^2); t for failure prob 1e-6.
    t = math.sqrt(math.log(2 / 1e-6) / (2 * len(samples)))
    return np.max(np.abs(emp - cdf)) < t


def test_gaussian_counts_match_discrete_gaussian_calibration():
    rho = 0.01
    sigma = 1 / math.sqrt(2 * rho)  # CKS20: sigma = Delta_2 / sqrt(2 rho), Delta_2 = 1
    noisy, charge = mechanisms.gaussian_counts(np.zeros(N, dtype=np.int64), rho)
    assert isinstance(charge, ZCDP) and charge.rho <= rho and charge.rho == pytest.approx(rho)
    assert noisy.dtype == np.int64
    support = np.arange(-80, 81)
    cdf = _discrete_cdf(lambda k: np.exp(-(k**2) / (2 * sigma**2)), support)
    assert _ks_ok(noisy, support, cdf)
    # The sample sd has relative standard error ~ 1/sqrt(2N) = 0.0035; 5 SE -> p < 1e-6.
    assert abs(noisy.std() / sigma - 1) < 5 / math.sqrt(2 * N)


def test_laplace_counts_match_discrete_laplace_and_neighbours_differ_by_e_eps():
    eps = 1.0
    base = np.zeros(N, dtype=np.int64)
    noisy0, charge = mechanisms.laplace_counts(base, eps)
    noisy1, _ = mechanisms.laplace_counts(base + 1, eps)  # a neighbouring count: +1 row
    assert isinstance(charge, PureDP) and charge.epsilon == pytest.approx(eps)
    support = np.arange(-40, 41)
    cdf = _discrete_cdf(lambda k: np.exp(-np.abs(k) * eps), support)  # scale 1/eps
    assert _ks_ok(noisy0, support, cdf)
    # The event {output <= 0} is the tight one for discrete Laplace: P0/P1 = e^eps exactly.
    p0, p1 = (noisy0 <= 0).mean(), (noisy1 <= 0).mean()
    # Each probability (~0.73 and ~0.27) has SE <= 0.0025; the log-ratio's SE is <= 0.011,
    # so 5 SE = 0.055 bounds it with failure prob < 1e-6.
    assert abs(math.log(p0 / p1) - eps) < 0.055


def test_select_max_follows_its_noise_distribution():
    # Scores [0, 1], sensitivity 1. Pure DP at eps = 2: OpenDP adds exponential noise of scale
    # s = 2*Delta/eps = 1 (report-noisy-max = permute-and-flip), so index 1 wins with
    # P = 1 - exp(-1/s)/2 = 0.816. zCDP at rho = 0.5: Gumbel noise of scale
    # s = Delta/sqrt(2 rho) = 1 (the exponential mechanism), P = e/(1+e) = 0.731.
    # With 600 draws each SE <= 0.019; 5 SE = 0.095 (failure prob < 1e-6). The two laws are
    # 0.085 apart, so a swap of the noise is caught only in aggregate; the charges pin them.
    pure = [mechanisms.select_max([0.0, 1.0], sensitivity=1.0, epsilon=2.0)[0] for _ in range(600)]
    assert abs(np.mean(pure) - (1 - math.exp(-1) / 2)) < 0.095
    zcdp = [mechanisms.select_max([0.0, 1.0], sensitivity=1.0, rho=0.5)[0] for _ in range(600)]
    assert abs(np.mean(zcdp) - math.e / (1 + math.e)) < 0.095
    idx, charge = mechanisms.select_max([0.0, 1e6, 5.0], sensitivity=1.0, rho=0.5)
    assert idx == 1 and isinstance(charge, ZCDP) and charge.rho == pytest.approx(0.5)
    _, charge = mechanisms.select_max([0.0, 1.0], sensitivity=1.0, epsilon=0.3)
    assert isinstance(charge, PureDP) and charge.epsilon == pytest.approx(0.3)


def test_dp_quantile_returns_a_candidate_near_the_truth():
    x = np.random.default_rng(0).uniform(0, 100, 5000)
    cands = np.arange(0, 101, 5.0)
    q, charge = mechanisms.dp_quantile(x, candidates=cands, alpha=0.5, epsilon=1.0)
    assert q in cands and charge == PureDP(1.0)
    # Candidates 10 away from the median have rank error ~500; at eps=1 their weight is
    # ~exp(-250) relative to the best, so the answer is within one step of 50.
    assert abs(q - 50) <= 5


def test_stable_histogram_hides_rare_keys_and_keeps_frequent_ones():
    counts = {"common": 1000, "also": 300, "rare": 1}
    for _ in range(10):
        kept, charge = mechanisms.stable_histogram(counts, epsilon=1.0, delta=1e-9)
        # P(rare survives) <= delta per call; the others exceed the threshold (~21) by far.
        assert set(kept) == {"common", "also"}
    assert isinstance(charge, ApproxDP)
    assert charge.epsilon <= 1.0 and charge.delta <= 1e-9
    assert abs(kept["common"] - 1000) < 40  # Laplace(1) tail beyond 40: e^-40


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), 1e-320])
def test_bad_privacy_parameters_are_refused(bad):
    with pytest.raises(ConfigError):
        mechanisms.gaussian_counts([1, 2], bad)
    with pytest.raises(ConfigError):
        mechanisms.laplace_counts([1, 2], bad)


def test_counts_must_be_integer_vectors():
    with pytest.raises(ConfigError, match="integers"):
        mechanisms.gaussian_counts(np.array([1.5, 2.0]), 1.0)
    with pytest.raises(ConfigError, match="1-d"):
        mechanisms.laplace_counts(np.zeros((2, 2), dtype=int), 1.0)
    with pytest.raises(ConfigError, match="exactly one"):
        mechanisms.select_max([1.0], sensitivity=1.0)
