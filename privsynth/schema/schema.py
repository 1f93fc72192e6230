"""The schema: the file a data custodian writes and reviews before any release.

A schema names every column, its kind and its *domain* (categories, numeric bounds, bins).
A declared domain is public information. A column without one has its domain learned with DP
(see :mod:`privsynth.discovery`), and a domain that :meth:`Schema.draft` read from the data is
marked ``"source": "data"``: it must be reviewed (or learned with DP) before a release, because
reading categories or bounds from private data without paying for it breaks the DP guarantee.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from privsynth.errors import SchemaError
from privsynth.io import atomic_write_text
from privsynth.schema.columns import SCHEMA_VERSION, Column
from privsynth.schema.draft import draft_columns
from privsynth.schema.rules import Rule, check_rules, count_broken
from privsynth.schema.unit import (
    UnitOfPrivacy,
    check_distinct_order,
    check_persons,
    check_unit_columns,
    repeated_identifiers,
)
from privsynth.schema.validate import OnUnknown, ValidationReport, validate_frame


@dataclass(frozen=True)
class Schema:
    """The columns of a table, their kinds and domains. See ``docs/schema.md``.

    Examples
    --------
    >>> s = Schema.from_dict({"version": 1, "columns": {
    ...     "age": {"kind": "integer", "lower": 17, "upper": 90},
    ...     "income": {"kind": "categorical", "categories": ["<=50K", ">50K"]}}})
    >>> s.names
    ['age', 'income']
    >>> s.data_dependent_columns()
    []
    """

    columns: tuple[Column, ...]
    unit_of_privacy: UnitOfPrivacy = UnitOfPrivacy()
    version: int = SCHEMA_VERSION
    #: Domain rules every synthetic row keeps: public knowledge, never read from the data
    #: (:mod:`privsynth.schema.rules`).
    rules: tuple[Rule, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        object.__setattr__(self, "rules", tuple(self.rules))
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SchemaError(f"schema names column(s) {dupes} more than once")
        if not self.columns:
            raise SchemaError("schema has no columns")
        unit = self.unit_of_privacy
        if not isinstance(unit, UnitOfPrivacy):  # the schema file's form: "row" or an object
            unit = UnitOfPrivacy.parse(unit)
            object.__setattr__(self, "unit_of_privacy", unit)
        if unit.column is not None and (
            unit.column not in names or self[unit.column].kind != "identifier"
        ):
            raise SchemaError(
                f"unit_of_privacy names column {unit.column!r}: it must be a column of kind "
                "'identifier' in the schema"
            )
        by_level = [c.name for c in self.columns if c.level == "unit" or c.order]
        if by_level and not unit.is_person:
            raise SchemaError(
                f"column(s) {by_level} have 'level' or 'order', which need a person: declare "
                '"unit_of_privacy": {"column": "<id column>", "max_rows": K}'
            )
        if self.version != SCHEMA_VERSION:
            raise SchemaError(
                f"schema version {self.version!r} is not supported (this privsynth reads "
                f"version {SCHEMA_VERSION})"
            )
        check_rules(self.rules, self.columns)

    # ----------------------------------------------------------------- access
    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def synthesised(self) -> tuple[Column, ...]:
        """Columns that are modelled and released (all but identifiers)."""
        return tuple(c for c in self.columns if c.kind != "identifier")

    def row_view(self) -> Schema:
        """The synthesised columns as a row-level schema: what utility and the attacks compare
        row by row (no identifiers, no person structure)."""
        columns = tuple(replace(c, level="row", order=False) for c in self.synthesised)
        return Schema(columns=columns, version=self.version)

    def __getitem__(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise SchemaError(f"schema has no column {name!r}; columns: {self.names}")

    def with_columns(self, columns: Iterable[Column]) -> Schema:
        """A copy with the given columns replaced (matched by name)."""
        new = {c.name: c for c in columns}
        return replace(self, columns=tuple(new.get(c.name, c) for c in self.columns))

    def undeclared_columns(self) -> list[str]:
        """Columns whose domain must be learned with DP before encoding."""
        return [c.name for c in self.synthesised if not c.has_domain]

    def data_dependent_columns(self) -> list[str]:
        """Columns whose domain was read from the data (``source: data``)."""
        return [c.name for c in self.synthesised if c.source == "data"]

    def release_caveats(self, *, allow_data_dependent_domain: bool = False) -> list[str]:
        """Refuse data-dependent domains unless the caller opts in; return the DP caveats.

        Raises
        ------
        SchemaError
            If a domain was read from the data and ``allow_data_dependent_domain`` is false.
        """
        cols = self.data_dependent_columns()
        if cols and not allow_data_dependent_domain:
            raise SchemaError(
                f"the domain of column(s) {', '.join(cols)} was read from the data "
                "(source: data), which is not differentially private. Declare it as public "
                "knowledge (edit the schema and remove 'source'), delete it to have it learned "
                "with DP, or pass allow_data_dependent_domain=True (CLI --unsafe-data-domain) "
                "to accept a recorded DP caveat"
            )
        return [
            f"DP caveat: the domain of column {c!r} was read from the private data without "
            "noise; the release is not differentially private with respect to that domain"
            for c in cols
        ]

    # ------------------------------------------------------------ round trip
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": self.version,
            "unit_of_privacy": self.unit_of_privacy.to_json(),
            "columns": {c.name: c.to_dict() for c in self.columns},
        }
        if self.rules:
            out["rules"] = [r.to_dict() for r in self.rules]
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schema:
        if not isinstance(data, Mapping):
            raise SchemaError("a schema must be a JSON object with 'version' and 'columns'")
        unknown = sorted(set(data) - {"version", "unit_of_privacy", "columns", "rules"})
        if unknown:
            raise SchemaError(f"schema has unknown field(s) {unknown}")
        cols = data.get("columns")
        if not isinstance(cols, Mapping) or not cols:
            raise SchemaError("schema needs a non-empty 'columns' object: {name: {kind: ...}}")
        rules = data.get("rules", [])
        if not isinstance(rules, list):
            raise SchemaError("schema 'rules' must be a list of rule objects (docs/schema.md)")
        return cls(
            columns=tuple(Column.from_dict(str(n), spec) for n, spec in cols.items()),
            unit_of_privacy=data.get("unit_of_privacy", "row"),
            version=data.get("version", SCHEMA_VERSION),
            rules=tuple(Rule.from_dict(i, r) for i, r in enumerate(rules)),
        )

    @classmethod
    def load(cls, path: str | Path) -> Schema:
        data = read_json(path)
        if isinstance(data, Mapping) and "tables" in data:
            raise SchemaError(
                f"schema file {path} describes linked tables ('tables'): load it with "
                "privsynth.schema.load_schema (or LinkedSchema.load)"
            )
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, self.to_json())

    # ----------------------------------------------------------------- draft
    @classmethod
    def draft(cls, df: pd.DataFrame, *, bins: int | None = None) -> Schema:
        """A starting point read from the data: every domain is marked ``source: data``.

        Numeric columns get bounds and, unless ``bins`` asks for equal-width bins, an
        encoding learned with DP at the fit.

        Likely identifiers (near-unique columns, names like id/name/ssn/email/phone) get kind
        ``identifier`` and a note; if one repeats, it is proposed as the person
        (``unit_of_privacy`` with ``"max_rows": "dp"``; declare K if it is public). Review the
        result: declare domains that are public knowledge, delete those that are not (they
        will be learned with DP).
        """
        columns = draft_columns(df, bins=bins)
        ids = [c.name for c in columns if c.kind == "identifier"]
        repeated = repeated_identifiers(df, ids)
        if not repeated:
            return cls(columns=columns)
        person = max(repeated, key=repeated.__getitem__)  # the id repeating most: the person
        return cls(columns=columns, unit_of_privacy=UnitOfPrivacy(person, "dp"))

    # -------------------------------------------------------------- validate
    def rule_violations(self, frame: pd.DataFrame) -> list[int]:
        """How many rows of ``frame`` (validated rows, or synthetic ones) break each of
        :attr:`rules`, in order. Exact: for the custodian only when ``frame`` is private."""
        return count_broken(self.rules, frame, self.columns)

    def validate(
        self, df: pd.DataFrame, *, on_unknown: OnUnknown = "error"
    ) -> tuple[pd.DataFrame, ValidationReport]:
        """Check ``df`` against the schema and return a cleaned copy.

        Policy: numeric values outside declared bounds are clipped to them; categorical values
        outside declared categories raise :class:`DataError` (``on_unknown="error"``) or become
        missing (``on_unknown="missing"``, the column must be nullable); in a DP-learned
        category list they become ``(other)``. Missing values in a
        non-nullable column, or non-numeric values in a numeric column, raise DataError.
        Identifier columns are dropped, except the person's id when ``unit_of_privacy`` names
        one. Columns whose domain is still undeclared are checked for type only.

        The table is also checked against the unit of privacy (:func:`check_persons`): a
        repeating identifier in a row-level schema, a missing person id or a ``level: unit``
        column that varies within a person raise.
        """
        clean, report = validate_frame(self.columns, df, on_unknown=on_unknown)
        unit = self.unit_of_privacy
        identifiers = [c.name for c in self.columns if c.kind == "identifier"]
        check_persons(df, unit, identifiers)
        if unit.is_person:
            assert unit.column is not None
            clean.insert(0, unit.column, df[unit.column])
            report.dropped_identifiers.remove(unit.column)
            check_unit_columns(
                clean, unit.column, [c.name for c in self.columns if c.level == "unit"]
            )
            check_distinct_order(
                clean, unit.column, [c.name for c in self.columns if c.order == "distinct"]
            )
        return clean, report


def read_json(path: str | Path) -> Any:
    """A schema file's JSON, refusing a key that appears twice in one object (JSON would keep
    only the last, silently)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SchemaError(f"schema file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(f"cannot read schema file {path}: {exc}") from exc

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if dupes := sorted({k for k in keys if keys.count(k) > 1}):
            raise SchemaError(
                f"schema file {path}: {', '.join(map(repr, dupes))} appears twice in one "
                "object (JSON keeps only the last); keep one"
            )
        return dict(pairs)

    try:
        return json.loads(text, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as exc:
        raise SchemaError(
            f"schema file {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: "
            f"{exc.msg})"
        ) from exc
