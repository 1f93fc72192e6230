"""Learning undeclared domains with DP: the only part of encoding that spends privacy.

:func:`plan_discovery` lists the charges from the schema alone (reserved in the ledger before
any data is read); :func:`discover_domains` then spends them on a validated table's exact
counts: categories with a stable histogram (:mod:`~privsynth.discovery.categories`), numeric
bounds and encodings with the measurements of :mod:`~privsynth.discovery.numeric`. The
completed schema is encoded by :class:`privsynth.encoding.Encoder`, which spends nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from privsynth.budget import ApproxZCDP, PrivacyEvent
from privsynth.discovery.categories import learn_categories
from privsynth.discovery.numeric import (
    Share,
    clipped_shares,
    custodian_notes,
    learn_column,
    needs,
    plan_column,
)
from privsynth.errors import ConfigError
from privsynth.schema import CATEGORICAL_KINDS, Column, Schema
from privsynth.sources import TableSource, as_source

__all__ = ["clipped_shares", "custodian_notes", "discover_domains", "plan_discovery"]


def plan_discovery(schema: Schema, *, rho: float, delta: float) -> list[PrivacyEvent]:
    """The charges :func:`discover_domains` will make, computed from the schema alone.

    The zCDP budget ``rho`` is split evenly over the undeclared columns (``delta`` evenly
    over those that need one). A categorical column spends its share on one Gaussian stable
    histogram; a numeric column on what :func:`privsynth.discovery.numeric.plan_column`
    lists for it (bounds, point masses, the fine density).
    """
    return [share for _, shares in _column_plans(schema, rho, delta) for share in shares]


def _column_plans(schema: Schema, rho: float, delta: float) -> list[tuple[Column, list[Share]]]:
    """Each undeclared column with the shares :func:`plan_discovery` lists for it."""
    cols = [schema[n] for n in schema.undeclared_columns()]
    if not cols:
        return []
    if not (rho > 0 and np.isfinite(rho)):
        raise ConfigError(f"domain rho ({rho!r}) must be > 0")
    n_delta = sum(_needs_delta(c) for c in cols)
    if n_delta and not 0 < delta < 1:
        raise ConfigError(
            f"domain delta ({delta!r}) must be in (0, 1) to learn categories or point masses"
        )
    rho_col = rho / len(cols)
    plans: list[tuple[Column, list[Share]]] = []
    for c in cols:
        if c.kind in CATEGORICAL_KINDS:
            plans.append((c, [ApproxZCDP(rho_col, delta / n_delta)]))
        else:
            plans.append((c, plan_column(c, rho=rho_col, delta=delta / max(n_delta, 1))))
    return plans


def _needs_delta(col: Column) -> bool:
    return col.kind in CATEGORICAL_KINDS or "point_masses" in needs(col)


def discover_domains(
    data: pd.DataFrame | TableSource, schema: Schema, *, rho: float, delta: float
) -> tuple[Schema, list[PrivacyEvent]]:
    """Learn the undeclared domains of ``schema`` from validated data, under DP.

    ``data`` is a validated DataFrame or a validated :class:`~privsynth.sources.TableSource`
    (DuckDB, Spark): only its exact counts are read, the noise is added here.
    The caller must have reserved :func:`plan_discovery`'s charges in the ledger first.
    Returns the completed schema (learned columns get ``source: dp``) and the charges spent,
    each no larger than planned.
    """
    source = as_source(data)
    learned: list[Column] = []
    spent: list[PrivacyEvent] = []
    for col, shares in _column_plans(schema, rho, delta):
        if col.kind in CATEGORICAL_KINDS:
            (share,) = shares
            assert isinstance(share, ApproxZCDP)  # a category list is a stable histogram
            done, charge = learn_categories(source, col, share)
            learned.append(done)
            spent.append(charge)
        else:
            done, charges = learn_column(source, col, shares)
            learned.append(done)
            spent += charges
    return schema.with_columns(learned), spent
