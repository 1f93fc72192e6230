"""Deprecated: use :mod:`privsynth.discovery.numeric` and :mod:`privsynth.discovery.density`
(learning), :mod:`privsynth.encoding` (lattices, drawing values) and
:class:`privsynth.schema.LearnedEncoding`.

Kept for one release so that ``from privsynth.encoding_dp import ...`` still works.
"""

import warnings

from privsynth.discovery.density import (
    ASINH_SCALE,
    FINE_BUCKETS,
    LEARNED_BINS,
    SPLIT_Z,
    fine_grid,
    n_bins,
    quantile_edges,
    tree_density,
)
from privsynth.discovery.numeric import (
    BOUNDS_FALSE_POSITIVE,
    BOUNDS_WIDEN,
    MAX_POINT_MASSES,
    RHO_MARGIN,
    WEIGHTS,
    bound_candidates,
    bound_value,
    choose_point_masses,
    clipped_shares,
    custodian_notes,
    dp_bounds,
    learn_column,
    needs,
    plan_column,
)
from privsynth.encoding import Lattice, draw_within, lattice
from privsynth.schema import LearnedEncoding

warnings.warn(
    "privsynth.encoding_dp is deprecated: import from privsynth.discovery.numeric, "
    "privsynth.discovery.density, privsynth.encoding or privsynth.schema",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "ASINH_SCALE",
    "BOUNDS_FALSE_POSITIVE",
    "BOUNDS_WIDEN",
    "FINE_BUCKETS",
    "LEARNED_BINS",
    "MAX_POINT_MASSES",
    "RHO_MARGIN",
    "SPLIT_Z",
    "WEIGHTS",
    "Lattice",
    "LearnedEncoding",
    "bound_candidates",
    "bound_value",
    "choose_point_masses",
    "clipped_shares",
    "custodian_notes",
    "dp_bounds",
    "draw_within",
    "fine_grid",
    "lattice",
    "learn_column",
    "n_bins",
    "needs",
    "plan_column",
    "quantile_edges",
    "tree_density",
]
