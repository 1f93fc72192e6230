"""Deprecated: moved to :mod:`privsynth.generators.dpsgd.dpctgan` (this path goes in the next
release)."""

import warnings

from privsynth.generators.dpsgd.dpctgan import DPCTGAN

warnings.warn(
    "privsynth.generators.dpctgan is deprecated; import DPCTGAN from privsynth (or from "
    "privsynth.generators.dpsgd.dpctgan)",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["DPCTGAN"]
