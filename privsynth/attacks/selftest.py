"""Self-test: does the suite catch a planted leak, and stay quiet on a generator that cannot
leak?

* leaky generator: half verbatim copies of training rows, half perturbed copies (numeric
  values moved by up to 2% of their range, one column per row replaced by another training
  row's value) -- exact-match counts miss the second half;
* null generator: every column sampled independently from the binned 1-way marginals (schema
  codes) of training rows *disjoint from the attacked members*, leaving out codes held by
  fewer than ``MIN_COUNT`` of those rows, and numeric values drawn uniformly inside their
  bin; it cannot reproduce a record beyond chance. (Copying rare or exact values would leak
  them: a value seen once in the training data that reappears in the release singles its
  holder out, and the univariate singling-out attack rightly says so.)

Both are built from (sub-samples of) the audit's training data and judged by the same policy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from privsynth.attacks.base import AttackResult
from privsynth.attacks.distance import MixedSpace
from privsynth.encoding import lattice
from privsynth.schema import CATEGORICAL_KINDS, Schema

JITTER = 0.02
#: The null generator leaves out values held by fewer training rows than this.
MIN_COUNT = 5


def leaky_synthetic(
    train: pd.DataFrame, schema: Schema, n: int, rng: np.random.Generator
) -> pd.DataFrame:
    """``n`` rows: half verbatim, half perturbed copies of training rows."""
    rows = rng.choice(len(train), n, replace=n > len(train))
    out = train.iloc[rows].reset_index(drop=True).copy()
    perturbed = np.arange(n) >= n // 2
    for col in schema.synthesised:
        if col.kind in CATEGORICAL_KINDS or col.lower is None:
            continue
        lo, hi = col.bound_values()
        x = pd.to_numeric(out[col.name]).to_numpy(dtype=np.float64, na_value=np.nan)
        moved = np.clip(x + rng.uniform(-JITTER, JITTER, n) * (hi - lo), lo, hi)
        grid = lattice(col)  # integers, date units and decimals stay on their lattice
        if grid is not None:
            moved = grid.value(np.round(grid.index(moved)))
        out[col.name] = np.where(perturbed, moved, x)
    swap = rng.integers(0, len(schema.synthesised), n)
    donors = rng.integers(0, len(train), n)
    for j, col in enumerate(schema.synthesised):
        hit = perturbed & (swap == j)
        values = out[col.name].astype(object).to_numpy(copy=True)
        values[hit] = train[col.name].astype(object).to_numpy()[donors[hit]]
        out[col.name] = pd.Series(values, index=out.index).infer_objects()  # numbers stay numbers
    return out


def null_synthetic(
    train: pd.DataFrame, schema: Schema, n: int, rng: np.random.Generator
) -> pd.DataFrame:
    """``n`` rows with every column drawn independently: a schema code drawn from the
    training rows whose code at least ``MIN_COUNT`` training rows share (or, when no code is
    that common, uniformly from the schema's domain), decoded to a value (numeric: uniform
    inside its bin, so no exact training value is copied)."""
    sub = Schema(columns=schema.synthesised)
    clean, _ = sub.validate(train[sub.names])
    space = MixedSpace(sub, [clean])
    codes = space.codes(clean)
    drawn = np.empty((n, codes.shape[1]), dtype=np.int64)
    for j in range(codes.shape[1]):
        _, inverse, counts = np.unique(codes[:, j], return_inverse=True, return_counts=True)
        common = np.flatnonzero(counts[inverse] >= MIN_COUNT)
        if len(common):
            drawn[:, j] = codes[common, j][rng.integers(0, len(common), n)]
        else:  # every value is rare: copying any would single its holder out; draw the domain
            drawn[:, j] = rng.integers(0, space.encoder.codecs[j].size, n)
    return space.encoder.decode(drawn, seed=rng)


def self_test(
    run_attacks: Callable[[pd.DataFrame], list[AttackResult]],
    train: pd.DataFrame,
    null_source: pd.DataFrame,
    schema: Schema,
    rng: np.random.Generator,
) -> dict:
    """Run ``run_attacks(synthetic)`` (judged results) on leaky and null synthetic data.

    The leaky generator copies ``train`` (the members ``run_attacks`` attacks); the null one
    is fitted on ``null_source``, rows of the same population disjoint from the members and
    from the control set. Members and controls are then exchangeable with respect to the
    null's output, so every attack's difference has expectation at most its baseline and
    the policy's one-sided 2.5% error rate holds. (Fitted on the members, the null is pulled
    towards each of them: its marginals hold each member's value with weight 1/n, a shift
    that adds up over the columns and that the membership attacks rightly detect on wide
    tables.)
    """
    n = len(train)
    leaky = [r for r in run_attacks(leaky_synthetic(train, schema, n, rng)) if r.passed is not None]
    null = [
        r for r in run_attacks(null_synthetic(null_source, schema, n, rng)) if r.passed is not None
    ]
    leaky_flags = [r.name for r in leaky if r.passed is False]
    null_flags = [r.name for r in null if r.passed is False]
    return {
        "leaky_generator": "half verbatim, half perturbed copies of training rows",
        "null_generator": "each column sampled independently from the binned marginals of "
        "training rows disjoint from the attacked members (codes held by fewer than "
        f"{MIN_COUNT} of those rows left out; uniform over the schema's domain for a column "
        "with no code that common)",
        "detected_leak": any(name.startswith("membership_") for name in leaky_flags),
        "leak_flagged_by": leaky_flags,
        "false_alarm": bool(null_flags),
        "null_flagged_by": null_flags,
        "leaky": {r.name: {"value": r.value, "ci": list(r.ci)} for r in leaky},
        "null": {r.name: {"value": r.value, "ci": list(r.ci)} for r in null},
    }
