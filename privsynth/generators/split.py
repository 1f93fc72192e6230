"""How a generator divides its (epsilon, delta): domain discovery first, then zCDP for the rest,
and a zCDP budget over measurements of different sizes.

Everything here is a function of public inputs (parameters, schema, domain sizes) and DP
outputs: it reads no data and spends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from privsynth.budget.analysis import rho_for_epsilon
from privsynth.budget.events import ZCDP, PrivacyEvent, PureDP
from privsynth.discovery import plan_discovery
from privsynth.errors import ConfigError
from privsynth.persons import persons_split
from privsynth.schema import Schema

#: A mechanism is given a hair less rho than was reserved, so that float rounding in splitting
#: rho over many measurements can never take their exact total past the reservation.
RHO_MARGIN = 1 - 1e-9

#: Share of the zCDP budget for the noisy histogram of rows per person, when a person owns
#: many rows (it gives the synthetic persons their sizes, and K when it is chosen with DP).
PERSONS_SHARE = 0.05


@dataclass(frozen=True)
class Budgeting:
    """How a generator's (epsilon, delta) is split: domain discovery, then zCDP for the rest."""

    discovery_rho: float
    discovery_delta: float
    rho: float
    #: The rows-per-person histogram's share (0 when each row is a person).
    persons_rho: float = 0.0

    #: K is chosen with DP (``"max_rows": "dp"``): half the share goes to a DP quantile.
    choose_k: bool = False

    def persons_events(self) -> list[PrivacyEvent]:
        """The charges of the people (see :func:`persons_split`), if a person owns many rows."""
        if not self.persons_rho:
            return []
        if not self.choose_k:
            return [ZCDP(self.persons_rho)]
        eps_k, rho_hist = persons_split(self.persons_rho)
        return [PureDP(eps_k), ZCDP(rho_hist)]


def split_budget(epsilon: float, delta: float, schema: Schema, discovery_share: float) -> Budgeting:
    """Give ``discovery_share`` of the zCDP budget (and of delta) to learning undeclared
    domains and numeric encodings, and the model the largest rho such that discovery +
    ZCDP(rho) composes to at most (epsilon, delta).

    Discovery is all zCDP (or approximate zCDP), so the shares add in rho. The composition
    is the ledger's accountant, so what is planned is what will be charged. When a person owns
    many rows, :data:`PERSONS_SHARE` of rho goes to the histogram of rows per person.
    """
    if not schema.undeclared_columns():
        disc_rho, disc_delta = 0.0, 0.0
    else:
        disc_rho = discovery_share * rho_for_epsilon(epsilon, delta)
        disc_delta = delta * discovery_share
    persons_rho = (
        PERSONS_SHARE * rho_for_epsilon(epsilon, delta) if schema.unit_of_privacy.is_person else 0.0
    )
    discovery = plan_discovery(schema, rho=disc_rho, delta=disc_delta)
    unit = schema.unit_of_privacy
    people = Budgeting(0.0, 0.0, 0.0, persons_rho, choose_k=unit.max_rows == "dp")
    rho = rho_for_epsilon(epsilon, delta, alongside=[*discovery, *people.persons_events()])
    if rho <= 0:
        raise ConfigError(
            f"epsilon ({epsilon}) is too small to learn the undeclared domains "
            f"({', '.join(schema.undeclared_columns())}) and fit a model; declare them or raise "
            "epsilon"
        )
    return Budgeting(disc_rho, disc_delta, rho, persons_rho, choose_k=people.choose_k)


def allocate(rho: float, cells: list[int]) -> list[float]:
    """Split ``rho`` over measurements of ``cells`` cells each, in proportion to cells^(2/3).

    A measurement given rho_m has noise sd 1/sqrt(2 rho_m) per cell, so its expected L1
    error is proportional to c_m / sqrt(rho_m). Minimising sum_m c_m rho_m^(-1/2) subject to
    sum_m rho_m = rho (Lagrange: c_m rho_m^(-3/2) equal for all m) gives rho_m ~ c_m^(2/3).
    Uses only public sizes (and the DP-selected structure): post-processing.
    """
    w = np.asarray(cells, dtype=np.float64) ** (2 / 3)
    return [float(r) for r in rho * w / w.sum()]


def check_budget_params(epsilon: float, delta: float, discovery_share: float) -> None:
    """Refuse an invalid (epsilon, delta) or discovery share with a message naming it."""
    if not (isinstance(epsilon, (int, float)) and 0 < epsilon < float("inf")):
        raise ConfigError(f"epsilon ({epsilon!r}) must be a finite number > 0")
    if not (isinstance(delta, (int, float)) and 0 < delta < 1):
        raise ConfigError(
            f"delta ({delta!r}) must be in (0, 1); choose it without looking at the "
            "row count (e.g. 1e-9), never as 1/n of the private data"
        )
    if not 0 < discovery_share < 1:
        raise ConfigError(f"discovery_share ({discovery_share!r}) must be in (0, 1)")
