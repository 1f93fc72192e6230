"""Deprecated: moved to :mod:`privsynth.generators.marginal.aim` (this path goes in the next
release)."""

import warnings

from privsynth.generators.marginal.aim import AIM

warnings.warn(
    "privsynth.generators.aim is deprecated; import AIM from privsynth (or from "
    "privsynth.generators.marginal.aim)",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["AIM"]
