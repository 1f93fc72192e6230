"""Linked tables: a parent table of persons and a child table of their rows, joined by a key.

A patients table (one row each: sex, birth year, treatment arm) and a visits table (many rows
per patient) are one person-level table in disguise: joined on the key, the parent's columns
are ``level: unit`` columns (constant within a person) and the key is the unit of privacy,
each person owning at most K child rows. privsynth fits that joined table
(:meth:`LinkedSchema.joined`) and cuts the synthetic persons back into two tables whose keys
agree (:meth:`LinkedSchema.split`).

The schema file names both tables::

    {"version": 1, "tables": {
       "patients": {"columns": {"patient_id": {"kind": "identifier"},
                                "sex": {"kind": "categorical", "categories": ["F", "M"]}}},
       "visits": {"foreign_key": {"column": "patient_id", "parent": "patients"},
                  "max_rows": 12,
                  "columns": {"patient_id": {"kind": "identifier"},
                              "day": {"kind": "integer", "lower": 0, "upper": 729,
                                      "order": true}}}}}

A parent without any child row is not modelled (the join drops it: a rule on each person's
own rows, so the guarantee is unchanged); the custodian is told how many there were.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from privsynth.errors import DataError, SchemaError
from privsynth.schema.columns import SCHEMA_VERSION, Column
from privsynth.schema.schema import Schema, read_json
from privsynth.schema.unit import UnitOfPrivacy
from privsynth.schema.validate import rows_text


@dataclass(frozen=True)
class LinkedSchema:
    """A parent table and a child table whose ``key`` column names a parent row.

    ``parent_columns`` and ``child_columns`` both hold the key, of kind ``identifier``;
    ``max_rows`` is K, the most child rows one person may own (or ``"dp"``).
    """

    parent: str
    child: str
    key: str
    parent_columns: tuple[Column, ...]
    child_columns: tuple[Column, ...]
    max_rows: int | str
    version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        for table, columns in (
            (self.parent, self.parent_columns),
            (self.child, self.child_columns),
        ):
            kinds = {c.name: c.kind for c in columns}
            if kinds.get(self.key) != "identifier":
                raise SchemaError(
                    f"table {table!r}: the key {self.key!r} must be one of its columns, of kind "
                    "'identifier'"
                )
        shared = sorted(
            {c.name for c in self.parent_columns}
            & {c.name for c in self.child_columns} - {self.key}
        )
        if shared:
            raise SchemaError(
                f"tables {self.parent!r} and {self.child!r} both have column(s) {shared}; "
                "rename them in one table (the tables are joined on the key)"
            )
        levels = [c.name for c in self.parent_columns if c.order or c.level != "row"]
        if levels:
            raise SchemaError(
                f"table {self.parent!r}: column(s) {levels} set 'level' or 'order'; a parent "
                "row is the person, so leave them out"
            )
        self.joined()  # the joined schema's own checks (the child's level and order columns)

    # ------------------------------------------------------------------ model
    @property
    def tables(self) -> tuple[str, str]:
        return self.parent, self.child

    def joined(self) -> Schema:
        """The person-level schema of the join: the key, the parent's columns (``level:
        unit``), then the child's, each person owning at most ``max_rows`` rows."""
        parent = [replace(c, level="unit") for c in self.parent_columns if c.name != self.key]
        child = [c for c in self.child_columns if c.name != self.key]
        key = next(c for c in self.child_columns if c.name == self.key)
        return Schema(
            columns=(key, *parent, *child),
            unit_of_privacy=UnitOfPrivacy(self.key, self.max_rows),
            version=self.version,
        )

    def join(self, tables: Mapping[str, pd.DataFrame]) -> tuple[pd.DataFrame, list[str]]:
        """The child rows with their parent's columns, and the custodian's note on parents
        without a child row (exact: never released).

        Raises
        ------
        DataError
            A table is missing or not a DataFrame, a parent key repeats or is missing, a
            child row's key is missing or names no parent.
        """
        parent, child = (self._table(tables, name) for name in self.tables)
        key = self.key
        ids = parent[key]
        if ids.isna().any():
            raise DataError(
                f"table {self.parent!r}: key {key!r} is missing in row(s) "
                f"{_rows(ids.isna())}; every parent row needs its key"
            )
        if ids.duplicated().any():
            dupes = ids[ids.duplicated()]
            raise DataError(
                f"table {self.parent!r}: key {key!r} repeats ({dupes.iloc[0]!r} in row(s) "
                f"{_rows(ids == dupes.iloc[0])}); the parent table holds one row per person"
            )
        fk = child[key]
        if fk.isna().any():
            raise DataError(
                f"table {self.child!r}: key {key!r} is missing in row(s) {_rows(fk.isna())}; "
                "every child row must name its parent"
            )
        orphan = ~fk.isin(ids)
        if orphan.any():
            raise DataError(
                f"table {self.child!r}: key {key!r} {fk[orphan].iloc[0]!r} (row(s) "
                f"{_rows(orphan)}) names no row of {self.parent!r}; add the parent or drop "
                "those rows"
            )
        names = [c.name for c in self.parent_columns]
        joined = child.merge(parent[names], on=key, how="left", validate="many_to_one")
        childless = int((~ids.isin(fk)).sum())
        notes = (
            [
                f"{self.parent}: {childless} person(s) have no row in {self.child}; they are "
                "not modelled, and the synthetic table has no childless persons"
            ]
            if childless
            else []
        )
        return joined[self.joined().names], notes

    def split(self, synthetic: pd.DataFrame) -> dict[str, pd.DataFrame]:
        """The synthetic join cut into the two tables: one parent row per synthetic person
        (its ``level: unit`` columns are constant), the child rows with the person's key."""
        parent = synthetic.drop_duplicates(self.key)[[c.name for c in self.parent_columns]]
        child = synthetic[[c.name for c in self.child_columns]]
        return {
            self.parent: parent.reset_index(drop=True),
            self.child: child.reset_index(drop=True),
        }

    def _table(self, tables: Mapping[str, pd.DataFrame], name: str) -> pd.DataFrame:
        if not isinstance(tables, Mapping) or name not in tables:
            raise DataError(
                f"the schema links tables {list(self.tables)}; give both, e.g. "
                f"{{{self.parent!r}: parent_df, {self.child!r}: child_df}}"
            )
        frame = tables[name]
        if not isinstance(frame, pd.DataFrame):
            raise DataError(
                f"table {name!r} must be a pandas DataFrame, got {type(frame).__name__}"
            )
        missing = [c.name for c in self._columns(name) if c.name not in frame.columns]
        if missing:
            raise DataError(f"table {name!r} lacks column(s) {missing} that the schema names")
        return frame.reset_index(drop=True)

    def _columns(self, name: str) -> tuple[Column, ...]:
        return self.parent_columns if name == self.parent else self.child_columns

    # ------------------------------------------------------------ round trip
    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "tables": {
                self.parent: {"columns": {c.name: c.to_dict() for c in self.parent_columns}},
                self.child: {
                    "foreign_key": {"column": self.key, "parent": self.parent},
                    "max_rows": self.max_rows,
                    "columns": {c.name: c.to_dict() for c in self.child_columns},
                },
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LinkedSchema:
        unknown = sorted(set(data) - {"version", "tables"})
        if unknown:
            raise SchemaError(f"linked schema has unknown field(s) {unknown}")
        tables = data.get("tables")
        if not isinstance(tables, Mapping) or len(tables) != 2:
            raise SchemaError(
                "'tables' must name two tables, a parent and a child whose 'foreign_key' "
                "names it (one parent and one child for now)"
            )
        children = [n for n, t in tables.items() if isinstance(t, Mapping) and "foreign_key" in t]
        if len(children) != 1:
            raise SchemaError(
                'exactly one table needs a \'foreign_key\': {"column": "<key>", "parent": '
                f'"<parent table>"}} (found it in {children or "none"})'
            )
        child = children[0]
        parent = next(n for n in tables if n != child)
        spec = dict(tables[child])
        fk = spec.pop("foreign_key")
        if not isinstance(fk, Mapping) or set(fk) != {"column", "parent"}:
            raise SchemaError(
                f'table {child!r}: \'foreign_key\' must be {{"column": "<key>", "parent": '
                f'"{parent}"}}'
            )
        if fk["parent"] != parent:
            raise SchemaError(
                f"table {child!r}: foreign_key names parent {fk['parent']!r}; the tables are "
                f"{[parent, child]}"
            )
        if "max_rows" not in spec:
            raise SchemaError(
                f"table {child!r}: give 'max_rows', the most rows one person may own (e.g. 20, "
                'public knowledge), or "dp" to choose it with a share of the budget'
            )
        return cls(
            parent=str(parent),
            child=str(child),
            key=str(fk["column"]),
            parent_columns=_columns(parent, tables[parent], set()),
            child_columns=_columns(child, spec, {"max_rows"}),
            max_rows=spec["max_rows"],
            version=data.get("version", SCHEMA_VERSION),
        )

    @classmethod
    def load(cls, path: str | Path) -> LinkedSchema:
        return cls.from_dict(read_json(path))


def load_schema(path: str | Path) -> Schema | LinkedSchema:
    """A schema file: one table (``"columns"``) or linked tables (``"tables"``)."""
    data = read_json(path)
    if isinstance(data, Mapping) and "tables" in data:
        return LinkedSchema.from_dict(data)
    return Schema.from_dict(data)


def _columns(table: str, spec: Any, extra: set[str]) -> tuple[Column, ...]:
    if not isinstance(spec, Mapping):
        raise SchemaError(f"table {table!r}: expected an object with 'columns'")
    unknown = sorted(set(spec) - {"columns", *extra})
    if unknown:
        raise SchemaError(f"table {table!r} has unknown field(s) {unknown}")
    cols = spec.get("columns")
    if not isinstance(cols, Mapping) or not cols:
        raise SchemaError(f"table {table!r} needs a non-empty 'columns' object")
    try:
        return tuple(Column.from_dict(str(n), c) for n, c in cols.items())
    except SchemaError as exc:
        raise SchemaError(f"table {table!r}: {exc}") from exc


def _rows(mask: pd.Series) -> str:
    """The first offending row numbers of ``mask``, as the schema's own errors give them."""
    return rows_text(mask.to_numpy().nonzero()[0].tolist(), int(mask.sum()))
