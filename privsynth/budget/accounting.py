"""Deprecated: the privacy events moved to :mod:`privsynth.budget.events` and the accounting
math to :mod:`privsynth.budget.analysis`; :mod:`privsynth.budget` exports both.

This module forwards every name for one release and warns once on import.
"""

from __future__ import annotations

import warnings
from typing import Any

from privsynth.budget import analysis, events

warnings.warn(
    "privsynth.budget.accounting is deprecated: import the events from privsynth.budget.events "
    "and the accounting math from privsynth.budget.analysis (or both from privsynth.budget)",
    DeprecationWarning,
    stacklevel=2,
)


def __getattr__(name: str) -> Any:
    for module in (events, analysis):
        if not name.startswith("_") and hasattr(module, name):
            return getattr(module, name)
    raise AttributeError(f"module 'privsynth.budget.accounting' has no attribute {name!r}")
