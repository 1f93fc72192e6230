"""People, not rows: the unit of privacy when one person may own many rows.

A schema's unit of privacy is either the row (every row a different person) or a person named
by an identifier column who owns at most K rows. K is public (declared) or chosen from a noisy
histogram of rows per person. Before any measurement each person's rows are bounded to K (a
random subset drawn from OS entropy), so one person moves every count by at most K and the
mechanisms are calibrated to that (:func:`privsynth.mechanisms.unit_of_privacy`).

Nothing here draws privacy noise: the rows-per-person histogram is measured by the generator
through :mod:`privsynth.mechanisms`; this module counts, truncates, splits and numbers people.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from privsynth.errors import DataError, SchemaError

#: ``"max_rows": "dp"`` picks K among 1..ROWS_CAP; persons with more rows count at the cap.
ROWS_CAP = 100
#: ``"max_rows": "dp"`` picks the smallest K that keeps this share of persons whole.
KEEP_SHARE = 0.95
#: Synthetic persons are numbered ``S-000001``...; a real identifier of this shape is refused.
SYNTHETIC_ID_PREFIX = "S-"


@dataclass(frozen=True)
class UnitOfPrivacy:
    """Whom the guarantee protects.

    ``column=None``: a row (each row a different person). Otherwise a person, named by the
    identifier ``column``, owning at most ``max_rows`` rows (an int, or ``"dp"``: chosen with
    DP). ``rows_are_people=True`` keeps the row as the unit although ``column`` repeats: the
    custodian states that its repeated values are different people (recorded in the report).
    """

    column: str | None = None
    max_rows: int | str = 1
    rows_are_people: bool = False

    def __post_init__(self) -> None:
        if self.column is None:
            if self.max_rows != 1 or self.rows_are_people:
                raise SchemaError("unit_of_privacy: name the identifier 'column' it refers to")
            return
        if self.rows_are_people:
            if self.max_rows != 1:
                raise SchemaError(
                    "unit_of_privacy: 'rows_are_people' and 'max_rows' exclude each other"
                )
            return
        k = self.max_rows
        if k != "dp" and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise SchemaError(
                f'unit_of_privacy: max_rows ({k!r}) must be a whole number >= 1, or "dp" '
                "to choose it with a share of the budget"
            )

    @property
    def is_person(self) -> bool:
        """True when one unit may own several rows (a person named by ``column``)."""
        return self.column is not None and not self.rows_are_people

    @classmethod
    def parse(cls, value: Any) -> UnitOfPrivacy:
        """The schema file's ``unit_of_privacy``: ``"row"`` or an object with ``column`` and
        ``max_rows`` (or ``rows_are_people: true``)."""
        if value is None or value == "row":
            return cls()
        if not isinstance(value, Mapping):
            raise SchemaError(
                f'unit_of_privacy {value!r} is not supported; use "row", or '
                '{"column": "<id column>", "max_rows": K} when one person owns several rows'
            )
        unknown = sorted(set(value) - {"column", "max_rows", "rows_are_people"})
        if unknown or "column" not in value:
            raise SchemaError(
                f"unit_of_privacy: unknown key(s) {unknown}"
                if unknown
                else "unit_of_privacy: name the identifier 'column' that says whose row it is"
            )
        if "max_rows" not in value and not value.get("rows_are_people"):
            raise SchemaError(
                "unit_of_privacy: give 'max_rows' (the most rows one person may own, e.g. 20, "
                'or "dp")'
            )
        return cls(
            column=str(value["column"]),
            max_rows=value.get("max_rows", 1),
            rows_are_people=bool(value.get("rows_are_people", False)),
        )

    def to_json(self) -> str | dict[str, Any]:
        """The schema file's form (inverse of :meth:`parse`)."""
        if self.column is None:
            return "row"
        if self.rows_are_people:
            return {"column": self.column, "rows_are_people": True}
        return {"column": self.column, "max_rows": self.max_rows}

    def describe(self, max_rows: int | None = None) -> str:
        """One line for the report; ``max_rows`` is K when it was chosen with DP."""
        if self.column is None:
            return "row (each row is a different person)"
        if self.rows_are_people:
            return (
                f"row: the custodian declared that rows sharing a value of {self.column!r} "
                "are different people"
            )
        k = max_rows if max_rows is not None else self.max_rows
        return f"person (column {self.column!r}), at most {k} rows each"


def rows_per_person(ids: pd.Series) -> np.ndarray:
    """How many rows each person owns (exact, private)."""
    return ids.value_counts(sort=False).to_numpy(dtype=np.int64)


def check_persons(frame: pd.DataFrame, unit: UnitOfPrivacy, identifiers: list[str]) -> None:
    """Refuse, before anything is spent, a table whose unit of privacy is wrong.

    A row-level schema is refused when an identifier column repeats (one person would be
    protected at up to that many times the stated epsilon); a person-level one when its id
    column has missing values or a real id looks like a synthetic one.

    Raises
    ------
    SchemaError, DataError
        Naming the column, the rows and the ways out.
    """
    if unit.is_person:
        assert unit.column is not None
        ids = frame[unit.column]
        missing = np.flatnonzero(ids.isna().to_numpy())
        if missing.size:
            raise DataError(
                f"column {unit.column!r} (the unit of privacy) is missing at row(s) "
                f"{missing[:5].tolist()}: every row must name its person; fill or drop them"
            )
        looks_synthetic = ids.astype(str).str.fullmatch(rf"{SYNTHETIC_ID_PREFIX}\d+")
        if looks_synthetic.any():
            row = int(np.flatnonzero(looks_synthetic.to_numpy())[0])
            raise DataError(
                f"column {unit.column!r} holds {ids.iloc[row]!r} at row {row}, the shape of a "
                f"synthetic id ({SYNTHETIC_ID_PREFIX}000001); recode the real ids so the "
                "released ids cannot be mistaken for them"
            )
        return
    for name in identifiers:
        if name == unit.column:  # declared: its repeated values are different people
            continue
        counts = frame[name].dropna().value_counts()
        if len(counts) and int(counts.iloc[0]) > 1:
            raise SchemaError(
                f"identifier column {name!r} repeats (up to {int(counts.iloc[0])} rows share "
                f"one value), but the schema protects single rows: a person with many rows "
                f"would be protected at up to {int(counts.iloc[0])}x the stated epsilon. "
                f'Declare the person: "unit_of_privacy": {{"column": "{name}", "max_rows": K}}, '
                f'or, if rows sharing a value are different people, "unit_of_privacy": '
                f'{{"column": "{name}", "rows_are_people": true}} (stated in the report)'
            )


def bound_rows(
    frame: pd.DataFrame, column: str, max_rows: int, rng: np.random.Generator
) -> tuple[pd.DataFrame, int]:
    """Keep at most ``max_rows`` rows of each person: a uniformly random subset of the rows
    of a person who owns more. Returns the bounded rows (in their original order) and how
    many persons lost rows (exact: for the custodian only, never released).

    ``rng`` must be seeded from OS entropy (``secrets``) in a release: the subset is not a
    privacy mechanism, but a reproducible one would let a reader who knows the seed tell
    which rows were dropped.
    """
    order = rng.permutation(len(frame))
    shuffled = frame.iloc[order]
    rank = shuffled.groupby(column, sort=False, dropna=False).cumcount().to_numpy()
    keep = np.zeros(len(frame), dtype=bool)
    keep[order[rank < max_rows]] = True
    truncated = int((frame[column].value_counts(sort=False) > max_rows).sum())
    return frame[keep], truncated


def split_persons(
    frame: pd.DataFrame, column: str, fraction: float, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """A uniform random ``fraction`` of persons set aside with all their rows (a row-level
    split would put one person on both sides of a membership test)."""
    if fraction == 0:
        return frame, None
    codes, uniques = pd.factorize(frame[column])
    held = rng.random(len(uniques)) < fraction
    is_holdout = held[codes]
    return frame[~is_holdout], frame[is_holdout]


def choose_max_rows(noisy_hist: np.ndarray) -> int:
    """K from a noisy histogram of rows per person over 1..ROWS_CAP (post-processing): the
    smallest K whose noisy cumulative share of persons reaches :data:`KEEP_SHARE`."""
    h = np.clip(np.asarray(noisy_hist, dtype=np.float64), 0, None)
    if h.sum() <= 0:
        return 1
    share = np.cumsum(h) / h.sum()
    return int(np.searchsorted(share, KEEP_SHARE) + 1)


def person_sizes(pmf: np.ndarray, n_rows: int, rng: np.random.Generator) -> np.ndarray:
    """Rows of each synthetic person, drawn from ``pmf`` over 1..len(pmf), until they hold
    ``n_rows`` rows (the last person is cut to fit)."""
    p = np.clip(np.asarray(pmf, dtype=np.float64), 0, None)
    p = p / p.sum() if p.sum() > 0 else np.eye(len(p))[0]
    mean = float(p @ np.arange(1, len(p) + 1))
    sizes = rng.choice(np.arange(1, len(p) + 1), size=int(n_rows / mean) + 16, p=p)
    while sizes.sum() < n_rows:
        sizes = np.concatenate([sizes, rng.choice(np.arange(1, len(p) + 1), size=16, p=p)])
    ends = np.cumsum(sizes)
    last = int(np.searchsorted(ends, n_rows))
    sizes = sizes[: last + 1].copy()
    sizes[-1] -= int(ends[last] - n_rows)
    return sizes


def synthetic_ids(n: int) -> list[str]:
    """``S-000001``, ``S-000002``...: ids that cannot be mistaken for real ones
    (:func:`check_persons` refuses a real id of this shape)."""
    width = max(6, len(str(n)))
    return [f"{SYNTHETIC_ID_PREFIX}{i:0{width}d}" for i in range(1, n + 1)]
