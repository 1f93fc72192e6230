"""Encoded tables: what a marginal generator reads, wherever the private rows live.

An :class:`EncodedTable` answers one question: exact counts of its rows over sets of encoded
columns. :class:`ArrayTable` holds the codes in memory; :mod:`privsynth.sources.duckdb` and
:mod:`privsynth.sources.spark` count inside an engine so rows never reach Python;
:class:`MappedTable` views any of them through per-column code maps (MST's compression).
Counts are exact (private): they must go through :mod:`privsynth.mechanisms` before leaving.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np


class EncodedTable(ABC):
    """A table of integer codes: column ``j`` takes codes ``0 .. sizes[j]-1``."""

    @property
    @abstractmethod
    def shape(self) -> dict[str, int]:
        """Number of codes per column, in column order."""

    @abstractmethod
    def marginals(self, cliques: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """Exact counts over each clique of column indices, as flat int64 vectors in
        row-major cell order (as :func:`marginal` gives); an empty
        clique gives ``[n_rows]``. Implementations answer many cliques in one pass."""

    @property
    def sizes(self) -> list[int]:
        return list(self.shape.values())


class ArrayTable(EncodedTable):
    """Codes held in memory as an ``(n_rows, n_columns)`` integer array (the default).

    Examples
    --------
    >>> t = ArrayTable(np.array([[0, 1], [0, 1], [1, 0]]), {"a": 2, "b": 2})
    >>> [m.tolist() for m in t.marginals([(0, 1), (1,), ()])]
    [[0, 2, 1, 0], [1, 2], [3]]
    """

    def __init__(self, codes: np.ndarray, shape: dict[str, int]) -> None:
        self.codes = codes
        self._shape = dict(shape)

    @property
    def shape(self) -> dict[str, int]:
        return dict(self._shape)

    def marginals(self, cliques: Sequence[Sequence[int]]) -> list[np.ndarray]:
        sizes = self.sizes
        return [marginal(self.codes, list(c), [sizes[j] for j in c]) for c in cliques]


class MappedTable(EncodedTable):
    """``base`` seen through per-column code maps: code ``k`` of column ``j`` becomes
    ``maps[j][k]``. Each count is the exact sum of the base cells that map to it, so this
    equals counting the mapped codes row by row.

    Examples
    --------
    >>> base = ArrayTable(np.array([[0], [1], [2]]), {"a": 3})
    >>> MappedTable(base, [np.array([0, 1, 1])]).marginals([(0,)])[0].tolist()
    [1, 2]
    """

    def __init__(self, base: EncodedTable, maps: Sequence[np.ndarray]) -> None:
        self.base = base
        self.maps = [np.asarray(m, dtype=np.int64) for m in maps]
        self._shape = {
            n: int(m.max()) + 1 if len(m) else 0 for n, m in zip(base.shape, self.maps, strict=True)
        }

    @property
    def shape(self) -> dict[str, int]:
        return dict(self._shape)

    def marginals(self, cliques: Sequence[Sequence[int]]) -> list[np.ndarray]:
        base_sizes, sizes = self.base.sizes, self.sizes
        out = []
        for c, m in zip(cliques, self.base.marginals(cliques), strict=True):
            if not c:
                out.append(m)
                continue
            mapped = np.zeros([sizes[j] for j in c], dtype=np.int64)
            idx = np.ix_(*[self.maps[j] for j in c])
            np.add.at(mapped, idx, m.reshape([base_sizes[j] for j in c]))
            out.append(mapped.ravel())
        return out


class ColumnsTable(EncodedTable):
    """``base`` restricted to the columns at indices ``keep`` (in that order): counts over a
    clique of the view are the base's counts over the matching base columns.

    Examples
    --------
    >>> base = ArrayTable(np.array([[0, 1], [1, 1]]), {"a": 2, "b": 2})
    >>> view = ColumnsTable(base, [1])
    >>> view.shape, view.marginals([(0,)])[0].tolist()
    ({'b': 2}, [0, 2])
    """

    def __init__(self, base: EncodedTable, keep: Sequence[int]) -> None:
        self.base = base
        self.keep = list(keep)
        names, sizes = list(base.shape), base.sizes
        self._shape = {names[j]: sizes[j] for j in self.keep}

    @property
    def shape(self) -> dict[str, int]:
        return dict(self._shape)

    def marginals(self, cliques: Sequence[Sequence[int]]) -> list[np.ndarray]:
        return self.base.marginals([[self.keep[j] for j in c] for c in cliques])


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
