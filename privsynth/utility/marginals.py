"""Distances between the marginals of two encoded tables on the schema's finite domain.

Both tables are integer codes from :class:`privsynth.encoding.Encoder` (categories, or numeric
values on the schema's public bins), so a marginal is a histogram over a fixed, public set of
cells and the two tables are compared cell by cell.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import pandas as pd

from privsynth.encoding import Encoder
from privsynth.schema import Schema
from privsynth.sources import marginal

T = TypeVar("T")

#: Pseudo-count added to every synthetic cell before the KL divergence (Krichevsky-Trofimov).
KL_PSEUDO_COUNT = 0.5


def column_sets(
    items: Sequence[T], way: int, *, max_sets: int | None = None, seed: int = 0
) -> list[tuple[T, ...]]:
    """All ``way``-element subsets of ``items`` in lexicographic order, or ``max_sets`` of them.

    When there are more than ``max_sets`` subsets, that many are drawn without replacement
    with ``numpy.random.default_rng(seed)`` and kept in lexicographic order.

    Examples
    --------
    >>> column_sets("abc", 2)
    [('a', 'b'), ('a', 'c'), ('b', 'c')]
    >>> len(column_sets(range(10), 3, max_sets=5))
    5
    """
    sets = list(itertools.combinations(items, way))
    if max_sets is not None and len(sets) > max_sets:
        pick = np.random.default_rng(seed).choice(len(sets), size=max_sets, replace=False)
        sets = [sets[i] for i in sorted(pick)]
    return sets


def proportions(codes: np.ndarray, cols: Sequence[int], sizes: Sequence[int]) -> np.ndarray:
    """Normalised marginal of ``codes[:, cols]`` (all zeros for an empty table)."""
    counts = marginal(codes, cols, [sizes[c] for c in cols])
    return counts / max(counts.sum(), 1)


def marginal_tvds(
    a: np.ndarray, b: np.ndarray, sizes: Sequence[int], sets: Sequence[Sequence[int]]
) -> np.ndarray:
    """Total variation distance ``1/2 sum |p - q|`` between ``a``'s and ``b``'s marginal on
    each column set (column indices into the code arrays; ``sizes[c]`` codes in column c).

    Examples
    --------
    >>> a = np.array([[0, 0], [1, 1]])
    >>> b = np.array([[0, 1], [1, 0]])
    >>> marginal_tvds(a, b, [2, 2], [(0,), (1,), (0, 1)]).tolist()
    [0.0, 0.0, 1.0]
    """
    return np.array([tvd(proportions(a, s, sizes), proportions(b, s, sizes)) for s in sets])


def tvd(p: np.ndarray, q: np.ndarray) -> float:
    """Total variation distance ``1/2 sum |p - q|`` of two distributions on the same cells."""
    return min(1.0, float(0.5 * np.abs(p - q).sum()))  # rounding can pass 1 by an ulp


def kl_1way(real: np.ndarray, synthetic: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """KL divergence KL(real || synthetic) in nats of each column's 1-way marginal.

    The synthetic counts get :data:`KL_PSEUDO_COUNT` (one half) added to every cell before
    normalising, q = (c + 1/2) / (m + K/2) over the K codes, so a code the synthetic table
    never produces costs a finite penalty instead of an infinite one; the real side is not
    smoothed (0 log 0 = 0). Identical tables therefore score slightly above 0.

    Examples
    --------
    >>> real = np.array([[0], [0]])
    >>> round(float(kl_1way(real, real, [2])[0]), 6)  # log(1 / (2.5 / 3)) = log 1.2
    0.182322
    """
    out = []
    for c, k in enumerate(sizes):
        p = proportions(real, [c], sizes)
        counts = marginal(synthetic, [c], [k]) + KL_PSEUDO_COUNT
        q = counts / counts.sum()
        seen = p > 0
        out.append(float(np.sum(p[seen] * np.log(p[seen] / q[seen]))))
    return np.array(out)


def encode(df: pd.DataFrame, schema: Schema, encoder: Encoder | None = None) -> np.ndarray:
    """Validate ``df`` against ``schema`` and encode it to codes (identifiers dropped)."""
    return (encoder or Encoder(schema)).encode(schema.validate(df)[0])


def mean_tvd(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    way: int = 2,
    max_sets: int | None = None,
    seed: int = 0,
) -> float:
    """Mean over column sets of size ``way`` of TVD = 1/2 sum |p - q| between the two tables'
    normalised marginals (numeric columns on the schema's bins).

    ``max_sets`` draws that many sets at random (``seed``) instead of all of them.

    Examples
    --------
    >>> s = Schema.from_dict({"version": 1, "columns": {
    ...     "a": {"kind": "categorical", "categories": ["x", "y"]}}})
    >>> mean_tvd(pd.DataFrame({"a": ["x", "x"]}), pd.DataFrame({"a": ["x", "y"]}), s, way=1)
    0.5
    """
    enc = Encoder(schema)
    sizes = list(enc.shape.values())
    sets = column_sets(range(len(sizes)), way, max_sets=max_sets, seed=seed)
    tvds = marginal_tvds(encode(real, schema, enc), encode(synthetic, schema, enc), sizes, sets)
    return float(np.mean(tvds))
