"""Structural zeros: the cells of a marginal model that a forbid/allow rule rules out.

A pure function of public information (the schema's rules and categories, and MST's
compression, itself post-processing of a DP measurement): it reads no data and costs nothing.
:func:`privsynth.inference.estimate.estimate` keeps these cells at zero mass.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np

from privsynth.schema import Schema


def structural_zeros(
    schema: Schema,
    shape: Mapping[str, int],
    maps: Sequence[np.ndarray] | None = None,
) -> dict[tuple[str, ...], np.ndarray]:
    """For every forbid/allow rule, the clique of its columns (in ``shape``'s order) and the
    mask of its cells (row-major) that no allowed row can fall in.

    ``shape`` gives the modelled columns and their numbers of codes; a categorical column's
    code ``k`` is its ``k``-th category, and the code after the last one (nullable columns)
    stands for a missing value, which never breaks a rule. ``maps`` (MST's compression: one
    array per modelled column, original code -> model code) may merge values into one code;
    a merged cell is a zero only when every original combination in it is forbidden. The
    rest -- rows decoded from a merged code into a forbidden combination -- is left to the
    redraw at sampling (:mod:`privsynth.generators.rules`). Rules on columns the model does
    not hold (a derived column) give no zeros.
    """
    names = list(shape)
    out: dict[tuple[str, ...], np.ndarray] = {}
    for rule in schema.rules:
        if rule.kind not in ("forbid", "allow") or not set(rule.columns) <= set(names):
            continue
        clique = tuple(sorted(rule.columns, key=names.index))
        cols = [schema[c] for c in clique]
        if any(c.categories is None for c in cols):
            continue  # undeclared categories: learned at the fit, the redraw keeps the rule
        listed = {
            tuple(combo[rule.columns.index(c)] for c in clique) for combo in rule.values or ()
        }
        sizes = [len(c.categories or ()) + int(c.nullable) for c in cols]
        forbidden = np.zeros(sizes, dtype=bool)
        for codes in itertools.product(*(range(len(c.categories or ())) for c in cols)):
            value = tuple((c.categories or ())[k] for c, k in zip(cols, codes, strict=True))
            forbidden[codes] = (value in listed) == (rule.kind == "forbid")
        j = [names.index(c) for c in clique]
        model_sizes = [shape[c] for c in clique]
        if maps is None:
            cells = forbidden
        else:  # a model cell is zero when all the original cells it merges are
            idx = np.ix_(*(maps[k] for k in j))
            total = np.zeros(model_sizes, dtype=np.int64)
            banned = np.zeros(model_sizes, dtype=np.int64)
            np.add.at(total, idx, 1)
            np.add.at(banned, idx, forbidden.astype(np.int64))
            cells = (total > 0) & (banned == total)
        mask = out.get(clique, np.zeros(model_sizes, dtype=bool).ravel())
        out[clique] = mask | cells.ravel()
    return {c: m for c, m in out.items() if m.any()}
