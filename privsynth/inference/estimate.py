"""Estimating a graphical model from noisy marginal measurements (the Private-PGM approach,
McKenna, Sheldon & Miklau 2019).

Given measurements y_i = M_{C_i}(data) + N(0, sigma_i^2) on cliques C_i, find the distribution
whose marginals mu minimise L(mu) = sum_i ||(total * mu_{C_i} - y_i) / sigma_i||^2 / 2 over the
marginal polytope. As in Private-PGM the search runs over the log-potentials theta of a
graphical model whose cliques are the C_i, with mu(theta) computed exactly by belief
propagation on a junction tree. Private-PGM takes entropic mirror-descent steps
theta <- theta - eta * dL/dmu; we minimise the same objective over the same theta with L-BFGS
on dL/dtheta (autograd through belief propagation), which reaches the optimum in far fewer
belief-propagation calls (on a noise-free 4-attribute test: 1e-6 counts in 169 calls, where
2,000 mirror-descent steps left 0.4 counts). Belief propagation runs batched by tree level
(flat_bp.py) on small models and clique by clique (model.py) on large ones; both are exact.

Pure post-processing: only noisy measurements come in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from privsynth.inference import junction_tree as jt
from privsynth.inference import lbfgs
from privsynth.inference.flat_bp import FlatBP
from privsynth.inference.model import GraphicalModel

log = logging.getLogger("privsynth.inference")

CHUNK = 50  # belief-propagation calls between convergence checks
TOL = 1e-4  # stop when a chunk improves the scaled loss by less than this
# Models up to this many junction-tree cells run belief propagation batched by tree level
# (flat_bp.py); larger ones clique by clique (model.py). Batching saves kernel launches, which
# dominate small models, but gathers every message into one flat vector, which costs more than
# it saves once the cells number in the tens of thousands (benchmarks/run_inference.py
# --flat-max-cells measures where the two cross).
FLAT_MAX_CELLS = 40_000
#: Log-potential of a structural zero: exp(-1e4) is exactly 0 in float64, so the cell gets no
#: mass; finite (unlike -inf) so that log-sum-exp over a clique whose cells are all zero stays
#: finite, gradients stay free of NaN, and the model still saves as JSON.
STRUCTURAL_ZERO = -1e4


@dataclass(frozen=True)
class Measurement:
    """Noisy counts over ``clique`` (attributes in domain order, cells row-major)."""

    clique: tuple[str, ...]
    values: np.ndarray
    sigma: float | np.ndarray  # one noise sd for every cell, or one per cell

    def variances(self) -> np.ndarray:
        """Noise variance of each cell."""
        return np.broadcast_to(np.asarray(self.sigma, dtype=np.float64) ** 2, np.shape(self.values))

    def to_dict(self) -> dict:
        return {
            "clique": list(self.clique),
            "sigma": np.asarray(self.sigma).tolist(),
            "values": np.asarray(self.values).tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Measurement:
        sigma = data["sigma"]  # a number (to_dict of a float) or a list, one per cell
        return cls(
            tuple(data["clique"]),
            np.asarray(data["values"], dtype=np.float64),
            float(sigma) if np.ndim(sigma) == 0 else np.asarray(sigma, float),
        )


def estimate_total(measurements: Sequence[Measurement]) -> float:
    """Inverse-variance weighted mean of the measurements' sums (a sum's variance is the sum
    of its cells' variances); at least 1."""
    sums = np.array([np.sum(m.values) for m in measurements], dtype=np.float64)
    var = np.array([m.variances().sum() for m in measurements], dtype=np.float64)
    return float(max(1.0, np.sum(sums / var) / np.sum(1 / var)))


def estimate(
    measurements: Sequence[Measurement],
    domain: Mapping[str, int],
    *,
    iters: int = 1000,
    extra_cliques: Sequence[Sequence[str]] = (),
    warm_start: GraphicalModel | None = None,
    init: Mapping[tuple[str, ...], np.ndarray] | None = None,
    zeros: Mapping[tuple[str, ...], np.ndarray] | None = None,
    device: str | torch.device = "auto",
) -> GraphicalModel:
    """Fit a :class:`GraphicalModel` to ``measurements``.

    ``iters`` caps the belief-propagation calls; ``extra_cliques`` adds potentials that no
    measurement touches (e.g. AIM's candidate cliques); ``warm_start`` reuses the potentials
    of an earlier model on the same domain; ``init`` gives starting log-potentials for some
    cliques (e.g. a closed form that is exact when the measurements are consistent).

    ``zeros`` maps a clique (domain order) to a boolean mask of its cells (row-major) that
    public rules forbid (structural zeros, see :mod:`privsynth.generators.marginal.zeros`):
    the clique joins the model and those cells keep the log-potential
    :data:`STRUCTURAL_ZERO`, so the estimate puts no mass there. The estimator's loss on
    them is a constant, so noise measured on impossible cells does not pull the fit.
    """
    for m in measurements:
        if tuple(m.clique) != jt.canonical(m.clique, domain):
            raise ValueError(f"measurement clique {m.clique} is not in domain order")
        if len(m.values) != jt.cells(m.clique, domain):
            raise ValueError(
                f"measurement on {m.clique} has {len(m.values)} cells, expected "
                f"{jt.cells(m.clique, domain)}"
            )
    zeros = dict(zeros or {})
    for clique, cells in zeros.items():
        if tuple(clique) != jt.canonical(clique, domain) or len(cells) != jt.cells(clique, domain):
            raise ValueError(f"structural zeros on {clique} must be in domain order, one per cell")
    total = estimate_total(measurements)
    cliques = [m.clique for m in measurements] + [jt.canonical(c, domain) for c in extra_cliques]
    model = GraphicalModel(domain, [*cliques, *zeros], total, device=device)
    if warm_start is not None:
        old = dict(zip(warm_start.cliques, warm_start.theta, strict=True))
        model.theta = [
            old[c].to(model.device).clone() if c in old else th
            for c, th in zip(model.cliques, model.theta, strict=True)
        ]
    for clique, values in (init or {}).items():
        k = model.cliques.index(jt.canonical(clique, domain))
        model.theta[k] = torch.as_tensor(
            np.asarray(values, dtype=np.float64), device=model.device, dtype=model.dtype
        ).reshape(model._shape(model.cliques[k]))

    dev, dt = model.device, model.dtype
    # On the probability scale L = sum_i w_i ||mu_i - y_i/total||^2 / 2 with
    # w_i = total^2 / sigma_i^2; dividing by sum_i cells_i (twice L's expected value at the
    # truth) makes the stopping tolerance scale-free. Every measurement's cells sit in one
    # flat vector, so the loss is a handful of tensor ops however many measurements there are.
    n_cells = sum(len(m.values) for m in measurements)
    target = torch.as_tensor(
        np.concatenate([np.asarray(m.values, dtype=np.float64) / total for m in measurements]),
        device=dev,
        dtype=dt,
    )
    weight = torch.as_tensor(
        np.concatenate([total**2 / m.variances() / n_cells for m in measurements]),
        device=dev,
        dtype=dt,
    )
    # One flat parameter vector, viewed per clique, for L-BFGS (lbfgs.py); the structural
    # zeros are a constant added to it, so the optimiser never moves them.
    shapes = [t.shape for t in model.theta]
    sizes = [t.numel() for t in model.theta]
    fixed = torch.zeros(sum(sizes), device=dev, dtype=torch.bool)
    starts = np.cumsum([0, *sizes])
    for clique, cells in zeros.items():
        k = model.cliques.index(tuple(clique))
        at = torch.as_tensor(starts[k] + np.flatnonzero(cells), device=dev)
        fixed[at] = True
    mask = torch.where(fixed, STRUCTURAL_ZERO, 0.0).to(dt)
    start = torch.cat([t.reshape(-1) for t in model.theta]).detach()
    flat = torch.where(fixed, 0.0, start).to(dt).requires_grad_(True)
    cliques = [m.clique for m in measurements]

    if model.tree.size(domain) <= FLAT_MAX_CELLS:
        level_batched = FlatBP(model, cliques)

        def marginals() -> torch.Tensor:
            return level_batched(flat + mask)

    else:

        def marginals() -> torch.Tensor:
            theta = (flat + mask).split(sizes)
            model.theta = [v.view(s) for v, s in zip(theta, shapes, strict=True)]
            return torch.cat([p.reshape(-1) for p in model.project(model.beliefs(), cliques)])

    def loss_fn() -> torch.Tensor:
        return 0.5 * torch.sum(weight * (marginals() - target) ** 2)

    def eager() -> torch.Tensor:
        flat.grad = None
        loss = loss_fn()
        loss.backward()
        return loss.detach()

    # Stop once CHUNK calls improve the scaled loss by less than TOL: at the truth that loss is
    # about 1/2, so TOL is a negligible fraction of the noise.
    calls = 0
    if measurements and iters > 0:
        evaluate = _graphed(loss_fn, flat) if dev.type == "cuda" else eager
        calls = lbfgs.minimize(evaluate, flat, max_calls=iters, chunk=CHUNK, tol=TOL)
    log.debug("estimate: %d belief-propagation calls", calls)
    final = (flat + mask).detach()
    model.theta = [v.view(s) for v, s in zip(final.split(sizes), shapes, strict=True)]
    model.iterations_ = calls
    return model


def _graphed(
    loss_fn: Callable[[], torch.Tensor], param: torch.Tensor
) -> Callable[[], torch.Tensor]:
    """``loss_fn``'s forward and backward captured once as a CUDA graph; the returned function
    replays it and returns the loss, with ``param.grad`` filled.

    On a GPU one belief-propagation call is hundreds of tiny kernels, so launching them costs
    more than running them; a replay launches them all at once. The graph reads ``param``'s
    memory, which L-BFGS updates in place, and writes the gradient into the tensor made at
    capture. The same kernels run in the same order, so results match eager evaluation.
    """
    # Warm up (library handles, allocator) and capture on one side stream, so autograd's
    # gradient accumulator for ``param`` belongs to the stream it is captured on.
    side = torch.cuda.Stream(param.device)
    side.wait_stream(torch.cuda.current_stream(param.device))
    with torch.cuda.stream(side):
        for _ in range(2):
            param.grad = None
            loss_fn().backward()
    param.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=side):
        loss = loss_fn()
        loss.backward()
    torch.cuda.current_stream(param.device).wait_stream(side)

    def replay() -> torch.Tensor:
        graph.replay()
        return loss.detach()  # the graph's buffer: the next replay overwrites it

    return replay
