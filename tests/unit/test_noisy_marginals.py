"""The noisy 2-way targets of the DP-SGD generators: coarse groups, the measurement's charges
and counting, and the generator-side KL loss."""

import itertools

import numpy as np
import pytest
import torch

from privsynth.budget.events import ZCDP
from privsynth.generators.dpsgd.marginal_targets import coarse_groups, measure_pairs
from privsynth.generators.dpsgd.transform import OneHotBlocks


def test_coarse_groups_by_hand():
    # 0.92 closes a run alone; the 8% after it never reaches 1/2 and stays a group of its own.
    assert coarse_groups(np.array([0.92, 0.02, 0.03, 0.03]), 2).tolist() == [0, 1, 1, 1]
    # Runs close as soon as they reach 1/3: (0.2, 0.2), (0.4), (0.1, 0.1).
    assert coarse_groups(np.array([0.2, 0.2, 0.4, 0.1, 0.1]), 3).tolist() == [0, 0, 1, 2, 2]
    # At most k codes: one group each, whatever the mass.
    assert coarse_groups(np.array([0.99, 0.01]), 2).tolist() == [0, 1]


@pytest.mark.parametrize("k", [1, 3, 10])
def test_coarse_groups_are_runs_of_at_least_1_over_k(k):
    rng = np.random.default_rng(0)
    for size in (k + 1, 40, 100):
        for alpha in (0.05, 1.0):  # very uneven and even frequencies
            freq = rng.dirichlet(np.full(size, alpha))
            g = coarse_groups(freq, k)
            steps = np.diff(g)
            assert g[0] == 0 and set(steps.tolist()) <= {0, 1}  # runs of adjacent codes
            mass = np.bincount(g, weights=freq)
            closed = mass[:-1]  # every run but the last was closed at 1/k
            assert (closed >= 1 / k - 1e-12).all()
            assert len(mass) <= k + 1 and len(closed) <= k


def _table(n=5000, seed=3):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 3, n)
    b = (a + rng.integers(0, 2, n)) % 3  # tied to a
    c = rng.choice(12, n, p=np.r_[[0.6], np.full(11, 0.4 / 11)])  # wide and uneven
    return np.column_stack([a, b, c]), [3, 3, 12]


def test_noise_free_pairs_are_the_exact_coarse_frequencies_and_charge_their_split():
    codes, sizes = _table()
    freqs = [np.bincount(codes[:, j], minlength=s) / len(codes) for j, s in enumerate(sizes)]
    # rho 1e8 per pair-ish: discrete Gaussian sd ~1e-4, so every count comes back exactly.
    rho = 3e8
    targets, charges = measure_pairs(codes, OneHotBlocks(sizes), freqs, len(codes), rho, k=4)
    groups = [coarse_groups(f, 4) for f in freqs]
    n_groups = [int(g.max()) + 1 for g in groups]
    # c: the 0.6 code alone, seven codes of 0.036 reaching 1/4, the last four (0.15) apart
    assert n_groups == [3, 3, 3] and groups[2].tolist() == [0] + [1] * 7 + [2] * 4
    goff = np.r_[0, np.cumsum(n_groups)]
    pairs = list(itertools.combinations(range(3), 2))
    for i, j in pairs:
        exact = np.zeros((n_groups[i], n_groups[j]))
        np.add.at(exact, (groups[i][codes[:, i]], groups[j][codes[:, j]]), 1)
        got = targets.target[goff[i] : goff[i + 1], goff[j] : goff[j + 1]].numpy()
        np.testing.assert_allclose(got, exact / len(codes), atol=1e-6)
    # Only the pair blocks above the diagonal hold targets (each a distribution summing to 1).
    outside = targets.target.numpy().copy()
    for i, j in pairs:
        outside[goff[i] : goff[i + 1], goff[j] : goff[j + 1]] = 0
    assert not outside.any() and targets.target.sum() == pytest.approx(len(pairs))
    # One zCDP charge per pair, rho split by cells^(2/3), summing to at most rho.
    assert all(isinstance(c, ZCDP) for c in charges) and len(charges) == len(pairs)
    rhos = np.array([c.rho for c in charges])
    cells = np.array([n_groups[i] * n_groups[j] for i, j in pairs], dtype=float)
    np.testing.assert_allclose(rhos / cells ** (2 / 3), rhos[0] / cells[0] ** (2 / 3), rtol=1e-3)
    assert rhos.sum() <= rho and rhos.sum() == pytest.approx(rho, rel=1e-3)
    # The one-hot cells map to their groups.
    assign = targets.assign.numpy()
    assert assign.shape == (sum(sizes), sum(n_groups)) and (assign.sum(1) == 1).all()


def test_the_loss_is_the_sum_of_the_pairs_kl_and_vanishes_at_the_data():
    codes, sizes = _table()
    freqs = [np.bincount(codes[:, j], minlength=s) / len(codes) for j, s in enumerate(sizes)]
    targets, _ = measure_pairs(codes, OneHotBlocks(sizes), freqs, len(codes), 3e8, k=4)
    offsets = np.r_[0, np.cumsum(sizes)]
    # The data's own one-hot rows: their batch 2-way marginal is the target, KL 0.
    onehot = torch.zeros(len(codes), offsets[-1])
    for j in range(3):
        onehot[np.arange(len(codes)), offsets[j] + codes[:, j]] = 1.0
    assert targets.loss(onehot).item() == pytest.approx(0.0, abs=1e-4)
    # Random softmax rows: the loss equals the pair-by-pair KL written out.
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(64, offsets[-1], generator=gen)
    probs = torch.cat(
        [torch.softmax(logits[:, a:b], 1) for a, b in zip(offsets[:-1], offsets[1:], strict=True)],
        1,
    )
    groups = [coarse_groups(f, 4) for f in freqs]
    n_groups = [int(g.max()) + 1 for g in groups]
    goff = np.r_[0, np.cumsum(n_groups)]
    expected = 0.0
    for i, j in itertools.combinations(range(3), 2):
        pi = torch.stack(
            [
                probs[:, offsets[i] : offsets[i + 1]][:, groups[i] == g].sum(1)
                for g in range(n_groups[i])
            ],
            1,
        )
        pj = torch.stack(
            [
                probs[:, offsets[j] : offsets[j + 1]][:, groups[j] == g].sum(1)
                for g in range(n_groups[j])
            ],
            1,
        )
        model = torch.einsum("ra,rb->ab", pi, pj) / len(probs)
        t = targets.target[goff[i] : goff[i + 1], goff[j] : goff[j + 1]]
        expected += (t * (torch.log(t + 1e-12) - torch.log(model + 1e-12))).sum().item()
    assert targets.loss(probs).item() == pytest.approx(expected, rel=1e-5)
    assert expected > 0.01
