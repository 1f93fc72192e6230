"""Singling out (GDPR / Article 29 WP criteria), as in anonymeter but calibrated.

The attacker writes predicates from the synthetic data that match exactly one synthetic
record -- ``column == value`` (univariate, values seen once) or conjunctions over ``n_cols``
random columns of a random synthetic record (multivariate). The suite gives univariate
predicates exact values and multivariate ones the schema's public codes (a numeric code is a
bin range). A predicate succeeds on a set when it matches exactly one
record there. It is evaluated on a uniform sample of the training data (the target set) and
on a holdout sample of the *same size* (the control set), so the control rate needs no
extrapolated correction. The number of predicates actually generated is reported.
"""

from __future__ import annotations

import math

import numpy as np

from privsynth.attacks.base import AttackResult
from privsynth.attacks.stats import versus_control
from privsynth.errors import ConfigError

#: At most this many distinct column subsets are used for multivariate predicates.
MAX_SUBSETS = 64
MAX_ROUNDS = 8

THREAT = (
    "An attacker holding only the synthetic data writes {mode} predicates that single out one "
    "synthetic record, hoping each singles out one real person in the training data."
)


class _Keys:
    """Mixed-radix keys of rows restricted to a column subset, and match counts."""

    def __init__(self, sizes: np.ndarray) -> None:
        self.sizes = sizes

    def keys(self, codes: np.ndarray, cols: tuple[int, ...]) -> np.ndarray:
        mult = np.cumprod([1, *self.sizes[list(cols[:-1])]]).astype(np.int64)
        return codes[:, list(cols)] @ mult

    def counts(self, codes: np.ndarray, cols: tuple[int, ...], query: np.ndarray) -> np.ndarray:
        uniq, cnt = np.unique(self.keys(codes, cols), return_counts=True)
        pos = np.minimum(np.searchsorted(uniq, query), len(uniq) - 1)
        return np.where(uniq[pos] == query, cnt[pos], 0)


def _univariate(codes: np.ndarray, keys: _Keys) -> list[tuple[tuple[int, ...], np.ndarray]]:
    out: list[tuple[tuple[int, ...], np.ndarray]] = []
    for j in range(codes.shape[1]):
        values, counts = np.unique(codes[:, j], return_counts=True)
        if (counts == 1).any():
            out.append(((j,), values[counts == 1].astype(np.int64)))
    return out


def _multivariate(
    codes: np.ndarray, keys: _Keys, n_cols: int, n_queries: int, rng: np.random.Generator
) -> list[tuple[tuple[int, ...], np.ndarray]]:
    d = codes.shape[1]
    n_subsets = min(MAX_SUBSETS, math.comb(d, n_cols))
    subsets: set[tuple[int, ...]] = set()
    while len(subsets) < n_subsets:
        subsets.add(tuple(sorted(rng.choice(d, n_cols, replace=False).tolist())))
    pool = sorted(subsets)
    found: dict[tuple[int, ...], set[int]] = {s: set() for s in pool}
    total = 0
    for _ in range(MAX_ROUNDS):
        rows = rng.integers(0, len(codes), 4 * n_queries)
        which = rng.integers(0, len(pool), len(rows))
        for s_i, cols in enumerate(pool):
            cand = np.unique(keys.keys(codes[rows[which == s_i]], cols))
            unique = cand[keys.counts(codes, cols, cand) == 1]
            before = len(found[cols])
            found[cols].update(unique.tolist())
            total += len(found[cols]) - before
        if total >= n_queries:
            break
    return [(cols, np.array(sorted(v), dtype=np.int64)) for cols, v in found.items() if v]


def singling_out(
    synthetic: np.ndarray,
    target: np.ndarray,
    control: np.ndarray,
    sizes: np.ndarray,
    rng: np.random.Generator,
    *,
    mode: str = "multivariate",
    n_queries: int = 1000,
    n_cols: int = 3,
) -> AttackResult:
    """Run the attack on integer codes (rows x columns, same column order everywhere).

    Parameters
    ----------
    synthetic, target, control
        Codes of the synthetic rows, the target set and the equal-size control set.
    sizes
        Number of codes per column.
    mode
        ``univariate`` or ``multivariate``.
    n_queries
        Predicates to generate at most.
    n_cols
        Columns per multivariate predicate.
    """
    if len(target) != len(control):
        raise ConfigError("singling out needs a control set the same size as the target set")
    if mode not in ("univariate", "multivariate"):
        raise ConfigError(f"mode ({mode!r}) must be 'univariate' or 'multivariate'")
    keys = _Keys(np.asarray(sizes, dtype=np.int64))
    if mode == "univariate":
        queries = _univariate(synthetic, keys)
    else:
        n_cols = min(n_cols, synthetic.shape[1])
        queries = _multivariate(synthetic, keys, n_cols, n_queries, rng)
    # Keep at most n_queries, drawn uniformly over all predicates found.
    flat = [(cols, int(k)) for cols, ks in queries for k in ks]
    if len(flat) > n_queries:
        flat = [flat[i] for i in np.sort(rng.choice(len(flat), n_queries, replace=False))]
    hits_t = hits_c = 0
    by_subset: dict[tuple[int, ...], list[int]] = {}
    for cols, k in flat:
        by_subset.setdefault(cols, []).append(k)
    for cols, ks in by_subset.items():
        q = np.asarray(ks, dtype=np.int64)
        hits_t += int((keys.counts(target, cols, q) == 1).sum())
        hits_c += int((keys.counts(control, cols, q) == 1).sum())
    n = len(flat)
    details = {
        "mode": mode,
        "queries_requested": n_queries,
        "queries_generated": n,
        "n_cols": n_cols if mode == "multivariate" else 1,
        "control": "holdout sample of the same size as the target set; no extrapolation",
    }
    if n == 0:
        return AttackResult(
            f"singling_out_{mode}",
            THREAT.format(mode=mode),
            "success_rate_difference",
            0.0,
            (-1.0, 1.0),
            0.0,
            details={**details, "note": "no predicate singles out a synthetic record"},
        )
    value, ci, success = versus_control(hits_t, n, hits_c, n)
    return AttackResult(
        name=f"singling_out_{mode}",
        threat_model=THREAT.format(mode=mode),
        metric="success_rate_difference",
        value=value,
        ci=ci,
        baseline=0.0,
        details={**details, **success},
    )
