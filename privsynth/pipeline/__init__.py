"""The release pipeline: one signed release of a DP synthetic table (:func:`release`).

:mod:`.config` holds the frozen options, :mod:`.split` the holdout split, :mod:`.evaluate`
utility and attacks, :mod:`.folder` the atomic, signed output folder and :mod:`.steps` the
steps in order.
"""

from privsynth.pipeline.config import FORMATS, ReleaseConfig
from privsynth.pipeline.steps import ReleaseResult, release, run

__all__ = [
    "FORMATS",
    "ReleaseConfig",
    "ReleaseResult",
    "release",
    "run",
]
