"""DP-CTGAN: a conditional GAN after CTGAN (Xu et al. 2019, arXiv 1907.00503) whose
discriminator is trained with DP-SGD; the generator only ever sees the discriminator's
outputs and DP measurements, so its updates are post-processing.

The mechanism:

1. measure every column's 1-way histogram with Gaussian noise (``measure_share`` of the
   zCDP budget, split over the columns by cells^(2/3)); their totals give the DP row
   estimate, and each noisy histogram
   projected onto the non-negative vectors of that total (:func:`project_counts`) gives the
   frequencies the conditional vectors are drawn from (post-processing);
2. measure every column pair's 2-way marginal with Gaussian noise (``pair_share`` of the
   zCDP budget, split over the pairs by cells^(2/3)) on coarse groups of each column's values:
   runs of adjacent values holding at least 1/``pair_groups`` of the rows by the step-1
   frequencies (:mod:`~privsynth.generators.dpsgd.marginal_targets`);
3. train (DP-SGD on the discriminator only): each step the discriminator sees a Poisson sample
   of real one-hot rows and a fixed number (the public expected batch size) of generated rows,
   each next to its conditional vector, with the usual logistic GAN loss. A real row's
   conditional vector is its own value in a uniformly drawn column; a generated row's is the
   one it was generated from (a column drawn uniformly, a value by its noisy frequency), so
   both follow the same distribution. Each row's gradient is clipped, so one real row moves
   the noised sum by at most ``max_grad_norm``; generated rows depend only on earlier DP
   outputs and fresh noise, so they do not add sensitivity;
4. after every discriminator step, ``generator_steps`` generator steps (free:
   post-processing): the generator gets noise and a conditional vector and is trained to fool
   the discriminator and to output the conditioned value (cross-entropy), as in CTGAN, and
   -- added here -- to match the noisy 1-way frequencies and the noisy 2-way marginals on the
   groups (KL divergences). The generator is CTGAN's: residual Linear-BatchNorm-ReLU blocks
   (BatchNorm is allowed here, since the generator is not DP-trained);
5. sample (post-processing) with conditional vectors drawn the same way.

Differences from CTGAN, for DP: no training-by-sampling of real rows per condition (picking
rows by condition would break Poisson sampling) -- the condition is drawn from the sampled
row instead, and by frequency rather than log-frequency; no PacGAN packing (a pack would hold
several real rows in one clipped gradient); no gradient penalty (Opacus cannot clip a double
backward); category frequencies are DP, never raw.

What does the work (docs/dpsgd.md, ablation): the DP marginal targets. Without the 2-way
targets the fit is clearly worse; with the generator's adversarial term switched off (the
discriminator still trained, the budget the same) it scores what the full model does. At this
many steps the DP-SGD discriminator teaches the generator nothing measurable; it is the part
to improve (or to give less budget) next.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from privsynth import mechanisms
from privsynth.budget.analysis import rho_for_epsilon
from privsynth.budget.events import ZCDP, PrivacyEvent
from privsynth.errors import ConfigError
from privsynth.generators.dpsgd.base import DPSGDGenerator
from privsynth.generators.dpsgd.marginal_targets import (
    PairTargets,
    kl,
    measure_pairs,
    project_counts,
)
from privsynth.generators.dpsgd.networks import check_hidden, mlp
from privsynth.generators.dpsgd.privacy import SGDPlan
from privsynth.generators.dpsgd.progress import OnStep
from privsynth.generators.dpsgd.train import Hooked, train_dp
from privsynth.generators.dpsgd.transform import OneHotBlocks
from privsynth.generators.split import RHO_MARGIN, allocate

GUMBEL_TAU = 0.2  # CTGAN's temperature for the relaxed outputs (their gradient only)


class _CondLinear(nn.Module):
    """A linear layer over ``[x, onehot(cell)]`` with the one-hot part as a row lookup.

    W [x; e_c] + b = W_x x + W_c[:, c] + b, so this is ``nn.Linear`` over the concatenation
    (initialised as it would be, uniform in +-1/sqrt(fan-in) of the whole input), at the
    cost of the dense part: in CTGAN's generator every layer sees the conditional vector,
    which on a table of many categories is most of each layer's inputs.
    """

    def __init__(self, d_dense: int, n_cells: int, d_out: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d_dense, d_out)
        self.cell = nn.Embedding(n_cells, d_out)
        bound = 1 / math.sqrt(d_dense + n_cells)
        for w in (self.dense.weight, self.dense.bias, self.cell.weight):
            nn.init.uniform_(w, -bound, bound)

    def forward(self, x: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        return self.dense(x) + self.cell(cells)


class _Generator(nn.Module):
    """CTGAN's generator: residual blocks (Linear, BatchNorm, ReLU, the block's input passed
    on) of widths ``hidden``, then a linear output layer, on [noise, conditional vector]; the
    conditional vector, one cell of the one-hot row, enters each layer as a row lookup
    (:class:`_CondLinear`). BatchNorm is fine here: the generator is not DP-trained, its
    batches are generated."""

    def __init__(self, d_noise: int, n_cells: int, hidden: tuple[int, ...], d_out: int) -> None:
        super().__init__()
        self.fcs, self.bns = nn.ModuleList(), nn.ModuleList()
        d = d_noise
        for h in hidden:
            self.fcs.append(_CondLinear(d, n_cells, h))
            self.bns.append(nn.BatchNorm1d(h))
            d += h
        self.out = _CondLinear(d, n_cells, d_out)

    def forward(self, z: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        x = z
        for fc, bn in zip(self.fcs, self.bns, strict=True):
            x = torch.cat([torch.relu(bn(fc(x, cells))), x], dim=1)
        return self.out(x, cells)


@dataclass(eq=False, repr=False, kw_only=True)
class DPCTGAN(DPSGDGenerator):
    """Differentially private synthetic data from a conditional GAN with a DP-SGD
    discriminator.

    Parameters
    ----------
    epsilon, delta, epochs, batch_size, lr, max_grad_norm, device, discovery_share,
    grad_sample_mode, allow_data_dependent_domain, verbose
        As for :class:`~privsynth.generators.dpsgd.dpvae.DPVAE` (``epochs`` defaults to 5 here);
        ``lr`` is used by both networks.
    measure_share
        Share of the zCDP budget (the rho that (epsilon, delta) allows) for the noisy 1-way
        frequencies (conditional vectors, row count, 1-way targets).
    pair_share
        Share of the zCDP budget for the noisy 2-way marginals of every column pair on coarse
        groups (0 measures none); DP-SGD gets what the two shares leave (a fifth by default:
        the discriminator teaches the generator little, while the 2-way targets pay off most
        at small epsilon; docs/dpsgd.md). The pairs number d(d-1)/2 for d columns, so on wide
        tables each is noisier.
    pair_groups
        Most groups per column for the 2-way marginals (a run of adjacent values holding at
        least 1/``pair_groups`` of the rows, plus one lighter last run).
    embedding_dim
        Size of the generator's noise input.
    generator_hidden, discriminator_hidden
        Hidden layer widths (the generator's are CTGAN residual blocks).
    generator_steps
        Generator updates after each DP-SGD discriminator step (post-processing: they cost
        no privacy, only time).
    generator_batch_size
        Generated rows per generator update (post-processing, so any size is private). The
        discriminator still sees the expected batch size of generated rows per step.

    Examples
    --------
    >>> from privsynth.datasets import load_adult
    >>> df, schema = load_adult()
    >>> gan = DPCTGAN(epsilon=3.0, device="cpu").fit(df, schema)      # doctest: +SKIP
    >>> gan.sample(5, seed=0).shape                                   # doctest: +SKIP
    (5, 15)
    """

    name: ClassVar[str] = "DPCTGAN"
    embedding_dim: int = 32
    generator_hidden: tuple[int, ...] | list[int] = (128, 128)
    discriminator_hidden: tuple[int, ...] | list[int] = (64,)
    generator_steps: int = 2
    generator_batch_size: int = 500
    measure_share: float = 0.2
    pair_share: float = 0.6
    pair_groups: int = 10
    epochs: float = 5
    lr: float = 1e-3

    def _check_params(self) -> None:
        super()._check_params()
        e = self.embedding_dim
        if isinstance(e, bool) or not isinstance(e, int) or e < 1:
            raise ConfigError(f"embedding_dim ({e!r}) must be a positive integer")
        check_hidden(self.generator_hidden)
        check_hidden(self.discriminator_hidden)
        for name in ("generator_steps", "generator_batch_size", "pair_groups"):
            k = getattr(self, name)
            if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                raise ConfigError(f"{name} ({k!r}) must be a positive integer")
        p = self.pair_share
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise ConfigError(f"pair_share ({p!r}) must be in [0, 1)")
        if self.discovery_share + self.measure_share + p >= 1:
            raise ConfigError(
                f"discovery_share + measure_share + pair_share ({self.discovery_share} + "
                f"{self.measure_share} + {p}) must leave budget for training (< 1)"
            )

    # ----------------------------------------------------------- measurement
    def _measure_plan(self) -> list[PrivacyEvent]:
        # zCDP composes by adding rho, so the histograms cost their total however it is
        # split -- and the split uses the domain sizes, which DP discovery may learn only
        # after the data is read, and the groups, which come from the 1-way measurement.
        share = self.measure_share + self.pair_share
        return [ZCDP(share * rho_for_epsilon(self.epsilon, self.delta))]

    def _measure(self, codes: np.ndarray, blocks: OneHotBlocks) -> tuple[float, list[PrivacyEvent]]:
        # A 1-way histogram has L2 sensitivity 1 under add/remove: Gaussian noise of sd
        # 1/sqrt(2 rho_j) on column j is rho_j-zCDP, and the columns' rho_j sum to their
        # share of the planned rho (less RHO_MARGIN, so float rounding in the split never
        # exceeds it). The split follows cells^(2/3) (`allocate`: least expected L1 error in
        # total), so wide numeric columns (many bins) get the noise they can bear. A
        # one-column table has no pairs: its 1-way histogram gets both shares.
        rho = rho_for_epsilon(self.epsilon, self.delta) * RHO_MARGIN
        with_pairs = len(blocks.sizes) > 1 and self.pair_share > 0
        share_1 = self.measure_share + (0.0 if with_pairs else self.pair_share)
        rhos = allocate(share_1 * rho, blocks.sizes)
        noisy_counts: list[np.ndarray] = []
        totals: list[float] = []
        variances: list[float] = []
        charges: list[PrivacyEvent] = []
        for j, size in enumerate(blocks.sizes):
            counts = np.bincount(codes[:, j], minlength=size)
            noisy, charge = mechanisms.gaussian_counts(counts, rhos[j])
            charges.append(charge)
            noisy_counts.append(np.asarray(noisy, dtype=np.float64))
            totals.append(float(noisy.sum()))
            variances.append(size / (2 * rhos[j]))  # the total's: `size` cells of 1/(2 rho_j)
        # The row estimate pools the totals by inverse variance. Post-processing.
        w = 1 / np.asarray(variances)
        n_hat = float(np.dot(w, totals) / w.sum())
        self.frequencies_ = [project_counts(c, n_hat) for c in noisy_counts]
        self.pairs_: PairTargets | None = None
        if with_pairs:
            self.pairs_, pair_charges = measure_pairs(
                codes,
                blocks,
                self.frequencies_,
                n_hat,
                self.pair_share * rho,
                self.pair_groups,
            )
            charges += pair_charges
        return n_hat, charges

    # -------------------------------------------------------------- networks
    def _build(self, width: int, device: torch.device) -> None:
        g_hidden = check_hidden(self.generator_hidden)
        d_hidden = check_hidden(self.discriminator_hidden)
        self.generator_ = _Generator(self.embedding_dim, width, g_hidden, width).to(device)
        # The discriminator judges a row together with its conditional vector, as in CTGAN.
        self.discriminator_ = mlp(2 * width, d_hidden, 1, slope=0.2).to(device)

    def _cells(self, cols: np.ndarray, values: np.ndarray) -> torch.Tensor:
        """The one-hot cell of value ``values[i]`` of column ``cols[i]``."""
        return torch.from_numpy(self.blocks_.offsets[cols] + values).to(self.device_)

    def _conditions(self, cols: np.ndarray, values: np.ndarray) -> torch.Tensor:
        """One-hot conditional vectors: value ``values[i]`` of column ``cols[i]``."""
        cond = torch.zeros(len(cols), self.blocks_.width, device=self.device_)
        return cond.scatter_(1, self._cells(cols, values)[:, None], 1.0)

    def _draw_conditions(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A column uniformly, then one of its values by its noisy frequency."""
        cols = rng.integers(0, len(self.blocks_.sizes), size=n)
        values = np.empty(n, dtype=np.int64)
        for j in np.unique(cols):
            rows = cols == j
            values[rows] = rng.choice(len(self.frequencies_[j]), rows.sum(), p=self.frequencies_[j])
        return cols, values

    def _generate(self, z: torch.Tensor, cols: np.ndarray, values: np.ndarray) -> torch.Tensor:
        return self.generator_(z, self._cells(cols, values))

    def _one_hot_samples(self, logits: torch.Tensor) -> torch.Tensor:
        """What the discriminator sees of a generated row: per block, a one-hot Gumbel-max
        sample of softmax(logits), with the relaxed (temperature ``GUMBEL_TAU``) softmax's
        gradient passed straight through, as ``F.gumbel_softmax(hard=True)`` does block by
        block. Real rows are one-hot too, so the discriminator cannot tell generated rows by
        their soft values (it can with relaxed rows, and the fit is then worse)."""
        u = torch.rand_like(logits).clamp_min_(torch.finfo(logits.dtype).tiny)
        perturbed = (logits - torch.log(-torch.log(u))) / GUMBEL_TAU
        soft = torch.exp(self.blocks_.log_softmax(perturbed))
        hard = self.blocks_.one_hot(self.blocks_.argmax(perturbed))
        return hard - soft.detach() + soft

    def _condition_loss(
        self, log_p: torch.Tensor, cols: np.ndarray, values: np.ndarray
    ) -> torch.Tensor:
        """Mean cross-entropy of the conditioned column's block against the conditioned
        value; ``log_p`` is the blocks' log-softmax."""
        return -log_p.gather(1, self._cells(cols, values)[:, None]).mean()

    def _marginal_loss(
        self, log_p: torch.Tensor, target: torch.Tensor, pairs: PairTargets | None
    ) -> torch.Tensor:
        """Sum over columns of KL(noisy frequencies || the batch's mean softmax), the
        frequencies side by side in ``target``, plus the pairs' KL on the groups
        (:meth:`PairTargets.loss`): pulls the generator's 1- and 2-way marginals towards the
        DP measurements (post-processing)."""
        probs = log_p.exp()
        one_way = kl(target, probs.mean(0))
        return one_way if pairs is None else one_way + pairs.loss(probs)

    # -------------------------------------------------------------- training
    def _train(self, data: torch.Tensor, plan: SGDPlan, progress: OnStep) -> int:
        # The number of generated rows per step is public (the expected batch size), so the
        # generated rows' clipped gradients never depend on how many real rows were sampled.
        m = max(1, round(plan.expected_batch_size))
        device = self.device_
        rng = np.random.default_rng(int(torch.randint(0, 2**62, ())))
        g_opt = torch.optim.Adam(self.generator_.parameters(), lr=self.lr, betas=(0.5, 0.9))
        freqs = torch.as_tensor(np.concatenate(self.frequencies_), dtype=torch.float32).to(device)
        pairs = None if self.pairs_ is None else self.pairs_.to(device)

        def fake_batch(k: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
            cols, values = self._draw_conditions(k, rng)
            z = torch.randn(k, self.embedding_dim, device=device)
            return self._generate(z, cols, values), cols, values

        d = len(self.blocks_.sizes)
        block_of = self.blocks_.block_of.to(device)

        def d_loss(disc: nn.Module, real: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                # A real row's conditional vector is its own value in a column drawn
                # uniformly: a function of that row alone, so each per-row loss (and its
                # clipped gradient) still depends on one real row. Drawn this way, real and
                # generated conditions share a distribution (uniform column, value by its
                # frequency) -- training-by-sampling without picking rows by condition.
                col = torch.randint(0, d, (len(real), 1), device=device)
                real = torch.cat([real, real * (block_of[None, :] == col)], dim=1)
                logits, cols, values = fake_batch(m)
                fake = torch.cat(
                    [self._one_hot_samples(logits), self._conditions(cols, values)], dim=1
                )
            out = disc(torch.cat([real, fake])).squeeze(1)
            n = len(real)
            return torch.cat([F.softplus(-out[:n]), F.softplus(out[n:])])

        def g_step(wrapped: Hooked) -> None:
            # Post-processing: only the discriminator's (DP) weights are used; its hooks and
            # gradients are off so nothing reaches its DP optimizer. Generator steps are free,
            # so several follow each (costly) discriminator step.
            wrapped.disable_hooks()
            self.discriminator_.requires_grad_(False)
            for _ in range(self.generator_steps):
                logits, cols, values = fake_batch(self.generator_batch_size)
                x = torch.cat(
                    [self._one_hot_samples(logits), self._conditions(cols, values)], dim=1
                )
                log_p = self.blocks_.log_softmax(logits)
                loss = (
                    F.softplus(-self.discriminator_(x).squeeze(1)).mean()
                    + self._condition_loss(log_p, cols, values)
                    + self._marginal_loss(log_p, freqs, pairs)
                )
                g_opt.zero_grad(set_to_none=True)
                loss.backward()
                g_opt.step()
            self.discriminator_.requires_grad_(True)
            wrapped.enable_hooks()

        self.generator_.train()
        self.discriminator_.train()
        taken = train_dp(
            self.discriminator_,
            d_loss,
            data,
            plan,
            max_grad_norm=self.max_grad_norm,
            lr=self.lr,
            grad_sample_mode=self.grad_sample_mode,
            device=device,
            after_step=g_step,
            progress=progress,
        )
        self.generator_.eval()
        self.discriminator_.eval()
        return taken

    # -------------------------------------------------------------- sampling
    def _logits(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        cols, values = self._draw_conditions(n, rng)
        z = torch.from_numpy(rng.standard_normal((n, self.embedding_dim))).float()
        return self._generate(z.to(self.device_), cols, values)

    def _modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator_, "discriminator": self.discriminator_}

    def _state(self) -> dict[str, Any]:
        return {"frequencies": [f.tolist() for f in self.frequencies_]}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.frequencies_ = [np.asarray(f, dtype=np.float64) for f in state["frequencies"]]
