"""Spark source: a ``pyspark.sql.DataFrame`` (a table on a cluster, or ``local[*]``).

>>> src = SparkSource(spark.read.parquet("s3://bucket/patients/"))   # doctest: +SKIP
>>> MST(epsilon=1.0).fit(src, schema)                                 # doctest: +SKIP

Validation, DP-discovery counts and marginals run as Spark SQL on a temporary view (see
:mod:`privsynth.sources.sql`); only aggregates reach the driver. Spark needs Java (17 or
later for pyspark 4).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import pandas as pd

from privsynth.errors import ConfigError
from privsynth.io import CSV_SUFFIXES, PARQUET_SUFFIXES
from privsynth.sources.dialect import Dialect
from privsynth.sources.sql import SqlSource

_US_PER_DAY = 86_400_000_000


class SparkDialect(Dialect):
    """Spark SQL spellings."""

    def ident(self, name: str) -> str:
        return "`" + name.replace("`", "``") + "`"

    def string(self, s: str) -> str:
        return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"

    def array(self, items: Sequence[str]) -> str:
        return "array(" + ", ".join(items) + ")"

    def element(self, array: str, pos: str) -> str:
        return f"element_at({array}, {pos})"

    def epoch_us(self, x: str, family: str) -> str:
        if family == "date":
            return f"(CAST(unix_date({x}) AS BIGINT) * {_US_PER_DAY})"
        return f"unix_micros(CAST({x} AS TIMESTAMP))"

    def epoch_ns(self, x: str, family: str) -> str:
        return f"({self.epoch_us(x, family)} * 1000)"

    def bucket(self, x: str, interior: Sequence[float]) -> str:
        # Catalyst compiles nested CASE trees very slowly (minutes for a few hundred edges);
        # counting the edges <= x in a constant array is fast there.
        edges = ", ".join(self.double(e) for e in interior)
        return f"size(filter(array({edges}), e -> e <= {x}))" if len(interior) else "0"

    def keyed_hash(self, columns: Sequence[str], key: int) -> str:
        return f"pmod(xxhash64({', '.join(columns)}, CAST({key} AS BIGINT)), {2**62})"

    def sample(self, source: str, k: int, seed: int) -> str:
        return f"SELECT * FROM {source} ORDER BY rand({seed}) LIMIT {k}"

    def row_number(self) -> str:
        return "row_number() OVER (ORDER BY monotonically_increasing_id()) - 1"


_FAMILIES = {
    "string": "string",
    "char": "string",
    "varchar": "string",
    "byte": "integer",
    "short": "integer",
    "integer": "integer",
    "long": "integer",
    "double": "float",
    "float": "float32",
    "decimal": "decimal",
    "boolean": "bool",
    "timestamp": "timestamp",
    "timestamp_ntz": "timestamp",
    "date": "date",
}


class SparkSource(SqlSource):
    """A Spark DataFrame, read through a temporary view of its session.

    A ``TIMESTAMP_NTZ`` column is read as UTC, as pandas reads naive times: the session time
    zone (``spark.sql.session.timeZone``) must then be ``UTC``.
    """

    dialect = SparkDialect()

    def __init__(self, df: Any) -> None:
        try:
            from pyspark.sql import DataFrame
        except ImportError as exc:
            raise ConfigError(
                "the Spark engine needs pyspark (and Java): pip install 'privsynth[scale]'"
            ) from exc
        if not isinstance(df, DataFrame):
            raise ConfigError(f"SparkSource reads a pyspark DataFrame, not a {type(df).__name__}")
        self.df = df
        self.spark = df.sparkSession
        self._view = f"privsynth_src_{uuid.uuid4().hex}"
        df.createOrReplaceTempView(self._view)
        tz = self.spark.conf.get("spark.sql.session.timeZone")
        for f in df.schema.fields:
            if f.dataType.typeName() == "timestamp_ntz" and tz not in ("UTC", "Etc/UTC", "Z"):
                raise ConfigError(
                    f"column {f.name!r} is TIMESTAMP_NTZ and would be read in the session time "
                    f"zone {tz}; set spark.sql.session.timeZone to UTC (pandas reads naive "
                    "times as UTC)"
                )

    @property
    def _from(self) -> str:
        return self._view

    def _run(self, sql: str) -> pd.DataFrame:
        result = self.spark.sql(sql)
        return pd.DataFrame.from_records(
            [tuple(r) for r in result.collect()], columns=result.columns
        )

    def _types(self) -> dict[str, tuple[str, str]]:
        return {
            f.name: (_FAMILIES.get(f.dataType.typeName(), "other"), f.dataType.simpleString())
            for f in self.df.schema.fields
        }


def read_spark(path: str, *, master: str = "local[*]") -> SparkSource:
    """A :class:`SparkSource` of a CSV (header row, types inferred) or Parquet file, read by
    a Spark session on ``master`` (started if none is running)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ConfigError(
            "the Spark engine needs pyspark (and Java): pip install 'privsynth[scale]'"
        ) from exc
    spark = (
        SparkSession.builder.master(master)
        .appName("privsynth")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    name = str(path).lower()
    if name.endswith(PARQUET_SUFFIXES):
        return SparkSource(spark.read.parquet(str(path)))
    if name.endswith(CSV_SUFFIXES):
        return SparkSource(spark.read.csv(str(path), header=True, inferSchema=True))
    raise ConfigError(
        f"data file {path}: unknown format; use one of {', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}"
    )
