"""Categories of a categorical column learned with DP: a Gaussian stable histogram.

Values whose noisy count clears the stable histogram's threshold are released (sorted); every
other value maps to :data:`~privsynth.schema.OTHER`, the last category.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from privsynth import mechanisms
from privsynth.budget import ApproxZCDP
from privsynth.schema import OTHER, Column
from privsynth.sources import TableSource


def learn_categories(
    source: TableSource, col: Column, share: ApproxZCDP
) -> tuple[Column, ApproxZCDP]:
    """The categories of ``col`` from a validated source, spending ``share`` on one stable
    histogram (:func:`privsynth.mechanisms.stable_histogram`). Returns the completed column
    (``source: dp``, ending in ``(other)``) and the charge."""
    kept, charge = mechanisms.stable_histogram(
        source.value_counts(col), rho=share.rho, delta=share.delta
    )
    cats = sorted_categories(kept) + [OTHER]
    learned = replace(
        col,
        categories=tuple(cats),
        source="dp",
        note=f"categories learned with DP (rho {charge.rho:.3g}, delta {charge.delta:.2g})",
    )
    return learned, charge


def sorted_categories(values: Iterable[str]) -> list[str]:
    """Numerically when every value is a number, else as text."""
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)
