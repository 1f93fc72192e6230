"""The graphical-model engine: pure post-processing, checked against brute force."""

import itertools

import numpy as np
import pytest
import torch

from privsynth.inference import junction_tree as jt
from privsynth.inference.estimate import Measurement, estimate, estimate_total
from privsynth.inference.model import GraphicalModel
from privsynth.sources import marginal

DOMAIN = {"a": 3, "b": 4, "c": 2, "d": 3}


def brute_joint(model: GraphicalModel) -> np.ndarray:
    """p(x) over the full (tiny) domain by enumerating every cell."""
    names = list(model.domain)
    logp = np.zeros([model.domain[a] for a in names])
    for c, th in zip(model.cliques, model.theta, strict=True):
        shape = [model.domain[a] if a in c else 1 for a in names]
        logp = logp + th.numpy().reshape(shape)
    p = np.exp(logp - logp.max())
    return p / p.sum()


def random_model(cliques, seed=0) -> GraphicalModel:
    g = torch.Generator().manual_seed(seed)
    model = GraphicalModel(DOMAIN, cliques, total=1000.0, device="cpu")
    model.theta = [torch.randn(t.shape, generator=g, dtype=t.dtype) for t in model.theta]
    return model


def brute_marginal(joint: np.ndarray, clique) -> np.ndarray:
    names = list(DOMAIN)
    drop = tuple(i for i, a in enumerate(names) if a not in clique)
    return joint.sum(axis=drop).reshape(-1)


@pytest.mark.parametrize(
    "cliques",
    [
        [("a", "b"), ("b", "c"), ("c", "d")],  # a chain
        [("a", "b"), ("b", "c"), ("a", "c"), ("d",)],  # a cycle: needs triangulation
        [("a", "b", "c"), ("c", "d"), ("a", "d")],
    ],
)
def test_junction_tree_has_running_intersection_and_covers_every_clique(cliques):
    tree = jt.build(cliques, DOMAIN)
    assert set().union(*tree.cliques) == set(DOMAIN)
    for c in cliques:
        assert any(set(c) <= set(t) for t in tree.cliques)
    # Running intersection: the cliques holding any attribute form a connected subtree.
    for a in DOMAIN:
        holding = {i for i, c in enumerate(tree.cliques) if a in c}
        roots = [i for i in holding if tree.parent[i] not in holding]
        assert len(roots) == 1


@pytest.mark.parametrize(
    "cliques",
    [
        [("a", "b"), ("b", "c"), ("c", "d")],
        [("a", "b"), ("b", "c"), ("a", "c"), ("d",)],
    ],
)
def test_every_marginal_matches_brute_force(cliques):
    model = random_model(cliques)
    joint = brute_joint(model)
    queries = [c for k in (1, 2, 3) for c in itertools.combinations(DOMAIN, k)]
    for q, est in zip(queries, model.marginals(queries), strict=True):
        np.testing.assert_allclose(est / 1000.0, brute_marginal(joint, q), atol=1e-10)


WIDE = {"a": 2, "b": 3, "c": 2, "d": 3, "e": 2, "f": 2, "g": 3}


@pytest.mark.parametrize("seed", range(4))
def test_pairs_across_the_tree_match_brute_force_on_wide_models(seed):
    # Random 2- and 3-cliques over 7 attributes: junction trees with multi-attribute
    # separators and long paths, so most pairs span several tree cliques.
    rng = np.random.default_rng(seed)
    names = list(WIDE)
    cliques = [
        tuple(map(str, rng.choice(names, size=rng.integers(2, 4), replace=False))) for _ in range(5)
    ]
    g = torch.Generator().manual_seed(seed)
    model = GraphicalModel(WIDE, cliques, total=1.0, device="cpu")
    model.theta = [torch.randn(t.shape, generator=g, dtype=t.dtype) for t in model.theta]
    pairs = list(itertools.combinations(names, 2))
    t = model.tree
    assert max(len(t.path(t.home((a,)), t.home((b,)))) for a, b in pairs) >= 4
    logp = np.zeros([WIDE[a] for a in names])
    for c, th in zip(model.cliques, model.theta, strict=True):
        logp = logp + th.numpy().reshape([WIDE[a] if a in c else 1 for a in names])
    joint = np.exp(logp - logp.max())
    joint /= joint.sum()
    for (a, b), est in zip(pairs, model.marginals(pairs), strict=True):
        drop = tuple(i for i, x in enumerate(names) if x not in (a, b))
        np.testing.assert_allclose(est, joint.sum(axis=drop).reshape(-1), atol=1e-12)


def needs_cuda(device: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs CUDA (run with -m gpu on a GPU machine)")


ON_CPU_AND_GPU = pytest.mark.parametrize(
    "device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
)


@ON_CPU_AND_GPU
def test_noise_free_measurements_are_recovered(device):
    needs_cuda(device)
    rng = np.random.default_rng(0)
    n = 4000
    a = rng.integers(0, 3, n)
    b = (a + rng.integers(0, 2, n)) % 4
    c = (b + rng.integers(0, 2, n)) % 2
    d = rng.integers(0, 3, n)
    codes = np.stack([a, b, c, d], 1)
    names = list(DOMAIN)
    cliques = [("a", "b"), ("b", "c"), ("d",)]
    ms = [
        Measurement(
            q,
            marginal(codes, [names.index(x) for x in q], [DOMAIN[x] for x in q]).astype(float),
            1.0,
        )
        for q in cliques
    ]
    assert estimate_total(ms) == pytest.approx(n)
    model = estimate(ms, DOMAIN, iters=500, device=device)
    for m in ms:
        # Consistent measurements lie in the model family: the optimum reproduces them.
        np.testing.assert_allclose(model.marginal(m.clique), m.values, atol=0.05)


@pytest.mark.gpu
def test_cuda_graph_replays_the_eager_loss_and_gradient():
    needs_cuda("cuda")
    from privsynth.inference.estimate import _graphed

    model = GraphicalModel(
        DOMAIN, [("a", "b"), ("b", "c"), ("a", "c"), ("c", "d")], 1.0, device="cuda"
    )
    sizes = [t.numel() for t in model.theta]
    shapes = [t.shape for t in model.theta]
    flat = torch.zeros(sum(sizes), device="cuda", dtype=torch.float64, requires_grad=True)
    target = torch.rand(DOMAIN["a"], DOMAIN["b"], device="cuda", dtype=torch.float64)

    def loss_of(param):
        def loss_fn():
            model.theta = [v.view(s) for v, s in zip(param.split(sizes), shapes, strict=True)]
            (mu,) = model.project(model.beliefs(), [("a", "b")])
            return torch.sum((mu - target) ** 2)

        return loss_fn

    replay = _graphed(loss_of(flat), flat)
    buffer = flat.grad  # made at capture: every replay writes the gradient here
    g = torch.Generator(device="cuda").manual_seed(0)
    for _ in range(3):  # new values written in place, as L-BFGS does, between replays
        with torch.no_grad():
            flat.copy_(torch.randn(flat.shape, generator=g, device="cuda", dtype=flat.dtype))
        loss = replay()
        ref = flat.detach().clone().requires_grad_(True)
        eager = loss_of(ref)()
        eager.backward()
        # Same kernels in the same order on the same inputs: equal to rounding.
        torch.testing.assert_close(loss, eager.detach(), rtol=1e-12, atol=0)
        torch.testing.assert_close(buffer, ref.grad, rtol=1e-12, atol=1e-15)


def test_sampling_follows_the_model_and_the_evidence():
    model = random_model([("a", "b"), ("b", "c"), ("c", "d")], seed=3)
    joint = brute_joint(model)
    n = 40_000
    rows = model.sample(n, np.random.default_rng(0))
    emp = marginal(rows, [0, 1], [3, 4]) / n
    # Each cell's frequency has sd <= sqrt(0.25 / n) = 0.0025; 5 sd = 0.0125.
    assert np.abs(emp - brute_marginal(joint, ("a", "b"))).max() < 0.0125
    cond = model.sample(n, np.random.default_rng(1), conditions={"d": [2]})
    assert (cond[:, 3] == 2).all()
    p_ab_given_d2 = joint[:, :, :, 2].sum(axis=2).reshape(-1)
    p_ab_given_d2 /= p_ab_given_d2.sum()
    assert np.abs(marginal(cond, [0, 1], [3, 4]) / n - p_ab_given_d2).max() < 0.0125


def _g_statistic_a_c_given_b(rows: np.ndarray) -> float:
    """G = 2 sum N(a,b,c) log(N(a,b,c) N(b) / (N(a,b) N(b,c))): 2n times the empirical
    conditional mutual information I(a; c | b)."""
    n3 = marginal(rows, [0, 1, 2], [3, 4, 2]).reshape(3, 4, 2).astype(float)
    expected = n3.sum(axis=2, keepdims=True) * n3.sum(axis=0, keepdims=True)
    expected = expected / np.maximum(n3.sum(axis=(0, 2), keepdims=True), 1)
    nz = n3 > 0
    return float(2 * np.sum(n3[nz] * np.log(n3[nz] / expected[nz])))


def test_stratified_sampling_adds_no_false_links(monkeypatch):
    """In the chain a - b - c, a and c are independent given b; sampled rows must be too.

    Under independence G is asymptotically chi-square with (3-1)(2-1) per value of b, i.e.
    4 * 2 = 8 degrees of freedom (stratification only shrinks it). Its 1 - 1e-6 quantile is
    about 42, so the check fails a correct sampler with probability < 1e-6. Assigning each
    group's values in row order instead of a random order (the rounding pitfall) ties c to a,
    and the same check must catch it.
    """
    from scipy.stats import chi2

    from privsynth.inference import model as model_module

    model = random_model([("a", "b"), ("b", "c"), ("c", "d")], seed=3)
    limit = chi2.ppf(1 - 1e-6, df=8)
    rows = model.sample(40_000, np.random.default_rng(0))
    assert _g_statistic_a_c_given_b(rows) < limit

    def in_row_order(groups, rng):
        order = np.argsort(groups, kind="stable")  # no random key: rows keep their order
        sorted_groups = groups[order]
        starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
        sizes = np.diff(np.r_[starts, len(groups)])
        u = np.empty(len(groups))
        u[order] = (np.arange(len(groups)) - np.repeat(starts, sizes) + 0.5) / np.repeat(
            sizes, sizes
        )
        return u

    monkeypatch.setattr(model_module, "_stratified_uniforms", in_row_order)
    assert _g_statistic_a_c_given_b(model.sample(40_000, np.random.default_rng(0))) > limit


def test_stratified_sampling_keeps_every_clique_within_one_row_of_the_model():
    """Systematic sampling: in every junction-tree clique, for each separator value s drawn
    for m_s rows, the count of each new value k is floor or ceil of m_s p(k | s)."""
    model = random_model([("a", "b"), ("b", "c"), ("c", "d")], seed=4)
    n = 5_003
    rows = model.sample(n, np.random.default_rng(2))
    names = list(DOMAIN)
    beliefs = [b[0].exp().numpy() for b in model.beliefs()]
    t = model.tree
    for i in t.order:
        clique, sep = t.cliques[i], t.separator[i]
        idx = [names.index(a) for a in clique]
        counts = marginal(rows, idx, [DOMAIN[a] for a in clique]).reshape(beliefs[i].shape)
        p = beliefs[i]
        axes = tuple(k for k, a in enumerate(clique) if a not in sep)
        m_s = counts.sum(axis=axes, keepdims=True)  # rows per separator value (all n at root)
        expected = m_s * p / p.sum(axis=axes, keepdims=True)
        assert np.all(np.abs(counts - expected) < 1 + 1e-9), clique


def test_model_round_trips_through_json_dict():
    model = random_model([("a", "b"), ("b", "c")])
    again = GraphicalModel.from_dict(model.to_dict(), device="cpu")
    np.testing.assert_allclose(again.marginal(("a", "c")), model.marginal(("a", "c")))
    assert (
        again.sample(50, np.random.default_rng(5)) == model.sample(50, np.random.default_rng(5))
    ).all()


def test_clamping_an_attribute_on_a_separator_gives_the_exact_conditionals():
    # Clamp 'b' where its home clique (b, c) is a child joined to its parent (a, b) over the
    # separator (b,): the child's message is -inf off the clamped value, and message passing
    # must still give finite, exact conditionals (a subtraction would give -inf - -inf = nan).
    model = random_model([("b", "c"), ("a", "b"), ("c", "d")], seed=7)
    model.tree = jt.JunctionTree(
        cliques=(("b", "c"), ("a", "b"), ("c", "d")),
        parent=(1, -1, 0),
        order=(1, 0, 2),
        separator=(("b",), (), ("c",)),
    )
    model._home = [model.tree.home(c) for c in model.cliques]
    assert model.tree.home(("b",)) == 0
    joint = brute_joint(model)
    names = list(DOMAIN)
    mask = torch.full((DOMAIN["b"], DOMAIN["b"]), -torch.inf, dtype=torch.float64)
    mask.fill_diagonal_(0.0)  # batch slice k: b clamped to k
    clamped = model.beliefs({"b": mask})
    for c, bel in zip(model.tree.cliques, clamped, strict=True):
        for k in range(DOMAIN["b"]):
            cond = np.take(joint, k, axis=names.index("b"))  # p(a, c, d, b=k) up to a constant
            keep = [a for a in names if a != "b"]
            want = cond.sum(axis=tuple(i for i, a in enumerate(keep) if a not in c))
            got = bel[k].exp().numpy()
            if "b" in c:  # all the mass sits at b = k
                got = np.take(got, k, axis=c.index("b"))
            np.testing.assert_allclose(got.reshape(-1), (want / want.sum()).reshape(-1), atol=1e-10)


def test_one_cpu_thread_restores_the_thread_count():
    from privsynth.inference.model import one_cpu_thread

    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), one_cpu_thread():
        assert torch.get_num_threads() == 1
        raise RuntimeError
    assert torch.get_num_threads() == before
