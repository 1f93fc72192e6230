"""Trained DP-SGD generators (DPVAE, DPCTGAN) and the DP-SGD loop: the two-step ledger
reservation, the accounting against Opacus, the privacy spec, model files, DPCTGAN's
measurements and learned links, Poisson sampling, clipping and the noise source. What every
generator does is in tests/contract/."""

import numpy as np
import pytest
import torch

from privsynth.budget import Budget, Ledger, PureDP, SubsampledGaussian, event_from_dict
from privsynth.budget.analysis import PRV_EPS_ERROR, SG_ORDERS, epsilon_spent, rho_for_epsilon
from privsynth.budget.events import ZCDP
from privsynth.errors import BudgetExceeded, ConfigError
from privsynth.generators.dpsgd.dpctgan import DPCTGAN
from privsynth.generators.dpsgd.dpvae import DPVAE
from privsynth.generators.dpsgd.marginal_targets import coarse_groups
from privsynth.generators.dpsgd.privacy import SGDPlan, opacus_epsilon
from privsynth.generators.dpsgd.train import GRAD_SAMPLE_MODES, train_dp
from privsynth.schema import Schema

# Tiny and fast: 3,000 rows, expected batch 500, 2 epochs (about 12 steps), small networks.
FAST = {"epochs": 2, "batch_size": 500, "device": "cpu"}
GENERATORS = [
    DPVAE,
    lambda **kw: DPCTGAN(embedding_dim=8, generator_hidden=(32,), discriminator_hidden=(32,), **kw),
]
IDS = ["DPVAE", "DPCTGAN"]
DELTA = 1e-9


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from threads, and on busy cores OpenMP's spinning barrier made a
    2-thread fit many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module", params=range(len(GENERATORS)), ids=IDS)
def fitted(request, table, tmp_path_factory):
    df, schema = table
    path = tmp_path_factory.mktemp("ledger") / "l.sqlite"
    ledger = Ledger.open(path, dataset_id="t", cap=Budget(10.0, 1e-6))
    torch.manual_seed(0)
    gen = GENERATORS[request.param](epsilon=5.0, delta=DELTA, **FAST)
    gen.fit(df, schema, ledger)
    return gen, ledger, schema


def test_ledger_holds_the_plan_then_the_dp_sgd_charge_and_stays_under_the_cap(fitted):
    gen, ledger, schema = fitted
    reserves = [e for e in ledger.entries() if e["kind"] == "reserve"]
    assert len(reserves) == 2
    first = [event_from_dict(e) for e in reserves[0]["events"]]
    second = [event_from_dict(e) for e in reserves[1]["events"]]
    plan = gen.plan(schema)
    # Reserved before training: the fixed charges of the plan, then the DP-SGD event that
    # replaces the plan's zCDP stand-in.
    assert first == plan[:-1] == gen.planned_[:-1] and isinstance(plan[-1], ZCDP)
    assert second == gen.planned_[-1:] and isinstance(second[0], SubsampledGaussian)
    assert [e["kind"] for e in ledger.entries()].count("commit") == 2
    assert gen.ledger_entry_["reservation"] == reserves[1]["reservation"]
    assert gen.ledger_entry_["head"] == ledger.head()
    # The planned total meets (epsilon, delta); what was spent fits in it; the ledger's total
    # is within its cap.
    assert epsilon_spent(gen.planned_, DELTA) <= 5.0
    assert gen.privacy_spec()["epsilon_spent"] <= 5.0
    assert ledger.spent().epsilon <= ledger.cap.epsilon
    assert gen.privacy_spec()["clipping"].startswith("privsynth book-keeping")  # who clipped


# Few DP-SGD steps at a large sigma (DPCTGAN's fifth of the budget at epsilon 5): Opacus
# warns that its RDP bound is loose at its largest order, which this test compares anyway.
@pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha")
def test_accounting_matches_opacus_for_the_fitted_parameters(fitted):
    from opacus.accountants import PRVAccountant, RDPAccountant

    gen, _, _ = fitted
    spec = gen.privacy_spec()
    q, sigma, steps = spec["sample_rate"], spec["noise_multiplier"], spec["steps"]
    event = SubsampledGaussian(q, sigma, steps)
    rdp = RDPAccountant()
    rdp.history = [(sigma, q, steps)]
    # Same RDP curve (Opacus' compute_rdp) and the same conversion on the same orders: ours
    # only adds padding of 1e-12 relative per term, so they agree to 1e-9.
    theirs_rdp = rdp.get_epsilon(DELTA, alphas=list(SG_ORDERS))
    assert epsilon_spent(event, DELTA, use_prv=False) == pytest.approx(theirs_rdp, rel=1e-9)
    # Opacus' default orders are a subset of ours: its RDP bound can only be larger.
    assert epsilon_spent(event, DELTA, use_prv=False) <= rdp.get_epsilon(DELTA) * (1 + 1e-9)
    # PRV: the ledger takes min(RDP, Opacus' PRV upper bound at eps_error 0.01), each padded
    # by ~1e-12 relative, so it equals the smaller of Opacus' two answers to 1e-9.
    prv = PRVAccountant()
    prv.history = [(sigma, q, steps)]
    theirs_prv = prv.get_epsilon(DELTA, eps_error=PRV_EPS_ERROR)
    ours = epsilon_spent(event, DELTA)
    assert ours == pytest.approx(min(theirs_prv, theirs_rdp), rel=1e-9)
    # The model recorded Opacus' epsilon for the steps it took, within the reservation.
    assert spec["opacus_epsilon"] == pytest.approx(min(theirs_rdp, theirs_prv), rel=1e-9)
    assert spec["opacus_epsilon"] <= ours * (1 + 1e-9)


def test_privacy_spec_states_the_dp_sgd_parameters_and_the_noise_hazard(fitted):
    gen, _, _ = fitted
    spec = gen.privacy_spec()
    for key in (
        "generator",
        "epsilon",
        "delta",
        "neighbouring_relation",
        "unit_of_privacy",
        "definition",
        "noise",
        "planned_charges",
        "charges",
        "epsilon_spent",
        "caveats",
        "sample_rate",
        "noise_multiplier",
        "steps",
        "max_grad_norm",
        "opacus_epsilon",
    ):
        assert key in spec
    assert any("secure_mode is off" in h["how"] for h in spec["implementation_hazards"])
    # Poisson sampling at q = batch / noisy count (rounded down to a public grid, < 5%).
    assert spec["sample_rate"] == pytest.approx(500 / 3000, rel=0.1)


def test_load_refuses_another_generator_junk_and_weights_that_do_not_fit(fitted, tmp_path):
    gen, _, _ = fitted
    gen.save(tmp_path / "model.safetensors")
    other = DPCTGAN if isinstance(gen, DPVAE) else DPVAE
    with pytest.raises(ConfigError, match="model, not"):
        other.load(tmp_path / "model.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="cannot read"):
        type(gen).load(tmp_path / "junk.safetensors")
    # Weights that do not fit the network (e.g. written by a version with another generator
    # architecture): one clear error, not a torch traceback.
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as fh:
        meta = fh.metadata()
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    first = sorted(tensors)[0]
    tensors[first] = torch.zeros(tuple(n + 1 for n in tensors[first].shape))
    save_file(tensors, str(tmp_path / "old.safetensors"), metadata=meta)
    with pytest.raises(ConfigError, match="do not fit .* refit the model"):
        type(gen).load(tmp_path / "old.safetensors")


class SpendsInBetween:
    """A ledger whose budget another process takes right after the first reservation."""

    def __init__(self, ledger):
        self.ledger = ledger
        self.reserved = 0

    def __getattr__(self, name):
        return getattr(self.ledger, name)

    def reserve(self, events, **kw):
        res = self.ledger.reserve(events, **kw)
        self.reserved += 1
        if self.reserved == 1:
            self.ledger.reserve([PureDP(2.0)], purpose="another process")
        return res


def test_budget_taken_between_the_two_reservations_stops_before_training(table, tmp_path):
    df, schema = table
    ledger = Ledger.open(tmp_path / "l.sqlite", dataset_id="t", cap=Budget(5.0, 1e-6))
    gen = DPVAE(epsilon=5.0, delta=DELTA, **FAST)
    with pytest.raises(BudgetExceeded, match="were already spent"):
        gen.fit(df, schema, SpendsInBetween(ledger))
    assert not hasattr(gen, "vae_")  # nothing was trained
    reserves = [e for e in ledger.entries() if e["kind"] == "reserve"]
    assert [r["purpose"] for r in reserves] == [
        "DPVAE fit: domains and row count",
        "another process",
    ]


def test_dpctgan_splits_its_gaussian_measurements_by_cells(table):
    """DPCTGAN's histograms: one zCDP charge per column, then one per column pair, each
    group's rho proportional to its cells^(2/3) (OpenDP may round each a hair down), the
    1-way ones summing to measure_share and the pairs to pair_share of the zCDP budget that
    (epsilon, delta) allows -- together the single ZCDP the plan reserved for them."""
    df, schema = table
    gen = GENERATORS[IDS.index("DPCTGAN")](epsilon=5.0, delta=DELTA, **FAST).fit(df, schema)
    rhos = np.array([e.rho for e in gen.charges_ if isinstance(e, ZCDP)])
    sizes = np.asarray(gen.blocks_.sizes, dtype=float)
    d = len(sizes)
    groups = [int(coarse_groups(f, gen.pair_groups).max()) + 1 for f in gen.frequencies_]
    pair_cells = np.array([groups[i] * groups[j] for i in range(d) for j in range(i + 1, d)])
    assert len(rhos) == d + d * (d - 1) // 2 and d > 1
    rho = rho_for_epsilon(5.0, DELTA)
    for part, cells, share in ((rhos[:d], sizes, 0.2), (rhos[d:], pair_cells, 0.6)):
        ratio = part / cells ** (2 / 3)
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-3)
        assert part.sum() <= share * rho and part.sum() == pytest.approx(share * rho, rel=1e-3)
    assert [e.rho for e in gen.planned_ if isinstance(e, ZCDP)] == [pytest.approx(0.8 * rho)]


def test_dpctgan_without_pairs_or_with_one_column_spends_the_plan_on_1_way(table):
    df, schema = table
    small = dict(embedding_dim=4, generator_hidden=(8,), discriminator_hidden=(8,), **FAST)
    rho = rho_for_epsilon(5.0, DELTA)
    gen = DPCTGAN(epsilon=5.0, delta=DELTA, pair_share=0.0, **small).fit(df, schema)
    zcdp = [e.rho for e in gen.charges_ if isinstance(e, ZCDP)]
    assert len(zcdp) == len(schema.names) and gen.pairs_ is None
    assert sum(zcdp) == pytest.approx(0.2 * rho, rel=1e-3)
    one = Schema.from_dict({"version": 1, "columns": {"x": schema.to_dict()["columns"]["x"]}})
    gen = DPCTGAN(epsilon=5.0, delta=DELTA, **small).fit(df[["x"]], one)
    (only,) = [e.rho for e in gen.charges_ if isinstance(e, ZCDP)]
    assert only == pytest.approx(0.8 * rho, rel=1e-3) and gen.pairs_ is None


def test_dpctgan_learns_a_link_its_pair_measurement_holds(table):
    """x and y are equal in every row. Independent columns would make them equal a quarter
    of the time; the (x, y) measurement at epsilon 5 has noise sd about 10 against ~750 rows
    per diagonal cell, and the pairs' KL term pulls the generator there (0.99 in a trial run;
    0.24 with pair_share=0, where the ~180 discriminator steps alone teach it nothing)."""
    df, schema = table
    torch.manual_seed(0)
    gen = DPCTGAN(
        epsilon=5.0,
        delta=DELTA,
        embedding_dim=8,
        generator_hidden=(32,),
        discriminator_hidden=(16,),
        epochs=30,
        batch_size=500,
        lr=3e-3,
        device="cpu",
    ).fit(df, schema)
    out = gen.sample(3000, seed=0)
    assert (out["x"] == out["y"]).mean() > 0.8


def test_an_empty_poisson_sample_still_takes_a_noised_step():
    # Rate 1e-9 over 10 rows: every sample is empty (P(non-empty) ~ 1e-8), yet each step must
    # add noise and be counted, as the accountant assumes.
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    before = [p.detach().clone() for p in model.parameters()]
    plan = SGDPlan(1e-9, 1.0, 3, 5.0)
    taken = train_dp(
        model,
        lambda m, x: m(x).squeeze(1) ** 2,
        torch.ones(10, 3),
        plan,
        max_grad_norm=1.0,
        lr=0.1,
        device=torch.device("cpu"),
    )
    assert taken == 3
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert opacus_epsilon(plan, taken, DELTA) > 0


@pytest.mark.parametrize("mode", GRAD_SAMPLE_MODES)
def test_each_row_moves_the_noiseless_sum_by_at_most_the_clipping_norm(mode):
    # With a vanishing noise multiplier the optimizer's gradient is sum(clipped)/B; one row
    # with a huge gradient contributes at most max_grad_norm = 1 to the sum (norm <= 1/B).
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1, bias=False)
    grads = []
    seen = []

    def loss(m, x):
        seen.append(len(x))
        return 1e6 * m(x).squeeze(1) ** 2

    class Capture(torch.optim.SGD):
        def step(self, closure=None):
            grads.append(self.param_groups[0]["params"][0].grad.detach().clone())

    data = torch.full((1, 4), 10.0)
    plan = SGDPlan(1.0, 1e-12, 1, 2.0)
    orig = torch.optim.Adam
    torch.optim.Adam = lambda params, lr: Capture(params, lr=lr)  # noqa: E731
    try:
        train_dp(
            model,
            loss,
            data,
            plan,
            max_grad_norm=1.0,
            lr=0.1,
            grad_sample_mode=mode,
            device=torch.device("cpu"),
        )
    finally:
        torch.optim.Adam = orig
    assert seen == [1]
    assert float(grads[0].norm()) == pytest.approx(0.5, rel=1e-4)


def test_dp_sgd_randomness_ignores_the_global_torch_seed():
    """Poisson sampling and gradient noise come from OS-entropy generators: two fits after the
    same torch.manual_seed must still train different weights (a fixed global seed would make
    the noise reproducible by anyone who knows it)."""
    import torch
    from torch import nn

    from privsynth.generators.dpsgd.privacy import SGDPlan
    from privsynth.generators.dpsgd.train import train_dp

    data = torch.ones(200, 3)

    def fit_once():
        torch.manual_seed(0)
        module = nn.Linear(3, 1)
        train_dp(
            module,
            lambda m, b: (m(b) ** 2).squeeze(1),
            data,
            SGDPlan(0.1, 1.0, 3, 20.0),
            max_grad_norm=1.0,
            lr=0.1,
            device=torch.device("cpu"),
        )
        return torch.cat([p.detach().flatten() for p in module.parameters()])

    assert not torch.equal(fit_once(), fit_once())


def test_every_clipping_mode_trains_the_same_weights_from_the_same_randomness(monkeypatch):
    """Book-keeping, ghost and hooks compute the same clipped sums, so with the sampler and
    the noise generators seeded alike (here: fixed, for the test only) 20 DP-SGD steps of a
    DPVAE network end at the same weights. They move by ~0.2; float32 rounding differences
    stay below 1e-5."""
    import copy

    import privsynth.generators.dpsgd.train as dpsgd
    from privsynth.generators.dpsgd.dpvae import _VAE

    monkeypatch.setattr(dpsgd.secrets, "randbits", lambda k: 12345)
    torch.manual_seed(0)
    net = _VAE(30, (16,), 4)
    data = (torch.rand(3000, 30, generator=torch.Generator().manual_seed(1)) < 0.2).float()

    def loss(m, x):
        noise = torch.randn(len(x), 4, generator=torch.Generator().manual_seed(len(x)))
        logits, mu, logvar = m(x, noise)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)
        return ((logits - x) ** 2).sum(dim=1) + kl

    plan = SGDPlan(0.1, 2.0, 20, 300.0)
    trained = {}
    for mode in GRAD_SAMPLE_MODES:
        model = copy.deepcopy(net)
        train_dp(
            model,
            loss,
            data,
            plan,
            max_grad_norm=13.0,  # about the median row norm: some rows are clipped, some not
            lr=1e-2,
            grad_sample_mode=mode,
            device=torch.device("cpu"),
        )
        trained[mode] = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    start = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    assert float((trained["ghost"] - start).abs().max()) > 0.05
    for mode in GRAD_SAMPLE_MODES:
        torch.testing.assert_close(trained[mode], trained["ghost"], rtol=0, atol=1e-5)
