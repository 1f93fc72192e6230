"""Canary audit: an empirical lower bound on epsilon from one training run.

Steinke, Nasr & Jagielski 2023 ("Privacy Auditing with One (1) Training Run",
arXiv 2305.08846): ``m`` canary records are each included in the training data independently
with probability 1/2; the generator is fitted once (a separate fit, never released); an
attack scores every canary, guesses "in" for the ``r/2`` highest scores and "out" for the
``r/2`` lowest, and abstains on the rest. If the generator is (epsilon, delta)-DP, the number
of correct guesses ``v`` is (up to a delta term) no more likely to be large than a
Binomial(r, e^eps / (1 + e^eps)) draw, which gives a p-value for every epsilon
(their Algorithm 2 / Theorem 3.3) and so a lower bound at 95% confidence.

Canaries are records drawn uniformly from the schema's public domain (far from typical
rows), scored by the distance to the closest synthetic record. When the schema's unit of
privacy is a person owning at most K rows, each canary is a *person*: one such record repeated
K times under a new id, the strongest a person can pull the model within the bound; the
bound is then on the person-level epsilon.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats

from privsynth.attacks.distance import MixedSpace, nearest
from privsynth.errors import ConfigError
from privsynth.schema import Schema

#: The canary audit is "loose" when its bound is below this share of the claimed epsilon.
LOOSE_RATIO = 0.1


def p_value(m: int, r: int, v: int, epsilon: float, delta: float = 0.0) -> float:
    """Probability of at least ``v`` correct guesses out of ``r`` (``m`` canaries) under an
    (epsilon, delta)-DP generator: ``beta + alpha * 2 m delta`` as in Algorithm 2, with
    ``beta = P[Binomial(r, q) >= v]``, ``q = e^eps / (1 + e^eps)`` and
    ``alpha = max_{1 <= i <= v} P[v - i <= Binomial(r, q) < v] / i``."""
    if not 0 <= v <= r <= m:
        raise ConfigError(f"need 0 <= v ({v}) <= r ({r}) <= m ({m})")
    if epsilon < 0 or not 0 <= delta <= 1:
        raise ConfigError(f"need epsilon ({epsilon}) >= 0 and delta ({delta}) in [0, 1]")
    q = 1.0 / (1.0 + math.exp(-epsilon))
    beta = float(stats.binom.sf(v - 1, r, q))
    alpha = 0.0
    if v > 0 and delta > 0:
        i = np.arange(1, v + 1)
        alpha = float((np.cumsum(stats.binom.pmf(v - i, r, q)) / i).max())
    return min(1.0, beta + alpha * delta * 2 * m)


def epsilon_lower_bound(
    m: int, r: int, v: int, delta: float = 0.0, confidence: float = 0.95, tol: float = 1e-6
) -> float:
    """The largest epsilon rejected at ``confidence``: no (epsilon, delta)-DP generator gives
    ``v`` correct guesses of ``r`` with probability above ``1 - confidence``. 0 if none."""
    level = 1 - confidence
    if p_value(m, r, v, 0.0, delta) >= level:
        return 0.0
    lo, hi = 0.0, 1.0
    while p_value(m, r, v, hi, delta) < level:
        lo, hi = hi, 2 * hi
        if hi > 1e3:
            return math.inf
    while hi - lo > tol:
        mid = (lo + hi) / 2
        if p_value(m, r, v, mid, delta) < level:
            lo = mid
        else:
            hi = mid
    return lo


def status(bound: float, claimed: float, loose_ratio: float = LOOSE_RATIO) -> str:
    """``VIOLATION`` (the bound exceeds the claim), ``loose`` (below ``loose_ratio`` of it:
    the audit cannot say the claim is tight) or ``consistent``."""
    if bound > claimed:
        return "VIOLATION"
    return "loose" if bound < loose_ratio * claimed else "consistent"


def canary_audit(
    train: pd.DataFrame,
    schema: Schema,
    factory: Callable[[], Any],
    *,
    epsilon: float,
    m: int = 1000,
    delta: float | None = None,
    guess_fraction: float = 0.5,
    loose_ratio: float = LOOSE_RATIO,
    seed: int = 0,
    device: torch.device | None = None,
) -> dict:
    """Fit ``factory()`` once on ``train`` plus about m/2 canaries; bound epsilon from below.

    Parameters
    ----------
    train
        Validated training rows (synthesised columns, and the person's id when the schema's
        unit of privacy is a person).
    schema
        The schema of those columns; its unit of privacy, a person, needs an integer
        ``max_rows``: the K every canary person owns.
    factory
        Returns an unfitted generator: ``factory().fit(df, schema).sample(n, seed=...)``.
    epsilon
        The claimed epsilon.
    m
        Number of canaries.
    delta
        The claimed delta (default: the generator's ``delta`` attribute, else 0).
    guess_fraction
        Share of canaries guessed on (half "in", half "out"); fixed before looking.
    """
    if not isinstance(m, int) or m < 2:
        raise ConfigError(f"canary m ({m!r}) must be an integer >= 2")
    if not 0 < guess_fraction <= 1:
        raise ConfigError(f"canary guess_fraction ({guess_fraction!r}) must be in (0, 1]")
    if not (isinstance(epsilon, (int, float)) and epsilon > 0):
        raise ConfigError(f"canary epsilon ({epsilon!r}) must be the claimed epsilon, > 0")
    rng = np.random.default_rng(seed)
    rows = schema.row_view()
    space = MixedSpace(rows, [train[rows.names]])
    sizes = np.array(list(space.encoder.shape.values()))
    canaries = space.encoder.decode(
        np.column_stack([rng.integers(0, s, m) for s in sizes]), seed=rng
    )
    canaries, _ = rows.validate(canaries)
    included = rng.random(m) < 0.5
    data = pd.concat([train, _planted(canaries[included], schema)], ignore_index=True)
    generator = factory()
    synthetic = generator.fit(data, schema).sample(len(train), seed=int(rng.integers(2**31)))
    synthetic, _ = rows.validate(synthetic[rows.names].reset_index(drop=True))
    space = MixedSpace(rows, [synthetic, train[rows.names], canaries])
    dist, _ = nearest(space.embed(canaries), space.embed(synthetic), 1, device=device)
    order = np.argsort(dist[:, 0], kind="stable")  # closest first: guessed "in"
    half = max(1, int(guess_fraction * m) // 2)
    r = 2 * half
    v = int(included[order[:half]].sum() + (~included[order[-half:]]).sum())
    if delta is None:
        delta = float(getattr(generator, "delta", 0.0))
    bound = epsilon_lower_bound(m, r, v, delta)
    return {
        "method": "one-run audit, Steinke, Nasr & Jagielski 2023 (arXiv 2305.08846)",
        "canaries": _described(schema),
        "attack": "distance to the closest synthetic record",
        "released": False,
        "m": m,
        "guesses": r,
        "correct": v,
        "confidence": 0.95,
        "epsilon_claimed": float(epsilon),
        "delta": delta,
        "epsilon_lower_bound": bound,
        "status": status(bound, float(epsilon), loose_ratio),
        "loose_ratio": loose_ratio,
    }


def _planted(canaries: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """The canary rows to add: one row each, or, when the unit is a person owning at most K
    rows, K copies of each under a new id (``canary-1``...) no real person holds (an
    ``order: "distinct"`` column takes K different values, as a person's rows must)."""
    unit = schema.unit_of_privacy
    if not unit.is_person:
        return canaries
    if not isinstance(unit.max_rows, int):
        raise ConfigError(
            "a person-level canary audit needs the release's K: a schema whose "
            f"unit_of_privacy has an integer max_rows (got {unit.max_rows!r})"
        )
    k = unit.max_rows
    planted = canaries.loc[canaries.index.repeat(k)].reset_index(drop=True)
    owner = np.repeat(np.arange(1, len(canaries) + 1), k)
    planted.insert(0, unit.column, [f"canary-{i}" for i in owner])
    for col in (c for c in schema.columns if c.order == "distinct"):
        # One row per value (a panel's years): the canary's rows differ in this column only.
        lower, upper = int(float(col.lower)), int(float(col.upper))  # type: ignore[arg-type]
        planted[col.name] = lower + np.tile(np.arange(k), len(canaries)) % (upper - lower + 1)
    return planted


def _described(schema: Schema) -> str:
    unit = schema.unit_of_privacy
    if unit.is_person:
        return (
            f"persons of {unit.max_rows} identical rows, each a record drawn uniformly from "
            "the schema's domain, each person included w.p. 1/2"
        )
    return "records drawn uniformly from the schema's domain, each included w.p. 1/2"
