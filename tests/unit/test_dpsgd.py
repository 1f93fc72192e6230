"""The DP-SGD generators' (DPVAE, DPCTGAN) own pieces, without training: parameter checks,
the one-hot block operations, the conditional layer, Gumbel one-hot samples, the projection of
noisy counts and the sigma calibration. Training is in tests/system/test_dpsgd.py; what every
generator does is in tests/contract/."""

import numpy as np
import pytest
import torch

from privsynth.budget import PureDP, SubsampledGaussian
from privsynth.budget.analysis import epsilon_spent
from privsynth.errors import ConfigError
from privsynth.generators.dpsgd.dpctgan import DPCTGAN, _CondLinear
from privsynth.generators.dpsgd.dpvae import DPVAE
from privsynth.generators.dpsgd.marginal_targets import project_counts
from privsynth.generators.dpsgd.privacy import calibrate_sigma
from privsynth.generators.dpsgd.transform import OneHotBlocks

FAST = {"epochs": 2, "batch_size": 500, "device": "cpu"}
DELTA = 1e-9


@pytest.mark.parametrize(
    "bad",
    [
        {"epochs": 0},
        {"batch_size": 1},
        {"lr": -1.0},
        {"max_grad_norm": float("inf")},
        {"measure_share": 1.0},
        {"grad_sample_mode": "fast"},
        {"latent_dim": 0},
        {"hidden": []},
    ],
)
def test_bad_dp_sgd_parameters_name_themselves(table, bad, tripwire):
    _, schema = table
    params = {"epsilon": 1.0, "delta": DELTA, **bad}
    with pytest.raises(ConfigError, match=next(iter(bad))):
        DPVAE(**params).fit(tripwire, schema)


@pytest.mark.parametrize("name", ["generator_steps", "generator_batch_size", "pair_groups"])
@pytest.mark.parametrize("value", [0, 1.5, True])
def test_bad_generator_counts_name_themselves(table, name, value, tripwire):
    _, schema = table
    with pytest.raises(ConfigError, match=name):
        DPCTGAN(**{name: value}).fit(tripwire, schema)


@pytest.mark.parametrize(
    "params",
    [{"pair_share": -0.1}, {"pair_share": 1.0}, {"pair_share": True}, {"pair_share": 0.7}],
)
def test_bad_pair_shares_name_themselves(table, params, tripwire):
    # 0.7 is valid alone but leaves nothing for training with the 0.1 + 0.2 beside it.
    _, schema = table
    with pytest.raises(ConfigError, match="pair_share"):
        DPCTGAN(**params).fit(tripwire, schema)


def test_block_operations_match_column_by_column():
    # The one-pass block softmax (membership-matrix sums) must give what each column's own
    # softmax gives, values and gradients alike.
    blocks = OneHotBlocks([3, 1, 5, 2])
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(7, blocks.width, generator=gen, requires_grad=True)
    weights = torch.randn(7, blocks.width, generator=gen)
    pieces = list(zip(blocks.offsets[:-1], blocks.offsets[1:], strict=True))

    def by_column(x):
        return torch.cat([torch.log_softmax(x[:, a:b], dim=1) for a, b in pieces], dim=1)

    expected = by_column(logits)
    (grad_expected,) = torch.autograd.grad((expected * weights).sum(), logits)
    got = blocks.log_softmax(logits)
    (grad_got,) = torch.autograd.grad((got * weights).sum(), logits)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(grad_got, grad_expected)
    # A block far below the others still gets its own softmax (the shift is per block: one
    # shift for the whole row would underflow exp() there to 0 and give -inf).
    far = logits.detach().clone()
    far[:, 4:9] -= 1000.0
    torch.testing.assert_close(blocks.log_softmax(far), by_column(far))
    assert blocks.argmax(logits).tolist() == [
        [int(logits[i, a:b].argmax()) for a, b in pieces] for i in range(7)
    ]
    codes = np.array([[2, 0, 4, 1], [0, 0, 0, 0]])
    onehot = blocks.transform(codes)
    assert onehot.tolist() == [
        [0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 1],
        [1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0],
    ]
    cross = blocks.block_cross_entropy(logits[:2], onehot)
    picked = expected[:2][onehot.bool()].reshape(2, 4)
    torch.testing.assert_close(cross, -picked.sum(1))


def test_the_generators_row_lookup_is_a_linear_layer_over_the_one_hot_condition():
    torch.manual_seed(0)
    layer = _CondLinear(5, 7, 3)
    x, cells = torch.randn(11, 5), torch.randint(0, 7, (11,))
    full = torch.nn.Linear(12, 3)
    with torch.no_grad():
        full.weight.copy_(torch.cat([layer.dense.weight, layer.cell.weight.T], dim=1))
        full.bias.copy_(layer.dense.bias)
    onehot = torch.nn.functional.one_hot(cells, 7).float()
    torch.testing.assert_close(layer(x, cells), full(torch.cat([x, onehot], dim=1)))
    # Initialised as nn.Linear over all 12 inputs would be: uniform in +-1/sqrt(12).
    assert layer.cell.weight.abs().max() <= 1 / 12**0.5


def test_dpctgan_one_hot_samples_follow_the_softmax_with_relaxed_gradients():
    gen = DPCTGAN(embedding_dim=4, generator_hidden=(8,), discriminator_hidden=(8,), **FAST)
    gen.blocks_ = blocks = OneHotBlocks([3, 2])
    n = 20_000
    row = torch.tensor([[1.0, 0.0, -1.0, 0.5, -0.5]])
    logits = row.repeat(n, 1).requires_grad_(True)
    torch.manual_seed(0)
    out = gen._one_hot_samples(logits)
    # Forward: exactly one 1 per block, hard - soft + soft leaving the one-hot exactly up to
    # float rounding.
    torch.testing.assert_close(out.detach(), out.detach().round(), atol=1e-6, rtol=0)
    assert (out.detach().round()[:, :3].sum(1) == 1).all()
    assert (out.detach().round()[:, 3:].sum(1) == 1).all()
    # Gumbel-max draws each cell with its block's softmax probability: with 20,000 draws the
    # frequency's standard error is at most 0.5 / sqrt(20,000) = 0.0035; 5 of them = 0.018.
    expected = torch.cat([torch.softmax(row[0, :3], 0), torch.softmax(row[0, 3:], 0)])
    torch.testing.assert_close(out.detach().mean(0), expected, atol=0.018, rtol=0)
    # Backward: the relaxed softmax's gradient, which sums to zero within each block (a
    # softmax ignores a common shift of its block's logits).
    (grad,) = torch.autograd.grad((out * torch.arange(5.0)).sum(), logits)
    assert grad.abs().sum() > 0
    for a, b in zip(blocks.offsets[:-1], blocks.offsets[1:], strict=True):
        torch.testing.assert_close(grad[:, a:b].sum(1), torch.zeros(n), atol=1e-4, rtol=0)


def test_projected_frequencies_drop_the_noise_mass_on_empty_cells():
    # Exact answer by hand: with total 100, noisy (90, 20, 5, -15) is shifted by c = 5
    # (the cells above c sum to 100: 90 + 20 - 2c = 100) -> (85, 15, 0, 0); clipping at
    # zero would keep 5 of noise on the third cell.
    p = project_counts(np.array([90.0, 20.0, 5.0, -15.0]), 100.0)
    np.testing.assert_allclose(p, [0.85, 0.15, 0.0, 0.0])
    # Noise-free counts come back as their frequencies (shift 0).
    np.testing.assert_allclose(project_counts(np.array([3.0, 1.0, 0.0]), 4.0), [0.75, 0.25, 0])
    # All cells negative: the shift goes below them; (-5, -9) with total 1 -> c = -6, (1, 0).
    np.testing.assert_allclose(project_counts(np.array([-5.0, -9.0]), 1.0), [1.0, 0.0])
    # On a wide sparse histogram at the benchmark's noise scale, the projection's error is
    # smaller than clipping's: 2 full cells of 5,000 among 98 empty ones, Laplace scale 150.
    rng = np.random.default_rng(0)
    true = np.zeros(100)
    true[:2] = 5000.0
    noisy = true + rng.laplace(0.0, 150.0, size=100)
    clipped = np.clip(noisy, 0, None) / np.clip(noisy, 0, None).sum()
    tvd = lambda q: 0.5 * np.abs(q - true / true.sum()).sum()  # noqa: E731
    # clipping keeps about 98 * 150 / 2 = 7,350 of noise mass (TVD ~0.4); the shift leaves
    # a few hundred at most
    assert tvd(project_counts(noisy, 10_000.0)) < 0.1 < 0.3 < tvd(clipped)


def test_calibrated_noise_is_the_smallest_that_fits():
    # 1% bisection tolerance: sigma / 1.01^2 lies below the last rejected sigma, so (the bound
    # being monotone in sigma) it must exceed epsilon, while sigma itself meets it.
    alongside = (PureDP(0.1),)
    sigma = calibrate_sigma(0.05, 200, alongside, 2.0, DELTA)
    assert epsilon_spent([*alongside, SubsampledGaussian(0.05, sigma, 200)], DELTA) <= 2.0
    low = SubsampledGaussian(0.05, sigma / 1.01**2, 200)
    assert epsilon_spent([*alongside, low], DELTA) > 2.0


def test_calibrated_noise_is_at_most_opacus_calibration():
    """Alone, DP-SGD is calibrated at least as tightly as Opacus' own RDP calibration: the
    ledger's accountant takes the tighter of RDP and PRV."""
    import warnings

    from opacus.accountants.utils import get_noise_multiplier

    q, steps, eps, delta = 0.01, 200, 1.0, 1e-5
    sigma = calibrate_sigma(q, steps, (), eps, delta)
    assert epsilon_spent(SubsampledGaussian(q, sigma, steps), delta) <= eps
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = get_noise_multiplier(
            target_epsilon=eps, target_delta=delta, sample_rate=q, steps=steps
        )
    assert sigma <= theirs
