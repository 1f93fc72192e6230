"""Fidelity metrics between a real and a synthetic table (evaluation, not release: the real
side is private, so these numbers are for the custodian and the audit report, not DP outputs).
"""

from privsynth.utility.evaluate import UtilityReport, evaluate
from privsynth.utility.marginals import mean_tvd

__all__ = ["UtilityReport", "evaluate", "mean_tvd"]
