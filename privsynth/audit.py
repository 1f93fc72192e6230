"""Deprecated: the attack suite is :func:`privsynth.attacks.run`.

This module re-exports it under its old name, ``privsynth.audit.run``, for one release.
"""

from __future__ import annotations

import warnings

from privsynth.attacks import SuiteResult, run

warnings.warn(
    "privsynth.audit is deprecated and will be removed in the next release; "
    "use privsynth.attacks.run",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["SuiteResult", "run"]
