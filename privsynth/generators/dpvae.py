"""Deprecated: moved to :mod:`privsynth.generators.dpsgd.dpvae` (this path goes in the next
release)."""

import warnings

from privsynth.generators.dpsgd.dpvae import DPVAE

warnings.warn(
    "privsynth.generators.dpvae is deprecated; import DPVAE from privsynth (or from "
    "privsynth.generators.dpsgd.dpvae)",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["DPVAE"]
