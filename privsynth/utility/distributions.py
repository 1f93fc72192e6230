"""Plot-ready 1-way distributions, real against synthetic, on the schema's categories or bins.

A column with more than :data:`MAX_PLOT_BINS` codes is merged for plotting: runs of adjacent
bins for ordered columns (ordinal, numeric), and for an unordered categorical column the
categories outside the ``MAX_PLOT_BINS - 1`` largest (by the larger of the two proportions)
are pooled into one ``(other: N values)`` bar (the largest *synthetic* proportions choose
them: the synthetic table is public, the real one is not). Proportions are rounded to
:data:`PLOT_DECIMALS` places, which also keeps exact counts (and the row count) from being
read back out of them, and a bar holding fewer than ``min_cell`` real rows shows no real share
at all (``None``): small-cell suppression, so the report can leave the trusted environment.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from privsynth.encoding import ColumnCodec

MAX_PLOT_BINS = 40
PLOT_DECIMALS = 4
MISSING_LABEL = "(missing)"


def distribution(
    codec: ColumnCodec,
    real: np.ndarray,
    synthetic: np.ndarray,
    *,
    real_rows: int = 0,
    min_cell: int = 0,
) -> dict:
    """Plot data of one column from its two 1-way proportion vectors (one entry per code).

    ``real_rows`` is the number of real rows ``real`` was computed on: a bar holding fewer
    than ``min_cell`` of them gets ``None`` for its real share (not even 0: an empty bar is a
    small cell too).

    Returns ``{"column", "kind", "labels", "real", "synthetic", "merged"}``.
    """
    groups = _groups(codec, synthetic)
    shares = [float(real[g].sum()) for g in groups]
    return {
        "column": codec.column.name,
        "kind": codec.column.kind,
        "labels": [_label(codec, g) for g in groups],
        "real": [
            round(p, PLOT_DECIMALS) if round(p * real_rows) >= min_cell else None for p in shares
        ],
        "synthetic": [round(float(synthetic[g].sum()), PLOT_DECIMALS) for g in groups],
        "merged": len(groups) < codec.size,
    }


def _groups(codec: ColumnCodec, weight: np.ndarray) -> list[list[int]]:
    """Codes per plotted bar, in domain order; a nullable column's missing code is its own."""
    n, size = codec.n_values, codec.size
    missing = [[n]] if size > n else []
    if size <= MAX_PLOT_BINS:
        return [[j] for j in range(size)]
    if codec.column.kind == "categorical":
        keep = sorted(np.argsort(-weight, kind="stable")[: MAX_PLOT_BINS - 1].tolist())
        rest = sorted(set(range(size)) - set(keep))
        return [[j] for j in keep] + [rest]
    # point masses (the first codes of a learned encoding) are bars of their own
    masses = [[j] for j in range(len(codec.point_masses))]
    first = len(masses)
    step = math.ceil((n - first) / (MAX_PLOT_BINS - len(missing) - first))
    return masses + [list(range(a, min(a + step, n))) for a in range(first, n, step)] + missing


def _label(codec: ColumnCodec, group: list[int]) -> str:
    first, last = group[0], group[-1]
    col = codec.column
    if first == codec.n_values and col.nullable:
        return MISSING_LABEL
    if col.kind == "categorical" and len(group) > 1:
        return f"(other: {len(group)} values)"
    if codec.labels is not None:
        a, b = codec.labels[first], codec.labels[last]
        return a if first == last else f"{a} – {b}"
    n_pm = len(codec.point_masses)
    if first < n_pm:
        v = codec.point_masses[first]
        return _date(v) if col.kind == "datetime" else f"{v:g}"
    edges = codec.numeric_edges
    lo, hi = edges[first - n_pm], edges[last - n_pm + 1]
    if col.kind == "integer":
        i, j = int(lo), int(hi) - 1  # an integer bin holds lo .. hi - 1
        return str(i) if i == j else f"{i}–{j}"
    close = "]" if last == codec.n_values - 1 else ")"
    if col.kind == "datetime":
        return f"[{_date(lo)}, {_date(hi)}{close}"
    return f"[{lo:g}, {hi:g}{close}"


def _date(ns: float) -> str:
    ts = pd.Timestamp(int(ns))
    return ts.date().isoformat() if ts == ts.normalize() else ts.isoformat()
