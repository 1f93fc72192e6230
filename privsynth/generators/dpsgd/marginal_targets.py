"""Noisy 1- and 2-way marginals as targets for a neural generator.

A DP-SGD discriminator sees each real row a handful of times under heavy noise, which is a
weak teacher of how columns relate; one Gaussian measurement of every column pair is a strong
one (Liu, Vietri & Wu 2021, GEM, fit a generator to noisy marginals the same way). Here the
pairs are measured on *coarse* groups of each column's values, so that each cell holds
enough rows to stand above the noise; the generator keeps its fine per-column outputs, and
its 2-way marginal on the groups is pulled towards the measurement.

What reads private data: :func:`measure_pairs` (one Gaussian count vector per pair, through
:mod:`privsynth.mechanisms`). Everything else is post-processing of DP outputs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from privsynth import mechanisms
from privsynth.budget.events import PrivacyEvent
from privsynth.generators.dpsgd.transform import OneHotBlocks
from privsynth.generators.split import allocate


def project_counts(noisy: np.ndarray, total: float) -> np.ndarray:
    """Frequencies from one noisy histogram: the non-negative vector of sum ``total`` nearest
    to ``noisy`` (Euclidean; ``max(noisy - c, 0)`` for the one shift ``c`` that gives that
    sum), normalised. Post-processing.

    Clipping negative cells at zero instead keeps every positive noise draw, which on a wide,
    sparse histogram spreads much of the mass over empty cells; the shift removes that mass
    evenly. ``total`` is the better (pooled) row estimate, at least 1, so the largest cell
    always keeps mass.
    """
    noisy = np.asarray(noisy, dtype=np.float64)
    total = max(float(total), 1.0)
    ordered = np.sort(noisy)[::-1]
    shifts = (np.cumsum(ordered) - total) / np.arange(1, len(ordered) + 1)
    k = np.flatnonzero(ordered > shifts)[-1]  # never empty: ordered[0] > ordered[0] - total
    p = np.maximum(noisy - shifts[k], 0.0)
    return p / p.sum()


def coarse_groups(freq: np.ndarray, k: int) -> np.ndarray:
    """Each code's group: runs of adjacent codes, a run closed as soon as its mass (by the
    DP frequencies ``freq``) reaches 1/k. Post-processing.

    Every closed run holds at least 1/k of the mass, so there are at most k of them, plus
    possibly a lighter last run holding what follows the last close (kept apart: for
    capital-gain, the 8% of rows with a gain must not merge into the 92% without). A column
    of at most k codes keeps a group per code. Adjacent codes are grouped because numeric
    bins and ordinal levels are ordered; for a categorical column the order is the schema's.
    """
    freq = np.asarray(freq, dtype=np.float64)
    if len(freq) <= k:
        return np.arange(len(freq), dtype=np.int64)
    groups = np.empty(len(freq), dtype=np.int64)
    group, mass = 0, 0.0
    for code, f in enumerate(freq):
        groups[code] = group
        mass += f
        if mass >= 1.0 / k and code < len(freq) - 1:
            group, mass = group + 1, 0.0
    return groups


def kl(target: torch.Tensor, model: torch.Tensor) -> torch.Tensor:
    """Sum of target * log(target / model) over all cells: a sum of KL divergences when the
    cells hold several distributions side by side. Cells where ``target`` is 0 add 0."""
    return (target * (torch.log(target + 1e-12) - torch.log(model + 1e-12))).sum()


@dataclass(frozen=True)
class PairTargets:
    """Noisy 2-way marginals of every column pair on coarse groups (DP outputs).

    ``assign`` maps the generator's one-hot cells (width W, blocks side by side) to the groups
    (G in all, per column side by side); ``target`` is (G, G) with pair (i, j)'s frequencies,
    i < j, in block (i, j) and zeros elsewhere.
    """

    assign: torch.Tensor
    target: torch.Tensor

    def to(self, device: torch.device) -> PairTargets:
        return PairTargets(self.assign.to(device), self.target.to(device))

    def loss(self, probs: torch.Tensor) -> torch.Tensor:
        """Sum over pairs of KL(target || the batch's 2-way marginal on the groups).

        ``probs`` holds each generated row's per-block softmax, side by side. Given its
        input, the generator draws each column independently, so the expected one-hot
        outer product of two columns is the outer product of their softmaxes, and the
        batch mean of those estimates the generator's 2-way marginal: one matrix product
        (groups^T groups / rows) for all pairs at once.
        """
        grouped = probs @ self.assign
        return kl(self.target, grouped.T @ grouped / len(probs))


def measure_pairs(
    codes: np.ndarray,
    blocks: OneHotBlocks,
    frequencies: list[np.ndarray],
    total: float,
    rho: float,
    k: int,
) -> tuple[PairTargets, list[PrivacyEvent]]:
    """Measure every pair's 2-way marginal on the columns' coarse groups with Gaussian noise.

    Math: a pair's histogram has L2 sensitivity 1 under add/remove one row (one cell moves by
    one), so noise of sd 1/sqrt(2 rho_ij) is rho_ij-zCDP; the rho_ij split ``rho`` in
    proportion to cells^(2/3) (:func:`allocate`), and zCDP adds up, so the pairs together are
    ``rho``-zCDP. The groups (:func:`coarse_groups` of the DP ``frequencies``) and the split
    are functions of DP outputs and public sizes only. Each noisy histogram is projected onto
    the frequencies of ``total`` rows (:func:`project_counts`; post-processing).
    """
    groups = [coarse_groups(f, k) for f in frequencies]
    n_groups = [int(g.max()) + 1 for g in groups]
    goff = np.concatenate([[0], np.cumsum(n_groups)]).astype(np.int64)
    assign = np.zeros((blocks.width, int(goff[-1])), dtype=np.float32)
    for j, g in enumerate(groups):
        assign[blocks.offsets[j] + np.arange(blocks.sizes[j]), goff[j] + g] = 1.0
    grouped = np.column_stack([g[codes[:, j]] for j, g in enumerate(groups)])

    pairs = list(itertools.combinations(range(len(blocks.sizes)), 2))
    rhos = allocate(rho, [n_groups[i] * n_groups[j] for i, j in pairs])
    target = np.zeros((goff[-1], goff[-1]), dtype=np.float32)
    charges: list[PrivacyEvent] = []
    for (i, j), rho_ij in zip(pairs, rhos, strict=True):
        cells = n_groups[i] * n_groups[j]
        counts = np.bincount(grouped[:, i] * n_groups[j] + grouped[:, j], minlength=cells)
        noisy, charge = mechanisms.gaussian_counts(counts, rho_ij)
        charges.append(charge)
        block = (slice(goff[i], goff[i + 1]), slice(goff[j], goff[j + 1]))
        target[block] = project_counts(noisy, total).reshape(n_groups[i], n_groups[j])
    return PairTargets(torch.from_numpy(assign), torch.from_numpy(target)), charges
