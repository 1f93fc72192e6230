"""Synthetic persons from a marginal model: post-processing of a fit whose unit of privacy is a
person owning at most K rows.

Each synthetic person gets a size drawn from the DP distribution of rows per person, an id
(``S-000001``...) that cannot be mistaken for a real one, ``level: unit`` columns drawn once
and held constant (the person's other rows are drawn conditioned on them), and, when an
``order`` column is declared, rows drawn conditioned on their position among the person's rows
(the model's hidden position column) and sorted by the order column.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from privsynth.encoding import Encoder
from privsynth.persons import POSITION, person_sizes, position_codes, synthetic_ids
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
    unit_cols = [j for j, n_ in enumerate(names) if n_ != POSITION and schema[n_].level == "unit"]
    # With an order column, every row is drawn given its position among its person's rows.
    rank = np.arange(n) - starts[owner] + 1
    position = position_codes(rank) if POSITION in names else np.zeros(n, dtype=np.int64)
    first = draw(len(sizes), _given(names, [], (), 0 if POSITION in names else None))
    codes = np.empty((n, len(names)), dtype=first.dtype)
    codes[starts] = first
    further = np.ones(n, dtype=bool)
    further[starts] = False
    keys = first[:, unit_cols][owner[further]] if unit_cols else np.zeros((further.sum(), 0))
    later = np.flatnonzero(further)
    # One conditional draw per combination of a person's unit-level codes.
    groups, which = np.unique(keys, axis=0, return_inverse=True)
    at = names.index(POSITION) if POSITION in names else None
    for g, key in enumerate(groups):
        rows = later[which.reshape(-1) == g]
        given = _given(names, unit_cols, key, None)
        if at is None:
            codes[rows] = draw(len(rows), given)
        else:
            codes[rows] = _draw_at(draw, given, at, position[rows])
    frame = encoder.decode(codes, seed=rng)
    for j in unit_cols:  # a bin's value is drawn once per person, not once per row
        frame[names[j]] = frame[names[j]].to_numpy()[starts][owner]
    frame = frame.drop(columns=[POSITION], errors="ignore")
    frame.insert(0, persons["column"], np.asarray(synthetic_ids(len(sizes)), dtype=object)[owner])
    for name in (c.name for c in schema.columns if c.order):
        # The rows stay at the positions they were drawn for; the order column's values are
        # sorted among them, so a person's rows are in order and the first row is still the
        # one drawn as a first row.
        values = frame[name].to_numpy()
        frame[name] = values[np.lexsort((values, owner))]
    return frame.reset_index(drop=True)


def _given(
    names: list[str], unit_cols: list[int], unit_codes: Any, position: int | None
) -> dict[str, list[int]]:
    """The conditions of one draw: a person's unit-level codes, and a position if given."""
    given = {names[j]: [int(c)] for j, c in zip(unit_cols, unit_codes, strict=True)}
    if position is not None:
        given[POSITION] = [int(position)]
    return given


def _draw_at(draw: Draw, given: dict[str, list[int]], at: int, wanted: np.ndarray) -> np.ndarray:
    """Rows drawn under ``given``, the i-th with position code ``wanted[i]`` (column ``at``).

    Rows drawn under ``given`` alone whose drawn position is p are draws conditioned on
    position p as well (rejection sampling, exact), so one batch serves every position; the
    few positions a batch leaves short are drawn conditioned on them explicitly.
    """
    out: np.ndarray | None = None
    todo = np.arange(len(wanted))
    batch = draw(len(wanted) + len(wanted) // 2 + 8, given)
    out = np.empty((len(wanted), batch.shape[1]), dtype=batch.dtype)
    for p in np.unique(wanted):
        need = todo[wanted == p]
        have = batch[batch[:, at] == p][: len(need)]
        out[need[: len(have)]] = have
        if len(have) < len(need):
            out[need[len(have) :]] = draw(len(need) - len(have), {**given, POSITION: [int(p)]})
    return out
