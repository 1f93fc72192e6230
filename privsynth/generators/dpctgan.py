"""DP-CTGAN: a conditional GAN after CTGAN (Xu et al. 2019, arXiv 1907.00503) whose
discriminator is trained with DP-SGD; the generator only ever sees the discriminator's
outputs, so its updates are post-processing.

The mechanism:

1. measure every column's 1-way histogram with Laplace noise (``measure_share`` of epsilon,
   split over the columns); the clipped, normalised noisy counts are the frequencies the
   conditional vectors are drawn from, and their totals give the DP row estimate
   (post-processing);
2. train (DP-SGD on the discriminator only): each step the discriminator sees a Poisson sample
   of real one-hot rows and a fixed number (the public expected batch size) of generated rows,
   with the usual logistic GAN loss; each row's gradient is clipped, so one real row moves the
   noised sum by at most ``max_grad_norm``. Generated rows depend only on earlier DP outputs
   and fresh noise, so they do not add sensitivity;
3. after every discriminator step, one generator step: the generator gets noise and a
   conditional vector (a column picked uniformly, a value drawn from its noisy frequencies),
   and is trained to fool the discriminator and to output the conditioned value
   (cross-entropy), as in CTGAN, and -- added here -- to match the noisy 1-way frequencies
   in each batch (KL divergence; post-processing of step 1);
4. sample (post-processing) with conditional vectors drawn the same way.

Differences from CTGAN, for DP: no training-by-sampling of real rows per condition (it would
break Poisson sampling) -- the discriminator sees unconditioned rows; no PacGAN packing (a
pack would hold several real rows in one clipped gradient); no gradient penalty (Opacus
cannot clip a double backward); category frequencies are DP, never raw.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from privsynth import mechanisms
from privsynth.budget.accounting import PrivacyEvent, PureDP
from privsynth.errors import ConfigError
from privsynth.generators.dpsgd import (
    DPSGDGenerator,
    OneHotBlocks,
    SGDPlan,
    check_hidden,
    mlp,
    train_dp,
)

GUMBEL_TAU = 0.2  # CTGAN's temperature for the generator's relaxed one-hot outputs


class DPCTGAN(DPSGDGenerator):
    """Differentially private synthetic data from a conditional GAN with a DP-SGD
    discriminator.

    Parameters
    ----------
    epsilon, delta, epochs, batch_size, lr, max_grad_norm, device, discovery_share,
    grad_sample_mode, allow_data_dependent_domain, verbose
        As for :class:`~privsynth.generators.dpvae.DPVAE`; ``lr`` is used by both networks.
    measure_share
        Share of epsilon for the noisy 1-way frequencies (conditional vectors, row count).
    embedding_dim
        Size of the generator's noise input.
    generator_hidden, discriminator_hidden
        Hidden layer widths.

    Examples
    --------
    >>> from privsynth.datasets import load_adult
    >>> df, schema = load_adult()
    >>> gan = DPCTGAN(epsilon=3.0, device="cpu").fit(df, schema)      # doctest: +SKIP
    >>> gan.sample(5, seed=0).shape                                   # doctest: +SKIP
    (5, 15)
    """

    name: ClassVar[str] = "DPCTGAN"
    param_names: ClassVar[tuple[str, ...]] = (
        *DPSGDGenerator.param_names,
        "embedding_dim",
        "generator_hidden",
        "discriminator_hidden",
    )

    def __init__(
        self,
        epsilon: float = 1.0,
        delta: float = 1e-9,
        *,
        embedding_dim: int = 32,
        generator_hidden: tuple[int, ...] | list[int] = (128, 128),
        discriminator_hidden: tuple[int, ...] | list[int] = (64,),
        measure_share: float = 0.1,
        lr: float = 1e-3,
        **kwargs: Any,
    ) -> None:
        super().__init__(epsilon, delta, measure_share=measure_share, lr=lr, **kwargs)
        self.embedding_dim = embedding_dim
        self.generator_hidden = generator_hidden
        self.discriminator_hidden = discriminator_hidden

    def _check_params(self) -> None:
        super()._check_params()
        e = self.embedding_dim
        if isinstance(e, bool) or not isinstance(e, int) or e < 1:
            raise ConfigError(f"embedding_dim ({e!r}) must be a positive integer")
        check_hidden(self.generator_hidden)
        check_hidden(self.discriminator_hidden)

    def _params(self) -> dict:
        return {
            **super()._params(),
            "generator_hidden": list(self.generator_hidden),
            "discriminator_hidden": list(self.discriminator_hidden),
        }

    # ----------------------------------------------------------- measurement
    def _measure_plan(self, n_columns: int, epsilon: float) -> list[PrivacyEvent]:
        return [PureDP(epsilon / n_columns)] * n_columns

    def _measure(
        self, codes: np.ndarray, blocks: OneHotBlocks, epsilon: float
    ) -> tuple[float, list[PrivacyEvent]]:
        # A 1-way histogram has L1 sensitivity 1 under add/remove: Laplace(d/epsilon) per
        # column is epsilon/d-DP, the d columns compose to epsilon.
        d = len(blocks.sizes)
        freqs, totals, charges = [], [], []
        for j, size in enumerate(blocks.sizes):
            counts = np.bincount(codes[:, j], minlength=size)
            noisy, charge = mechanisms.laplace_counts(counts, epsilon / d)
            charges.append(charge)
            totals.append(float(noisy.sum()))
            p = np.clip(noisy, 0, None).astype(np.float64)
            freqs.append(p / p.sum() if p.sum() > 0 else np.full(size, 1 / size))
        self.frequencies_ = freqs
        # Each total carries the noise of `size` cells (variance proportional to size): weigh
        # the totals by 1/size (inverse variance). Post-processing.
        w = 1 / np.asarray(blocks.sizes, dtype=np.float64)
        return float(np.dot(w, totals) / w.sum()), charges

    # -------------------------------------------------------------- networks
    def _build(self, width: int, device: torch.device) -> None:
        g_hidden = check_hidden(self.generator_hidden)
        d_hidden = check_hidden(self.discriminator_hidden)
        self.generator_ = mlp(self.embedding_dim + width, g_hidden, width).to(device)
        self.discriminator_ = mlp(width, d_hidden, 1, slope=0.2).to(device)
        self.device_ = device

    def _conditions(self, cols: np.ndarray, values: np.ndarray) -> torch.Tensor:
        """One-hot conditional vectors: value ``values[i]`` of column ``cols[i]``."""
        cond = torch.zeros(len(cols), self.blocks_.width)
        cond[np.arange(len(cols)), self.blocks_.offsets[cols] + values] = 1.0
        return cond.to(self.device_)

    def _draw_conditions(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A column uniformly, then one of its values by its noisy frequency."""
        cols = rng.integers(0, len(self.blocks_.sizes), size=n)
        values = np.empty(n, dtype=np.int64)
        for j in np.unique(cols):
            rows = cols == j
            values[rows] = rng.choice(len(self.frequencies_[j]), rows.sum(), p=self.frequencies_[j])
        return cols, values

    def _generate(self, z: torch.Tensor, cols: np.ndarray, values: np.ndarray) -> torch.Tensor:
        return self.generator_(torch.cat([z, self._conditions(cols, values)], dim=1))

    def _relaxed(self, logits: torch.Tensor) -> torch.Tensor:
        """Gumbel-softmax of every block: what the discriminator sees of a generated row."""
        b = self.blocks_
        return torch.cat(
            [
                F.gumbel_softmax(logits[:, a:e], tau=GUMBEL_TAU)
                for a, e in zip(b.offsets[:-1], b.offsets[1:], strict=True)
            ],
            dim=1,
        )

    def _condition_loss(
        self, logits: torch.Tensor, cols: np.ndarray, values: np.ndarray
    ) -> torch.Tensor:
        """Mean cross-entropy of the conditioned column's block against the conditioned value."""
        b = self.blocks_
        total = logits.new_zeros(())
        for j in np.unique(cols):
            rows = torch.from_numpy(np.flatnonzero(cols == j)).to(logits.device)
            target = torch.from_numpy(values[cols == j]).to(logits.device)
            total = total + F.cross_entropy(
                logits[rows, b.offsets[j] : b.offsets[j + 1]], target, reduction="sum"
            )
        return total / len(cols)

    def _marginal_loss(self, logits: torch.Tensor, target: list[torch.Tensor]) -> torch.Tensor:
        """Sum over columns of KL(noisy frequencies || the batch's mean softmax): pulls every
        1-way marginal of the generator towards the DP measurement (post-processing)."""
        b = self.blocks_
        total = logits.new_zeros(())
        for j, (a, e) in enumerate(zip(b.offsets[:-1], b.offsets[1:], strict=True)):
            mean = torch.softmax(logits[:, a:e], dim=1).mean(0)
            p = target[j]
            total = total + (p * (torch.log(p + 1e-12) - torch.log(mean + 1e-12))).sum()
        return total

    # -------------------------------------------------------------- training
    def _train(
        self,
        data: torch.Tensor,
        plan: SGDPlan,
        device: torch.device,
        progress: Callable[[int, float], None],
    ) -> int:
        # The number of generated rows per step is public (the expected batch size), so the
        # generated rows' clipped gradients never depend on how many real rows were sampled.
        m = max(1, round(plan.expected_batch_size))
        rng = np.random.default_rng(int(torch.randint(0, 2**62, ())))
        g_opt = torch.optim.Adam(self.generator_.parameters(), lr=self.lr, betas=(0.5, 0.9))
        freqs = [torch.as_tensor(f, dtype=torch.float32, device=device) for f in self.frequencies_]

        def fake_batch() -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
            cols, values = self._draw_conditions(m, rng)
            z = torch.randn(m, self.embedding_dim, device=device)
            return self._generate(z, cols, values), cols, values

        def d_loss(disc: nn.Module, real: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                fake = self._relaxed(fake_batch()[0])
            out = disc(torch.cat([real, fake])).squeeze(1)
            n = len(real)
            return torch.cat([F.softplus(-out[:n]), F.softplus(out[n:])])

        def g_step(wrapped: nn.Module) -> None:
            # Post-processing: only the discriminator's (DP) weights are used; its hooks and
            # gradients are off so nothing reaches its DP optimizer.
            wrapped.disable_hooks()
            self.discriminator_.requires_grad_(False)
            logits, cols, values = fake_batch()
            out = self.discriminator_(self._relaxed(logits)).squeeze(1)
            loss = (
                F.softplus(-out).mean()
                + self._condition_loss(logits, cols, values)
                + self._marginal_loss(logits, freqs)
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

    def _state(self) -> dict:
        return {"frequencies": [f.tolist() for f in self.frequencies_]}

    def _load_state(self, state: dict) -> None:
        self.frequencies_ = [np.asarray(f, dtype=np.float64) for f in state["frequencies"]]
