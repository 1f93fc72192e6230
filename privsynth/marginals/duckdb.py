"""Deprecated: use :mod:`privsynth.sources.duckdb`."""

import warnings

from privsynth.sources.duckdb import DuckDBSource

warnings.warn(
    "privsynth.marginals.duckdb is deprecated: use privsynth.sources.duckdb",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["DuckDBSource"]
