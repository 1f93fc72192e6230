"""Marginal counts of an encoded table: the one place marginal generators read private codes.

Counts are exact (private); they must go through :mod:`privsynth.mechanisms` before leaving.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def marginal(codes: np.ndarray, cols: Sequence[int], sizes: Sequence[int]) -> np.ndarray:
    """Exact counts of ``codes[:, cols]`` as a flat int64 vector in row-major cell order.

    ``sizes[k]`` is the number of codes of column ``cols[k]``; the result has
    ``prod(sizes)`` cells (flatten indices + ``bincount``: one pass over the rows).

    Examples
    --------
    >>> codes = np.array([[0, 1], [0, 1], [1, 0]])
    >>> marginal(codes, [0, 1], [2, 2]).tolist()
    [0, 2, 1, 0]
    """
    cols = list(cols)
    n_cells = int(np.prod(sizes, dtype=np.int64)) if cols else 1
    if not cols:
        return np.array([len(codes)], dtype=np.int64)
    flat = np.ravel_multi_index(tuple(codes[:, c] for c in cols), tuple(int(s) for s in sizes))
    return np.bincount(flat, minlength=n_cells).astype(np.int64)
