"""Mechanism contracts: charges, answers, refused parameters.

The noise laws and the neighbour bounds are measured in ``test_mechanisms_dp.py``. OpenDP
draws noise from the OS CSPRNG, which cannot be seeded (on purpose), so the statistical
assertions here state their failure probability.
"""

import subprocess
import sys

import numpy as np
import pytest

from privsynth import mechanisms
from privsynth.budget.events import ZCDP, ApproxZCDP, PureDP
from privsynth.errors import ConfigError


def test_select_max_charges_and_a_clear_winner():
    # The noise laws and the neighbour bound are measured in test_mechanisms_dp.py.
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
        kept, charge = mechanisms.stable_histogram(counts, rho=0.5, delta=1e-9)
        # sigma 1: P(rare survives) <= delta per call; the threshold (~7) is far below 300.
        assert set(kept) == {"common", "also"}
    assert isinstance(charge, ApproxZCDP)
    assert charge.rho <= 0.5 and charge.delta <= 1e-9
    assert abs(kept["common"] - 1000) < 10  # a 10-sd excursion: probability 1e-23


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


def test_fitting_a_marginal_generator_does_not_import_scikit_learn():
    # opendp.prelude imports scikit-learn (0.8 s of start-up on this machine); mechanisms
    # imports OpenDP's modules one by one so that MST and AIM start without it.
    code = (
        "import sys, privsynth, privsynth.generators.marginal.mst, "
        "privsynth.generators.marginal.aim; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn')[:3])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("k", [3, 10])
def test_noise_is_calibrated_to_k_rows_per_person(k):
    # Inside unit_of_privacy(K) a count vector's sensitivity is K, so at the same rho the
    # Gaussian's sd is K times the row-level one (sigma = K / sqrt(2 rho)), and Laplace's
    # scale K times (sd = sqrt(2) * K / eps). Over n = 20,000 draws the sample sd is within
    # 1/sqrt(2n) = 0.5% (one sd) of the truth; 5% is ten sds.
    zeros = np.zeros(20_000, dtype=np.int64)
    rho, eps = 0.5, 1.0
    with mechanisms.unit_of_privacy(k):
        g, g_charge = mechanisms.gaussian_counts(zeros, rho)
        lap, l_charge = mechanisms.laplace_counts(zeros, eps)
    assert g_charge.rho == pytest.approx(rho) and l_charge.epsilon == pytest.approx(eps)
    assert g.std() == pytest.approx(k / np.sqrt(2 * rho), rel=0.05)
    assert lap.std() == pytest.approx(np.sqrt(2) * k / eps, rel=0.05)
    row_level, _ = mechanisms.gaussian_counts(zeros, rho)  # the block has ended: K = 1 again
    assert row_level.std() == pytest.approx(1 / np.sqrt(2 * rho), rel=0.05)


def test_a_key_held_by_one_person_stays_hidden_at_person_level():
    # One person's K = 20 rows all hold the same rare value. At row level a count of 20 is
    # far above the threshold (sigma = 1 at rho = 0.5), so it is released; at person level
    # the threshold is calibrated to a count of K, so it is released with probability
    # <= delta = 1e-9 per run: never in 50 runs.
    counts = {"rare": 20}
    row_level = [mechanisms.stable_histogram(counts, rho=0.5, delta=1e-9)[0] for _ in range(50)]
    assert all("rare" in r for r in row_level)
    with mechanisms.unit_of_privacy(20):
        person = [mechanisms.stable_histogram(counts, rho=0.5, delta=1e-9) for _ in range(50)]
    assert all("rare" not in r for r, _ in person)
    assert all(c.rho <= 0.5 and c.delta <= 1e-9 for _, c in person)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_unit_of_privacy_needs_a_whole_number_of_rows(bad):
    with pytest.raises(ConfigError, match="max_rows"), mechanisms.unit_of_privacy(bad):
        pass
