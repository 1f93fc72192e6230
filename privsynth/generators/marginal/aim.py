"""AIM: an adaptive, iterative, workload-aware mechanism (McKenna, Mullins, Sheldon & Miklau
2022, arXiv 2201.12677).

As in the paper, with zCDP budget rho:

1. measure every 1-way marginal with Gaussian noise of scale sigma, where
   sigma = sqrt(T / (2 * 0.9 * rho)) and T = 16 d is a budget for rounds (not a round count);
2. repeat until the budget is spent: choose a candidate clique (any subset of a workload
   clique whose model would stay within the size limit, which grows with the budget used)
   by the exponential mechanism with rho_sel = eps^2/8, eps = sqrt(8 * 0.1 * rho / T), scored
   by weight * (L1 error of the current model on it - the error noise alone would cause);
   measure it with sigma; re-estimate the model (warm start, the new clique's potential
   moved half an IPF step towards its measurement: _ipf_start); if the model barely moved on
   that clique, halve sigma and double eps (the next rounds buy more accuracy);
3. the last round spends exactly what is left; sample from the model.

Scores: adding or removing one row changes ||M_r(data) - model_r||_1 by at most 1, so a score
weighted by w_r has sensitivity w_r and the selection uses sensitivity max_r w_r.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from privsynth import mechanisms
from privsynth.budget.events import PrivacyEvent
from privsynth.errors import ConfigError
from privsynth.generators.marginal.base import MarginalGenerator
from privsynth.generators.marginal.zeros import structural_zeros
from privsynth.inference import junction_tree as jt
from privsynth.inference.estimate import Measurement, estimate
from privsynth.inference.model import GraphicalModel
from privsynth.schema import Schema
from privsynth.sources.table import EncodedTable

ALPHA = 0.9  # share of each round's budget spent on measuring (the rest on selecting)
ROUNDS_PER_COLUMN = 16
BYTES_PER_CELL = 8
IPF_STEP = 0.5  # how far each round's warm start moves towards the new measurement (_ipf_start)


@dataclass(eq=False, repr=False, kw_only=True)
class AIM(MarginalGenerator):
    """Differentially private synthetic data by the AIM mechanism.

    Parameters
    ----------
    epsilon, delta, discovery_share, allow_data_dependent_domain, device
        As for :class:`~privsynth.generators.marginal.mst.MST`.
    degree
        The workload: all marginals on ``degree`` columns (2 or 3), equally weighted.
    max_model_size
        Megabytes the graphical model may reach (it grows with the budget used).
    iters
        Belief-propagation calls for the final estimate.
    round_iters
        Belief-propagation calls for each warm-started estimate between rounds. Selection
        and the decision to halve sigma read this model, so it pays to estimate it well
        (docs/benchmarks.md compares call counts).
    """

    name: ClassVar[str] = "AIM"

    degree: int = 2
    max_model_size: float = 80.0
    round_iters: int = 200

    def _check_params(self) -> None:
        super()._check_params()
        if self.degree not in (2, 3):
            raise ConfigError(f"degree ({self.degree!r}) must be 2 or 3")
        if not self.max_model_size > 0:
            raise ConfigError(f"max_model_size ({self.max_model_size!r}) must be > 0 (MB)")
        if int(self.round_iters) != self.round_iters or self.round_iters < 1:
            raise ConfigError(f"round_iters ({self.round_iters!r}) must be a positive integer")

    def _fit_table(self, table: EncodedTable, rho: float, schema: Schema) -> list[PrivacyEvent]:
        shape = table.shape
        zeros = structural_zeros(schema, shape)  # cells the rules forbid stay at zero mass
        names = list(shape)
        d = len(names)
        col = {a: j for j, a in enumerate(names)}
        truth_cache: dict[tuple[str, ...], np.ndarray] = {}

        def count_all(cliques: list[tuple[str, ...]]) -> None:
            """Exact marginals of the cliques not counted yet, in one pass over the table."""
            todo = [c for c in cliques if c not in truth_cache]
            got = table.marginals([tuple(col[a] for a in c) for c in todo])
            truth_cache.update(zip(todo, got, strict=True))

        def true_marginal(clique: tuple[str, ...]) -> np.ndarray:
            count_all([clique])
            return truth_cache[clique]

        candidates = _candidates(names, min(self.degree, d))
        rounds = ROUNDS_PER_COLUMN * d
        sigma = np.sqrt(rounds / (2 * ALPHA * rho))
        eps = np.sqrt(8 * (1 - ALPHA) * rho / rounds)
        charges: list[PrivacyEvent] = []
        measurements: list[Measurement] = []

        # sigma sets each measurement's rho = 1 / (2 sigma^2); the noise's sd is K sigma when a
        # person may own K rows (mechanisms.unit_of_privacy), which the estimates use.
        k = mechanisms.count_sensitivity()

        def measure(clique: tuple[str, ...], sigma: float) -> None:
            y, c = mechanisms.gaussian_counts(true_marginal(clique), 1 / (2 * sigma**2))
            measurements.append(Measurement(clique, y.astype(np.float64), float(k * sigma)))
            charges.append(c)

        used = 0.0
        count_all([(a,) for a in names])
        for a in names:
            measure((a,), sigma)
            used += 1 / (2 * sigma**2)
        model = estimate(
            measurements, shape, iters=self.round_iters, zeros=zeros, device=self.device
        )
        limit_bytes = self.max_model_size * 2**20
        last = False
        while not last and used < rho:
            round_cost = 1 / (2 * sigma**2) + eps**2 / 8
            if rho - used < 2 * round_cost:  # spend what is left in one final round
                remaining = rho - used
                sigma = np.sqrt(1 / (2 * ALPHA * remaining))
                eps = np.sqrt(8 * (1 - ALPHA) * remaining)
                last = True
            used += 1 / (2 * sigma**2) + eps**2 / 8
            size_cap = limit_bytes * used / rho
            small = [c for c in candidates if _model_bytes(model, c, shape) <= size_cap]
            if not small:
                small = [c for c in candidates if len(c) == 1]
            est = model.marginals(small)
            weights = np.array([candidates[c] for c in small])
            errors = []
            count_all(small)
            for c, e in zip(small, est, strict=True):
                n_cells = jt.cells(c, shape)
                errors.append(
                    np.abs(truth_cache[c] - e).sum() - np.sqrt(2 / np.pi) * k * sigma * n_cells
                )
            scores = weights * np.asarray(errors)
            pick, c_sel = mechanisms.select_max(
                scores, sensitivity=float(weights.max()), rho=eps**2 / 8
            )
            charges.append(c_sel)
            clique = small[pick]
            before = model.marginal(clique)
            measure(clique, sigma)
            model = estimate(
                measurements,
                shape,
                iters=self.round_iters,
                warm_start=model,
                init=_ipf_start(model, clique, measurements[-1].values, before, IPF_STEP),
                zeros=zeros,
                device=self.device,
            )
            after = model.marginal(clique)
            expected = np.sqrt(2 / np.pi) * k * sigma * jt.cells(clique, shape)
            if np.abs(after - before).sum() <= expected:
                sigma, eps = sigma / 2, eps * 2
        self.measurements_ = measurements
        self.model_ = estimate(
            measurements,
            shape,
            iters=self.iters,
            warm_start=model,
            zeros=zeros,
            device=self.device,
        )
        return charges

    def _sample_codes(
        self, n: int, rng: np.random.Generator, conditions: dict[str, list[int]]
    ) -> np.ndarray:
        return self.model_.sample(n, rng, conditions)

    def _estimated_rows(self) -> int:
        return max(0, int(round(self.model_.total)))

    def _state(self) -> dict[str, Any]:
        return {
            "model": self.model_.to_dict(),
            "measurements": [m.to_dict() for m in self.measurements_],
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        self.model_ = GraphicalModel.from_dict(state["model"], device=self.device)
        self.measurements_ = [Measurement.from_dict(m) for m in state["measurements"]]


def _candidates(names: list[str], degree: int) -> dict[tuple[str, ...], float]:
    """Every subset of a workload clique, weighted by its overlap with the workload:
    w_r = sum over workload cliques q of |r & q| (the paper's weighting)."""
    workload = list(itertools.combinations(names, degree))
    out: dict[tuple[str, ...], float] = {}
    for q in workload:
        for k in range(1, degree + 1):
            for r in itertools.combinations(q, k):
                out[r] = 0.0
    for r in out:
        out[r] = float(sum(len(set(r) & set(q)) for q in workload))
    return out


def _ipf_start(
    model: GraphicalModel,
    clique: tuple[str, ...],
    y: np.ndarray,
    before: np.ndarray,
    step: float,
) -> dict[tuple[str, ...], np.ndarray]:
    """Starting log-potential on ``clique`` for the estimate after it was measured as ``y``
    (noisy counts), given the model's counts ``before`` on it. Post-processing.

    An iterative-proportional-fitting step theta_c += log(y / before) makes the model's
    marginal on c equal y, since theta_c is one of its factors; ``step`` = 1/2 goes half way in
    log space, weighting the model's current estimate and the new measurement equally, and the
    estimator then finds the least-squares optimum. Half a count keeps empty and negative cells
    finite. Starting from zero instead, ``round_iters`` calls under-fit the new measurement, the
    model seems to barely move on it and AIM halves its noise too early (docs/benchmarks.md
    measures the difference).
    """
    ratio = np.log((np.clip(y, 0, None) + 0.5) / (np.clip(before, 0, None) + 0.5))
    c = jt.canonical(clique, model.domain)
    old = (
        model.theta[model.cliques.index(c)].reshape(-1).cpu().numpy()
        if c in model.cliques
        else np.zeros(len(ratio))
    )
    return {c: old + step * ratio}


def _model_bytes(model: GraphicalModel, extra: tuple[str, ...], shape: dict[str, int]) -> float:
    """Memory of the junction tree the model would have with ``extra`` added (its own tree's
    when ``extra`` lies inside a clique it already has)."""
    if any(set(extra) <= set(c) for c in model.cliques):
        return model.tree.size(shape) * BYTES_PER_CELL
    return jt.build([*model.cliques, extra], shape).size(shape) * BYTES_PER_CELL
