"""The estimator's L-BFGS (privsynth/inference/lbfgs.py): the compact form against the
two-loop recursion, and minimisation of functions whose minimum is known."""

import numpy as np
import pytest
import torch

from privsynth.inference.lbfgs import History, minimize


def two_loop(pairs, g, gamma):
    """H g by the textbook two-loop recursion (Nocedal & Wright, Algorithm 7.4)."""
    q = g.clone()
    alphas = []
    for s, y in reversed(pairs):
        a = (s @ q) / (y @ s)
        alphas.append(a)
        q = q - a * y
    r = gamma * q
    for (s, y), a in zip(pairs, reversed(alphas), strict=True):
        b = (y @ r) / (y @ s)
        r = r + (a - b) * s
    return r


@pytest.mark.parametrize("pushes", [1, 3, 5, 12])  # 12 > m = 5: the ring buffer wraps
def test_compact_form_equals_the_two_loop_recursion(pushes):
    gen = torch.Generator().manual_seed(pushes)
    n, m = 40, 5
    a = torch.randn(n, n, generator=gen, dtype=torch.float64)
    hess = a @ a.T + n * torch.eye(n, dtype=torch.float64)  # positive definite: y·s > 0
    memory = History(torch.zeros(n, dtype=torch.float64), m)
    pairs = []
    for _ in range(pushes):
        s = torch.randn(n, generator=gen, dtype=torch.float64)
        y = hess @ s
        memory.push(s, y, float(y @ s), float(y @ y))
        pairs.append((s, y))
    g = torch.randn(n, generator=gen, dtype=torch.float64)
    gamma = float(pairs[-1][1] @ pairs[-1][0] / (pairs[-1][1] @ pairs[-1][1]))
    expected = two_loop(pairs[-m:], g, gamma)
    # Two exact algebraic forms of one matrix: they differ by rounding only.
    torch.testing.assert_close(memory.apply(g), expected, rtol=1e-9, atol=1e-12)


def fn_of(f, x):
    def evaluate():
        x.grad = None
        loss = f(x)
        loss.backward()
        return loss.detach()

    return evaluate


def test_minimises_an_ill_conditioned_quadratic_to_its_closed_form():
    gen = torch.Generator().manual_seed(0)
    n = 60
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    hess = q @ torch.diag(torch.logspace(0, 2, n, dtype=torch.float64)) @ q.T  # condition 100
    b = torch.randn(n, generator=gen, dtype=torch.float64)
    x = torch.zeros(n, dtype=torch.float64, requires_grad=True)
    minimize(fn_of(lambda v: 0.5 * v @ hess @ v - b @ v, x), x, max_calls=100, chunk=50, tol=0.0)
    # Measured 1.4e-6 after 100 calls (torch.optim.LBFGS with a strong-Wolfe search: 1.2e-6
    # in 89); plain gradient descent would still be ~ (1 - 2/101)^100 ~ 14 % away. Beyond
    # ~1e-7 a line search on function values stalls in rounding (decreases of ~g^2/lambda).
    np.testing.assert_allclose(x.detach(), torch.linalg.solve(hess, b), atol=1e-5)


def test_minimises_rosenbrock_and_never_increases_the_loss():
    seen = []

    def rosenbrock(v):
        loss = 100 * (v[1] - v[0] ** 2) ** 2 + (1 - v[0]) ** 2
        seen.append(float(loss.detach()))
        return loss

    x = torch.tensor([-1.2, 1.0], dtype=torch.float64, requires_grad=True)
    minimize(fn_of(rosenbrock, x), x, max_calls=400, chunk=50, tol=0.0)
    np.testing.assert_allclose(x.detach(), [1.0, 1.0], atol=1e-6)
    # Accepted points (the Armijo test passed) only go down: the loss at x at the end is the
    # lowest value evaluated.
    assert float(rosenbrock(x.detach())) == pytest.approx(min(seen), abs=1e-15)


def test_stops_at_the_call_budget_and_on_a_flat_chunk():
    x = torch.tensor([3.0, -4.0], dtype=torch.float64, requires_grad=True)
    f = fn_of(lambda v: (v**4).sum(), x)  # slow (quartic) convergence: never "converged"
    assert minimize(f, x, max_calls=7, chunk=50, tol=0.0) == 7
    x2 = torch.tensor([3.0, -4.0], dtype=torch.float64, requires_grad=True)
    calls = minimize(fn_of(lambda v: (v**4).sum(), x2), x2, max_calls=10_000, chunk=5, tol=1e3)
    # The first chunk improves the loss by 337 - (loss after 5 calls) < 1e3: stop there.
    assert 5 <= calls <= 6


def quartic_start():
    target = torch.tensor([3.0, -1.0], dtype=torch.float64)
    x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    evaluate = fn_of(lambda v: ((v - target) ** 4).sum() + (v**2).sum(), x)
    f0 = float(evaluate())
    g0 = x.grad.detach().clone()
    return x, evaluate, f0, g0


# grow a short step (by cubic extrapolation), accept the first trial, shrink a long step
@pytest.mark.parametrize("t0", [1e-4, 1e-2, 1.0, 100.0])
def test_line_search_meets_the_strong_wolfe_conditions(t0):
    from privsynth.inference.lbfgs import ARMIJO, WOLFE, _wolfe

    x, evaluate, f0, g0 = quartic_start()
    d, start = -g0, x.detach().clone()
    t, f_t, g_t, used = _wolfe(evaluate, x, d, f0, float(g0 @ d), t0, budget=50)
    assert g_t is not None and used < 25
    torch.testing.assert_close(x.detach(), start + t * d)
    assert f_t <= f0 + ARMIJO * t * float(g0 @ d)
    assert abs(float(g_t @ d)) <= WOLFE * abs(float(g0 @ d))
    # what it returns is what the function gives at that point
    assert float(evaluate()) == pytest.approx(f_t, rel=1e-12)
    torch.testing.assert_close(x.grad, g_t)


def test_line_search_out_of_budget_keeps_its_best_decrease():
    from privsynth.inference.lbfgs import ARMIJO, _wolfe

    x, evaluate, f0, g0 = quartic_start()
    d, start = -g0, x.detach().clone()
    # from 1e-6 the extrapolation grows the step ~1.2x a trial: 3 trials cannot reach 1e-2
    t, f_t, g_t, used = _wolfe(evaluate, x, d, f0, float(g0 @ d), 1e-6, budget=3)
    assert used == 3 and 1e-6 < t < 1e-4
    torch.testing.assert_close(x.detach(), start + t * d)
    assert f_t <= f0 + ARMIJO * t * float(g0 @ d)
    assert float(evaluate()) == pytest.approx(f_t, rel=1e-12)


def test_a_start_at_a_stationary_point_stops_without_a_step():
    # f(x) = sum(x^2) at x = 0: the gradient is exactly zero, so there is no direction; the
    # first step's length (1 / |g|_1) must not be computed.
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)

    def evaluate():
        x.grad = None
        loss = (x**2).sum()
        loss.backward()
        return loss.detach()

    assert minimize(evaluate, x, max_calls=50, chunk=10, tol=1e-9) == 1
    assert torch.equal(x.detach(), torch.zeros(3, dtype=torch.float64))
