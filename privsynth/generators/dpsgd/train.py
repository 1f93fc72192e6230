"""DP-SGD training: the one place outside :mod:`privsynth.mechanisms` that draws privacy noise.

Two draws here are privacy noise, both in :func:`train_dp`, and nowhere else in privsynth:

* the Poisson sampling mask -- each row joins a step's batch independently with probability q
  (``torch.rand(...) < plan.sample_rate``, from ``sampler``);
* the Gaussian gradient noise -- Opacus' optimizer adds N(0, (sigma * C)^2 I) to the sum of
  the batch's per-row gradients, each clipped to norm C, and divides by the public expected
  batch size q * N^ (from the ``generator`` passed in ``noise``).

Math (Abadi et al. 2016): a row changes the clipped sum by at most C in L2 norm, so one step
is the Gaussian mechanism with noise multiplier sigma on a Poisson sample of rate q, and
``steps`` of them are SubsampledGaussian(q, sigma, steps) -- the event the ledger reserved
(:mod:`.privacy` calibrates sigma). An empty sample still takes a noised step, as the
accountant assumes.

Both draws come from generators seeded with OS entropy, never from torch's global generator.
Known deviation (stated in every privacy spec, :data:`IMPLEMENTATION_HAZARD`): the gradient
noise is drawn by Opacus with torch's generator, not by OpenDP's CSPRNG; Opacus' secure mode
is off because ``torchcsprng`` is not available for this torch.
"""

from __future__ import annotations

import secrets
import warnings
from collections.abc import Callable
from typing import Any, Protocol, cast

import torch
from torch import nn

from privsynth.generators.dpsgd.clipping import BookkeepingClipper
from privsynth.generators.dpsgd.privacy import SGDPlan

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


PerSampleLoss = Callable[[nn.Module, torch.Tensor], torch.Tensor]


class Hooked(Protocol):
    """The module :func:`train_dp` trains through (privsynth's clipper or an Opacus wrapper):
    its per-row recording can be switched off for steps that are post-processing."""

    def disable_hooks(self) -> None: ...

    def enable_hooks(self) -> None: ...


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
    after_step: Callable[[Hooked], None] | None = None,
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
    # PRIVACY NOISE (1 of 2), the Gaussian: Opacus' optimizer adds N(0, (sigma C)^2 I) to the
    # sum of the clipped per-row gradients (C = max_grad_norm, sigma = the calibrated noise
    # multiplier), drawn from this OS-seeded generator, and divides by the public q * N^.
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
        # PRIVACY NOISE (2 of 2), the Poisson sample: each row joins independently with
        # probability q, so one step is the Gaussian mechanism on a q-subsampled batch.
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
                cast(BookkeepingClipper, wrapped).clipped_backward(losses)
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
