"""Whom the guarantee protects: one row, or a person owning at most K rows.

:class:`UnitOfPrivacy` is the schema's ``unit_of_privacy``; :func:`check_persons` is the check
of a table against it that runs with validation, before anything is spent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from privsynth.errors import DataError, SchemaError

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
        if k == "dp":
            return f"person (column {self.column!r}), at most K rows each, K chosen with DP"
        return f"person (column {self.column!r}), at most {k} row{'s' if k != 1 else ''} each"


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
    others = [n for n in identifiers if n != unit.column]  # unit.column: declared people
    for name, most in repeated_identifiers(frame, others).items():
        raise repeated_identifier_error(name, most)


def repeated_identifier_error(name: str, most: int) -> SchemaError:
    """The refusal of a row-level schema whose identifier ``name`` repeats ``most`` times."""
    return SchemaError(
        f"identifier column {name!r} repeats (up to {most} rows share one value), but the "
        f"schema protects single rows: a person with many rows would be protected at up to "
        f"{most}x the stated epsilon. "
        f'Declare the person: "unit_of_privacy": {{"column": "{name}", "max_rows": K}}, '
        f'or, if rows sharing a value are different people, "unit_of_privacy": '
        f'{{"column": "{name}", "rows_are_people": true}} (stated in the report)'
    )


def check_unit_columns(frame: pd.DataFrame, person: str, columns: list[str]) -> None:
    """Refuse a ``level: unit`` column that varies within a real person (naming the column,
    the person's first row and the values), before anything is spent."""
    for name in columns:
        varies = frame.groupby(person, sort=False)[name].nunique(dropna=False) > 1
        if varies.any():
            who = varies.index[varies.to_numpy()][0]
            rows = np.flatnonzero((frame[person] == who).to_numpy())
            values = frame[name].iloc[rows].drop_duplicates().tolist()[:3]
            raise DataError(
                f"column {name!r} is declared 'level': 'unit' (constant within a person) but "
                f"varies within {int(varies.sum())} person(s), e.g. rows {rows[:3].tolist()} "
                f"hold {values}; make it constant per person, or drop 'level'"
            )


def check_distinct_order(frame: pd.DataFrame, person: str, columns: list[str]) -> None:
    """Refuse an ``order: "distinct"`` column whose value repeats within a real person
    (naming the column, the rows and the value), before anything is spent."""
    for name in columns:
        repeats = frame.duplicated([person, name]) & frame[name].notna()
        if repeats.any():
            first = int(np.flatnonzero(repeats.to_numpy())[0])
            who, value = frame[person].iloc[first], frame[name].iloc[first]
            rows = np.flatnonzero(((frame[person] == who) & (frame[name] == value)).to_numpy())
            raise DataError(
                f"column {name!r} is declared 'order': 'distinct' (one row per value and "
                f"person) but {int(repeats.sum())} row(s) repeat a value of their person, e.g. "
                f"rows {rows[:3].tolist()} hold {value!r}; remove the repeats, or declare "
                "'order': true"
            )


def repeated_identifiers(frame: pd.DataFrame, identifiers: list[str]) -> dict[str, int]:
    """The identifier columns whose values repeat, with the most rows one value holds (exact:
    a hint for the custodian drafting a schema, never released)."""
    out = {}
    for name in identifiers:
        counts = frame[name].dropna().value_counts()
        if len(counts) and int(counts.iloc[0]) > 1:
            out[name] = int(counts.iloc[0])
    return out
