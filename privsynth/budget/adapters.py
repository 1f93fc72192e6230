"""Make diffprivlib and OpenDP spends draw from the privsynth ledger.

* :class:`LedgerAccountant` is a diffprivlib ``BudgetAccountant``.  diffprivlib calls
  ``accountant.check(epsilon, delta)`` *before* it computes on the data and
  ``accountant.spend(epsilon, delta)`` after; here ``check`` **reserves** the spend in the ledger
  (so a refusal -- :class:`~privsynth.errors.BudgetExceeded` -- happens before any data is
  touched, and a crash in between counts as spent) and ``spend`` commits that reservation.
* :func:`charge_opendp` reserves the privacy loss of an OpenDP measurement (read from its
  output measure and ``map(d_in)``); :func:`ledger_measure` reserves, invokes, commits.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from diffprivlib.accountant import BudgetAccountant
from diffprivlib.utils import Budget as DplBudget
from diffprivlib.utils import BudgetError
from diffprivlib.validation import check_epsilon_delta

from privsynth.budget.events import ZCDP, ApproxDP, PrivacyEvent, PureDP, event_summary
from privsynth.budget.ledger import Ledger, Reservation
from privsynth.errors import BudgetExceeded, ConfigError

logger = logging.getLogger("privsynth.ledger")


class LedgerBudgetExceeded(BudgetExceeded, BudgetError):
    """:class:`~privsynth.errors.BudgetExceeded` that diffprivlib code can also catch as its
    own ``BudgetError``."""


def _event_for(epsilon: float, delta: float) -> PrivacyEvent:
    return PureDP(epsilon) if delta == 0 else ApproxDP(epsilon, delta)


class LedgerAccountant(BudgetAccountant):
    """A diffprivlib ``BudgetAccountant`` whose budget is a dataset in a privsynth ledger.

    >>> import diffprivlib  # doctest: +SKIP
    >>> acc = LedgerAccountant(ledger, purpose="exploration")  # doctest: +SKIP
    >>> diffprivlib.tools.mean(x, epsilon=0.1, bounds=(0, 1), accountant=acc)  # doctest: +SKIP

    ``check(eps, delta)`` reserves ``PureDP(eps)`` (``ApproxDP(eps, delta)`` if ``delta > 0``) in
    the ledger or raises :class:`LedgerBudgetExceeded`; ``spend(eps, delta)`` commits the
    matching reservation from ``check`` (or reserves and commits if there was none).  So, unlike
    diffprivlib's own accountant, ``check`` is not a dry run; use ``ledger.check(events)`` for
    that.  ``total()`` and ``remaining()`` report the ledger's composed figures for the whole
    dataset (all processes), not just this accountant's spends; ``spent_budget`` lists this
    accountant's own spends.
    """

    def __init__(self, ledger: Ledger, *, purpose: str = "diffprivlib") -> None:
        if not isinstance(ledger, Ledger):
            raise ConfigError(f"LedgerAccountant needs a privsynth Ledger, got {ledger!r}")
        self.ledger = ledger
        self.purpose = purpose
        self._pending: list[tuple[float, float, Reservation]] = []
        self._own: list[tuple[float, float]] = []
        cap = ledger.cap
        super().__init__(epsilon=cap.epsilon, delta=cap.delta)

    def __repr__(self, n_budget_max: int = 5) -> str:
        return f"LedgerAccountant({self.ledger!r}, purpose={self.purpose!r})"

    @property
    def epsilon(self) -> float:
        return self.ledger.cap.epsilon

    @property
    def delta(self) -> float:
        return self.ledger.cap.delta

    @property
    def spent_budget(self) -> list[tuple[float, float]]:
        return list(self._own)

    def _reserve(self, epsilon: float, delta: float) -> Reservation:
        check_epsilon_delta(epsilon, delta, allow_zero=True)
        event = _event_for(float(epsilon), float(delta))
        try:
            return self.ledger.reserve(event, purpose=self.purpose, metadata={"via": "diffprivlib"})
        except BudgetExceeded as exc:
            raise LedgerBudgetExceeded(str(exc)) from None

    def check(self, epsilon: float, delta: float) -> bool:
        """Reserve (epsilon, delta) in the ledger, or raise :class:`LedgerBudgetExceeded`."""
        res = self._reserve(epsilon, delta)
        self._pending.append((float(epsilon), float(delta), res))
        return True

    def spend(self, epsilon: float, delta: float) -> LedgerAccountant:
        """Commit the reservation made by :meth:`check` for the same (epsilon, delta)."""
        key = (float(epsilon), float(delta))
        for i, pending in enumerate(self._pending):
            if pending[:2] == key:
                res = self._pending.pop(i)[2]
                break
        else:
            res = self._reserve(epsilon, delta)
        res.commit({"via": "diffprivlib"})
        self._own.append(key)
        return self

    def total(self, spent_budget: Any = None, slack: Any = None) -> DplBudget:
        """The ledger's composed spend for the dataset (``spent_budget`` given: diffprivlib's
        own composition of that list, as the base class)."""
        if spent_budget is not None:
            return super().total(spent_budget=spent_budget, slack=slack)
        spent = self.ledger.spent()
        return DplBudget(spent.epsilon, spent.delta)

    def remaining(self, k: int = 1) -> DplBudget:
        """Largest epsilon that ``k`` more pure-DP spends of that size could each take."""
        if not isinstance(k, int) or k < 1:
            raise ConfigError(f"k must be an integer >= 1, got {k!r}")
        rem = self.ledger.remaining()
        if k == 1 or rem.epsilon == 0:
            return DplBudget(rem.epsilon, rem.delta)
        lo, hi = 0.0, rem.epsilon
        for _ in range(60):
            mid = (lo + hi) / 2
            try:
                self.ledger.check([PureDP(mid)] * k)
                lo = mid
            except BudgetExceeded:
                hi = mid
        return DplBudget(lo, rem.delta)


# ---------------------------------------------------------------------------------------------
# OpenDP
# ---------------------------------------------------------------------------------------------


def event_for_measurement(measurement: Any, d_in: Any) -> PrivacyEvent:
    """The privacy event of an OpenDP measurement at input distance ``d_in``.

    MaxDivergence -> ``PureDP(map(d_in))``; ZeroConcentratedDivergence -> ``ZCDP``;
    Approximate(MaxDivergence) -> ``ApproxDP(eps, delta)``.  Anything else: :class:`ConfigError`.
    """
    import opendp.prelude as dp

    try:
        measure = measurement.output_measure
    except AttributeError:
        raise ConfigError(f"expected an OpenDP Measurement, got {measurement!r}") from None
    try:
        d_out = measurement.map(d_in)
    except Exception as exc:  # noqa: BLE001 - OpenDP raises its own error type
        raise ConfigError(
            f"OpenDP could not map d_in={d_in!r} through the measurement: {exc}"
        ) from None
    if measure == dp.max_divergence():
        return PureDP(float(d_out))
    if measure == dp.zero_concentrated_divergence():
        return ZCDP(float(d_out))
    if measure == dp.approximate(dp.max_divergence()):
        eps, delta = d_out
        return ApproxDP(float(eps), float(delta))
    raise ConfigError(
        f"cannot charge an OpenDP measurement whose output measure is {measure}; supported: "
        "MaxDivergence, ZeroConcentratedDivergence, Approximate(MaxDivergence) (for a "
        "SmoothedMaxDivergence measurement, fix delta first with dp.c.make_fix_delta)"
    )


def charge_opendp(
    ledger: Ledger,
    measurement: Any,
    d_in: Any,
    *,
    purpose: str,
    metadata: Mapping[str, Any] | None = None,
) -> Reservation:
    """Reserve the privacy loss of ``measurement`` at ``d_in`` in ``ledger``; return the
    reservation (commit it after the release).  Raises :class:`BudgetExceeded` if it does not
    fit; nothing is computed here."""
    event = event_for_measurement(measurement, d_in)
    meta = {"via": "opendp", "measure": str(measurement.output_measure), "d_in": repr(d_in)}
    meta.update(metadata or {})
    return ledger.reserve(event, purpose=purpose, metadata=meta)


def ledger_measure(
    ledger: Ledger,
    measurement: Any,
    data: Any,
    d_in: Any,
    *,
    purpose: str,
    metadata: Mapping[str, Any] | None = None,
) -> Any:
    """Reserve, then invoke ``measurement(data)``, then commit; return the release.

    If the invocation fails the reservation stays (counted as spent: the data was touched).
    """
    res = charge_opendp(ledger, measurement, d_in, purpose=purpose, metadata=metadata)
    value = measurement(data)
    res.commit({"via": "opendp"})
    logger.debug("released %s for %r", ", ".join(map(event_summary, res.events)), purpose)
    return value
