"""People, not rows: the unit of privacy when one person may own many rows.

A schema's unit of privacy is either the row (every row a different person) or a person named
by an identifier column who owns at most K rows. K is public (declared) or chosen with a DP
quantile of rows per person. Before any measurement each person's rows are bounded to K (a
random subset drawn from OS entropy), so one person moves every count by at most K and the
mechanisms are calibrated to that (:func:`privsynth.mechanisms.unit_of_privacy`).

The measurements here (:func:`choose_max_rows`, :func:`measure_rows_per_person`) go through
:mod:`privsynth.mechanisms`; the rest counts, truncates, splits and numbers people.
"""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np
import pandas as pd

from privsynth import mechanisms
from privsynth.budget.events import ZCDP, PrivacyEvent, PureDP
from privsynth.schema import Schema
from privsynth.schema.unit import SYNTHETIC_ID_PREFIX, UnitOfPrivacy
from privsynth.sources.source import FrameSource

#: ``"max_rows": "dp"`` picks K among these (a coarse public grid: the fewer candidates, the
#: less the exponential mechanism spreads over wrong ones); persons with more rows count at
#: the last.
K_CANDIDATES = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100)
#: ``"max_rows": "dp"`` picks K near the quantile of rows per person that keeps this share
#: of persons whole.
KEEP_SHARE = 0.95


def rows_per_person(ids: pd.Series) -> np.ndarray:
    """How many rows each person owns (exact, private)."""
    return ids.value_counts(sort=False).to_numpy(dtype=np.int64)


def persons_split(rho: float) -> tuple[float, float]:
    """The people's share ``rho`` split between a DP quantile that chooses K (pure epsilon,
    which is epsilon^2 / 2-zCDP: half of ``rho``) and the rows-per-person histogram (the other
    half)."""
    return float(np.sqrt(rho)), rho / 2


def bound_persons(
    source: FrameSource, unit: UnitOfPrivacy, rho: float
) -> tuple[FrameSource, int, dict[str, Any], list[PrivacyEvent], list[str]]:
    """The people of a fit: fix K, measure their rows, keep at most K rows each.

    K is the declared ``max_rows``, or (``"dp"``) a DP quantile (:func:`choose_max_rows`)
    from half of ``rho`` (:func:`persons_split`). Returns the bounded rows, K, what the model
    keeps (the id column, K and the DP distribution of rows per person, all public), the
    charges, and the custodian's note on truncated persons (exact: never released).
    """
    assert unit.column is not None
    ids = source.frame[unit.column]
    charges: list[PrivacyEvent] = []
    if isinstance(unit.max_rows, int):
        k, rho_hist = unit.max_rows, rho
    else:
        eps_k, rho_hist = persons_split(rho)
        k, charge_k = choose_max_rows(ids, eps_k)
        charges.append(charge_k)
    noisy, charge = measure_rows_per_person(ids, k, rho_hist)
    charges.append(charge)
    rng = np.random.default_rng(secrets.randbits(128))
    keep, truncated = bound_rows(source.frame, unit.column, k, rng)
    notes = (
        [
            f"{unit.column}: {truncated} person(s) own more than {k} rows; {k} of their rows, "
            "drawn at random, were used"
        ]
        if truncated
        else []
    )
    kept = {"column": unit.column, "max_rows": k, "rows_per_person": rows_pmf(noisy).tolist()}
    return source.rows(keep), k, kept, charges, notes


def choose_max_rows(ids: pd.Series, epsilon: float) -> tuple[int, PureDP]:
    """K: the :data:`KEEP_SHARE` quantile of rows per person among :data:`K_CANDIDATES`,
    epsilon-DP.

    Math: each person contributes one value (their row count, capped at the last candidate),
    so adding or removing a person is one value: the exponential-mechanism quantile of
    :func:`privsynth.mechanisms.dp_quantile` at sensitivity 1.
    """
    sizes = np.minimum(rows_per_person(ids), K_CANDIDATES[-1])
    k, charge = mechanisms.dp_quantile(
        sizes, candidates=np.asarray(K_CANDIDATES), alpha=KEEP_SHARE, epsilon=epsilon
    )
    return max(1, int(round(k))), charge


def measure_rows_per_person(ids: pd.Series, cap: int, rho: float) -> tuple[np.ndarray, ZCDP]:
    """Noisy number of persons owning 1, 2, ..., ``cap`` rows (more than ``cap`` count at
    ``cap``), rho-zCDP for a person.

    Math: each person falls in exactly one bucket, so adding or removing a person moves one
    count by 1: L2 sensitivity 1, whatever their number of rows. It is measured before the
    rows are bounded and outside :func:`privsynth.mechanisms.unit_of_privacy` (whose K is
    for counts of rows).
    """
    sizes = np.minimum(rows_per_person(ids), cap)
    counts = np.bincount(sizes - 1, minlength=cap).astype(np.int64)
    return mechanisms.gaussian_counts(counts, rho)


def bound_rows(
    frame: pd.DataFrame, column: str, max_rows: int, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """Which rows to keep so that each person keeps at most ``max_rows``: a uniformly random
    subset of the rows of a person who owns more. Returns the mask and how many persons lost
    rows (exact: for the custodian only, never released).

    Why the bound holds for a random subset: a uniform permutation of all rows orders each
    person's rows uniformly and independently of everyone else's, so adding a person leaves
    the distribution of every other person's kept rows unchanged; coupled that way, two
    neighbouring tables keep rows that differ in that person's at most ``max_rows`` rows.

    ``rng`` must be seeded from OS entropy (``secrets``) in a release: the subset is not a
    privacy mechanism, but a reproducible one would let a reader who knows the seed tell
    which rows were dropped.
    """
    order = rng.permutation(len(frame))
    rank = frame[column].iloc[order].groupby(frame[column].iloc[order], sort=False).cumcount()
    keep = np.zeros(len(frame), dtype=bool)
    keep[order[rank.to_numpy() < max_rows]] = True
    truncated = int((frame[column].value_counts(sort=False) > max_rows).sum())
    return keep, truncated


def rows_pmf(noisy_hist: np.ndarray) -> np.ndarray:
    """The distribution of rows per person over 1..K from the noisy histogram (negative
    counts as 0): post-processing."""
    h = np.clip(np.asarray(noisy_hist, dtype=np.float64), 0, None)
    return h / h.sum() if h.sum() > 0 else np.eye(len(h))[0]


def held_out_persons(ids: pd.Series, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Which rows belong to a uniform random ``fraction`` of the persons (all of each
    person's rows on one side: a row-level split would put one person on both sides of a
    membership test)."""
    codes, uniques = pd.factorize(ids)
    return (rng.random(len(uniques)) < fraction)[codes]


def person_sizes(pmf: np.ndarray, n_rows: int, rng: np.random.Generator) -> np.ndarray:
    """Rows of each synthetic person, drawn from ``pmf`` over 1..len(pmf), until they hold
    ``n_rows`` rows (the last person is cut to fit)."""
    p = np.clip(np.asarray(pmf, dtype=np.float64), 0, None)
    p = p / p.sum() if p.sum() > 0 else np.eye(len(p))[0]
    mean = float(p @ np.arange(1, len(p) + 1))
    sizes = rng.choice(np.arange(1, len(p) + 1), size=int(n_rows / mean) + 16, p=p)
    while sizes.sum() < n_rows:
        sizes = np.concatenate([sizes, rng.choice(np.arange(1, len(p) + 1), size=16, p=p)])
    ends = np.cumsum(sizes)
    last = int(np.searchsorted(ends, n_rows))
    sizes = sizes[: last + 1].copy()
    sizes[-1] -= int(ends[last] - n_rows)
    return sizes


def synthetic_ids(n: int) -> list[str]:
    """``S-000001``, ``S-000002``...: ids that cannot be mistaken for real ones
    (:func:`privsynth.schema.unit.check_persons` refuses a real id of this shape)."""
    width = max(6, len(str(n)))
    return [f"{SYNTHETIC_ID_PREFIX}{i:0{width}d}" for i in range(1, n + 1)]


def person_fidelity(real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema) -> dict[str, Any]:
    """How persons look in the synthetic table against the real one (aggregates only): the KS
    distance between the rows-per-person distributions, and the shares of synthetic persons
    whose ``level: unit`` columns are constant and whose rows follow the ``order`` column."""
    person = schema.unit_of_privacy.column
    assert person is not None
    real_sizes = real.groupby(person, sort=False).size().to_numpy()
    per = synthetic.groupby(person, sort=False)
    syn_sizes = per.size().to_numpy()
    top = int(max(real_sizes.max(initial=0), syn_sizes.max(initial=0))) + 1
    cdf = [
        np.cumsum(np.bincount(s, minlength=top)) / max(len(s), 1) for s in (real_sizes, syn_sizes)
    ]
    units = [c.name for c in schema.columns if c.level == "unit"]
    order = [c.name for c in schema.columns if c.order]
    return {
        "rows_per_person_ks": float(np.abs(cdf[0] - cdf[1]).max()),
        "unit_consistency": float((per[units].nunique(dropna=False) <= 1).all(axis=1).mean())
        if units
        else None,
        "order_consistency": float(per[order[0]].apply(lambda x: x.is_monotonic_increasing).mean())
        if order
        else None,
    }
