"""Synthetic persons from a marginal model: post-processing of a fit whose unit of privacy is a
person owning at most K rows.

Each synthetic person gets a size drawn from the DP distribution of rows per person, an id
(``S-000001``...) that cannot be mistaken for a real one, ``level: unit`` columns drawn once
and held constant (the person's other rows are drawn conditioned on them), and rows sorted by
the ``order`` column if one is declared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from privsynth.encoding import Encoder
from privsynth.persons import person_sizes, synthetic_ids
from privsynth.schema import Schema

#: Draws ``n`` rows of codes, conditioned on the codes an attribute may take.
Draw = Callable[[int, dict[str, list[int]]], np.ndarray]


def sample_persons(
    draw: Draw,
    encoder: Encoder,
    schema: Schema,
    persons: dict[str, Any],
    n: int,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """``n`` synthetic rows grouped into synthetic persons (see the module docstring)."""
    sizes = person_sizes(np.asarray(persons["rows_per_person"]), n, rng) if n else np.array([], int)
    owner = np.repeat(np.arange(len(sizes)), sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if n else owner
    names = encoder.names
    unit_cols = [j for j, name in enumerate(names) if schema[name].level == "unit"]
    first = draw(len(sizes), {})
    codes = np.empty((n, len(names)), dtype=first.dtype)
    codes[starts] = first
    further = np.ones(n, dtype=bool)
    further[starts] = False
    keys = first[:, unit_cols][owner[further]] if unit_cols else np.zeros((further.sum(), 0))
    positions = np.flatnonzero(further)
    # One conditional draw per combination of a person's unit-level codes.
    groups, which = np.unique(keys, axis=0, return_inverse=True)
    for g, key in enumerate(groups):
        rows = positions[which.reshape(-1) == g]
        conditions = {names[j]: [int(c)] for j, c in zip(unit_cols, key, strict=True)}
        codes[rows] = draw(len(rows), conditions)
    frame = encoder.decode(codes, seed=rng)
    for j in unit_cols:  # a bin's value is drawn once per person, not once per row
        frame[names[j]] = frame[names[j]].to_numpy()[starts][owner]
    frame.insert(0, persons["column"], np.asarray(synthetic_ids(len(sizes)), dtype=object)[owner])
    order = [c.name for c in schema.columns if c.order]
    if order:
        frame["_person"] = owner
        frame = frame.sort_values(["_person", *order], kind="stable").drop(columns="_person")
    return frame.reset_index(drop=True)
