"""A numeric column's DP-learned encoding, as the schema stores it.

Learning it spends privacy (:mod:`privsynth.discovery.numeric`); holding, saving and reading
it back does not, so it lives with the schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from privsynth.errors import SchemaError


@dataclass(frozen=True)
class LearnedEncoding:
    """A numeric column's encoding learned under DP (every field is a DP output).

    Codes ``0..len(point_masses)-1`` are the point masses, then one code per bin
    ``[edges[j], edges[j+1])`` of the other values (the last bin also holds its right edge).
    ``fine_edges``/``fine_weights`` are the fine histogram synthetic values in a bin are
    drawn from; ``edges`` is a subset of ``fine_edges``. Integer and dated columns use
    half-open integer buckets (their last edge is the upper bound plus one step).
    """

    point_masses: tuple[float, ...]
    edges: tuple[float, ...]
    fine_edges: tuple[float, ...]
    fine_weights: tuple[float, ...]

    def __post_init__(self) -> None:
        fine = np.asarray(self.fine_edges, dtype=np.float64)
        ok = (
            len(self.edges) >= 2
            and len(fine) == len(self.fine_weights) + 1
            and bool(np.all(np.diff(fine) > 0))
            and bool(np.all(np.isin(self.edges, fine)))
            and all(w >= 0 for w in self.fine_weights)
        )
        if not ok:
            raise SchemaError(
                "a learned encoding needs increasing edges that are fine edges, and one "
                "non-negative weight per fine bucket; was the model file edited?"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "point_masses": list(self.point_masses),
            "edges": list(self.edges),
            "fine_edges": list(self.fine_edges),
            "fine_weights": list(self.fine_weights),
        }

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> LearnedEncoding:
        keys = {"point_masses", "edges", "fine_edges", "fine_weights"}
        if not isinstance(data, Mapping) or set(data) != keys:
            raise SchemaError(f"column {name!r}: 'learned' must be an object with {sorted(keys)}")
        try:
            return cls(**{k: tuple(float(v) for v in data[k]) for k in sorted(keys)})
        except (TypeError, ValueError) as exc:
            raise SchemaError(f"column {name!r}: 'learned' holds a non-number") from exc
