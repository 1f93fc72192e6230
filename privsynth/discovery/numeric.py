"""DP-learned encodings of numeric columns: bounds and point masses, then the bins and the
values inside each bin from the fine density (:mod:`privsynth.discovery.density`).

A custodian who writes only what the codebook says (a kind and a range) gets an encoding
learned from the data under DP, charged to the ledger like every other measurement:

1. **bounds** (only when undeclared): a noisy histogram over public log-scale candidates,
   widened by a decade of the grid on each side (:func:`dp_bounds`);
2. **point masses**: exact values held by many rows (0, 40 hours, a top-code) found with a
   Gaussian stable histogram over exact values; each becomes a code of its own;
3. **the continuous rest**: a noisy *hierarchical* histogram over a fine public grid inside
   the bounds (:func:`~privsynth.discovery.density.tree_density`), whose quantiles are the
   model's bins.

Every step after the noisy counts is post-processing. The encoding is stored in the learned
schema (:class:`~privsynth.schema.LearnedEncoding`), so a saved model and the audit report
show exactly what the model could represent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from privsynth import mechanisms
from privsynth.budget import ZCDP, ApproxZCDP, PrivacyEvent
from privsynth.discovery.density import fine_grid, n_bins, quantile_edges, tree_density
from privsynth.encoding import Lattice, lattice
from privsynth.schema import NUMERIC_KINDS, Column, LearnedEncoding, Schema
from privsynth.sources import TableSource

MAX_POINT_MASSES = 8
#: Share (in rho) of a column's discovery budget given to each measurement it needs.
WEIGHTS = {"bounds": 0.25, "point_masses": 0.25, "density": 0.5}
#: Chance that an empty candidate bucket is kept as data when learning bounds.
BOUNDS_FALSE_POSITIVE = 1e-6
#: Candidates a learned bound is widened by beyond the outermost data bucket: one decade of
#: the numeric grid (11 candidates per decade), one year of the monthly date grid.
BOUNDS_WIDEN = 11
#: The mechanisms get a hair less than planned so float rounding in splitting rho over the
#: tree's levels can never take the total past the plan.
RHO_MARGIN = 1 - 1e-9

#: What one measurement of a column's discovery is planned to spend: zCDP, or approximate
#: zCDP for a stable histogram (its delta bounds the chance a rare value is released).
Share = ZCDP | ApproxZCDP


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


def plan_column(col: Column, *, rho: float, delta: float) -> list[Share]:
    """The charges of learning ``col`` with a zCDP share ``rho`` (``delta`` for point
    masses): ``rho`` split by :data:`WEIGHTS`; the stable histogram of point masses is
    (rho_pm, delta)-approximate zCDP."""
    parts = needs(col)
    total = sum(WEIGHTS[p] for p in parts)
    out: list[Share] = []
    for p in parts:
        r = rho * WEIGHTS[p] / total
        out.append(ApproxZCDP(r, delta) if p == "point_masses" else ZCDP(r))
    return out


# ------------------------------------------------------------------------------ learning
def learn_column(
    source: TableSource, col: Column, planned: Sequence[Share]
) -> tuple[Column, list[PrivacyEvent]]:
    """Learn ``col``'s bounds and/or encoding from a validated source, spending ``planned``
    (from :func:`plan_column`) in order. Returns the completed column and the charges."""
    spent: list[PrivacyEvent] = []
    steps = iter(zip(needs(col), planned, strict=True))
    notes: list[str] = []
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
            # plan_column gives point masses an approximate-zCDP share
            assert isinstance(event, ApproxZCDP)
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


def dp_bounds(counts: np.ndarray, cands: np.ndarray, rho: float) -> tuple[float, float, list[ZCDP]]:
    """Bounds from a noisy histogram over public candidate buckets; rho-zCDP.

    Math: bucket j is [c_j, c_{j+1}) (values beyond the grid count in the edge buckets).
    Counting rows per bucket has L2 sensitivity K (the rows one unit of privacy may own; 1 for a
    row), so discrete Gaussian noise of sd sigma = K/sqrt(2 rho) is rho-zCDP. A bucket is data
    when its noisy count reaches z * sigma with z = sqrt(2 ln(B / beta)), so that any of the B
    empty buckets passes with probability <= beta (Gaussian tail). The bounds are the outer
    edges of the outermost data buckets, widened by :data:`BOUNDS_WIDEN` candidates (a decade of
    the grid) on each side but never across zero: a sparse tail below the threshold is still
    covered, and a too-wide range costs little, since the fine grid is logarithmic and the bins
    follow the data. With no bucket above the threshold (too few rows for this budget) the
    fullest bucket is widened the same way.
    """
    noisy, charge = mechanisms.gaussian_counts(counts, rho * RHO_MARGIN)
    n_buckets = len(cands) - 1
    sigma = mechanisms.gaussian_sd(charge.rho)
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


# ------------------------------------------------------------------------ for the custodian
def clipped_shares(source: TableSource, given: Schema, learned: Schema) -> dict[str, float]:
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
