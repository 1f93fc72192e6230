"""What the attack suite returns: :class:`SuiteResult`, aggregates only, and its JSON form."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from privsynth.attacks.base import EVIDENCE_NOTE, AttackResult
from privsynth.attacks.policy import Policy

RESULT_VERSION = 1


@dataclass
class SuiteResult:
    """Everything the suite found, aggregates only. :meth:`to_dict` is the JSON form."""

    attacks: list[AttackResult]
    diagnostics: dict[str, Any]
    policy: Policy
    settings: dict[str, Any]
    timing_s: dict[str, float]
    plots: dict[str, Any]
    skipped: list[dict[str, str]] = field(default_factory=list)
    canary: dict[str, Any] | None = None
    self_test: dict[str, Any] | None = None

    def verdict(self) -> dict[str, Any]:
        """Policy summary: judged attacks, failures, canary status and self-test outcome."""
        judged = [a for a in self.attacks if a.passed is not None]
        failed = [a.name for a in judged if a.passed is False]
        violation = self.canary is not None and self.canary["status"] == "VIOLATION"
        out = {
            "policy": self.policy.name,
            "passed": not failed and not violation,
            "failed": failed,
            "n_judged": len(judged),
            "n_diagnostics": len(self.attacks) - len(judged),
            "canary_status": self.canary["status"] if self.canary else None,
            "self_test_ok": None,
        }
        if self.self_test is not None:
            out["self_test_ok"] = bool(
                self.self_test["detected_leak"] and not self.self_test["false_alarm"]
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (non-finite numbers become ``null``)."""
        out: dict[str, Any] = _finite(
            {
                "version": RESULT_VERSION,
                "note": EVIDENCE_NOTE,
                "policy": self.policy.to_dict(),
                "verdict": self.verdict(),
                "settings": self.settings,
                "attacks": [a.to_dict() for a in self.attacks],
                "diagnostics": self.diagnostics,
                "canary": self.canary,
                "self_test": self.self_test,
                "skipped": self.skipped,
                "timing_s": self.timing_s,
                "plots": self.plots,
            }
        )
        return out


def _finite(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x
