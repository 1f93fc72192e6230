"""What every attack returns: an aggregate-only :class:`AttackResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Said once per suite result: what an empirical attack can and cannot show.
EVIDENCE_NOTE = (
    "Empirical attacks are evidence, not a guarantee: they lower-bound what these particular "
    "attackers achieve on this data; only the differential-privacy statement bounds every "
    "attacker."
)


@dataclass(frozen=True)
class AttackResult:
    """One attack's outcome, aggregates only (no record, no record-level score).

    Parameters
    ----------
    name
        Attack id, e.g. ``membership_distance`` or ``attribute_inference_nn[income]``.
    threat_model
        Who the attacker is and what they know, in one sentence.
    metric
        What ``value`` measures, e.g. ``auc`` or ``success_rate_difference``.
    value
        The point estimate.
    ci
        Its 95% confidence interval ``(low, high)``.
    baseline
        What an attacker without access to the private records achieves (random guessing,
        or the same attack against a control set).
    passed
        The verdict under a policy; ``None`` for diagnostics (never pass/fail on their own).
    details
        Further aggregates (counts we chose, sub-rates with intervals, settings).
    """

    name: str
    threat_model: str
    metric: str
    value: float
    ci: tuple[float, float]
    baseline: float
    passed: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "threat_model": self.threat_model,
            "metric": self.metric,
            "value": float(self.value),
            "ci": [float(self.ci[0]), float(self.ci[1])],
            "baseline": float(self.baseline),
            "passed": self.passed,
            "details": self.details,
        }
