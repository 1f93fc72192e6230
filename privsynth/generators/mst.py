"""Deprecated: moved to :mod:`privsynth.generators.marginal.mst` (this path goes in the next
release)."""

import warnings

from privsynth.generators.marginal.mst import MST

warnings.warn(
    "privsynth.generators.mst is deprecated; import MST from privsynth (or from "
    "privsynth.generators.marginal.mst)",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["MST"]
