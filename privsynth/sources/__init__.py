"""Where the private table lives: pandas, DuckDB or Spark, with the same exact counts.

A :class:`TableSource` (:mod:`~privsynth.sources.source`: a pandas DataFrame;
:mod:`~privsynth.sources.duckdb`, :mod:`~privsynth.sources.spark`: SQL engines, through
:mod:`~privsynth.sources.sql`) validates its rows against a schema, gives the exact counts DP
domain discovery noises, and encodes its rows to an :class:`EncodedTable`
(:mod:`~privsynth.sources.table`), the marginal counts a generator measures. Every count here
is exact (private): it must go through :mod:`privsynth.mechanisms` before leaving.
"""

from privsynth.sources.source import FrameSource, TableSource, as_source, bucket_index
from privsynth.sources.table import ArrayTable, EncodedTable, MappedTable, marginal

__all__ = [
    "ArrayTable",
    "EncodedTable",
    "FrameSource",
    "MappedTable",
    "TableSource",
    "as_source",
    "bucket_index",
    "marginal",
]
