"""Deprecated: use :mod:`privsynth.sources.spark`."""

import warnings

from privsynth.sources.spark import SparkSource, read_spark

warnings.warn(
    "privsynth.marginals.spark is deprecated: use privsynth.sources.spark",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["SparkSource", "read_spark"]
