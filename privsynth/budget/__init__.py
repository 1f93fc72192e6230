"""Privacy accounting (typed events, composition) and the persistent budget ledger.

Modules: ``events`` (typed privacy events, budgets), ``analysis`` (composition and conversion
to (epsilon, delta)), ``chain`` (ledger entries, hashing, verification), ``backend`` (where a
ledger is stored, and the choice), ``store`` (the SQLite ledger file), ``pgstore`` (a ledger in
PostgreSQL), ``export`` (JSONL exports), ``ledger`` (the :class:`Ledger` of one dataset),
``describe`` (its summary) and ``adapters`` (diffprivlib / OpenDP).

The adapters for diffprivlib and OpenDP (:class:`LedgerAccountant`, :func:`charge_opendp`,
:func:`ledger_measure`) are importable from here but loaded only on first use, so that
``import privsynth`` does not import diffprivlib / scikit-learn.
"""

from __future__ import annotations

from typing import Any

from privsynth.budget.analysis import (
    DENSE_ORDERS,
    SG_ORDERS,
    as_rational,
    epsilon_spent,
    epsilon_spent_exact,
    epsilon_subsampled_gaussian,
    rdp_curve,
    rdp_to_epsilon,
    rho_for_epsilon,
)
from privsynth.budget.backend import list_datasets, verify_ledger
from privsynth.budget.chain import GENESIS_HASH, canonical_json, entry_hash, verify_entries
from privsynth.budget.events import (
    ZCDP,
    ApproxDP,
    ApproxZCDP,
    Budget,
    Charge,
    PrivacyEvent,
    PureDP,
    SubsampledGaussian,
    event_from_dict,
    event_summary,
    event_to_dict,
)
from privsynth.budget.export import export_jsonl, verify_jsonl
from privsynth.budget.ledger import Ledger, Reservation

_ADAPTERS = ("LedgerAccountant", "charge_opendp", "ledger_measure", "event_for_measurement")

__all__ = [
    "DENSE_ORDERS",
    "GENESIS_HASH",
    "SG_ORDERS",
    "ZCDP",
    "ApproxDP",
    "ApproxZCDP",
    "Budget",
    "Charge",
    "Ledger",
    "PrivacyEvent",
    "PureDP",
    "Reservation",
    "SubsampledGaussian",
    "as_rational",
    "canonical_json",
    "entry_hash",
    "epsilon_spent",
    "epsilon_spent_exact",
    "epsilon_subsampled_gaussian",
    "event_from_dict",
    "event_summary",
    "event_to_dict",
    "export_jsonl",
    "list_datasets",
    "rdp_curve",
    "rdp_to_epsilon",
    "rho_for_epsilon",
    "verify_entries",
    "verify_jsonl",
    "verify_ledger",
    *_ADAPTERS,
]


def __getattr__(name: str) -> Any:
    if name in _ADAPTERS:
        from privsynth.budget import adapters

        return getattr(adapters, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
