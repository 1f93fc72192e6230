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
2,000 mirror-descent steps left 0.4 counts).

Pure post-processing: only noisy measurements come in.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from privsynth.inference import junction_tree as jt
from privsynth.inference.model import GraphicalModel

log = logging.getLogger("privsynth.inference")

CHUNK = 50  # belief-propagation calls between convergence checks
TOL = 1e-4  # stop when a chunk improves the scaled loss by less than this


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
        return cls(
            tuple(data["clique"]),
            np.asarray(data["values"], dtype=np.float64),
            data["sigma"] if np.isscalar(data["sigma"]) else np.asarray(data["sigma"], float),
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
    device: str | torch.device = "auto",
) -> GraphicalModel:
    """Fit a :class:`GraphicalModel` to ``measurements``.

    ``iters`` caps the belief-propagation calls; ``extra_cliques`` adds potentials that no
    measurement touches (e.g. AIM's candidate cliques); ``warm_start`` reuses the potentials
    of an earlier model on the same domain; ``init`` gives starting log-potentials for some
    cliques (e.g. a closed form that is exact when the measurements are consistent).
    """
    for m in measurements:
        if tuple(m.clique) != jt.canonical(m.clique, domain):
            raise ValueError(f"measurement clique {m.clique} is not in domain order")
        if len(m.values) != jt.cells(m.clique, domain):
            raise ValueError(
                f"measurement on {m.clique} has {len(m.values)} cells, expected "
                f"{jt.cells(m.clique, domain)}"
            )
    total = estimate_total(measurements)
    cliques = [m.clique for m in measurements] + [jt.canonical(c, domain) for c in extra_cliques]
    model = GraphicalModel(domain, cliques, total, device=device)
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
    targets = [
        torch.as_tensor(
            np.asarray(m.values, dtype=np.float64) / total, device=dev, dtype=dt
        ).reshape(model._shape(m.clique))
        for m in measurements
    ]
    # On the probability scale L = sum_i w_i ||mu_i - y_i/total||^2 / 2 with
    # w_i = total^2 / sigma_i^2; dividing by sum_i cells_i (twice L's expected value at the
    # truth) makes the stopping tolerance scale-free.
    n_cells = sum(len(m.values) for m in measurements)
    weights = [
        torch.as_tensor(total**2 / m.variances() / n_cells, device=dev, dtype=dt).reshape(
            model._shape(m.clique)
        )
        for m in measurements
    ]
    theta = [t.detach().clone().requires_grad_(True) for t in model.theta]
    chunk = min(CHUNK, iters)
    opt = torch.optim.LBFGS(
        theta,
        lr=1.0,
        max_iter=chunk,
        max_eval=chunk,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-10,
        tolerance_change=1e-12,
    )
    calls = 0

    def closure() -> torch.Tensor:
        nonlocal calls
        calls += 1
        opt.zero_grad()
        model.theta = theta
        mus = model.project(model.beliefs(), [m.clique for m in measurements])
        loss = sum(
            0.5 * torch.sum(w * (mu - y) ** 2)
            for w, mu, y in zip(weights, mus, targets, strict=True)
        )
        loss.backward()
        return loss

    # Run in chunks (the optimizer keeps its curvature history between them) and stop once a
    # chunk improves the scaled loss by less than TOL: at the truth that loss is about 1/2,
    # so TOL is a negligible fraction of the noise.
    previous = float("inf")
    while measurements and calls < iters:
        loss = float(opt.step(closure).detach())
        if previous - loss < TOL:
            break
        previous = loss
    log.debug("estimate: %d belief-propagation calls", calls)
    model.theta = [t.detach() for t in theta]
    model.iterations_ = calls
    return model
