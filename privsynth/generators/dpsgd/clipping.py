"""Per-row gradient clipping in one backward pass, for networks of linear layers.

DP-SGD needs sum_i clip(g_i), where g_i is row i's gradient and clip(g) = g * min(1, C/||g||).
Opacus' ghost clipping gets it with two backward passes: one for the per-row norms, a second
through the loss reweighted by the clipping factors. For a linear layer y = W a + b on 2-D
inputs (one row in, one row out) neither pass needs to touch the parameters twice
("book-keeping", Bu, Wang, Zha & Karypis, ICML 2023):

* row i's gradient of W is the outer product G_i a_i^T (G_i = dloss_i/dy_i, the gradient at
  the layer's output), so ||dW_i||_F^2 = ||G_i||^2 ||a_i||^2, and ||db_i||^2 = ||G_i||^2;
* the squared norm of row i's whole gradient is the sum of these over the layers;
* with c_i = min(1, C / (||g_i|| + 1e-6)) (Opacus' factor), the clipped sum is
  sum_i c_i G_i a_i^T = (c * G)^T A for W and sum_i c_i G_i for b: one matrix product per layer.

The G_i of every layer come from one backward pass of sum_i loss_i taken with respect to the
layers' outputs only. That G_i is row i's own output gradient requires that loss_i depend on
no other row (no BatchNorm, no batch statistics) -- the same assumption every per-sample
gradient method makes, and what Opacus' validator checks of the modules -- and that each
layer runs once per forward pass (a layer applied twice would add cross terms to the norm:
refused). Privacy-critical: the clipped sum is what Opacus' optimizer then noises.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

EPS = 1e-6  # as Opacus: c_i = C / (norm_i + EPS), capped at 1


class BookkeepingClipper(nn.Module):
    """Wraps ``module`` (every trainable parameter in an ``nn.Linear``) so that
    :meth:`clipped_backward` sets each parameter's ``.grad`` to the sum of the per-row
    gradients clipped to ``max_grad_norm``.

    Call the wrapper in place of the module; while its hooks are enabled, each forward records
    every linear layer's input and output. ``disable_hooks()`` / ``enable_hooks()`` switch
    the recording off and on (as Opacus' grad-sample modules do).
    """

    def __init__(self, module: nn.Module, max_grad_norm: float) -> None:
        super().__init__()
        self._module = module
        self.max_grad_norm = float(max_grad_norm)
        self.layers = [m for m in module.modules() if isinstance(m, nn.Linear)]
        covered = {id(p) for layer in self.layers for p in layer.parameters()}
        stray = [
            n for n, p in module.named_parameters() if p.requires_grad and id(p) not in covered
        ]
        if stray:
            raise TypeError(
                f"book-keeping clipping handles nn.Linear parameters only, not {stray}; "
                "use grad_sample_mode='ghost' or 'hooks'"
            )
        self.hooks_enabled = True
        self._records: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}
        self._handles = [layer.register_forward_hook(self._record) for layer in self.layers]

    def _record(self, layer: nn.Module, inputs: tuple[torch.Tensor, ...], out: Any) -> None:
        if not self.hooks_enabled or not torch.is_grad_enabled():
            return
        if layer in self._records:
            raise RuntimeError(f"{layer} ran twice in one forward: its row norms have cross terms")
        (a,) = inputs
        if a.dim() != 2:
            raise RuntimeError(f"book-keeping needs 2-D inputs; {layer} got {tuple(a.shape)}")
        self._records[layer] = (a.detach(), out)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        self._records.clear()
        return self._module(*args, **kwargs)

    def disable_hooks(self) -> None:
        self.hooks_enabled = False

    def enable_hooks(self) -> None:
        self.hooks_enabled = True

    def remove_hooks(self) -> None:
        for h in self._handles:
            h.remove()

    def clipped_backward(self, losses: torch.Tensor) -> torch.Tensor:
        """From the per-row ``losses`` of the last forward, set every parameter's ``.grad`` to
        sum_i c_i grad(loss_i); return the per-row gradient norms ||g_i||."""
        ran = [layer for layer in self.layers if layer in self._records]
        outs = [self._records[layer][1] for layer in ran]
        # allow_unused: a layer that did not affect the loss gets None
        grads: dict[nn.Linear, torch.Tensor | None] = dict(
            zip(ran, torch.autograd.grad(losses.sum(), outs, allow_unused=True), strict=True)
        )
        # ||g_i||^2 = sum over layers of ||G_i||^2 (||a_i||^2 + 1 if the layer has a bias)
        sq = losses.new_zeros(len(losses))
        for layer, g in grads.items():
            if g is not None:
                a = self._records[layer][0]
                sq = sq + g.pow(2).sum(dim=1) * (a.pow(2).sum(dim=1) + (layer.bias is not None))
        norms = sq.sqrt()
        c = (self.max_grad_norm / (norms + EPS)).clamp(max=1.0)
        for layer in self.layers:
            g = grads.get(layer)
            if g is None:  # the layer did not affect the loss: it adds nothing to the sum
                layer.weight.grad = torch.zeros_like(layer.weight)
                if layer.bias is not None:
                    layer.bias.grad = torch.zeros_like(layer.bias)
                continue
            cg = c[:, None] * g
            layer.weight.grad = cg.T @ self._records[layer][0]  # sum_i c_i G_i a_i^T
            if layer.bias is not None:
                layer.bias.grad = cg.sum(dim=0)  # sum_i c_i G_i
        self._records.clear()
        return norms.detach()
