"""Generators: fit on a private table under a privacy budget, sample synthetic rows.

Rooms: :mod:`.base` (the one fit flow every generator shares: plan, check, validate, reserve,
discover, measure, check within, commit), :mod:`.split` (how a budget is divided),
:mod:`.marginal` (MST, AIM: noisy marginals and a graphical model), :mod:`.dpsgd` (DPVAE,
DPCTGAN: networks trained with DP-SGD; :mod:`.dpsgd.train` is the one place outside
:mod:`privsynth.mechanisms` that draws privacy noise) and :mod:`.registry` (by name).

The classes load on first use, so that importing one family does not import the other.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "MST": "privsynth.generators.marginal.mst",
    "AIM": "privsynth.generators.marginal.aim",
    "DPVAE": "privsynth.generators.dpsgd.dpvae",
    "DPCTGAN": "privsynth.generators.dpsgd.dpctgan",
    "Generator": "privsynth.generators.base",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'privsynth.generators' has no attribute {name!r}")
