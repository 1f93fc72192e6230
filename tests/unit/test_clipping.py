"""Book-keeping clipping (privsynth.generators.dpsgd.clipping) against per-row gradients
computed one row at a time, and against Opacus' per-sample hooks."""

import warnings

import pytest
import torch
from torch import nn

from privsynth.generators.dpsgd.clipping import BookkeepingClipper
from privsynth.generators.dpsgd.networks import mlp

ROWS = 9


def _net(bias: bool = True) -> nn.Module:
    torch.manual_seed(0)
    net = mlp(6, (5, 4), 3, slope=0.2)
    if not bias:
        for layer in net.modules():
            if isinstance(layer, nn.Linear):
                layer.bias = None
    return net


def _data() -> torch.Tensor:
    # One column scaled up so that most rows' gradients exceed the norm and are clipped.
    return torch.randn(ROWS, 6, generator=torch.Generator().manual_seed(1)) * torch.tensor(
        [1.0, 1, 1, 1, 1, 30]
    )


def _losses(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    # Row weights make the rows' gradient norms differ by orders of magnitude.
    return (model(x) ** 2).sum(dim=1) * torch.arange(1.0, len(x) + 1)


def _reference(net: nn.Module, x: torch.Tensor, c_max: float) -> tuple[list, list]:
    """sum_i min(1, C / (||g_i|| + 1e-6)) g_i, each g_i from its own backward pass."""
    params = list(net.parameters())
    total = [torch.zeros_like(p) for p in params]
    norms = []
    for i in range(ROWS):
        g = torch.autograd.grad(_losses(net, x)[i], params)
        norm = float(torch.sqrt(sum((t**2).sum() for t in g)))
        norms.append(norm)
        c = min(1.0, c_max / (norm + 1e-6))
        total = [s + c * t for s, t in zip(total, g, strict=True)]
    return total, norms


@pytest.mark.parametrize("bias", [True, False])
def test_clipped_sum_equals_clipping_each_row_separately(bias):
    net, x = _net(bias), _data()
    _, row_norms = _reference(net, x, float("inf"))
    c_max = sorted(row_norms)[ROWS // 2]  # the median: the test clips some rows, not others
    expected, expected_norms = _reference(net, x, c_max)
    wrapped = BookkeepingClipper(net, max_grad_norm=c_max)
    norms = wrapped.clipped_backward(_losses(wrapped, x))
    # float32 sums of ~10 terms: agreement to ~1e-6 relative
    torch.testing.assert_close(norms, torch.tensor(expected_norms), rtol=1e-5, atol=1e-6)
    for p, e in zip(net.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, e, rtol=1e-5, atol=1e-6)


def test_clipped_sum_equals_opacus_per_sample_hooks():
    from opacus.grad_sample import GradSampleModule

    net, x = _net(), _data()
    ours = BookkeepingClipper(net, max_grad_norm=0.5)
    ours.clipped_backward(_losses(ours, x))
    mine = [p.grad.clone() for p in net.parameters()]
    ours.remove_hooks()
    for p in net.parameters():
        p.grad = None
    theirs = GradSampleModule(net, batch_first=True, loss_reduction="sum")
    with warnings.catch_warnings():  # Opacus' hooks fire although the input needs no grad
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        _losses(theirs, x).sum().backward()
    per_row = [p.grad_sample.reshape(ROWS, -1) for p in net.parameters()]
    norms = torch.cat(per_row, dim=1).norm(dim=1)
    c = (0.5 / (norms + 1e-6)).clamp(max=1.0)
    for p, m in zip(net.parameters(), mine, strict=True):
        torch.testing.assert_close(
            m, torch.einsum("i,i...->...", c, p.grad_sample), rtol=1e-5, atol=1e-6
        )
    theirs.remove_hooks()


def test_one_row_moves_the_sum_by_at_most_the_norm():
    """Sensitivity: adding one row (with an enormous gradient) changes the clipped sum by a
    vector of norm <= C."""
    net, x = _net(), _data()
    wrapped = BookkeepingClipper(net, max_grad_norm=1.0)
    wrapped.clipped_backward(_losses(wrapped, x[:-1]) * 1e6)
    without = torch.cat([p.grad.reshape(-1) for p in net.parameters()])
    wrapped.clipped_backward(_losses(wrapped, x) * 1e6)
    with_row = torch.cat([p.grad.reshape(-1) for p in net.parameters()])
    # the first ROWS-1 rows' losses are the same in both calls (the weights do not depend on
    # the batch size), so the difference is the last row's clipped gradient
    assert float((with_row - without).norm()) == pytest.approx(1.0, rel=1e-4)


def test_refuses_parameters_outside_linear_layers():
    net = nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3))
    with pytest.raises(TypeError, match="nn.Linear parameters only"):
        BookkeepingClipper(net, 1.0)


def test_refuses_a_layer_applied_twice():
    layer = nn.Linear(3, 3)

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer

        def forward(self, x):
            return self.layer(self.layer(x))

    wrapped = BookkeepingClipper(Twice(), 1.0)
    with pytest.raises(RuntimeError, match="ran twice"):
        wrapped(torch.ones(2, 3))


def test_hooks_record_only_while_enabled():
    """A forward outside the wrapper (e.g. a GAN generator step reading the discriminator)
    records nothing while the hooks are disabled; enabled, a second unwrapped forward is a
    layer running twice before any clipped backward, and is refused."""
    net, x = _net(), _data()
    wrapped = BookkeepingClipper(net, 1.0)
    wrapped.disable_hooks()
    net(x)
    net(x)
    wrapped.enable_hooks()
    net(x)
    with pytest.raises(RuntimeError, match="ran twice"):
        net(x)


def test_layers_the_loss_never_reaches_add_zero():
    net = _net()
    head = nn.Linear(3, 1)

    class WithUnused(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.head = net, head

        def forward(self, x):
            return self.body(x)

    both = BookkeepingClipper(WithUnused(), 1.0)
    both.clipped_backward(_losses(both, _data()))
    assert torch.count_nonzero(head.weight.grad) == 0 and torch.count_nonzero(head.bias.grad) == 0
    assert all(torch.count_nonzero(p.grad) > 0 for p in net.parameters())


@pytest.mark.gpu
def test_clipped_sum_on_cuda_equals_the_cpu_reference():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA (run with -m gpu on a GPU machine)")
    net, x = _net(), _data()
    expected, _ = _reference(net, x, 1.0)
    gpu = _net().cuda()
    wrapped = BookkeepingClipper(gpu, max_grad_norm=1.0)
    xc = x.cuda()
    losses = (wrapped(xc) ** 2).sum(dim=1) * torch.arange(1.0, ROWS + 1, device="cuda")
    wrapped.clipped_backward(losses)
    for p, e in zip(gpu.parameters(), expected, strict=True):
        # TF32 matmuls on recent GPUs round to ~1e-3 relative
        torch.testing.assert_close(p.grad.cpu(), e, rtol=2e-3, atol=2e-4)
