"""The continuous rest of a numeric column: a fine public grid, a noisy hierarchical
histogram over it, and bins at the quantiles of the density it gives.

The grid holds one bucket per value for narrow lattice ranges, else buckets evenly spaced in
``asinh`` so a range spanning orders of magnitude is resolved at every scale. Top-down
splitting turns the noisy tree into a density that is fine where the data is dense and flat
where it is sparse (:func:`tree_density`, the one measurement here). The model's bins are its
quantiles (:func:`quantile_edges`), and synthetic values inside a bin are drawn from it
(:func:`privsynth.encoding.draw_within`).
"""

from __future__ import annotations

import math

import numpy as np

from privsynth import mechanisms
from privsynth.budget import ZCDP
from privsynth.encoding import Lattice
from privsynth.schema import DEFAULT_BINS

#: Fine buckets over a wide range (a lattice range of at most twice this many values gets
#: one bucket per value).
FINE_BUCKETS = 512
#: Model bins for the continuous rest of a column (point masses get codes of their own).
LEARNED_BINS = DEFAULT_BINS
#: The asinh grid is linear within ``ASINH_SCALE * max(|lower|, |upper|)`` of zero and
#: logarithmic beyond: about 3 decades below the largest magnitude are resolved finely.
ASINH_SCALE = 1e-3
#: A node of the density tree is split when its noisy count clears this many noise sds.
SPLIT_Z = 2.0


def fine_grid(
    lo: float, hi: float, grid: Lattice | None, point_masses: tuple[float, ...] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """The public fine grid over ``[lo, hi]`` (edges) and the indices of the one-value
    buckets that hold the point masses.

    Columns on a :class:`Lattice` use half-open buckets of whole lattice steps: one per value
    when the range has at most ``2 * FINE_BUCKETS`` values. Wider ranges get
    :data:`FINE_BUCKETS` buckets evenly spaced in ``asinh(x / s)`` with
    ``s = ASINH_SCALE * max(|lo|, |hi|)``: linear near zero, logarithmic beyond, so a range
    declared as 0..2,000 hours still resolves values around 1 hour.
    """
    if grid is not None:
        k_lo = math.ceil(float(grid.index(lo)) - 1e-9)
        k_hi = math.floor(float(grid.index(hi)) + 1e-9)
        if k_hi - k_lo + 1 <= 2 * FINE_BUCKETS:
            ks = np.arange(k_lo, k_hi + 2, dtype=np.float64)
        else:
            ks = np.unique(np.round(_asinh_grid(k_lo, k_hi + 1)))
        edges = grid.value(ks)
        singles_at = [(v, float(grid.value(np.round(grid.index(v)) + 1))) for v in point_masses]
    else:
        edges = _asinh_grid(lo, hi)
        singles_at = [(v, np.nextafter(v, np.inf)) for v in point_masses]
    for a, b in singles_at:
        edges = np.union1d(edges, [a, b])
    singles = np.array([int(np.searchsorted(edges, a)) for a, _ in singles_at], dtype=np.int64)
    return edges, singles


def _asinh_grid(lo: float, hi: float) -> np.ndarray:
    s = ASINH_SCALE * max(abs(lo), abs(hi))
    t = np.linspace(np.arcsinh(lo / s), np.arcsinh(hi / s), FINE_BUCKETS + 1)
    grid = np.sinh(t) * s
    grid[0], grid[-1] = lo, hi
    return np.unique(grid)


def tree_density(counts: np.ndarray, rho: float) -> tuple[np.ndarray, list[ZCDP]]:
    """A density over the fine buckets from a noisy hierarchical histogram; rho-zCDP.

    Math: level 0 holds the bucket counts, level l+1 sums adjacent pairs of level l, up to
    one root: L levels. Each level is a histogram of L2 sensitivity 1 (one row moves one
    count per level), measured with the discrete Gaussian at rho / L, so the whole tree is
    rho-zCDP by composition (level sd sigma = K sqrt(L / (2 rho)), K the rows a unit of
    privacy may own).
    Post-processing, top down: a node whose noisy count reaches SPLIT_Z * sigma passes its
    mass to its children in proportion to their noisy counts clipped at 0; otherwise its
    mass is spread evenly over its buckets. Dense regions are thus resolved bucket by bucket
    and sparse ones are flat, and empty regions far from the data get little mass (a split
    hands an empty child only its clipped noise's share).
    Returns weights summing to the root's clipped noisy count (at least 1).
    """
    levels = [np.asarray(counts, dtype=np.int64)]
    while len(levels[-1]) > 1:
        c = levels[-1]
        pad = np.append(c, 0) if len(c) % 2 else c
        levels.append(pad[0::2] + pad[1::2])
    rho_level = rho / len(levels)
    noisy, spent = [], []
    for c in levels:
        v, charge = mechanisms.gaussian_counts(c, rho_level)
        noisy.append(np.maximum(v.astype(np.float64), 0.0))
        spent.append(charge)
    threshold = SPLIT_Z * mechanisms.gaussian_sd(rho_level)
    mass = np.array([max(noisy[-1][0], 1.0)])
    flat = np.array([False])  # nodes whose mass is spread evenly
    for lvl in range(len(levels) - 2, -1, -1):
        n = len(levels[lvl])
        parent = np.arange(n) // 2
        child = noisy[lvl]
        sib_sum = np.bincount(parent, weights=child, minlength=len(mass))
        split = ~flat & (noisy[lvl + 1] >= threshold) & (sib_sum > 0)
        width = np.bincount(parent, weights=_covered(lvl, n, len(counts)), minlength=len(mass))
        share_split = np.divide(child, sib_sum[parent], out=np.zeros(n), where=sib_sum[parent] > 0)
        share_flat = _covered(lvl, n, len(counts)) / width[parent]
        use_split = split[parent]
        mass = mass[parent] * np.where(use_split, share_split, share_flat)
        flat = ~use_split
    return mass, spent


def _covered(level: int, n_nodes: int, n_leaves: int) -> np.ndarray:
    """How many leaves each node of ``level`` covers (the last may cover fewer)."""
    size = 2**level
    starts = np.arange(n_nodes) * size
    return np.minimum(starts + size, n_leaves) - starts


def n_bins(mass: float, charges: list[ZCDP]) -> int:
    """How many bins the rest of a column gets (post-processing of DP outputs): about one
    per ``sigma`` rows of its noisy mass, sigma the density's per-level noise sd, at most
    :data:`LEARNED_BINS`. A bin's count then stands above the noise of the measurements
    that shaped it, and a sparse rest (capital-gain's 8% of non-zero rows) is cut into few
    bins, each with a well-measured shape inside, rather than many noisy ones."""
    sigma = mechanisms.gaussian_sd(min(c.rho for c in charges))
    return int(min(LEARNED_BINS, max(1, mass // sigma)))


def quantile_edges(
    fine: np.ndarray, weights: np.ndarray, singles: np.ndarray, bins: int = LEARNED_BINS
) -> np.ndarray:
    """Bin edges at the quantiles of the fine density, chosen among the fine edges
    (post-processing): ``bins`` bins of about equal mass, each holding some mass (one bin
    when the density is empty). With at most that many fine buckets, one bin per bucket.
    One-value buckets of point masses never form a bin alone."""
    n = len(fine) - 1
    inner = np.setdiff1d(np.arange(n), singles)
    if len(inner) <= bins:
        # one bin per bucket; a point mass's bucket joins its left neighbour (or the right one)
        drop = {int(i) if i > 0 else 1 for i in singles}
        return np.array([e for i, e in enumerate(fine) if i not in drop or i in (0, n)])
    w = np.asarray(weights, dtype=np.float64)
    if w.sum() <= 0:  # nothing measured beyond the point masses: one bin for the rest
        return np.array([fine[0], fine[-1]])
    cum = np.cumsum(w)
    targets = cum[-1] * np.arange(1, bins) / bins
    idx = np.searchsorted(cum, targets, side="left") + 1  # edge after the crossing bucket
    idx = np.unique(idx[(idx > 0) & (idx < n)])
    return np.concatenate([[fine[0]], fine[idx], [fine[-1]]])
