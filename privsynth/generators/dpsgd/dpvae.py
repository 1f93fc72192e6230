"""DP-VAE: a TVAE-style variational autoencoder (Xu et al. 2019, arXiv 1907.00503) whose whole
model is trained with DP-SGD.

The mechanism:

1. measure the row count with Laplace noise (``measure_share`` of epsilon; the estimate sets
   the DP-SGD sample rate and the default output size);
2. train encoder and decoder together with DP-SGD
   (:func:`~privsynth.generators.dpsgd.train.train_dp`) on one-hot rows
   (:class:`~privsynth.generators.dpsgd.transform.OneHotBlocks`); each row's loss is the
   cross-entropy of every column's block plus the KL divergence of its latent code from
   N(0, I);
3. sample (post-processing): z ~ N(0, I), decode, draw each column from its softmax.

The per-row loss touches only that row, so clipping each row's gradient bounds its influence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from privsynth import mechanisms
from privsynth.budget.events import PrivacyEvent, PureDP
from privsynth.errors import ConfigError
from privsynth.generators.dpsgd.base import DPSGDGenerator
from privsynth.generators.dpsgd.networks import check_hidden, mlp
from privsynth.generators.dpsgd.privacy import SGDPlan
from privsynth.generators.dpsgd.progress import OnStep
from privsynth.generators.dpsgd.train import train_dp
from privsynth.generators.dpsgd.transform import OneHotBlocks


class _VAE(nn.Module):
    def __init__(self, width: int, hidden: tuple[int, ...], latent: int) -> None:
        super().__init__()
        self.encoder = mlp(width, hidden, 2 * latent)
        self.decoder = mlp(latent, tuple(reversed(hidden)), width)

    def forward(
        self, x: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        logvar = logvar.clamp(-8.0, 8.0)
        z = mu + torch.exp(0.5 * logvar) * noise  # reparametrisation
        return self.decoder(z), mu, logvar


@dataclass(eq=False, repr=False, kw_only=True)
class DPVAE(DPSGDGenerator):
    """Differentially private synthetic data from a VAE trained with DP-SGD.

    Parameters
    ----------
    epsilon, delta
        The release's (epsilon, delta)-DP guarantee (never a hyperparameter to tune). Choose
        delta without looking at the data (never 1/n).
    epochs
        Expected passes over the data; DP-SGD takes ceil(epochs / q) steps.
    batch_size
        Expected Poisson batch size; the sample rate is q = batch_size / (noisy row count).
    lr, max_grad_norm
        Adam learning rate and per-row gradient clipping norm.
    latent_dim, hidden
        Size of the latent code and of the hidden layers (the decoder mirrors the encoder).
    device
        ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
    discovery_share, measure_share
        Shares of epsilon for learning undeclared domains and for the row count.
    grad_sample_mode
        How each row's gradient is clipped: ``"bookkeeping"`` (default: one backward pass,
        :mod:`privsynth.generators.dpsgd.clipping`), ``"ghost"`` (Opacus' ghost clipping, two
        passes) or ``"hooks"`` (Opacus' per-sample gradients). All three clip the same
        per-row gradients to the same norm; they differ in speed.
    allow_data_dependent_domain
        Accept ``source: data`` domains (recorded as a DP caveat).
    verbose
        Show a progress bar (epoch, loss, epsilon so far).

    Examples
    --------
    >>> from privsynth.datasets import load_adult
    >>> df, schema = load_adult()
    >>> vae = DPVAE(epsilon=1.0, device="cpu").fit(df, schema)       # doctest: +SKIP
    >>> vae.sample(5, seed=0).shape                                   # doctest: +SKIP
    (5, 15)
    """

    name: ClassVar[str] = "DPVAE"
    # A small model, large batches and a high learning rate, so that few noisy steps do the
    # work (docs/dpsgd.md: how the defaults were chosen).
    epochs: float = 20
    batch_size: int = 4000
    lr: float = 1e-2
    latent_dim: int = 8
    hidden: tuple[int, ...] | list[int] = (64,)

    def _check_params(self) -> None:
        super()._check_params()
        if isinstance(self.latent_dim, bool) or not isinstance(self.latent_dim, int):
            raise ConfigError(f"latent_dim ({self.latent_dim!r}) must be a positive integer")
        if self.latent_dim < 1:
            raise ConfigError(f"latent_dim ({self.latent_dim!r}) must be a positive integer")
        check_hidden(self.hidden)

    def _measure_plan(self) -> list[PrivacyEvent]:
        return [PureDP(self.epsilon * self.measure_share)]

    def _measure(self, codes: np.ndarray, blocks: OneHotBlocks) -> tuple[float, list[PrivacyEvent]]:
        # The row count has sensitivity 1 under add/remove: Laplace(1/epsilon) is epsilon-DP.
        epsilon = self.epsilon * self.measure_share
        noisy, charge = mechanisms.laplace_counts(np.array([len(codes)]), epsilon)
        return float(noisy[0]), [charge]

    def _build(self, width: int, device: torch.device) -> None:
        self.vae_ = _VAE(width, check_hidden(self.hidden), self.latent_dim).to(device)

    def _train(self, data: torch.Tensor, plan: SGDPlan, progress: OnStep) -> int:
        blocks = self.blocks_

        def per_row_loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
            noise = torch.randn(len(x), self.latent_dim, device=x.device)
            logits, mu, logvar = model(x, noise)
            kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)
            return blocks.block_cross_entropy(logits, x) + kl

        self.vae_.train()
        taken = train_dp(
            self.vae_,
            per_row_loss,
            data,
            plan,
            max_grad_norm=self.max_grad_norm,
            lr=self.lr,
            grad_sample_mode=self.grad_sample_mode,
            device=self.device_,
            progress=progress,
        )
        self.vae_.eval()
        return taken

    def _logits(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        z = torch.from_numpy(rng.standard_normal((n, self.latent_dim))).float()
        return self.vae_.decoder(z.to(self.device_))

    def _modules(self) -> dict[str, nn.Module]:
        return {"vae": self.vae_}

    def _state(self) -> dict[str, Any]:
        return {}  # everything is in the weights

    def _load_state(self, state: dict[str, Any]) -> None:
        pass
