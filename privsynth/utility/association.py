"""Pairwise association between columns, computed from a 2-way marginal of codes.

One association matrix covers every column pair:

* both columns numeric (integer, continuous, datetime): Pearson correlation of the bin
  indices on the schema's public bins, rows with a missing value left out. For an integer
  column with one code per value this is exactly Pearson on the values.
* otherwise (a categorical or ordinal column in the pair; a numeric one enters on its bins):
  Cramér's V = sqrt(phi^2 / (min(r, c) - 1)) with phi^2 = sum p_ij^2 / (p_i. p_.j) - 1 over
  the r rows and c columns of the table that hold any rows (no bias correction).

Both lie in [0, 1] in absolute value; a column that is constant in a table has association 0.
"""

from __future__ import annotations

import numpy as np


def cramers_v(table: np.ndarray) -> float:
    """Cramér's V of a 2-D table of proportions (or counts).

    Examples
    --------
    >>> cramers_v(np.array([[0.5, 0.0], [0.0, 0.5]]))
    1.0
    >>> cramers_v(np.array([[0.25, 0.25], [0.25, 0.25]]))
    0.0
    """
    t = table / table.sum()
    t = t[t.sum(axis=1) > 0][:, t.sum(axis=0) > 0]
    k = min(t.shape) - 1
    if k < 1:
        return 0.0
    expected = np.outer(t.sum(axis=1), t.sum(axis=0))
    phi2 = float(np.sum(t**2 / expected)) - 1.0
    return float(np.sqrt(max(phi2, 0.0) / k))


def pearson(table: np.ndarray) -> float:
    """Pearson correlation of the row and column indices, weighted by a 2-D table.

    Examples
    --------
    >>> round(pearson(np.array([[0.4, 0.1], [0.1, 0.4]])), 12)  # (0.4 - 0.25) / 0.25
    0.6
    """
    t = table / table.sum()
    x = np.arange(t.shape[0], dtype=np.float64)
    y = np.arange(t.shape[1], dtype=np.float64)
    px, py = t.sum(axis=1), t.sum(axis=0)
    mx, my = px @ x, py @ y
    vx, vy = px @ (x - mx) ** 2, py @ (y - my) ** 2
    if vx <= 0 or vy <= 0:
        return 0.0
    cov = (x - mx) @ t @ (y - my)
    return float(np.clip(cov / np.sqrt(vx * vy), -1.0, 1.0))


def association(table: np.ndarray, n_values: tuple[int | None, int | None]) -> float:
    """Association of a column pair from its 2-way table (see the module docstring).

    ``n_values[k]`` is the number of value codes of a numeric column (a nullable column's
    missing code comes after them) and ``None`` for a categorical or ordinal one.
    """
    nx, ny = n_values
    if table.sum() <= 0:
        return 0.0
    if nx is None or ny is None:
        return cramers_v(table)
    values = table[:nx, :ny]
    return pearson(values) if values.sum() > 0 else 0.0
