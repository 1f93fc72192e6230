"""DP-learned encodings of numeric columns: point masses, bins that track the data, and the
values inside each bin.

A custodian who writes only what the codebook says (a kind and a range) gets an encoding
learned from the data under DP, charged to the ledger like every other measurement:

1. **bounds** (only when undeclared): a noisy histogram over public log-scale candidates,
   widened by a decade of the grid on each side (:func:`dp_bounds`);
2. **point masses**: exact values held by many rows (0, 40 hours, a top-code) found with a
   Gaussian stable histogram over exact values; each becomes a code of its own;
3. **the continuous rest**: a noisy *hierarchical* histogram over a fine public grid inside
   the bounds (one bucket per value for narrow integer ranges, else buckets evenly spaced in
   ``asinh`` so a range spanning orders of magnitude is resolved at every scale). Top-down
   splitting turns it into a density that is fine where the data is dense and flat where it
   is sparse (:func:`tree_density`). The model's bins are its quantiles
   (:func:`quantile_edges`), and synthetic values inside a bin are drawn from it.

Every step after the noisy counts is post-processing. The encoding is stored in the learned
schema (:class:`LearnedEncoding`), so a saved model and the audit report show exactly what
the model could represent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from privsynth import mechanisms
from privsynth.budget.accounting import ZCDP, ApproxZCDP, PrivacyEvent
from privsynth.errors import SchemaError
from privsynth.schema import DATE_UNITS, DEFAULT_BINS, NUMERIC_KINDS, Column, Schema

#: Fine buckets over a wide range (a lattice range of at most twice this many values gets
#: one bucket per value).
FINE_BUCKETS = 512
#: Model bins for the continuous rest of a column (point masses get codes of their own).
LEARNED_BINS = DEFAULT_BINS
MAX_POINT_MASSES = 8
#: Share (in rho) of a column's discovery budget given to each measurement it needs.
WEIGHTS = {"bounds": 0.25, "point_masses": 0.25, "density": 0.5}
#: The asinh grid is linear within ``ASINH_SCALE * max(|lower|, |upper|)`` of zero and
#: logarithmic beyond: about 3 decades below the largest magnitude are resolved finely.
ASINH_SCALE = 1e-3
#: A node of the density tree is split when its noisy count clears this many noise sds.
SPLIT_Z = 2.0
#: Chance that an empty candidate bucket is kept as data when learning bounds.
BOUNDS_FALSE_POSITIVE = 1e-6
#: Candidates a learned bound is widened by beyond the outermost data bucket: one decade of
#: the numeric grid (11 candidates per decade), one year of the monthly date grid.
BOUNDS_WIDEN = 11
#: The mechanisms get a hair less than planned so float rounding in splitting rho over the
#: tree's levels can never take the total past the plan.
RHO_MARGIN = 1 - 1e-9


@dataclass(frozen=True)
class LearnedEncoding:
    """A numeric column's encoding learned under DP (every field is a DP output).

    Codes ``0..len(point_masses)-1`` are the point masses, then one code per bin
    ``[edges[j], edges[j+1])`` of the other values (the last bin also holds its right edge).
    ``fine_edges``/``fine_weights`` are the fine histogram synthetic values in a bin are
    drawn from; ``edges`` is a subset of ``fine_edges``. Integer and dated columns use
    half-open integer buckets (their last edge is the upper bound plus one step).
    """

    point_masses: tuple[float, ...]
    edges: tuple[float, ...]
    fine_edges: tuple[float, ...]
    fine_weights: tuple[float, ...]

    def __post_init__(self) -> None:
        fine = np.asarray(self.fine_edges, dtype=np.float64)
        ok = (
            len(self.edges) >= 2
            and len(fine) == len(self.fine_weights) + 1
            and bool(np.all(np.diff(fine) > 0))
            and bool(np.all(np.isin(self.edges, fine)))
            and all(w >= 0 for w in self.fine_weights)
        )
        if not ok:
            raise SchemaError(
                "a learned encoding needs increasing edges that are fine edges, and one "
                "non-negative weight per fine bucket; was the model file edited?"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "point_masses": list(self.point_masses),
            "edges": list(self.edges),
            "fine_edges": list(self.fine_edges),
            "fine_weights": list(self.fine_weights),
        }

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> LearnedEncoding:
        keys = {"point_masses", "edges", "fine_edges", "fine_weights"}
        if not isinstance(data, Mapping) or set(data) != keys:
            raise SchemaError(f"column {name!r}: 'learned' must be an object with {sorted(keys)}")
        try:
            return cls(**{k: tuple(float(v) for v in data[k]) for k in sorted(keys)})
        except (TypeError, ValueError) as exc:
            raise SchemaError(f"column {name!r}: 'learned' holds a non-number") from exc


# ------------------------------------------------------------------------------ planning
def needs(col: Column) -> list[str]:
    """The measurements learning ``col``'s domain takes, in order, from the schema alone."""
    parts = ["bounds"] if col.lower is None else []
    encoding = col.bins is None and col.edges is None and col.learned is None
    if encoding and (col.lower is None or col.needs_learned_encoding):
        if col.point_masses is None and col.kind != "datetime":
            parts.append("point_masses")
        parts.append("density")
    return parts


def plan_column(col: Column, *, rho: float, delta: float) -> list[PrivacyEvent]:
    """The charges of learning ``col`` with a zCDP share ``rho`` (``delta`` for point
    masses): ``rho`` split by :data:`WEIGHTS`; the stable histogram of point masses is
    (rho_pm, delta)-approximate zCDP."""
    parts = needs(col)
    total = sum(WEIGHTS[p] for p in parts)
    out: list[PrivacyEvent] = []
    for p in parts:
        r = rho * WEIGHTS[p] / total
        out.append(ApproxZCDP(r, delta) if p == "point_masses" else ZCDP(r))
    return out


# ------------------------------------------------------------------------------ learning
def learn_column(source: Any, col: Column, planned: list[PrivacyEvent]) -> tuple[Column, list]:
    """Learn ``col``'s bounds and/or encoding from a validated source, spending ``planned``
    (from :func:`plan_column`) in order. Returns the completed column and the charges."""
    spent: list[PrivacyEvent] = []
    steps = iter(zip(needs(col), planned, strict=True))
    notes = []
    if col.lower is None:
        _, event = next(steps)
        cands = bound_candidates(col.kind)
        lo, hi, charges = dp_bounds(source.bucket_counts(col, cands), cands, event.rho)
        lo_v, hi_v = bound_value(col, lo, "down"), bound_value(col, hi, "up")
        col = replace(col, lower=lo_v, upper=hi_v)
        spent += charges
        notes.append("bounds learned with DP (values beyond are clipped)")
    rest = list(steps)
    if not rest:
        return replace(col, source="dp", note="; ".join(notes)), spent
    lo, hi = col.bound_values()
    grid = lattice(col)
    pms = tuple(col.point_masses or ())
    for part, event in rest:
        if part == "point_masses":
            kept, charge = mechanisms.stable_histogram(
                source.value_counts(col), rho=event.rho, delta=event.delta
            )
            pms = choose_point_masses(kept, lo, hi, grid)
            spent.append(charge)
        else:
            fine, singles = fine_grid(lo, hi, grid, pms)
            counts = source.bucket_counts(col, fine)
            counts[singles] = 0  # point-mass rows have codes of their own
            weights, charges = tree_density(counts, event.rho * RHO_MARGIN)
            weights[singles] = 0.0
            spent += charges
            bins = n_bins(float(weights.sum()), charges)
    encoding = LearnedEncoding(
        point_masses=pms,
        edges=tuple(quantile_edges(fine, weights, singles, bins)),
        fine_edges=tuple(float(e) for e in fine),
        fine_weights=tuple(float(w) for w in weights),
    )
    notes.append(
        f"encoding learned with DP: {len(pms)} point mass(es), {len(encoding.edges) - 1} bins"
    )
    return replace(col, learned=encoding, source="dp", note="; ".join(notes)), spent


@dataclass(frozen=True)
class Lattice:
    """The values a column can hold: ``k * step / per`` for whole ``k`` (integers: step 1;
    dated columns: the unit in ns; continuous with ``decimals``: per 10^decimals, so the
    values are what ``round(x, decimals)`` gives, computed by one division)."""

    step: float
    per: int = 1

    def index(self, v: np.ndarray | float) -> np.ndarray:
        return np.asarray(v, dtype=np.float64) * self.per / self.step

    def value(self, k: np.ndarray) -> np.ndarray:
        return np.asarray(k, dtype=np.float64) * self.step / self.per

    def holds(self, v: float) -> bool:
        k = float(self.index(v))
        return abs(k - round(k)) < 1e-9

    @property
    def spacing(self) -> float:
        return self.step / self.per


def lattice(col: Column) -> Lattice | None:
    """The column's :class:`Lattice`, or None for continuous values of any precision."""
    if col.kind == "integer":
        return Lattice(1.0)
    if col.kind == "datetime":
        return Lattice(float(DATE_UNITS[col.unit or "second"]))
    if col.decimals is not None:
        return Lattice(1.0, 10**col.decimals)
    return None


def dp_bounds(
    counts: np.ndarray, cands: np.ndarray, rho: float
) -> tuple[float, float, list[PrivacyEvent]]:
    """Bounds from a noisy histogram over public candidate buckets; rho-zCDP.

    Math: bucket j is [c_j, c_{j+1}) (values beyond the grid count in the edge buckets).
    Counting rows per bucket has L2 sensitivity 1, so discrete Gaussian noise of sd
    sigma = 1/sqrt(2 rho) is rho-zCDP. A bucket is data when its noisy count reaches
    z * sigma with z = sqrt(2 ln(B / beta)), so that any of the B empty buckets passes with
    probability <= beta (Gaussian tail). The bounds are the outer edges of the outermost
    data buckets, widened by :data:`BOUNDS_WIDEN` candidates (a decade of the grid) on each
    side but never across zero: a sparse tail below the threshold is still covered, and a
    too-wide range costs little, since the fine grid is logarithmic and the bins follow the
    data. With no bucket above the threshold (too few rows for this budget) the fullest
    bucket is widened the same way.
    """
    noisy, charge = mechanisms.gaussian_counts(counts, rho * RHO_MARGIN)
    n_buckets = len(cands) - 1
    sigma = 1 / math.sqrt(2 * charge.rho)
    z = math.sqrt(2 * math.log(n_buckets / BOUNDS_FALSE_POSITIVE))
    kept = np.flatnonzero(noisy >= z * sigma)
    if kept.size == 0:
        kept = np.array([int(np.argmax(noisy))])
    zero = int(np.searchsorted(cands, 0.0))  # cands[zero] == 0 on the numeric grid
    first, last = int(kept[0]) - BOUNDS_WIDEN, int(kept[-1]) + BOUNDS_WIDEN
    if cands[zero] == 0.0:
        first = max(first, zero) if cands[kept[0]] >= 0 else first
        last = min(last, zero - 1) if cands[kept[-1] + 1] <= 0 else last
    first, last = max(first, 0), min(last, n_buckets - 1)
    return float(cands[first]), float(cands[last + 1]), [charge]


def choose_point_masses(
    kept: Mapping[str, int], lo: float, hi: float, grid: Lattice | None
) -> tuple[float, ...]:
    """The (at most :data:`MAX_POINT_MASSES`) values with the largest noisy counts among
    those the stable histogram released, inside the bounds (post-processing)."""
    values = []
    for key, count in kept.items():
        try:
            v = float(key)
        except ValueError:
            continue
        if lo <= v <= hi and (grid is None or grid.holds(v)):
            values.append((count, v))
    values.sort(key=lambda cv: (-cv[0], cv[1]))
    return tuple(sorted(v for _, v in values[:MAX_POINT_MASSES]))


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


def tree_density(counts: np.ndarray, rho: float) -> tuple[np.ndarray, list[PrivacyEvent]]:
    """A density over the fine buckets from a noisy hierarchical histogram; rho-zCDP.

    Math: level 0 holds the bucket counts, level l+1 sums adjacent pairs of level l, up to
    one root: L levels. Each level is a histogram of L2 sensitivity 1 (one row moves one
    count per level), measured with the discrete Gaussian at rho / L, so the whole tree is
    rho-zCDP by composition (level sd sigma = sqrt(L / (2 rho))).
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
    threshold = SPLIT_Z * math.sqrt(1 / (2 * rho_level))
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


def n_bins(mass: float, charges: list[PrivacyEvent]) -> int:
    """How many bins the rest of a column gets (post-processing of DP outputs): about one
    per ``sigma`` rows of its noisy mass, sigma the density's per-level noise sd, at most
    :data:`LEARNED_BINS`. A bin's count then stands above the noise of the measurements
    that shaped it, and a sparse rest (capital-gain's 8% of non-zero rows) is cut into few
    bins, each with a well-measured shape inside, rather than many noisy ones."""
    sigma = 1 / math.sqrt(2 * min(c.rho for c in charges))
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


def bound_candidates(kind: str) -> np.ndarray:
    """Public candidate values for DP bounds: a 1-2-3-5-ish log grid, or monthly dates."""
    if kind == "datetime":
        months = pd.date_range("1900-01-01", "2100-01-01", freq="MS")
        return months.astype("datetime64[ns]").astype("int64").to_numpy(dtype=np.float64)
    mantissas = np.array([1, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9])
    pos = (mantissas[None, :] * 10.0 ** np.arange(-2, 10)[:, None]).ravel()
    return np.unique(np.concatenate([-pos, [0.0], pos]))


def bound_value(col: Column, v: float, direction: str) -> float | int | str:
    """A learned bound as the schema writes it, rounded outward (``down`` or ``up``) to
    the column's lattice."""
    grid = lattice(col)
    if grid is not None:
        k = float(grid.index(v))
        v = float(grid.value(math.floor(k) if direction == "down" else math.ceil(k)))
    if col.kind == "datetime":
        return pd.Timestamp(int(v)).isoformat()
    if col.kind == "integer":
        return int(v)
    return float(v)


# ------------------------------------------------------------------------------ decoding
def draw_within(
    enc: LearnedEncoding, codes: np.ndarray, grid: Lattice | None, rng: np.random.Generator
) -> np.ndarray:
    """Values for codes of a learned encoding (post-processing): a point mass's value, or a
    fine bucket drawn by its weight inside the code's bin and a value uniform inside it
    (a lattice value for columns on a :class:`Lattice`)."""
    n_pm = len(enc.point_masses)
    fine = np.asarray(enc.fine_edges)
    weights = np.asarray(enc.fine_weights)
    singles = np.isin(fine[:-1], enc.point_masses) & (
        (fine[1:] - fine[:-1] <= grid.spacing * (1 + 1e-9))
        if grid is not None
        else (fine[1:] == np.nextafter(fine[:-1], np.inf))
    )
    out = np.empty(len(codes), dtype=np.float64)
    is_pm = codes < n_pm
    out[is_pm] = np.asarray(enc.point_masses)[codes[is_pm]] if n_pm else 0.0
    starts = np.searchsorted(fine, enc.edges)
    for j in np.unique(codes[~is_pm]):
        rows = np.flatnonzero(codes == j)
        a, b = starts[j - n_pm], starts[j - n_pm + 1]
        w = np.where(singles[a:b], 0.0, weights[a:b])
        if w.sum() <= 0:
            w = np.where(singles[a:b], 0.0, 1.0)
        if w.sum() <= 0:
            w = np.ones(b - a)
        bucket = a + rng.choice(b - a, size=len(rows), p=w / w.sum())
        lo, hi = fine[bucket], fine[bucket + 1]
        if grid is not None:
            k = rng.integers(
                np.round(grid.index(lo)).astype(np.int64), np.round(grid.index(hi)).astype(np.int64)
            )
            out[rows] = grid.value(k)
        else:
            out[rows] = lo + rng.random(len(rows)) * (hi - lo)
    return out


# ------------------------------------------------------------------------ for the custodian
def clipped_shares(source: Any, given: Schema, learned: Schema) -> dict[str, float]:
    """Exact share of each numeric column's non-missing values that lie outside the bounds
    learned with DP, and so were clipped. Private: for the custodian's screen, never for a
    release or a report."""
    out: dict[str, float] = {}
    for col in given.synthesised:
        if col.kind not in NUMERIC_KINDS or col.lower is not None:
            continue
        lo, hi = learned[col.name].bound_values()
        top = float(np.nextafter(hi, np.inf))
        edges = np.array([lo - abs(lo) - 1, lo, top, top + abs(top) + 1])
        below, inside, above = source.bucket_counts(col, edges)
        total = below + inside + above
        out[col.name] = float((below + above) / total) if total else 0.0
    return out


def custodian_notes(shares: Mapping[str, float]) -> list[str]:
    """One line per column with clipped values (:func:`clipped_shares`)."""
    return [
        f"{name}: {share:.2%} of its values lie outside the bounds learned with DP and were "
        "clipped to them; declare 'lower'/'upper' in the schema if that is too many"
        for name, share in shares.items()
        if share > 0
    ]
