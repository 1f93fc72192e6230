"""L-BFGS for the estimator: one flat parameter tensor, few kernels, few host reads.

``torch.optim.LBFGS`` applies its history with a two-loop recursion of about four small tensor
operations per stored pair, and each of them waits for the device (a tensor is used as a
Python scalar). On a GPU those launches and waits cost more than the belief propagation they
steer; and building any ``torch.optim`` optimizer first imports ``torch._dynamo`` (seconds of
start-up), once per process. Here the history lives in two
(m, n) matrices and the inverse-Hessian approximation is applied in its compact form (Byrd,
Nocedal & Schnabel 1994): five matrix-vector products and two m×m triangular solves per step,
and the host reads a few scalars per evaluation. The line search finds a step that meets
the strong Wolfe conditions.

Pure post-processing: it only moves the parameters of a model fitted to noisy measurements.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

ARMIJO = 1e-4  # sufficient-decrease constant c1
WOLFE = 0.9  # curvature constant c2 (the usual one for quasi-Newton methods)
MAX_TRIALS = 25  # evaluations per line search
CURVATURE_MIN = 1e-10  # keep a pair only if y·s exceeds this (the approximation stays positive)
GRAD_TOL = 1e-10  # stop when every gradient entry is this small


class History:
    """The last ``m`` pairs (s, y) of steps and gradient changes, and ``H g`` from them.

    With S and Y the stored pairs as columns (oldest first), R the upper triangle of SᵀY,
    D its diagonal and H0 = gamma I, the L-BFGS inverse-Hessian approximation is

        H = gamma I + [S  gamma Y] [[R⁻ᵀ (D + gamma YᵀY) R⁻¹, -R⁻ᵀ], [-R⁻¹, 0]] [Sᵀ; gamma Yᵀ]

    so with p = Sᵀg, q = Yᵀg, a = R⁻¹p and z = R⁻ᵀ((D + gamma YᵀY) a - gamma q):
    H g = gamma g + S z - gamma Y a. It equals the two-loop recursion's result.
    """

    def __init__(self, like: torch.Tensor, m: int) -> None:
        dev, dt = like.device, like.dtype
        self.m = m
        self.s = torch.zeros((m, like.numel()), device=dev, dtype=dt)  # slots of a ring buffer
        self.y = torch.zeros((m, like.numel()), device=dev, dtype=dt)
        self.sy = torch.zeros((m, m), device=dev, dtype=dt)  # sy[i, j] = s_i · y_j, by slot
        self.yy = torch.zeros((m, m), device=dev, dtype=dt)
        self.count = 0  # pairs stored
        self.next = 0  # slot the next pair goes to
        self.gamma = 1.0
        # slots oldest first, on the device: the first `count` while the ring fills, then the
        # rotation that starts at `next` (no host-to-device copy per step)
        ar = torch.arange(m, device=like.device)
        self._filling = ar
        self._rotations = (ar[:, None] + ar[None, :]) % m

    def push(self, s: torch.Tensor, y: torch.Tensor, sy: float, yy: float) -> None:
        """Store (s, y), whose y·s = ``sy`` > 0 and y·y = ``yy``, over the oldest pair."""
        h = self.next
        self.s[h], self.y[h] = s, y
        self.sy[h, :] = self.y @ s
        self.sy[:, h] = self.s @ y
        self.yy[h, :] = self.yy[:, h] = self.y @ y
        self.next = (h + 1) % self.m
        self.count = min(self.count + 1, self.m)
        self.gamma = sy / yy

    def clear(self) -> None:
        self.s.zero_()
        self.y.zero_()
        self.sy.zero_()
        self.yy.zero_()
        self.count, self.next, self.gamma = 0, 0, 1.0

    def apply(self, g: torch.Tensor) -> torch.Tensor:
        """H g (g itself while the history is empty)."""
        if self.count == 0:
            return g.clone()
        gamma = self.gamma
        full = self.count == self.m
        idx = self._rotations[self.next] if full else self._filling[: self.count]
        p = (self.s @ g)[idx]
        q = (self.y @ g)[idx]
        sy = self.sy[idx][:, idx]
        r = torch.triu(sy)
        a = torch.linalg.solve_triangular(r, p[:, None], upper=True)
        middle = torch.diag_embed(torch.diagonal(sy)) + gamma * self.yy[idx][:, idx]
        z = torch.linalg.solve_triangular(r.T, middle @ a - gamma * q[:, None], upper=False)
        coef_s = torch.zeros(self.m, device=g.device, dtype=g.dtype)
        coef_y = torch.zeros_like(coef_s)
        coef_s[idx] = z[:, 0]
        coef_y[idx] = -gamma * a[:, 0]
        return torch.addmv(torch.addmv(gamma * g, self.s.T, coef_s), self.y.T, coef_y)


def minimize(
    evaluate: Callable[[], torch.Tensor],
    x: torch.Tensor,
    *,
    max_calls: int,
    chunk: int,
    tol: float,
    history: int = 20,
) -> int:
    """Minimise a smooth function of the flat leaf tensor ``x``, updating ``x`` in place.

    ``evaluate()`` returns the loss at the current ``x`` and leaves its gradient in
    ``x.grad``. Stops after ``max_calls`` evaluations, when ``chunk`` evaluations improve the
    loss by less than ``tol``, when the gradient vanishes or when no step decreases the loss.
    Returns the number of evaluations.
    """
    memory = History(x, history)
    loss = float(evaluate())
    assert x.grad is not None, "evaluate() leaves the gradient in x.grad"
    g = x.grad.detach().clone()
    calls = 1
    checkpoint, check_at = loss, chunk
    while calls < max_calls:
        if not float(g.abs().max()) > 0:  # a stationary point: no direction to go
            break
        d = -memory.apply(g)
        gd = float(g @ d)
        if not gd < 0:  # not a descent direction: forget the curvature and go downhill
            memory.clear()
            d, gd = -g, -float(g @ g)
        # first step: at most unit length in l1, as torch's L-BFGS; then the full step
        t = 1.0 if memory.count else min(1.0, 1.0 / float(g.abs().sum()))
        t, new, g_new, used = _wolfe(evaluate, x, d, loss, gd, t, max_calls - calls)
        calls += used
        if g_new is None:  # no step decreased the loss: x is back where it was
            break
        s, y = t * d, g_new - g
        sy, yy, gmax = torch.stack([y @ s, y @ y, g_new.abs().max()]).tolist()
        if sy > CURVATURE_MIN:
            memory.push(s, y, sy, yy)
        loss, g = new, g_new
        if gmax <= GRAD_TOL:
            break
        if calls >= check_at:
            if checkpoint - loss < tol:
                break
            checkpoint, check_at = loss, calls + chunk
    return calls


@dataclass(frozen=True)
class Point:
    """A trial step: its length, the loss there, the slope along d and the gradient."""

    t: float
    f: float
    slope: float
    grad: torch.Tensor | None


def _cubic_min(a: Point, b: Point) -> float:
    """Minimiser of the cubic with the values and slopes of ``a`` and ``b`` (Nocedal & Wright
    eq. 3.59); the midpoint when that cubic has no minimum."""
    d1 = a.slope + b.slope - 3 * (a.f - b.f) / (a.t - b.t)
    disc = d1 * d1 - a.slope * b.slope
    if not disc >= 0:
        return (a.t + b.t) / 2
    d2 = math.copysign(math.sqrt(disc), b.t - a.t)
    denom = b.slope - a.slope + 2 * d2
    if denom == 0:
        return (a.t + b.t) / 2
    return b.t - (b.t - a.t) * (b.slope + d2 - d1) / denom


def _wolfe(
    evaluate: Callable[[], torch.Tensor],
    x: torch.Tensor,
    d: torch.Tensor,
    loss: float,
    gd: float,
    t: float,
    budget: int,
) -> tuple[float, float, torch.Tensor | None, int]:
    """A step ``t`` along ``d`` from ``x`` meeting the strong Wolfe conditions

        f(x + t d) <= f(x) + ARMIJO t g·d      (sufficient decrease)
        |g(x + t d)·d| <= WOLFE |g·d|           (near a minimum along d; then y·s > 0)

    by Nocedal & Wright's Algorithms 3.5 and 3.6: grow the step until it brackets such a
    point, then shrink the bracket, each trial at the minimiser of the cubic through the two
    ends' values and slopes (safeguarded). Leaves ``x`` at the step and returns (t, loss,
    gradient, evaluations); past ``budget`` (at most MAX_TRIALS) evaluations, the best point
    with sufficient decrease, or x unchanged and no gradient if there was none.
    """
    start = x.detach().clone()
    budget = min(budget, MAX_TRIALS)
    used = 0

    def trial(t: float) -> Point:
        nonlocal used
        with torch.no_grad():
            torch.add(start, d, alpha=t, out=x)
        f = evaluate()
        grad = x.grad  # read after evaluate(), which may replace the tensor
        assert grad is not None, "evaluate() leaves the gradient in x.grad"
        f_t, slope = torch.stack([f, grad @ d]).tolist()
        used += 1
        return Point(t, f_t, slope, grad.detach().clone())

    def decreases(p: Point) -> bool:
        return p.f <= loss + ARMIJO * p.t * gd  # False for nan

    def flat(p: Point) -> bool:
        return abs(p.slope) <= -WOLFE * gd

    lo = Point(0.0, loss, gd, None)  # the best point with sufficient decrease so far
    hi: Point | None = None
    while used < budget:
        if hi is None:  # growing the step
            p = trial(t)
            if not decreases(p) or p.f >= lo.f:
                hi = p
            elif flat(p):
                return p.t, p.f, p.grad, used
            elif p.slope >= 0:
                lo, hi = p, lo
            else:
                grown = _cubic_min(lo, p)
                lo, t = p, min(max(grown, p.t + 0.01 * (p.t - lo.t)), 10 * p.t)
            continue
        # shrinking the bracket [lo, hi] (either order)
        left, right = min(lo.t, hi.t), max(lo.t, hi.t)
        if right - left <= 1e-9 * right:
            break
        t = min(max(_cubic_min(lo, hi), left + 0.1 * (right - left)), right - 0.1 * (right - left))
        p = trial(t)
        if not decreases(p) or p.f >= lo.f:
            hi = p
        elif flat(p):
            return p.t, p.f, p.grad, used
        else:
            if p.slope * (hi.t - lo.t) >= 0:
                hi = lo
            lo = p
    with torch.no_grad():
        if lo.grad is None:
            x.copy_(start)
            return 0.0, loss, None, used
        torch.add(start, d, alpha=lo.t, out=x)
    return lo.t, lo.f, lo.grad, used
