"""The holdout split: a share of the private rows set aside, never fitted, for the attacks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from privsynth.attacks.battery import DENSITY_K
from privsynth.errors import DataError
from privsynth.persons import held_out_persons
from privsynth.schema import UnitOfPrivacy
from privsynth.sources.source import FrameSource, TableSource
from privsynth.sources.sql import SqlSource

#: The attack suite compares each synthetic row with its two nearest training rows.
MIN_TRAIN_ROWS = 2


@dataclass(frozen=True)
class Split:
    """The sides of a validated private table.

    ``fit`` is what the generator fits on (the train rows, in memory or in their engine);
    ``train`` and ``holdout`` are the rows the audit reads; ``note`` says, in the report, how
    the split was made.
    """

    fit: TableSource
    train: pd.DataFrame
    holdout: pd.DataFrame | None
    note: str


def split_frame(
    source: FrameSource, fraction: float, rng: np.random.Generator, unit: UnitOfPrivacy
) -> Split:
    """A uniform random ``fraction`` of the validated rows set aside (``fraction`` in
    [0, 1)); of the persons, with all their rows, when a person owns many rows (a row-level
    split would put one person on both sides of a membership test)."""
    n = len(source.frame)
    if fraction == 0:
        train, holdout, how = source, None, "uniform random"
    else:
        if unit.is_person:
            assert unit.column is not None
            is_holdout = held_out_persons(source.frame[unit.column], fraction, rng)
            how = f"uniform random by person ({unit.column}), all of a person's rows on one side"
        else:
            is_holdout, how = rng.random(n) < fraction, "uniform random"
        train, holdout = source.rows(~is_holdout), source.rows(is_holdout)
    hold_rows = holdout.frame if holdout is not None else None
    person = unit.column if unit.is_person else None
    _check_sides(len(train.frame), hold_rows, fraction, f"has {n} row(s)", person)
    return Split(train, train.frame, hold_rows, f"{how}; the seed is not published")


def split_in_engine(data: SqlSource, fraction: float, rng: np.random.Generator, rows: int) -> Split:
    """The split of a validated table that stays in its engine, and the rows the audit reads.

    The split is a keyed hash of each row's values (key drawn from ``rng``, not published), so
    the model is fitted on the train side inside the engine. Utility and attacks need rows in
    memory: they get a uniform random sample of at most ``rows`` rows of each side (the
    policy's ``[sample] reference_rows``), drawn in the engine, the sample the attack suite
    would draw in memory.
    """
    key, sample_seed = int(rng.integers(2**62)), int(rng.integers(2**31))
    train, holdout = (data, None) if fraction == 0 else data.split(fraction, key)
    train_rows = train.sample_rows(rows, sample_seed)
    hold_rows = holdout.sample_rows(rows, sample_seed) if holdout is not None else None
    _check_sides(len(train_rows), hold_rows, fraction, "is too small")
    note = (
        "keyed hash of each row's values in the engine (identical rows share a side); the key "
        f"is not published. Utility and attacks ran on uniform random samples of at most "
        f"{rows} train and {rows} holdout rows drawn in the engine"
    )
    return Split(train, train_rows, hold_rows, note)


def n_targets(n_train_dp: int, holdout_fraction: float, most: int) -> int:
    """Attack targets per side, from public quantities only: the generator's DP estimate of
    the training rows and the holdout fraction. Half the estimated holdout size (at most
    ``most``, the policy's), so the target count -- which the report shows -- does not depend
    on the exact private row count unless the DP estimate is off by a factor of two."""
    if holdout_fraction == 0:
        return most
    holdout = n_train_dp * holdout_fraction / (1 - holdout_fraction)
    return int(max(10, min(most, holdout // 2)))


def _check_sides(
    n_train: int,
    holdout: pd.DataFrame | None,
    fraction: float,
    has: str,
    person: str | None = None,
) -> None:
    """Refuse, before anything is spent, a split too small for the attack suite: at least
    :data:`MIN_TRAIN_ROWS` training rows and, with a holdout, at least :data:`DENSITY_K`
    holdout rows besides any one target's own (a holdout target's density reference leaves
    out its row, or all of its person's rows)."""
    own = 1
    if holdout is not None and person is not None and len(holdout):
        own = int(holdout[person].value_counts().max())
    held_ok = holdout is None or len(holdout) - own >= DENSITY_K
    if n_train >= MIN_TRAIN_ROWS and held_ok:
        return
    raise DataError(
        f"the data {has}: too few for {MIN_TRAIN_ROWS} training rows"
        + (
            f" and a {fraction:g} holdout with {DENSITY_K} rows besides any one "
            + ("person's" if person else "row")
            if fraction
            else ""
        )
        + "; add rows"
        + (", or pass --holdout-fraction 0" if fraction else "")
    )
