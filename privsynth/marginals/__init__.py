"""Deprecated: the table sources and SQL engines moved to :mod:`privsynth.sources`.

Kept for one release so that ``privsynth.marginals.duckdb`` and ``privsynth.marginals.spark``
(and :func:`marginal`) still import.
"""

import warnings

from privsynth.sources.table import marginal

warnings.warn(
    "privsynth.marginals is deprecated: import from privsynth.sources "
    "(privsynth.sources.duckdb, privsynth.sources.spark)",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["marginal"]
