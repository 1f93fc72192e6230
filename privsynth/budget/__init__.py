"""Privacy accounting (typed events, composition) and the persistent budget ledger.

The adapters for diffprivlib and OpenDP (:class:`LedgerAccountant`, :func:`charge_opendp`,
:func:`ledger_measure`) are importable from here but loaded only on first use, so that
``import privsynth`` does not import diffprivlib / scikit-learn.
"""

from __future__ import annotations

from typing import Any

from privsynth.budget.accounting import (
    DENSE_ORDERS,
    SG_ORDERS,
    ZCDP,
    ApproxDP,
    ApproxZCDP,
    Budget,
    Charge,
    PrivacyEvent,
    PureDP,
    SubsampledGaussian,
    as_rational,
    calibrate_noise_multiplier,
    epsilon_spent,
    epsilon_spent_exact,
    epsilon_subsampled_gaussian,
    event_from_dict,
    event_summary,
    event_to_dict,
    rdp_curve,
    rdp_to_epsilon,
    rho_for_epsilon,
)
from privsynth.budget.ledger import (
    GENESIS_HASH,
    Ledger,
    Reservation,
    canonical_json,
    entry_hash,
    export_jsonl,
    list_datasets,
    verify_entries,
    verify_jsonl,
    verify_ledger,
)

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
    "calibrate_noise_multiplier",
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
