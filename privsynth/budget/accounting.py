"""Privacy accounting in one import: the typed events and the math that composes them.

The code lives in two modules, :mod:`privsynth.budget.events` (what a mechanism charges:
``ZCDP``, ``PureDP``, ``ApproxDP``, ``ApproxZCDP``, ``SubsampledGaussian``, ``Budget``) and
:mod:`privsynth.budget.analysis` (composition, RDP curves, conversion to (epsilon, delta),
calibration).  This module re-exports their public names, so
``from privsynth.budget.accounting import ZCDP, epsilon_spent`` keeps working.
"""

from __future__ import annotations

from privsynth.budget.analysis import (
    DENSE_ORDERS,
    PRV_EPS_ERROR,
    REL_PAD,
    SG_ORDERS,
    as_rational,
    epsilon_spent,
    epsilon_spent_exact,
    epsilon_subsampled_gaussian,
    float_down,
    float_up,
    rdp_curve,
    rdp_to_epsilon,
    rho_for_epsilon,
)
from privsynth.budget.events import (
    EVENT_TYPES,
    ZCDP,
    ApproxDP,
    ApproxZCDP,
    Budget,
    Charge,
    PrivacyEvent,
    PureDP,
    SubsampledGaussian,
    as_events,
    check_param,
    event_from_dict,
    event_summary,
    event_to_dict,
    format_param,
)

__all__ = [
    "DENSE_ORDERS",
    "EVENT_TYPES",
    "PRV_EPS_ERROR",
    "REL_PAD",
    "SG_ORDERS",
    "ZCDP",
    "ApproxDP",
    "ApproxZCDP",
    "Budget",
    "Charge",
    "PrivacyEvent",
    "PureDP",
    "SubsampledGaussian",
    "as_events",
    "as_rational",
    "check_param",
    "epsilon_spent",
    "epsilon_spent_exact",
    "epsilon_subsampled_gaussian",
    "event_from_dict",
    "event_summary",
    "event_to_dict",
    "float_down",
    "float_up",
    "format_param",
    "rdp_curve",
    "rdp_to_epsilon",
    "rho_for_epsilon",
]
