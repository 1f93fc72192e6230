"""The marginal generators' (MST, AIM) own pieces, without fitting a model: parameter checks,
the accounting guard, the budget allocation, MST's pair scores and AIM's warm start. Fits are
in tests/system/test_generators.py; what every generator does is in tests/contract/."""

import numpy as np
import pytest

from privsynth.errors import ConfigError
from privsynth.generators.dpsgd.dpctgan import DPCTGAN
from privsynth.generators.dpsgd.dpvae import DPVAE
from privsynth.generators.marginal.aim import AIM
from privsynth.generators.marginal.mst import MST


@pytest.mark.parametrize(
    "bad",
    [
        {"iters": 0},
        {"split": (0.5, 0.5, 0.5)},
        {"target": "no-such-column"},
        {"target": ""},
    ],
)
def test_bad_mst_parameters_name_themselves(table, bad, tripwire):
    _, schema = table
    params = {"epsilon": 1.0, "delta": 1e-9, **bad}
    with pytest.raises(ConfigError, match=next(iter(bad))):
        MST(**params).fit(tripwire, schema)  # refused before the data is read


def test_an_overspending_mechanism_is_caught_before_release():
    from privsynth.budget import ZCDP, ApproxDP
    from privsynth.generators.marginal.base import MarginalGenerator

    planned = [ApproxDP(0.1, 1e-10), ZCDP(0.5)]
    MarginalGenerator._check_within([ApproxDP(0.1, 1e-10), ZCDP(0.25), ZCDP(0.25)], planned)
    with pytest.raises(Exception, match="internal accounting error"):
        # Over by 1e-15 relative: a tolerance such as 1e-9 would let this through.
        MarginalGenerator._check_within(
            [ApproxDP(0.1, 1e-10), ZCDP(0.25), ZCDP(0.25), ZCDP(5e-16)], planned
        )
    with pytest.raises(Exception, match="internal accounting error"):
        MarginalGenerator._check_within([ApproxDP(0.1, 2e-10), ZCDP(0.5)], planned)


def test_generators_satisfy_the_protocol():
    from privsynth.generators.base import Generator

    assert all(isinstance(cls(), Generator) for cls in (MST, AIM, DPVAE, DPCTGAN))
    assert not isinstance(object(), Generator)


def test_mst_allocation_spends_rho_exactly_and_minimises_the_expected_l1_error():
    """rho_m ~ cells_m^(2/3) is the minimiser of sum_m cells_m / sqrt(rho_m) (the expected L1
    noise) under sum_m rho_m = rho: any feasible perturbation must do worse."""
    from privsynth.generators.split import allocate

    cells = [2, 16, 100, 7 * 15, 10_000]
    rho = allocate(0.3, cells)
    assert sum(rho) == pytest.approx(0.3, rel=1e-12)
    np.testing.assert_allclose(np.array(rho) / np.array(cells) ** (2 / 3), rho[0] / 2 ** (2 / 3))

    def l1(r):
        return float(np.sum(np.array(cells) / np.sqrt(r)))

    rng = np.random.default_rng(0)
    for _ in range(100):
        step = rng.normal(size=len(cells)) * 1e-3
        other = np.array(rho) + step - step.mean()  # still sums to 0.3
        if (other > 0).all():
            assert l1(other) > l1(rho)


def test_mst_scores_a_pair_by_its_l1_error_over_every_cell():
    """MST scores a pair by the L1 distance, summed over all its cells, between the data's
    2-way marginal and the independent 1-way model's (McKenna et al. 2021). Here y == z (10
    values, 100 rows each) and x = [y < 5], n = 1000: the pair (y, z) has L1 error 1.8 n and
    the pairs with x 1.0 n each. With rho 50 for the two picks the Gumbel noise has scale
    1 / sqrt(2 * 25) = 0.14 counts, far below the 0.8 n = 800 gap, so the tree holds (y, z).
    A largest-column-sum score (numpy's norm(., 1) of the 2-D table, as OpenDP 0.16's MST
    computes it) gives (y, z) 0.18 n and the pairs with x 0.5 n, and would leave (y, z) out."""
    from privsynth.generators.marginal.mst import _select_tree
    from privsynth.inference.estimate import Measurement
    from privsynth.sources import ArrayTable

    y = np.repeat(np.arange(10), 100)
    codes = np.column_stack([y, y, (y < 5).astype(int)])
    table = ArrayTable(codes, {"y": 10, "z": 10, "x": 2})
    ones = [
        Measurement((name,), counts.astype(np.float64), 1.0)
        for name, counts in zip(table.shape, table.marginals([(0,), (1,), (2,)]), strict=True)
    ]
    tree, charges = _select_tree(table, table.sizes, ones, rho=50.0, columns=[0, 1, 2])
    assert (0, 1) in tree and len(tree) == 2
    assert sum(c.rho for c in charges) == pytest.approx(50.0)


def test_aim_warm_start_takes_a_damped_ipf_step_towards_the_new_counts():
    """theta_c += step * log r with r = (y + 1/2) / (mu + 1/2) multiplies the model's
    distribution by r(x_c)^step, so its marginal on c becomes mu * r^step renormalised: a full
    step reproduces y (up to the half-count smoothing), half a step gives (about) the
    normalised geometric mean of y and mu. A clique the model does not hold yet starts from
    step * log r."""
    import torch

    from privsynth.generators.marginal.aim import _ipf_start
    from privsynth.inference.model import GraphicalModel

    domain = {"a": 3, "b": 4, "c": 2}
    model = GraphicalModel(domain, [("a", "b"), ("b", "c")], total=1000.0, device="cpu")
    g = torch.Generator().manual_seed(0)
    model.theta = [torch.randn(t.shape, generator=g, dtype=t.dtype) for t in model.theta]
    before = model.marginal(("a", "b"))
    y = np.random.default_rng(0).uniform(50, 150, 12)
    y *= 1000 / y.sum()
    r = (y + 0.5) / (before + 0.5)
    for step in (1.0, 0.5):
        stepped = GraphicalModel(domain, model.cliques, total=1000.0, device="cpu")
        [(clique, theta)] = _ipf_start(model, ("a", "b"), y, before, step).items()
        stepped.theta = [
            torch.as_tensor(theta).reshape(3, 4) if c == clique else t
            for c, t in zip(model.cliques, model.theta, strict=True)
        ]
        want = before * r**step
        np.testing.assert_allclose(stepped.marginal(clique), want * 1000 / want.sum(), rtol=1e-9)
    np.testing.assert_allclose(
        _ipf_start(model, ("a", "b"), y, before, 1.0)[("a", "b")],
        model.theta[0].reshape(-1).numpy() + np.log(r),
    )
    new = np.random.default_rng(1).uniform(10, 20, 6)
    [theta] = _ipf_start(model, ("a", "c"), new, np.full(6, 15.0), 0.5).values()
    np.testing.assert_allclose(theta, 0.5 * np.log((new + 0.5) / 15.5))
