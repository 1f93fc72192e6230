"""Level-batched belief propagation (flat_bp.py) against the per-clique engine, which
test_inference.py checks against brute force."""

import itertools

import numpy as np
import pytest
import torch

from privsynth.inference import estimate as estimate_module
from privsynth.inference import flat_bp
from privsynth.inference import junction_tree as jt
from privsynth.inference.estimate import Measurement, estimate
from privsynth.inference.flat_bp import FlatBP, segment_logsumexp
from privsynth.inference.model import GraphicalModel

WIDE = {f"x{i}": k for i, k in enumerate([2, 3, 4, 2, 5, 3, 2, 4])}


def random_cliques(seed: int) -> list[tuple[str, ...]]:
    """Every 1-way clique plus a random handful of pairs and one triple on WIDE."""
    rng = np.random.default_rng(seed)
    names = list(WIDE)
    pairs = list(itertools.combinations(names, 2))
    picked = [pairs[i] for i in rng.choice(len(pairs), size=6, replace=False)]
    triple = tuple(sorted(rng.choice(len(names), size=3, replace=False)))
    return [(a,) for a in names] + picked + [tuple(names[i] for i in triple)]


STRUCTURES = [
    [("x0", "x1"), ("x1", "x2"), ("x2", "x3"), ("x3", "x4"), ("x4", "x5"), ("x5", "x6")],
    [("x0", "x1"), ("x1", "x2"), ("x0", "x2"), ("x3",)],  # a cycle: triangulation merges it
    [("x0",), ("x1",)],  # no shared attribute: cliques joined over empty separators
    [("x0", "x1", "x2")],  # a single junction-tree clique, no levels below the root
    *(random_cliques(seed) for seed in range(4)),
]


def random_theta(model: GraphicalModel, scale: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    size = sum(t.numel() for t in model.theta)
    return scale * torch.randn(size, generator=g, dtype=torch.float64)


def per_clique(model: GraphicalModel, theta: torch.Tensor, queries) -> torch.Tensor:
    sizes = [t.numel() for t in model.theta]
    model.theta = [v.view(t.shape) for v, t in zip(theta.split(sizes), model.theta, strict=True)]
    return torch.cat([p.reshape(-1) for p in model.project(model.beliefs(), queries)])


@pytest.mark.parametrize("cliques", STRUCTURES)
@pytest.mark.parametrize("scale", [1.0, 300.0])
def test_flat_marginals_and_gradients_match_the_per_clique_engine(cliques, scale):
    domain = {a: k for a, k in WIDE.items() if any(a in c for c in cliques)}
    model = GraphicalModel(domain, cliques, total=1.0, device="cpu")
    # Every model clique, every attribute alone and every junction-tree clique as a query.
    queries = list(dict.fromkeys([*model.cliques, *((a,) for a in domain), *model.tree.cliques]))
    theta = random_theta(model, scale, seed=len(cliques))
    weights = torch.rand(sum(jt.cells(q, domain) for q in queries), dtype=torch.float64)

    flat = theta.clone().requires_grad_(True)
    got = FlatBP(model, queries)(flat)
    (got * weights).sum().backward()
    dense = theta.clone().requires_grad_(True)
    want = per_clique(model, dense, queries)
    (want * weights).sum().backward()

    # Two exact computations of the same marginals in float64: equal to rounding. At scale 300
    # sums of log-potentials pass exp's range (about 709), so this fails without the shift.
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(flat.grad, dense.grad, rtol=1e-9, atol=1e-12)
    # Each query's probabilities sum to one.
    sums = torch.stack([p.sum() for p in got.split([jt.cells(q, domain) for q in queries])])
    torch.testing.assert_close(sums, torch.ones_like(sums), rtol=0, atol=1e-12)


def test_segment_logsumexp_is_exact_far_outside_exps_range():
    x = torch.tensor([1000.0, 999.0, -1000.0, -1001.0, 5.0], dtype=torch.float64)
    seg = torch.tensor([0, 0, 1, 1, 2])
    got = segment_logsumexp(x, seg, 3)
    log2 = np.log1p(np.exp(-1.0))  # log(e^0 + e^-1)
    want = torch.tensor([1000.0 + log2, -1000.0 + log2, 5.0], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    # Gradient: softmax within each segment.
    x.requires_grad_(True)
    segment_logsumexp(x, seg, 3).sum().backward()
    soft = 1 / (1 + np.exp(-1.0))
    want_grad = torch.tensor([soft, 1 - soft, soft, 1 - soft, 1.0], dtype=torch.float64)
    torch.testing.assert_close(x.grad, want_grad, rtol=0, atol=1e-12)


def test_cell_index_restricts_each_cell_to_the_subset():
    domain = {"a": 2, "b": 3, "c": 2}
    got = flat_bp.cell_index(("a", "b", "c"), ("a", "c"), domain)
    want = [a * 2 + c for a in range(2) for b in range(3) for c in range(2)]
    assert got.tolist() == want
    assert flat_bp.cell_index(("a", "b"), (), domain).tolist() == [0] * 6


def test_the_junction_tree_is_rooted_at_a_centre():
    # A chain of seven pair cliques: rooted at an end it has seven levels, at the middle four.
    names = [f"x{i}" for i in range(8)]
    domain = dict.fromkeys(names, 2)
    tree = jt.build(list(itertools.pairwise(names)), domain)
    assert len(tree.cliques) == 7
    assert len(tree.levels) == 4
    assert sorted(i for level in tree.levels for i in level) == list(range(7))
    for k, level in enumerate(tree.levels[1:], start=1):
        assert all(tree.parent[i] in tree.levels[k - 1] for i in level)


def test_the_estimator_takes_the_flat_path_on_small_models_only(monkeypatch):
    rng = np.random.default_rng(3)
    cliques = random_cliques(0)
    ms = [
        Measurement(q, rng.uniform(0, 100, jt.cells(q, WIDE)), 5.0)
        for q in (jt.canonical(c, WIDE) for c in cliques)
    ]
    built = []

    class Spy(FlatBP):
        def __init__(self, *args, **kwargs):
            built.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(estimate_module, "FlatBP", Spy)
    flat_model = estimate(ms, WIDE, iters=50, device="cpu")
    assert built == [1]
    monkeypatch.setattr(estimate_module, "FLAT_MAX_CELLS", 0)
    dense_model = estimate(ms, WIDE, iters=50, device="cpu")
    assert built == [1]
    # The same loss and gradient up to rounding, so 50 L-BFGS calls follow the same path:
    # measured 6e-9 counts apart (on counts in the 100s). Rounding differences grow as the
    # search goes on (4e-6 by 100 calls), hence a short run; a wrong flat pass would put the
    # marginals whole counts apart.
    for q in cliques:
        np.testing.assert_allclose(flat_model.marginal(q), dense_model.marginal(q), atol=1e-6)
