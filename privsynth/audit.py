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

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from privsynth.attacks.policy import Policy
from privsynth.attacks.suite import N_QUERIES, N_TARGETS, SuiteResult, run_suite
from privsynth.schema import Schema

__all__ = ["SuiteResult", "run"]


def run(
    train: pd.DataFrame,
    holdout: pd.DataFrame | None,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    sensitive: Sequence[str] = (),
    quasi_identifiers: Sequence[str] | None = None,
    link_columns: tuple[Sequence[str], Sequence[str]] | None = None,
    policy: str | Path | Policy = "standard",
    canary: dict[str, Any] | None = None,
    seed: int = 0,
    device: str = "auto",
    n_targets: int = N_TARGETS,
    n_queries: int = N_QUERIES,
    self_test: bool = True,
) -> SuiteResult:
    """Attack ``synthetic`` and report aggregate evidence of privacy risk.

    Parameters
    ----------
    train
        The private rows the generator was fitted on (members).
    holdout
        Rows from the same population never used in fitting (non-members and control set).
        ``None`` or empty skips every attack that needs them (said in ``skipped``).
    synthetic
        The synthetic release.
    schema
        The release schema; its public bounds scale numeric distances.
    sensitive
        Columns an attacker tries to infer.
    quasi_identifiers
        Columns an attacker knows for attribute inference (default: every synthesised
        column not sensitive).
    link_columns
        The two column groups of the linkability attack (default: the two halves of the
        declared quasi-identifiers, or of all synthesised columns when none are declared).
    policy
        ``standard``, ``strict`` (``audits/policies/``) or a path to a TOML policy.
    canary
        ``dict(factory=..., epsilon=..., m=1000, delta=None)`` runs the one-run canary audit:
        ``factory()`` must return an unfitted generator (``fit(df, schema).sample(n,
        seed=...)``); the extra fit is never released.
    seed
        Seeds every random choice (numpy Generator).
    device
        ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    n_targets
        Training and holdout targets drawn for membership, inference and linkability.
    n_queries
        Predicates generated per singling-out mode.
    self_test
        Also run the suite on planted leaky and null generators.

    Returns
    -------
    SuiteResult
        ``to_dict()`` is the JSON form; ``verdict()`` the policy summary.

    Raises
    ------
    ConfigError
        Unknown columns, policy or device, invalid counts or canary settings.
    DataError
        Frames that lack schema columns or break the schema.
    """
    return run_suite(
        train,
        holdout,
        synthetic,
        schema,
        sensitive=sensitive,
        quasi_identifiers=quasi_identifiers,
        link_columns=link_columns,
        policy=policy,
        canary=canary,
        seed=seed,
        device=device,
        n_targets=n_targets,
        n_queries=n_queries,
        self_test=self_test,
    )
