"""Fidelity metrics between a real and a synthetic table (evaluation, not release: the real
side is private, so these numbers are for the custodian unless computed under DP)."""

from privsynth.utility.marginals import mean_tvd

__all__ = ["mean_tvd"]
