"""What the DP-SGD generators (:mod:`~privsynth.generators.dpvae`,
:mod:`~privsynth.generators.dpctgan`) share: a DP-safe tabular transform, the Opacus training
loop and the fit/sample/save flow.

Transform. Every column is encoded by :class:`privsynth.domain.Encoder` from the schema alone
(public or DP-learned domains): a category becomes its index, a number the index of its public
bin. The network sees one one-hot block per column; no min/max, category list or mixture model
is ever fitted on the private rows. Sampling draws a code per block from the network's softmax
and decodes it with the encoder (a number is drawn uniformly inside its bin).

Privacy flow of :meth:`DPSGDGenerator.fit` (DESIGN.md, "Reserve before reading"):

1. refuse data-dependent domains unless opted in; plan the *fixed* charges (domain discovery,
   and the generator's pre-training measurement: the row count, or 1-way frequencies) and
   ``ledger.check`` them together with a stand-in for DP-SGD -- ZCDP(rho) with rho the rest of
   (epsilon, delta) -- before the data is read;
2. validate; reserve the fixed charges; learn undeclared domains; encode; measure (through
   :mod:`privsynth.mechanisms`);
3. post-processing of the noisy row count N^: q = min(1, batch_size / N^),
   steps = ceil(epochs / q), and the smallest sigma such that the fixed charges and
   SubsampledGaussian(q, sigma, steps) compose to at most (epsilon, delta) by the ledger's
   accountant;
4. reserve that SubsampledGaussian (a second reservation; if another process took the budget
   in between, BudgetExceeded says that the fixed charges were spent), train with Poisson
   sampling at rate q, check that Opacus' own accountant puts the steps taken within the
   reservation, commit both.

Why choosing (q, sigma, steps) after a DP measurement is sound: they are functions of DP
outputs only, and RDP composition with adaptively chosen parameters is valid as long as the
total is fixed in advance (Feldman & Zrnic 2021, "Individual privacy accounting via a Renyi
filter", Thm. 3.1: a filter that stops before the fixed RDP total is exceeded). Here every
parameter is chosen so that the composed total stays within the (epsilon, delta) fixed before
the data was read, so the whole fit is (epsilon, delta)-DP.

Known deviation (stated in every privacy spec): the DP-SGD gradient noise is drawn by Opacus
with torch's generator, not by OpenDP's CSPRNG; Opacus' secure mode is off because
``torchcsprng`` is not available for this torch. Counts and frequencies still go through
:mod:`privsynth.mechanisms`.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import torch
from torch import nn

from privsynth.budget.accounting import (
    PRV_EPS_ERROR,
    SG_ORDERS,
    ZCDP,
    ApproxZCDP,
    PrivacyEvent,
    SubsampledGaussian,
    as_rational,
    epsilon_spent,
    epsilon_spent_exact,
    event_from_dict,
    event_to_dict,
    rho_for_epsilon,
)
from privsynth.device import resolve_device
from privsynth.discovery import clipped_shares, custodian_notes, discover_domains, plan_discovery
from privsynth.encoding import Encoder
from privsynth.errors import BudgetExceeded, ConfigError, PrivsynthError
from privsynth.generators.base import MarginalGenerator, check_budget_params, split_budget
from privsynth.generators.clipping import BookkeepingClipper
from privsynth.schema import Schema
from privsynth.sources import FrameSource

log = logging.getLogger("privsynth.generators")

FORMAT = "privsynth-dpsgd-model"
FORMAT_VERSION = 1
#: Who clips each row's gradient, per ``grad_sample_mode`` (stated in the privacy spec).
CLIPPING = {
    "bookkeeping": "privsynth book-keeping clipping (one backward pass, nn.Linear layers)",
    "ghost": "Opacus ghost clipping (two backward passes)",
    "hooks": "Opacus per-sample gradients (hooks)",
}
GRAD_SAMPLE_MODES = tuple(CLIPPING)
IMPLEMENTATION_HAZARD = {
    "hazard": "DP-SGD gradient noise sampler (Mironov 2012; Jin et al. 2022)",
    "status": "NOT mitigated",
    "how": (
        "DP-SGD gradient noise is drawn by Opacus from torch's pseudo-random generator, not by "
        "OpenDP's CSPRNG: Opacus secure_mode is off because torchcsprng is unavailable for "
        "this torch, and floating-point Gaussian sampling is not hardened. Row counts and "
        "category frequencies are noised by OpenDP."
    ),
}


# ----------------------------------------------------------------- transform
class OneHotBlocks:
    """Encoded rows (integer codes, one column per schema column) <-> one-hot blocks.

    Built from the encoder's public domain sizes only. Per-block softmaxes are computed for
    all blocks at once, with sums over blocks as a product with the ``(width, columns)``
    block-membership matrix: slicing block by block cost DPCTGAN more time than its
    networks (each slice's gradient is a zero-filled full-width tensor).
    """

    def __init__(self, sizes: list[int]) -> None:
        self.sizes = list(sizes)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        #: Each one-hot cell's column (block) index.
        self.block_of = torch.from_numpy(np.repeat(np.arange(len(self.sizes)), self.sizes))
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def width(self) -> int:
        return int(self.offsets[-1])

    def _index(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Each cell's block and the membership matrix, on ``device`` (kept per device)."""
        if device not in self._on:
            block_of = self.block_of.to(device)
            member = torch.zeros(self.width, len(self.sizes), device=device)
            member[torch.arange(self.width, device=device), block_of] = 1.0
            self._on[device] = (block_of, member)
        return self._on[device]

    def _slices(self) -> list[slice]:
        return [slice(a, b) for a, b in zip(self.offsets[:-1], self.offsets[1:], strict=True)]

    @torch.no_grad()
    def argmax(self, x: torch.Tensor) -> torch.Tensor:
        """Each block's index of its largest entry: ``(rows, columns)`` codes."""
        return torch.stack([x[:, s].argmax(dim=1) for s in self._slices()], dim=1)

    def log_softmax(self, logits: torch.Tensor) -> torch.Tensor:
        """Each block's log-softmax, side by side like ``logits``."""
        block_of, member = self._index(logits.device)
        with torch.no_grad():  # a per-block shift, for stability only: it cancels out
            top = torch.stack([logits[:, s].amax(dim=1) for s in self._slices()], dim=1)
        shifted = logits - top.index_select(1, block_of)
        log_sums = torch.log(torch.exp(shifted) @ member)
        return shifted - log_sums.index_select(1, block_of)

    def one_hot(self, codes: torch.Tensor) -> torch.Tensor:
        """``(rows, columns)`` integer codes -> ``(rows, width)`` one-hot rows."""
        offsets = torch.from_numpy(self.offsets[:-1]).to(codes.device)
        out = torch.zeros(len(codes), self.width, device=codes.device)
        return out.scatter_(1, codes + offsets, 1.0)

    def transform(self, codes: np.ndarray) -> torch.Tensor:
        return self.one_hot(torch.from_numpy(np.asarray(codes, dtype=np.int64)))

    def block_cross_entropy(self, logits: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        """Per-row sum over columns of the cross-entropy of each block's softmax."""
        return -(self.log_softmax(logits) * onehot).sum(1)

    def sample_codes(self, logits: torch.Tensor, rng: np.random.Generator) -> np.ndarray:
        """One code per block drawn from its softmax, by inverse CDF with ``rng``."""
        out = np.empty((len(logits), len(self.sizes)), dtype=np.int64)
        for j, (a, b) in enumerate(zip(self.offsets[:-1], self.offsets[1:], strict=True)):
            p = torch.softmax(logits[:, a:b].double(), dim=1).cpu().numpy()
            cdf = np.cumsum(p, axis=1)
            u = rng.random((len(p), 1)) * cdf[:, -1:]
            out[:, j] = np.minimum((cdf < u).sum(axis=1), b - a - 1)
        return out


# ---------------------------------------------------------------- DP-SGD loop
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
#: in closed form; the fractional orders of :data:`SG_ORDERS` cost ~0.3 s per sigma).
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

    A pure function of its arguments, so it is cached (the accountant's curves cost ~1 s per
    sigma; :func:`plan_sgd` puts the sample rate on a grid so that refits hit the cache).
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


PerSampleLoss = Callable[[nn.Module, torch.Tensor], torch.Tensor]


def train_dp(
    module: nn.Module,
    per_sample_loss: PerSampleLoss,
    data: torch.Tensor,
    plan: SGDPlan,
    *,
    max_grad_norm: float,
    lr: float,
    grad_sample_mode: str = "bookkeeping",
    device: torch.device,
    after_step: Callable[[nn.Module], None] | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> int:
    """Train ``module`` with DP-SGD (Opacus) for ``plan.steps`` steps; return the number of
    noised steps taken (counted by the optimizer's step hook).

    Each step draws a Poisson sample of ``data`` (every row independently with probability
    ``plan.sample_rate``), computes ``per_sample_loss(wrapped_module, batch)``, clips each
    row's gradient to ``max_grad_norm`` (``grad_sample_mode``: privsynth's one-pass
    book-keeping clipping for networks of linear layers, :mod:`.clipping`; Opacus' ghost
    clipping; or Opacus' per-sample hooks), adds Gaussian
    noise of sd ``noise_multiplier * max_grad_norm`` to the sum and divides it by the public
    ``expected_batch_size``; an empty sample still takes a noise-only step.
    ``after_step(wrapped_module)`` runs after each step (e.g. a GAN generator update:
    post-processing).
    """
    from opacus.grad_sample import GradSampleModule, GradSampleModuleFastGradientClipping
    from opacus.optimizers import DPOptimizer, DPOptimizerFastGradientClipping
    from opacus.validators import ModuleValidator

    ModuleValidator.validate(module, strict=True)  # e.g. no BatchNorm in DP-trained parts
    base_opt = torch.optim.Adam(module.parameters(), lr=lr)
    # The subsampling and the gradient noise must be secret: draw them from generators seeded
    # with OS entropy, never from torch's global generator, which a caller's
    # torch.manual_seed(...) would make reproducible by anyone who knows the seed.
    sampler = torch.Generator().manual_seed(secrets.randbits(63))
    noise = {
        "noise_multiplier": plan.noise_multiplier,
        "max_grad_norm": max_grad_norm,
        "expected_batch_size": plan.expected_batch_size,
        "loss_reduction": "mean",
        "generator": torch.Generator(device=device).manual_seed(secrets.randbits(63)),
    }
    if grad_sample_mode == "bookkeeping":
        # privsynth clips (one backward pass); Opacus' optimizer noises and scales the sum
        wrapped = BookkeepingClipper(module, max_grad_norm)
        opt = DPOptimizerFastGradientClipping(base_opt, **noise)
    elif grad_sample_mode == "ghost":
        wrapped = GradSampleModuleFastGradientClipping(
            module, batch_first=True, loss_reduction="mean", max_grad_norm=max_grad_norm
        )
        opt = DPOptimizerFastGradientClipping(base_opt, **noise)
    else:
        wrapped = GradSampleModule(module, batch_first=True, loss_reduction="mean")
        opt = DPOptimizer(base_opt, **noise)
    taken = 0

    def count(_: Any) -> None:
        nonlocal taken
        taken += 1

    opt.attach_step_hook(count)
    for step in range(plan.steps):
        batch = data[torch.rand(len(data), generator=sampler) < plan.sample_rate].to(device)
        value = _dp_step(wrapped, opt, per_sample_loss, batch, grad_sample_mode)
        if after_step is not None:
            after_step(wrapped)
        if progress is not None:
            progress(step + 1, value)
    wrapped.remove_hooks()
    return taken


def _dp_step(
    wrapped: nn.Module, opt: Any, per_sample_loss: PerSampleLoss, batch: torch.Tensor, mode: str
) -> float:
    """One noised step on ``batch``; returns its mean loss (nan for an empty batch)."""
    from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping

    opt.zero_grad(set_to_none=True)
    value = float("nan")
    if len(batch):
        with warnings.catch_warnings():
            # Opacus' backward hooks fire although the inputs need no gradient: expected.
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            losses = per_sample_loss(wrapped, batch)
            if mode == "bookkeeping":
                wrapped.clipped_backward(losses)
            elif mode == "ghost":
                DPTensorFastGradientClipping(wrapped, opt, losses).backward()
            else:
                losses.mean().backward()
        value = float(losses.detach().mean())
    else:  # nothing to clip: the step releases noise only
        for p in opt.params:
            p.grad = torch.zeros_like(p)
            p.grad_sample = torch.zeros((0, *p.shape), device=p.device)
    opt.step()
    return value


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


# ------------------------------------------------------------ the generators
class DPSGDGenerator(ABC):
    """Shared fit/sample/save flow of the DP-SGD generators.

    Subclasses define the networks (:meth:`_build`), the per-row loss and training
    (:meth:`_train`), how rows are drawn (:meth:`_logits`) and what is measured with
    :mod:`privsynth.mechanisms` before training (:meth:`_measure_plan`, :meth:`_measure`).
    """

    name: ClassVar[str]
    #: File name :meth:`save` is given in a release folder.
    model_file: ClassVar[str] = "model.safetensors"
    #: Parameters of ``__init__`` saved with the model (besides epsilon and delta).
    param_names: ClassVar[tuple[str, ...]] = (
        "epochs",
        "batch_size",
        "lr",
        "max_grad_norm",
        "discovery_share",
        "measure_share",
        "grad_sample_mode",
    )

    def __init__(
        self,
        epsilon: float = 1.0,
        delta: float = 1e-9,
        *,
        epochs: float = 10,
        batch_size: int = 2000,
        lr: float = 2e-3,
        max_grad_norm: float = 1.0,
        device: str = "auto",
        discovery_share: float = 0.1,
        measure_share: float = 0.02,
        grad_sample_mode: str = "bookkeeping",
        allow_data_dependent_domain: bool = False,
        verbose: bool = False,
    ) -> None:
        self.epsilon = epsilon
        self.delta = delta
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.max_grad_norm = max_grad_norm
        self.device = device
        self.discovery_share = discovery_share
        self.measure_share = measure_share
        self.grad_sample_mode = grad_sample_mode
        self.allow_data_dependent_domain = allow_data_dependent_domain
        self.verbose = verbose

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        check_budget_params(self.epsilon, self.delta, self.discovery_share)
        positive = {
            "epochs": self.epochs,
            "lr": self.lr,
            "max_grad_norm": self.max_grad_norm,
        }
        for name, v in positive.items():
            if not (isinstance(v, (int, float)) and 0 < v < float("inf")):
                raise ConfigError(f"{name} ({v!r}) must be a finite number > 0")
        if isinstance(self.batch_size, bool) or int(self.batch_size) != self.batch_size:
            raise ConfigError(f"batch_size ({self.batch_size!r}) must be an integer >= 2")
        if self.batch_size < 2:
            raise ConfigError(f"batch_size ({self.batch_size!r}) must be an integer >= 2")
        if not 0 < self.measure_share < 1:
            raise ConfigError(f"measure_share ({self.measure_share!r}) must be in (0, 1)")
        if self.discovery_share + self.measure_share >= 1:
            raise ConfigError(
                f"discovery_share + measure_share ({self.discovery_share} + "
                f"{self.measure_share}) must leave budget for training (< 1)"
            )
        if self.grad_sample_mode not in GRAD_SAMPLE_MODES:
            raise ConfigError(
                f"grad_sample_mode ({self.grad_sample_mode!r}) must be one of {GRAD_SAMPLE_MODES}"
            )
        resolve_device(self.device)

    # ------------------------------------------------------------------- plan
    def plan(self, schema: Schema) -> list[PrivacyEvent]:
        """The charges fixed before data is read (domain discovery, the measurement) and, last,
        a stand-in for DP-SGD: ZCDP with the rest of (epsilon, delta). The DP-SGD charge that
        is reserved replaces the stand-in once the noisy row count fixes (q, sigma, steps)."""
        fixed, _ = self._fixed(schema)
        return [*fixed, self._stand_in(fixed)]

    def _fixed(self, schema: Schema) -> tuple[list[PrivacyEvent], tuple[float, float]]:
        self._check_params()
        b = split_budget(self.epsilon, self.delta, schema, self.discovery_share)
        discovery = plan_discovery(schema, rho=b.discovery_rho, delta=b.discovery_delta)
        measure = self._measure_plan()
        return [*discovery, *measure], (b.discovery_rho, b.discovery_delta)

    def _stand_in(self, fixed: list[PrivacyEvent]) -> ZCDP:
        rho = rho_for_epsilon(self.epsilon, self.delta, alongside=fixed)
        if rho <= 0:
            raise ConfigError(
                f"epsilon ({self.epsilon}) is used up by domain discovery and the row count; "
                "declare the domains or raise epsilon"
            )
        return ZCDP(rho)

    # -------------------------------------------------------------------- fit
    def fit(self, data: pd.DataFrame, schema: Schema, ledger: Any = None) -> Self:
        """Fit on ``data`` under ``schema``, charging ``ledger`` (if given) before any DP step.

        Raises
        ------
        SchemaError
            Data-dependent domains without the opt-in, or a schema that does not fit the data.
        BudgetExceeded
            The ledger cannot afford :meth:`plan` (raised before the data is read), or, at the
            second reservation, another process spent the budget in between.
        DataError
            Values that break the schema.
        """
        caveats = schema.release_caveats(
            allow_data_dependent_domain=self.allow_data_dependent_domain
        )
        fixed, (disc_rho, disc_delta) = self._fixed(schema)
        if ledger is not None:
            ledger.check([*fixed, self._stand_in(fixed)])  # refuses before the data is touched
        clean, _ = schema.validate(data)
        first = (
            ledger.reserve(fixed, purpose=f"{self.name} fit: domains and row count")
            if ledger is not None
            else None
        )
        spent: list[PrivacyEvent] = []
        learned = schema
        notes: list[str] = []
        if schema.undeclared_columns():
            learned, spent = discover_domains(clean, schema, rho=disc_rho, delta=disc_delta)
            notes = custodian_notes(clipped_shares(FrameSource(clean), schema, learned))
            clean, _ = learned.validate(data)  # values too rare to learn become "(other)"
        encoder = Encoder(learned)
        codes = encoder.encode(clean)
        blocks = OneHotBlocks(list(encoder.shape.values()))
        n_hat, measured = self._measure(codes, blocks)
        spent += measured
        plan = plan_sgd(
            n_hat,
            batch_size=int(self.batch_size),
            epochs=self.epochs,
            alongside=fixed,
            epsilon=self.epsilon,
            delta=self.delta,
        )
        second = self._reserve_sgd(ledger, plan, first)
        device = resolve_device(self.device)
        self.blocks_ = blocks
        self._build(blocks.width, device)
        with _Progress(self.verbose, plan, fixed, self.delta, self.name) as progress:
            taken = self._train(blocks.transform(codes), plan, device, progress)
        spent.append(SubsampledGaussian(plan.sample_rate, plan.noise_multiplier, taken))
        planned = [*fixed, plan.event]
        MarginalGenerator._check_within(spent, planned)
        opacus_eps = self._check_opacus(plan, taken)
        self.custodian_notes_ = notes
        self.schema_ = learned
        self.encoder_ = encoder
        self.caveats_ = caveats
        self.charges_ = spent
        self.planned_ = planned
        self.n_rows_ = max(0, int(round(n_hat)))
        self.sgd_ = {**asdict(plan), "steps_taken": taken, "opacus_epsilon": opacus_eps}
        if ledger is not None:
            first.commit(metadata={"charges": len(spent) - 1})
            second.commit(metadata={"steps_taken": taken, "opacus_epsilon": opacus_eps})
            self.ledger_entry_ = {
                "reservation": second.id,
                "reservations": [first.id, second.id],
                "head": ledger.head(),
            }
        return self

    def _reserve_sgd(self, ledger: Any, plan: SGDPlan, first: Any) -> Any:
        if ledger is None:
            return None
        try:
            return ledger.reserve(
                [plan.event], purpose=f"{self.name} fit: DP-SGD", metadata=self._params()
            )
        except BudgetExceeded as exc:
            raise BudgetExceeded(
                f"{exc} The charges for domains and the row count (reservation {first.id}) "
                "were already spent; the budget was taken by another spend after this fit "
                "checked it. Nothing was trained or released."
            ) from exc

    def _check_opacus(self, plan: SGDPlan, taken: int) -> float:
        """Opacus' accountants, on their own code path, must put the steps taken within the
        reserved event (the ledger's routes are the same computations padded up, so <= holds
        exactly when nothing went wrong)."""
        theirs = opacus_epsilon(plan, taken, self.delta)
        ours = epsilon_spent(plan.event, self.delta)
        if not theirs <= ours:
            raise PrivsynthError(
                f"internal accounting error: Opacus' accountant gives epsilon {theirs} for "
                f"{taken} DP-SGD steps, more than the reserved {ours}; nothing was released. "
                "Please report this."
            )
        return theirs

    # ---------------------------------------------------------- subclass hooks
    @abstractmethod
    def _measure_plan(self) -> list[PrivacyEvent]:
        """Charges of :meth:`_measure`, from the parameters alone (before the data is read)."""

    @abstractmethod
    def _measure(self, codes: np.ndarray, blocks: OneHotBlocks) -> tuple[float, list[PrivacyEvent]]:
        """DP measurements before training; return the DP row estimate and the charges."""

    @abstractmethod
    def _build(self, width: int, device: torch.device) -> None:
        """Create the networks for one-hot rows of ``width``."""

    @abstractmethod
    def _train(
        self,
        data: torch.Tensor,
        plan: SGDPlan,
        device: torch.device,
        progress: Callable[[int, float], None],
    ) -> int:
        """Train with :func:`train_dp`; return the number of noised steps."""

    @abstractmethod
    def _logits(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        """Block logits of ``n`` synthetic rows (post-processing)."""

    @abstractmethod
    def _modules(self) -> dict[str, nn.Module]:
        """The trained networks by name (saved and loaded)."""

    @abstractmethod
    def _state(self) -> dict:
        """Fitted state besides the weights, JSON-ready (saved in the file's header)."""

    @abstractmethod
    def _load_state(self, state: dict) -> None:
        """Restore what :meth:`_state` wrote."""

    # ----------------------------------------------------------------- sample
    def _check_fitted(self) -> None:
        if not hasattr(self, "encoder_"):
            raise ConfigError(f"this {self.name} is not fitted yet; call fit(data, schema) first")

    def sample(
        self, n: int | None = None, *, seed: int | np.random.Generator | None = None
    ) -> pd.DataFrame:
        """Draw ``n`` synthetic rows (default: the DP estimate of the row count) in the
        schema's value space. Post-processing: costs no privacy budget."""
        self._check_fitted()
        if n is None:
            n = self.n_rows_
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ConfigError(f"n ({n!r}) must be a non-negative integer")
        rng = np.random.default_rng(seed)
        with torch.no_grad():
            logits = self._logits(int(n), rng)
        return self.encoder_.decode(self.blocks_.sample_codes(logits, rng), seed=rng)

    # ----------------------------------------------------------------- report
    def _params(self) -> dict:
        return {
            "generator": self.name,
            "epsilon": self.epsilon,
            "delta": self.delta,
            **{k: getattr(self, k) for k in self.param_names},
        }

    def privacy_spec(self) -> dict:
        """The DP statement of this fit: parameters, every planned and spent charge, the
        DP-SGD parameters, Opacus' epsilon for the steps taken, caveats and hazards."""
        self._check_fitted()
        return {
            "generator": self.name,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "neighbouring_relation": "add/remove one row",
            "unit_of_privacy": self.schema_.unit_of_privacy,
            "definition": (
                "approximate DP: DP-SGD (Poisson-subsampled Gaussian, RDP/PRV) composed with "
                "the counting mechanisms by the ledger accountant"
            ),
            "noise": (
                "OpenDP 0.16 samplers for counts and domains; Opacus (torch generator, "
                "secure_mode off) for DP-SGD gradients"
            ),
            "planned_charges": [event_to_dict(e) for e in self.planned_],
            "charges": [event_to_dict(e) for e in self.charges_],
            "epsilon_spent": epsilon_spent(self.charges_, self.delta),
            "caveats": list(self.caveats_),
            "implementation_hazards": [IMPLEMENTATION_HAZARD],
            "sample_rate": self.sgd_["sample_rate"],
            "noise_multiplier": self.sgd_["noise_multiplier"],
            "steps": self.sgd_["steps_taken"],
            "max_grad_norm": self.max_grad_norm,
            "clipping": CLIPPING[self.grad_sample_mode],
            "opacus_epsilon": self.sgd_["opacus_epsilon"],
        }

    # ------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write one ``.safetensors`` file: the weights, and in its header the JSON metadata
        (format, versions, parameters, schema, charges, privacy spec). No pickle."""
        from safetensors.torch import save_file

        from privsynth import __version__

        self._check_fitted()
        doc = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "privsynth_version": __version__,
            "params": self._params(),
            "schema": self.schema_.to_dict(),
            "caveats": self.caveats_,
            "planned_charges": [event_to_dict(e) for e in self.planned_],
            "charges": [event_to_dict(e) for e in self.charges_],
            "sgd": self.sgd_,
            "n_rows": self.n_rows_,
            "state": self._state(),
            "privacy_spec": self.privacy_spec(),
        }
        tensors = {
            f"{name}.{k}": v.detach().cpu().contiguous()
            for name, m in self._modules().items()
            for k, v in m.state_dict().items()
        }
        save_file(tensors, str(path), metadata={"privsynth": json.dumps(doc)})

    @classmethod
    def load(cls, path: str | Path, *, device: str = "auto") -> Self:
        """Read a model written by :meth:`save`; refuses other formats and generators."""
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as fh:
                doc = json.loads((fh.metadata() or {}).get("privsynth", "{}"))
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        except (OSError, ValueError, SafetensorError) as exc:
            raise ConfigError(f"cannot read model file {path}: {exc}") from exc
        if doc.get("format") != FORMAT or doc.get("format_version") != FORMAT_VERSION:
            raise ConfigError(
                f"{path} is not a privsynth DP-SGD model of format version {FORMAT_VERSION} "
                f"(found {doc.get('format')!r} {doc.get('format_version')!r})"
            )
        params = dict(doc["params"])
        if params.pop("generator") != cls.name:
            raise ConfigError(f"{path} holds a {doc['params']['generator']} model, not {cls.name}")
        self = cls(**params, device=device)
        self.schema_ = Schema.from_dict(doc["schema"])
        self.encoder_ = Encoder(self.schema_)
        self.blocks_ = OneHotBlocks(list(self.encoder_.shape.values()))
        self.caveats_ = list(doc["caveats"])
        self.planned_ = [event_from_dict(e) for e in doc["planned_charges"]]
        self.charges_ = [event_from_dict(e) for e in doc["charges"]]
        self.sgd_ = dict(doc["sgd"])
        self.n_rows_ = int(doc["n_rows"])
        self._load_state(doc["state"])
        dev = resolve_device(device)
        self._build(self.blocks_.width, dev)
        for name, m in self._modules().items():
            prefix = f"{name}."
            state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            try:
                m.load_state_dict(state)
            except RuntimeError as exc:  # e.g. a network written by another privsynth version
                raise ConfigError(
                    f"{path}: its {name} weights do not fit this privsynth's {cls.name} network "
                    f"(written by privsynth {doc.get('privsynth_version')!r}); refit the model"
                ) from exc
            m.to(dev).eval()
        return self


def mlp(d_in: int, hidden: tuple[int, ...], d_out: int, slope: float = 0.0) -> nn.Sequential:
    """Linear layers with (leaky) ReLU between them; no normalisation layers."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(d_in, h), nn.LeakyReLU(slope) if slope else nn.ReLU()]
        d_in = h
    layers.append(nn.Linear(d_in, d_out))
    return nn.Sequential(*layers)


def check_hidden(hidden: Any) -> tuple[int, ...]:
    """``hidden`` as a tuple of positive layer widths, or ConfigError."""
    try:
        out = tuple(int(h) for h in hidden)
    except (TypeError, ValueError):
        out = ()
    if not out or any(h < 1 for h in out) or list(out) != list(hidden):
        raise ConfigError(f"hidden ({hidden!r}) must be a non-empty list of positive integers")
    return out


class _Progress:
    """A rich progress bar (epoch, loss, epsilon so far) when ``verbose``; else nothing.

    "Epsilon so far" is the ledger accountant's composition of the fixed charges and the
    DP-SGD steps taken; it costs about a second, so it is updated ten times per fit.
    """

    def __init__(
        self,
        verbose: bool,
        plan: SGDPlan,
        fixed: list[PrivacyEvent],
        delta: float,
        name: str,
    ) -> None:
        self.verbose, self.plan, self.fixed, self.delta, self.name = (
            verbose,
            plan,
            fixed,
            delta,
            name,
        )
        self.every = max(1, plan.steps // 10)

    def __enter__(self) -> Callable[[int, float], None]:
        if not self.verbose:
            return lambda step, loss: None
        from rich.progress import Progress

        self.bar = Progress(*Progress.get_default_columns(), "{task.fields[info]}")
        self.bar.start()
        self.task = self.bar.add_task(f"{self.name} DP-SGD", total=self.plan.steps, info="")
        return self.update

    def update(self, step: int, loss: float) -> None:
        if step % self.every and step != self.plan.steps:
            return
        p = self.plan
        eps = epsilon_spent(
            [*self.fixed, SubsampledGaussian(p.sample_rate, p.noise_multiplier, step)], self.delta
        )
        info = f"epoch {step * p.sample_rate:.1f} loss {loss:.3f} epsilon {eps:.3f}"
        self.bar.update(self.task, completed=step, info=info)
        log.info("%s step %d: %s", self.name, step, info)

    def __exit__(self, *exc: object) -> None:
        if self.verbose:
            self.bar.stop()
