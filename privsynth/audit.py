"""The empirical privacy audit of a synthetic release: one call, aggregate-only results.

Examples
--------
>>> from privsynth import audit                                     # doctest: +SKIP
>>> result = audit.run(train, holdout, synthetic, schema,          # doctest: +SKIP
...                    sensitive=["income"], quasi_identifiers=["age", "sex", "race"])
>>> result.verdict()["passed"]                                      # doctest: +SKIP
True
"""

from __future__ import annotations

from privsynth.attacks.suite import SuiteResult
from privsynth.attacks.suite import run_suite as run

__all__ = ["SuiteResult", "run"]
