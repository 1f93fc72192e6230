"""Validation, discovery counts and marginals as SQL, so private rows stay in their engine.

The expressions replicate :meth:`privsynth.schema.Schema.validate` and
:class:`privsynth.encoding.ColumnCodec` exactly (tested against them for every column kind):

* a categorical value matches a category when its canonical string
  (:func:`~privsynth.schema.canonical_category`) equals it: a text column compares the text,
  an integer column the integers whose string is the category (``"01"`` matches nothing), a
  float column the floats whose canonical string is the category, a boolean column
  ``"True"``/``"False"``; in a DP-learned list an unknown value becomes ``(other)``;
* a numeric value is the column as a double (text is parsed; text that is no number, ``nan``
  included, is an error; infinities are errors); datetimes are nanoseconds since 1970 (UTC) of
  a DATE or TIMESTAMP column, refused outside the range pandas can hold;
* bin ``j`` is ``#{k in 1..B-1 : edges[k] <= x}`` over the public edges, which is clipping to
  the bounds followed by the bin search (:meth:`Dialect.bucket`);
* missing is NULL (and NaN in a float column) and gets the last code of a nullable column.

Only aggregates leave the engine: error counts (and, for the error message, the first
offending rows and values), counts per value or bucket for DP discovery, and marginal counts,
many at once with ``GROUPING SETS``.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from privsynth.encoding import ColumnCodec
from privsynth.errors import ConfigError, DataError, SchemaError
from privsynth.schema import (
    CATEGORICAL_KINDS,
    DATES_OUT_OF_RANGE,
    NOT_NUMBERS,
    NUMERIC_KINDS,
    OTHER,
    Column,
    Schema,
    bad_values_error,
    canonical_category,
    infinite_values_error,
    missing_values_error,
    unknown_categories_error,
)
from privsynth.schema.unit import repeated_identifier_error
from privsynth.sources.dialect import Dialect
from privsynth.sources.source import TableSource
from privsynth.sources.table import EncodedTable

#: Grouping sets per query: each query is one scan of the table.
SETS_PER_QUERY = 64
#: Largest full contingency table (non-empty cells) fetched to answer every marginal at once:
#: at most JOINT_MAX_CELLS * (columns + 1) * 8 bytes in memory (128 MB for 15 columns).
JOINT_MAX_CELLS = 1_000_000
_SPLIT_BUCKETS = 1_000_000
# Dates pandas can hold (nanoseconds in int64), in microseconds, the engines' resolution.
_MIN_US = -(-pd.Timestamp.min.value // 1000)
_MAX_US = pd.Timestamp.max.value // 1000


@dataclass(frozen=True)
class _ColumnSql:
    """SQL for one synthesised column: what the inner projection computes (``missing``
    boolean, ``value``: the raw value for categorical, a double for numeric; ``pos``: the
    category index or -1) and the validation checks in :meth:`Schema.validate`'s order."""

    column: Column
    raw: str
    missing: str
    value: str
    clipped: str
    pos: str | None
    checks: tuple[str, ...]  # names of checks, see SqlSource._check_sql


class SqlSource(TableSource):
    """A table inside a SQL engine. Subclasses say how to run a query and what the column
    types are; everything else (the SQL) is shared."""

    dialect: Dialect = Dialect()

    @abstractmethod
    def _run(self, sql: str) -> pd.DataFrame:
        """Run ``sql`` (which reads the table as :attr:`_from`) and return its (small) result."""

    @property
    @abstractmethod
    def _from(self) -> str:
        """The table as a FROM item."""

    @abstractmethod
    def _types(self) -> dict[str, tuple[str, str]]:
        """Column name -> (type family, the engine's type name). Families: ``string``,
        ``integer``, ``float``, ``float32``, ``decimal``, ``bool``, ``timestamp``, ``date``;
        anything else is ``other`` (refused by name where a column needs encoding)."""

    # --------------------------------------------------------------- SQL per column
    def _family(self, col: Column) -> str:
        family, engine_type = self._types()[col.name]
        ok = {
            "categorical": ("string", "integer", "float", "bool"),
            "numeric": ("string", "integer", "float", "float32", "decimal", "bool"),
            "datetime": ("timestamp", "date"),
        }
        group = (
            "categorical"
            if col.kind in CATEGORICAL_KINDS
            else "datetime"
            if col.kind == "datetime"
            else "numeric"
        )
        if family not in ok[group]:
            raise ConfigError(
                f"column {col.name!r}: a {col.kind} column stored as {engine_type} cannot be "
                f"encoded in the engine the way pandas does; store it as one of "
                f"{', '.join(ok[group])} (e.g. CAST it in a view) or use the pandas engine"
            )
        return family

    def _column_sql(self, col: Column) -> _ColumnSql:
        d, family = self.dialect, self._family(col)
        x = d.ident(col.name)
        nan = f" OR isnan({x})" if family in ("float", "float32") else ""
        missing = f"({x} IS NULL{nan})"
        checks: list[str] = []
        pos = None
        if col.kind in CATEGORICAL_KINDS:
            value = x
            if col.categories is not None:
                pos = self._position_sql(x, family, col.categories)
                if not (col.source == "dp" and OTHER in col.categories):
                    checks.append("unknown")
        elif col.kind == "datetime":
            value = (
                f"(CASE WHEN {d.epoch_us(x, family)} BETWEEN {_MIN_US} AND {_MAX_US} "
                f"THEN CAST({d.epoch_ns(x, family)} AS DOUBLE) END)"
            )
            checks.append("dates_range")
        else:
            value = f"TRY_CAST({x} AS DOUBLE)" if family == "string" else f"CAST({x} AS DOUBLE)"
            checks += ["numbers", "infinite"]
        clipped = value
        if col.kind in NUMERIC_KINDS and col.lower is not None:
            # clipped to the bounds as Schema.validate clips (the checks see the raw value)
            lo, hi = (d.double(b) for b in col.bound_values())
            clipped = f"LEAST(GREATEST({value}, {lo}), {hi})"
        if not col.nullable:
            checks.append("missing")
        return _ColumnSql(col, x, missing, value, clipped, pos, tuple(checks))

    def _position_sql(self, x: str, family: str, categories: Sequence[str]) -> str:
        """Index of ``x``'s canonical string in ``categories``, or -1."""
        d = self.dialect
        if family == "bool":
            parts = [
                f"WHEN {x} = {lit} THEN {categories.index(s)}"
                for s, lit in (("True", "TRUE"), ("False", "FALSE"))
                if s in categories
            ]
            return f"(CASE {' '.join(parts)} ELSE -1 END)" if parts else "(-1)"
        literals: list[str] = []
        index: list[int] = []
        lit: str | None
        for i, c in enumerate(categories):
            if family == "string":
                lit = d.string(c)
            elif family == "integer":
                try:
                    ok = str(int(c)) == c
                except ValueError:
                    ok = False
                lit = f"CAST({c} AS BIGINT)" if ok else None
            else:  # float: the doubles whose canonical string is c (NaN is missing)
                try:
                    f = float(c)
                    ok = not math.isnan(f) and canonical_category(f) == c
                except ValueError:
                    ok = False
                lit = d.double(f) if ok else None
            if lit is not None:
                literals.append(lit)
                index.append(i)
        if not literals:
            return "(-1)"
        if family == "integer" and index == list(range(len(categories))):
            ints = [int(c) for c in categories]
            if ints == list(range(ints[0], ints[0] + len(ints))):  # a dense range: arithmetic
                lo, hi = ints[0], ints[-1]
                return f"(CASE WHEN {x} BETWEEN {lo} AND {hi} THEN {x} - ({lo}) ELSE -1 END)"
        cast = {"integer": "BIGINT", "float": "DOUBLE"}.get(family)
        xv = f"CAST({x} AS {cast})" if cast else x
        p = f"COALESCE(array_position({d.array(literals)}, {xv}), 0)"
        if index == list(range(len(index))):
            return f"({p} - 1)"
        remap = d.element(d.array([str(i) for i in index]), p)
        return f"(CASE WHEN {p} = 0 THEN -1 ELSE {remap} END)"

    def _code_sql(self, cs: _ColumnSql, j: int) -> str:
        codec = ColumnCodec.from_column(cs.column)
        col = cs.column
        if codec.labels is not None:
            code = f"p{j}"
            if col.source == "dp" and OTHER in codec.labels:
                code = f"(CASE WHEN p{j} < 0 THEN {codec.labels.index(OTHER)} ELSE p{j} END)"
        else:
            n_pm = len(codec.point_masses)
            code = self.dialect.bucket(f"v{j}", [float(e) for e in codec.numeric_edges[1:-1]])
            if n_pm:
                hits = " ".join(
                    f"WHEN v{j} = {self.dialect.double(v)} THEN {i}"
                    for i, v in enumerate(codec.point_masses)
                )
                code = f"(CASE {hits} ELSE {n_pm} + {code} END)"
        return f"(CASE WHEN m{j} THEN {codec.n_values} ELSE {code} END)"

    def _check_sql(self, check: str, j: int) -> str:
        return {
            "unknown": f"(NOT m{j} AND p{j} < 0)",
            "numbers": f"(NOT m{j} AND (u{j} IS NULL OR isnan(u{j})))",
            "infinite": f"(NOT m{j} AND abs(u{j}) = {self.dialect.double(math.inf)})",
            "dates_range": f"(NOT m{j} AND u{j} IS NULL)",
            "missing": f"m{j}",
        }[check]

    def _inner(self, parts: dict[int, _ColumnSql], *, row: bool = False) -> str:
        cols = [f"{self.dialect.row_number()} AS __row"] if row else []
        for j, cs in parts.items():
            cols += [f"{cs.raw} AS r{j}", f"{cs.missing} AS m{j}", f"{cs.value} AS u{j}"]
            cols.append(f"{cs.clipped} AS v{j}")
            if cs.pos is not None:
                cols.append(f"{cs.pos} AS p{j}")
        return f"SELECT {', '.join(cols)} FROM {self._from}"

    # ------------------------------------------------------------ TableSource
    def _checked(self, schema: Schema) -> SqlSource:
        names = list(self._types())
        missing = [n for n in schema.names if n not in names]
        if missing:
            raise SchemaError(f"schema column(s) {missing} are not in the data (data has {names})")
        extra = [n for n in names if n not in schema.names]
        if extra:
            raise SchemaError(
                f"data column(s) {extra} are not in the schema; add them (kind 'identifier' "
                "to drop them from the release) or remove them from the data"
            )
        parts = {j: self._column_sql(c) for j, c in enumerate(schema.synthesised)}
        sums = [
            f"SUM(CASE WHEN {self._check_sql(check, j)} THEN 1 ELSE 0 END) AS e{j}_{check}"
            for j, cs in parts.items()
            for check in cs.checks
        ]
        res = self._run(f"SELECT {', '.join(['count(*) AS n', *sums])} FROM ({self._inner(parts)})")
        if int(res["n"].iloc[0]) == 0:
            raise DataError("the table has a header but no rows")
        self._check_identifiers(schema)
        for j, cs in parts.items():
            for check in cs.checks:
                total = res[f"e{j}_{check}"].iloc[0]
                if total is not None and not pd.isna(total) and int(total) > 0:
                    raise self._error(parts, j, check, int(total))
        return self

    def _check_identifiers(self, schema: Schema) -> None:
        """Refuse a row-level schema whose identifier repeats, as Schema.validate does (the
        person-level unit is bounded in memory: :class:`~privsynth.generators.base.Generator`
        refuses an engine table for it)."""
        unit = schema.unit_of_privacy
        for col in schema.columns:
            if col.kind != "identifier" or col.name == unit.column:
                continue
            x = self.dialect.ident(col.name)
            most = self._run(
                f"SELECT MAX(c) AS m FROM (SELECT COUNT(*) AS c FROM {self._from} "
                f"WHERE {x} IS NOT NULL GROUP BY {x}) AS g"
            )["m"].iloc[0]
            if most is not None and not pd.isna(most) and int(most) > 1:
                raise repeated_identifier_error(col.name, int(most))

    def _error(self, parts: dict[int, _ColumnSql], j: int, check: str, total: int) -> Exception:
        """The error :meth:`Schema.validate` raises, with the first offending rows (scan
        order) and values fetched from the engine."""
        cs, cond = parts[j], self._check_sql(check, j)
        first = self._run(
            f"SELECT __row, r{j} FROM ({self._inner({j: cs}, row=True)}) WHERE {cond} "
            "ORDER BY __row LIMIT 3"
        )
        rows, values = first["__row"].astype(int).tolist(), first[f"r{j}"].tolist()
        name = cs.column.name
        if check == "unknown":
            seen = self._run(f"SELECT DISTINCT r{j} FROM ({self._inner({j: cs})}) WHERE {cond}")
            canon = sorted({canonical_category(v) for v in seen[f"r{j}"].tolist()})
            return unknown_categories_error(name, total, rows, canon)
        if check == "missing":
            return missing_values_error(name, total, rows)
        if check == "infinite":
            return infinite_values_error(name, total, rows)
        what = DATES_OUT_OF_RANGE if check == "dates_range" else NOT_NUMBERS
        return bad_values_error(name, total, values[0], rows[0], *what)

    def value_counts(self, column: Column) -> dict[str, int]:
        cs = self._column_sql(column)
        v = "r0" if column.kind in CATEGORICAL_KINDS else "v0"  # numbers as validated doubles
        res = self._run(
            f"SELECT {v} AS v, count(*) AS n FROM ({self._inner({0: cs})}) WHERE NOT m0 "
            f"GROUP BY {v}"
        )
        out: dict[str, int] = {}
        for v, n in zip(res["v"].tolist(), res["n"].tolist(), strict=True):
            key = canonical_category(v)
            out[key] = out.get(key, 0) + int(n)
        return out

    def bucket_counts(self, column: Column, edges: np.ndarray) -> np.ndarray:
        cs = self._column_sql(column)
        bucket = self.dialect.bucket("v0", [float(e) for e in edges[1:-1]])
        res = self._run(
            f"SELECT {bucket} AS b, count(*) AS n FROM ({self._inner({0: cs})}) "
            "WHERE NOT m0 GROUP BY 1"
        )
        out = np.zeros(len(edges) - 1, dtype=np.int64)
        out[res["b"].to_numpy(dtype=np.int64)] = res["n"].to_numpy(dtype=np.int64)
        return out

    def split(self, fraction: float, key: int) -> tuple[SqlSource, SqlSource]:
        """Rows whose keyed hash falls below ``fraction`` (the holdout) and the rest (train),
        as two sources over the same table; nothing is copied.

        A row's side depends only on its own values and the secret ``key`` (so identical rows
        share a side); with the key unknown, each row is held out with probability
        ``fraction`` (up to the hash's uniformity).
        """
        if not 0 < fraction < 1:
            raise ConfigError(f"holdout fraction ({fraction!r}) must be in (0, 1)")
        cols = [self.dialect.ident(n) for n in self._types()]
        bucket = f"({self.dialect.keyed_hash(cols, key)} % {_SPLIT_BUCKETS})"
        cut = int(round(fraction * _SPLIT_BUCKETS))
        train, holdout = _Subset(self, f"{bucket} >= {cut}"), _Subset(self, f"{bucket} < {cut}")
        train.validated_by = holdout.validated_by = self.validated_by
        return train, holdout

    def sample_rows(self, k: int, seed: int) -> pd.DataFrame:
        """``k`` rows drawn uniformly at random inside the engine (all rows if fewer): the
        only raw rows that leave it, for the audit's attacks and utility checks."""
        return self._run(self.dialect.sample(self._from, int(k), int(seed)))

    def encode(self, schema: Schema) -> SqlTable:
        parts = {j: self._column_sql(c) for j, c in enumerate(schema.synthesised)}
        codes = [f"{self._code_sql(cs, j)} AS c{j}" for j, cs in parts.items()]
        sql = f"SELECT {', '.join(codes)} FROM ({self._inner(parts)})"
        shape = {c.name: ColumnCodec.from_column(c).size for c in schema.synthesised}
        return SqlTable(self, sql, shape)


class SqlTable(EncodedTable):
    """The codes of a :class:`SqlSource` as a SQL query.

    First asked, the engine counts the full contingency table (every column) in one scan;
    when it has at most :data:`JOINT_MAX_CELLS` non-empty cells (typical of categorical and
    binned tables, whatever the row count), every marginal is summed from it, exactly, with
    no further scan. Otherwise marginals are ``GROUPING SETS`` counts,
    :data:`SETS_PER_QUERY` cliques per scan, and the cells the engine returned are kept so
    a clique asked again (MST measures pairs it scored) costs no scan. Either way only
    counts of encoded cells come back (the full table is the encoded table deduplicated,
    with counts: exact private counts, like every marginal, held in this process only)."""

    def __init__(self, source: SqlSource, codes_sql: str, shape: dict[str, int]) -> None:
        self.source = source
        self.codes_sql = codes_sql
        self._shape = dict(shape)
        self._counted: dict[tuple[int, ...], pd.DataFrame] = {}
        self._joint: np.ndarray | bool | None = None  # None: not tried; False: too large

    @property
    def shape(self) -> dict[str, int]:
        return dict(self._shape)

    def marginals(self, cliques: Sequence[Sequence[int]]) -> list[np.ndarray]:
        keys = [tuple(int(j) for j in c) for c in cliques]
        joint = self._joint_counts()
        if joint is not None:
            return [self._from_joint(joint, c) for c in keys]
        sets = list(dict.fromkeys(tuple(sorted(set(c))) for c in keys))
        counted = self._counted  # the engine's (sparse) answers so far: ask each set once
        todo = [s for s in sets if s not in counted]
        for start in range(0, len(todo), SETS_PER_QUERY):
            counted.update(self._count(todo[start : start + SETS_PER_QUERY]))
        sizes = self.sizes
        out = []
        for c in keys:
            rows = counted[tuple(sorted(set(c)))]
            if not c:
                out.append(np.array([int(rows["n"].sum())], dtype=np.int64))
                continue
            shape = tuple(sizes[j] for j in c)
            flat = np.ravel_multi_index(
                tuple(rows[f"c{j}"].to_numpy(dtype=np.int64) for j in c), shape
            )
            m = np.zeros(int(np.prod(shape, dtype=np.int64)), dtype=np.int64)
            np.add.at(m, flat, rows["n"].to_numpy(dtype=np.int64))
            out.append(m)
        return out

    def _joint_counts(self) -> np.ndarray | None:
        """The full contingency table (one row per distinct code vector, its count last),
        fetched once in one scan when it has at most :data:`JOINT_MAX_CELLS` non-empty
        cells; else None (and marginals come from GROUPING SETS)."""
        if self._joint is None:
            cols = ", ".join(f"c{j}" for j in range(len(self._shape)))
            res = self.source._run(
                f"SELECT {cols}, count(*) AS n FROM ({self.codes_sql}) GROUP BY {cols} "
                f"LIMIT {JOINT_MAX_CELLS + 1}"
            )
            self._joint = res.to_numpy(dtype=np.int64) if len(res) <= JOINT_MAX_CELLS else False
        return self._joint if isinstance(self._joint, np.ndarray) else None

    def _from_joint(self, joint: np.ndarray, clique: tuple[int, ...]) -> np.ndarray:
        if not clique:
            return np.array([int(joint[:, -1].sum())], dtype=np.int64)
        shape = tuple(self.sizes[j] for j in clique)
        flat = np.ravel_multi_index(tuple(joint[:, j] for j in clique), shape)
        m = np.zeros(int(np.prod(shape, dtype=np.int64)), dtype=np.int64)
        np.add.at(m, flat, joint[:, -1])
        return m

    def _count(self, sets: list[tuple[int, ...]]) -> dict[tuple[int, ...], pd.DataFrame]:
        used = sorted({j for s in sets for j in s})
        if not used:
            res = self.source._run(f"SELECT count(*) AS n FROM ({self.codes_sql})")
            return {(): res}
        cols = ", ".join(f"c{j}" for j in used)
        grouping = ", ".join("(" + ", ".join(f"c{j}" for j in s) + ")" for s in sets)
        res = self.source._run(
            f"SELECT {cols}, count(*) AS n FROM ({self.codes_sql}) "
            f"GROUP BY GROUPING SETS ({grouping})"
        )
        present = res[[f"c{j}" for j in used]].notna().to_numpy()
        out = {}
        for s in sets:
            want = np.isin(used, s)
            out[s] = res[(present == want).all(axis=1)]
        return out


class _Subset(SqlSource):
    """The rows of ``parent`` that satisfy a SQL condition."""

    def __init__(self, parent: SqlSource, where: str) -> None:
        self.parent, self.where = parent, where
        self.dialect = parent.dialect

    @property
    def _from(self) -> str:
        return f"(SELECT * FROM {self.parent._from} WHERE {self.where}) AS subset"

    def _run(self, sql: str) -> pd.DataFrame:
        return self.parent._run(sql)

    def _types(self) -> dict[str, tuple[str, str]]:
        return self.parent._types()
