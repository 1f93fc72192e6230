"""Total variation distance between marginals of two tables on the schema's finite domain."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from privsynth.domain import Encoder
from privsynth.marginals import marginal
from privsynth.schema import Schema


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
    a = enc.encode(schema.validate(real)[0])
    b = enc.encode(schema.validate(synthetic)[0])
    sizes = list(enc.shape.values())
    sets = list(itertools.combinations(range(len(sizes)), way))
    if max_sets is not None and len(sets) > max_sets:
        pick = np.random.default_rng(seed).choice(len(sets), size=max_sets, replace=False)
        sets = [sets[i] for i in sorted(pick)]
    out = []
    for cols in sets:
        dims = [sizes[c] for c in cols]
        p, q = marginal(a, cols, dims), marginal(b, cols, dims)
        out.append(0.5 * np.abs(p / max(p.sum(), 1) - q / max(q.sum(), 1)).sum())
    return float(np.mean(out))
