"""Empirical privacy attacks on synthetic data; every attack returns an :class:`AttackResult`.

See ``docs/attacks.md`` for the threat models and :func:`privsynth.audit.run` for the suite.
"""

from privsynth.attacks.base import EVIDENCE_NOTE, AttackResult
from privsynth.attacks.policy import Policy, load_policy
from privsynth.attacks.suite import SuiteResult, run_suite

__all__ = ["EVIDENCE_NOTE", "AttackResult", "Policy", "SuiteResult", "load_policy", "run_suite"]
