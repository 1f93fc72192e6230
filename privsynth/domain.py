"""Deprecated: use :mod:`privsynth.encoding` (codecs) and :mod:`privsynth.discovery`.

Kept for one release so that ``from privsynth.domain import ...`` still works.
"""

import warnings

from privsynth.discovery import discover_domains, plan_discovery
from privsynth.discovery.numeric import bound_candidates
from privsynth.encoding import ColumnCodec, Encoder, bin_edges, numeric_values

warnings.warn(
    "privsynth.domain is deprecated: import Encoder, ColumnCodec, bin_edges and numeric_values "
    "from privsynth.encoding, and discover_domains and plan_discovery from privsynth.discovery",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "ColumnCodec",
    "Encoder",
    "bin_edges",
    "bound_candidates",
    "discover_domains",
    "numeric_values",
    "plan_discovery",
]
