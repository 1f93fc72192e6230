"""DuckDB source: CSV or Parquet files (larger than memory) or a DuckDB relation.

>>> src = DuckDBSource("data.parquet")                  # doctest: +SKIP
>>> MST(epsilon=1.0).fit(src, schema).sample(1000)      # doctest: +SKIP

Validation, DP-discovery counts and marginals run as SQL inside DuckDB (see
:mod:`privsynth.sources.sql`); only aggregates come back. A CSV is read with pandas'
missing-value markers (``NA``, ``null``, empty, ...) so it means what it means to pandas;
column types are DuckDB's own detection. Row numbers in validation errors count rows in
DuckDB's scan order (0-based, as pandas numbers a file's rows).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from privsynth.errors import ConfigError, DataError
from privsynth.io import CSV_SUFFIXES, PARQUET_SUFFIXES
from privsynth.sources.sql import SqlSource

_VIEW = "privsynth_src"
_INTEGERS = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
}
_NA_VALUES = sorted(pd._libs.parsers.STR_NA_VALUES)


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError as exc:
        raise ConfigError(
            "the DuckDB engine needs the duckdb package: pip install 'privsynth[scale]'"
        ) from exc
    return duckdb


def _family(engine_type: str) -> str:
    t = engine_type.upper()
    if t == "VARCHAR":
        return "string"
    if t in _INTEGERS:
        return "integer"
    if t == "DOUBLE":
        return "float"
    if t == "FLOAT":
        return "float32"
    if t.startswith("DECIMAL"):
        return "decimal"
    if t == "BOOLEAN":
        return "bool"
    if t.startswith("TIMESTAMP"):
        return "timestamp"
    if t == "DATE":
        return "date"
    return "other"


class DuckDBSource(SqlSource):
    """A table read by DuckDB: a CSV/Parquet path, or a ``duckdb.DuckDBPyRelation``.

    Parameters
    ----------
    data
        Path of a CSV or Parquet file (a glob such as ``"part-*.parquet"`` reads many), or a
        relation (e.g. ``con.table("patients")``).
    connection
        DuckDB connection to read a path with (default: a new in-memory one). Set its
        ``threads`` and ``memory_limit`` to bound what the scan uses.
    """

    def __init__(self, data: str | Path | Any, *, connection: Any = None) -> None:
        duckdb = _duckdb()
        if isinstance(data, duckdb.DuckDBPyRelation):
            self.rel = data
            return
        if not isinstance(data, (str, Path)):
            raise ConfigError(
                f"DuckDBSource reads a path or a DuckDB relation, not a {type(data).__name__}"
            )
        con = connection if connection is not None else duckdb.connect()
        path = str(data)
        name = path.lower()
        lit = "'" + path.replace("'", "''") + "'"
        if name.endswith(PARQUET_SUFFIXES):
            sql = f"SELECT * FROM read_parquet({lit})"
        elif name.endswith(CSV_SUFFIXES):
            na = ", ".join("'" + v.replace("'", "''") + "'" for v in _NA_VALUES)
            sql = f"SELECT * FROM read_csv({lit}, header = true, nullstr = [{na}])"
        else:
            raise DataError(
                f"data file {path}: unknown format; use one of "
                f"{', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}"
            )
        try:
            self.rel = con.sql(sql)
        except duckdb.Error as exc:
            raise DataError(f"cannot read data file {path}: {exc}") from exc

    @property
    def _from(self) -> str:
        return _VIEW

    def _run(self, sql: str) -> pd.DataFrame:
        return self.rel.query(_VIEW, sql).df()

    def _types(self) -> dict[str, tuple[str, str]]:
        return {
            n: (_family(str(t)), str(t))
            for n, t in zip(self.rel.columns, self.rel.types, strict=True)
        }
