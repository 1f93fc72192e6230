"""Empirical privacy attacks on synthetic data; every attack returns an :class:`AttackResult`.

:func:`run` is the suite's front door: every attack, judged by a policy, as one aggregate-only
:class:`SuiteResult`. See ``docs/attacks.md`` for the threat models.

Examples
--------
>>> from privsynth import attacks                                   # doctest: +SKIP
>>> result = attacks.run(train, holdout, synthetic, schema,         # doctest: +SKIP
...                      sensitive=["income"], quasi_identifiers=["age", "sex", "race"])
>>> result.verdict()["passed"]                                      # doctest: +SKIP
True
"""

from privsynth.attacks.base import EVIDENCE_NOTE, AttackResult
from privsynth.attacks.policy import Policy, load_policy
from privsynth.attacks.result import SuiteResult
from privsynth.attacks.suite import run

__all__ = ["EVIDENCE_NOTE", "AttackResult", "Policy", "SuiteResult", "load_policy", "run"]
