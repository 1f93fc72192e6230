"""Synthetic persons from a marginal model: post-processing of a fit whose unit of privacy is a
person owning at most K rows.

Each synthetic person gets a size drawn from the DP distribution of rows per person, an id
(``S-000001``...) that cannot be mistaken for a real one, ``level: unit`` columns drawn once
and held constant (the person's other rows are drawn conditioned on them), and rows sorted by
the ``order`` column if one is declared; an ``order: "distinct"`` column (a survey year) never
repeats within a person, each row drawn whole with its value so the row's other columns
match it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from privsynth.encoding import Encoder
from privsynth.persons import person_sizes, synthetic_ids
from privsynth.schema import Column, Schema

#: Rows whose ``order: "distinct"`` value repeats are drawn again at most this many times.
MAX_REDRAWS = 50
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

    def redraw(rows: np.ndarray) -> None:
        """New codes for ``rows``, each drawn given its person's unit-level codes (one
        conditional draw per combination of them)."""
        keys = first[:, unit_cols][owner[rows]] if unit_cols else np.zeros((len(rows), 0))
        groups, which = np.unique(keys, axis=0, return_inverse=True)
        for g, key in enumerate(groups):
            some = rows[which.reshape(-1) == g]
            codes[some] = draw(
                len(some), {names[j]: [int(c)] for j, c in zip(unit_cols, key, strict=True)}
            )

    further = np.ones(n, dtype=bool)
    further[starts] = False
    redraw(np.flatnonzero(further))
    frame = encoder.decode(codes, seed=rng)
    for column in (c for c in schema.columns if c.order == "distinct"):
        frame[column.name] = _distinct(frame, column, owner, redraw, codes, encoder, rng)
    for j in unit_cols:  # a bin's value is drawn once per person, not once per row
        frame[names[j]] = frame[names[j]].to_numpy()[starts][owner]
    frame.insert(0, persons["column"], np.asarray(synthetic_ids(len(sizes)), dtype=object)[owner])
    order = [c.name for c in schema.columns if c.order]
    if order:
        frame["_person"] = owner
        frame = frame.sort_values(["_person", *order], kind="stable").drop(columns="_person")
    return frame.reset_index(drop=True)


def _distinct(
    frame: pd.DataFrame,
    column: Column,
    owner: np.ndarray,
    redraw: Callable[[np.ndarray], None],
    codes: np.ndarray,
    encoder: Encoder,
    rng: np.random.Generator,
) -> np.ndarray:
    """``column``'s values with no repeat within a person (``order: "distinct"``).

    A row whose value repeats one of its person's earlier rows is drawn again, whole and
    given the person's unit-level codes, up to :data:`MAX_REDRAWS` times: the rows kept are
    draws conditioned on the values being distinct (rejection sampling). A repeat left after
    that (a person owning nearly every value) takes the nearest integer the person does not
    hold, within the column's bounds.
    """
    name = column.name
    for _ in range(MAX_REDRAWS):
        repeats = np.flatnonzero(pd.DataFrame({"o": owner, "v": frame[name]}).duplicated())
        if not len(repeats):
            return frame[name].to_numpy()
        redraw(repeats)
        frame.iloc[repeats] = encoder.decode(codes[repeats], seed=rng).to_numpy()
    values = frame[name].to_numpy().copy()
    lower, upper = int(float(column.lower)), int(float(column.upper))  # type: ignore[arg-type]
    repeats = np.flatnonzero(pd.DataFrame({"o": owner, "v": values}).duplicated())
    for i in repeats:
        held = set(values[owner == owner[i]].tolist())
        free = [v for v in range(lower, upper + 1) if v not in held]
        if free:
            values[i] = min(free, key=lambda v: (abs(v - values[i]), v))
    return values
