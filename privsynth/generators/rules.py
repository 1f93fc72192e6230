"""Keeping the schema's rules at sampling, for every generator: derive, redraw, repair.

All of it is post-processing of the fitted model and public rules: no data, no charge.

1. **Derive**: a ``determines`` rule sets its coarse column from its fine one, by the
   declared mapping or, without one, by the fine value's most common coarse value among
   :data:`MAPPING_ROWS` rows drawn from the model with a fixed seed (an estimate of the
   model's most likely coarse value: post-processing of the DP model).
2. **Redraw**: rows that break a forbid, allow or compare rule are drawn again, up to
   :data:`MAX_ROUNDS` times; this samples the model conditioned on the rules. Each rule's
   rejection rate (rows it rejected / rows drawn) is recorded.
3. **Repair** what is left after the bound, deterministically given the seed: a compare rule
   sets its left column to the nearest value that satisfies it within the column's bounds
   (then, if that is not enough, its right column); a fine value the model never drew gets
   its table's most common coarse value; any row still breaking a rule (a forbidden
   combination, rules that pull against each other) is replaced by a copy of a row drawn at
   random among those that break none.

The table that comes out breaks no rule (:func:`keep_rules` checks it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from privsynth.errors import PrivsynthError
from privsynth.schema import CATEGORICAL_KINDS, DATE_UNITS, Column, Schema, canonical_series
from privsynth.schema.rules import (
    Rule,
    broken_rows,
    coarse_mode,
    coarse_values,
    holds,
    label,
    numbers,
    offset_of,
)

#: Rounds of redraws before the remaining rows are repaired.
MAX_ROUNDS = 20
#: Rows drawn (with :data:`MAPPING_SEED`) to find a fine value's most likely coarse value.
MAPPING_ROWS = 20_000
MAPPING_SEED = 0

#: ``draw(k, rng)``: ``k`` fresh rows from the fitted model, columns as the schema's.
Draw = Callable[[int, np.random.Generator], pd.DataFrame]


def derived_columns(schema: Schema) -> list[str]:
    """Coarse columns that a declared mapping fixes from a declared fine column: a marginal
    model leaves them out (they are never measured) and sampling derives them."""
    out = []
    for rule in schema.rules:
        if rule.derived is not None:
            fine = schema[rule.columns[0]]
            if fine.categories is not None and fine.source != "dp":
                out.append(rule.derived)
    return out


def learned_mappings(schema: Schema, draw: Draw) -> dict[int, dict[str, Any]]:
    """For each ``determines`` rule without a mapping (by index), each fine value's most
    common coarse value in :data:`MAPPING_ROWS` rows drawn with a fixed seed."""
    todo = [i for i, r in enumerate(schema.rules) if r.kind == "determines" and r.mapping is None]
    if not todo:
        return {}
    rows = derive(draw(MAPPING_ROWS, np.random.default_rng(MAPPING_SEED)), schema, {})
    by_name = {c.name: c for c in schema.columns}
    return {
        i: coarse_mode(*(_values(rows[c], by_name[c]) for c in schema.rules[i].columns))
        for i in todo
    }


def keep_rules(
    frame: pd.DataFrame,
    schema: Schema,
    draw: Draw,
    rng: np.random.Generator,
    mappings: Mapping[int, dict[str, Any]],
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """``frame`` (rows drawn from the model) with every rule of ``schema`` kept, and per rule
    what it took: ``{"rule", "description", "rows_drawn", "rows_rejected",
    "rejection_rate", "rows_repaired", "violations"}`` (see the module docstring).

    Raises
    ------
    PrivsynthError
        If every row breaks a rule even after the redraws (nothing to copy from), or a
        row still breaks one after the repair (an internal error).
    """
    rules = schema.rules
    columns = {c.name: c for c in schema.columns}
    frame = derive(frame.reset_index(drop=True), schema, mappings)
    rejected = [0] * len(rules)
    drawn = len(frame)
    redrawn = [i for i, r in enumerate(rules) if r.kind != "determines"]
    todo = np.arange(len(frame))
    for round_ in range(MAX_ROUNDS + 1):
        part = frame.iloc[todo]
        bad = np.zeros(len(todo), dtype=bool)
        for i in redrawn:
            m = broken_rows(rules[i], part, columns)
            rejected[i] += int(m.sum())
            bad |= m
        todo = todo[bad]
        if not len(todo) or round_ == MAX_ROUNDS:
            break
        fresh = derive(draw(len(todo), rng), schema, mappings)
        for j, name in enumerate(frame.columns):
            frame.iloc[todo, j] = fresh[name].to_numpy()
        drawn += len(todo)
    repaired = [int(broken_rows(r, frame, columns).sum()) for r in rules]
    frame = _repair(frame, schema, rng)
    left = [int(broken_rows(r, frame, columns).sum()) for r in rules]
    if any(left):
        raise PrivsynthError(
            "internal error: synthetic rows still break "
            + ", ".join(
                f"{label(i, r)} ({n})"
                for i, (r, n) in enumerate(zip(rules, left, strict=True))
                if n
            )
            + " after the repair; nothing was released. Please report this."
        )
    report = [
        {
            "rule": label(i, r),
            "description": r.describe(),
            "rows_drawn": drawn,
            "rows_rejected": rejected[i],
            "rejection_rate": rejected[i] / drawn if drawn else 0.0,
            "rows_repaired": repaired[i],
            "violations": left[i],
        }
        for i, r in enumerate(rules)
    ]
    return frame, report


def derive(
    frame: pd.DataFrame, schema: Schema, mappings: Mapping[int, dict[str, Any]]
) -> pd.DataFrame:
    """Set each ``determines`` rule's coarse column from its fine column (chains in order:
    a coarse column that is another rule's fine column is set first). A missing fine value
    gives a missing coarse value under a declared mapping; a fine value without a mapping
    keeps its drawn coarse value."""
    by_name = {c.name: c for c in schema.columns}
    rules = [(i, r) for i, r in enumerate(schema.rules) if r.kind == "determines"]
    coarse = {r.columns[1] for _, r in rules}
    done: set[str] = set()
    while rules:  # the chains are acyclic (checked with the schema): this ends
        ready = [(i, r) for i, r in rules if r.columns[0] not in coarse - done]
        for i, r in ready:
            fine_name, coarse_name = r.columns
            col = by_name[coarse_name]
            want = coarse_values(r, col) if r.mapping is not None else dict(mappings.get(i, {}))
            fine = _values(frame[fine_name], by_name[fine_name])
            target = fine.map(want)
            where = target.notna() | (fine.isna() if r.mapping is not None else False)
            if where.any():
                frame = _assign(frame, col, where.to_numpy(), target[where].to_numpy())
            done.add(coarse_name)
        rules = [x for x in rules if x not in ready]
    return frame


def _values(s: pd.Series, col: Column) -> pd.Series:
    """A column as rules compare it: canonical strings or floats."""
    if col.kind in CATEGORICAL_KINDS:
        return canonical_series(s)
    return numbers(s)


def _assign(
    frame: pd.DataFrame, col: Column, where: np.ndarray, values: np.ndarray
) -> pd.DataFrame:
    """``frame[col][where] = values``, in the dtype the decoder gives the column (values are
    canonical strings, or floats: nanoseconds for datetimes; NaN/None for missing)."""
    s = frame[col.name]
    if col.kind in CATEGORICAL_KINDS:
        new = s.astype(object).copy()
        new[where] = [None if pd.isna(v) else v for v in values]
    else:
        x = numbers(s).to_numpy(copy=True)
        x[where] = np.asarray(values, dtype=float)
        if col.kind == "datetime":
            new = pd.Series(pd.to_datetime(x, unit="ns"), index=s.index)
        elif col.kind == "integer":
            nulls = np.isnan(x)
            new = pd.Series(np.where(nulls, 0, x).astype(np.int64), index=s.index)
            if nulls.any() or col.nullable:
                new = new.astype("Int64").mask(pd.Series(nulls, index=s.index))
        else:
            new = pd.Series(x, index=s.index)
    out = frame.copy(deep=False)
    out[col.name] = new.to_numpy() if col.kind in CATEGORICAL_KINDS else new
    return out


def _repair(frame: pd.DataFrame, schema: Schema, rng: np.random.Generator) -> pd.DataFrame:
    """Repair the rows that still break a rule after the redraws (module docstring, 3)."""
    columns = {c.name: c for c in schema.columns}
    for rule in schema.rules:
        if rule.kind == "compare":
            frame = _repair_compare(frame, rule, columns)
        elif rule.kind == "determines" and rule.mapping is None:
            fine, coarse = (_values(frame[c], columns[c]) for c in rule.columns)
            want = coarse_mode(fine, coarse)
            target = fine.map(want)
            where = (target.notna() & coarse.notna() & (target != coarse)).to_numpy()
            if where.any():
                frame = _assign(frame, columns[rule.columns[1]], where, target[where].to_numpy())
    bad = np.zeros(len(frame), dtype=bool)
    for rule in schema.rules:
        bad |= broken_rows(rule, frame, columns)
    if bad.any():
        clean = np.flatnonzero(~bad)
        if not len(clean):
            raise PrivsynthError(
                "every synthetic row breaks a rule even after redrawing them "
                f"{MAX_ROUNDS} times: the model puts (almost) no mass where the rules allow; "
                "check the rules against the data (privsynth schema check)"
            )
        frame = frame.copy()
        dst, src = np.flatnonzero(bad), rng.choice(clean, int(bad.sum()))
        for j in range(frame.shape[1]):  # column by column: each keeps its dtype
            frame.iloc[dst, j] = frame.iloc[src, j].to_numpy()
    return frame


def _step(col: Column) -> float:
    """The smallest move between two values a column can hold (for strict comparisons)."""
    if col.kind == "integer":
        return 1.0
    if col.kind == "datetime":
        return float(DATE_UNITS[col.unit or "second"])
    if col.decimals is not None:
        return 10.0**-col.decimals
    return 0.0  # continuous: the next float (np.nextafter)


def _nearest(x: np.ndarray, op: str, col: Column) -> np.ndarray:
    """The value of ``col`` nearest to ``x`` that satisfies ``value op x``."""
    step = _step(col)
    up, strict = op in (">=", ">"), op in (">", "<")
    if step:
        k = np.ceil(x / step) if up else np.floor(x / step)
        if strict:  # on the boundary: one step further
            k = np.where(k * step == x, k + (1 if up else -1), k)
        return k * step
    return np.nextafter(x, np.inf if up else -np.inf) if strict else x


_MIRROR = {">=": "<=", ">": "<", "<=": ">=", "<": ">"}


def _repair_compare(frame: pd.DataFrame, rule: Rule, columns: Mapping[str, Column]) -> pd.DataFrame:
    """Move the left value of each breaking row to the nearest value that keeps the rule,
    within its bounds; where the bounds stop it, move the right value too."""
    left_name, right_name = rule.columns
    off = offset_of(rule, columns)
    op = rule.op or ">="
    for moved, which in ((left_name, op), (right_name, _MIRROR[op])):
        col = columns[moved]
        a, b = numbers(frame[left_name]), numbers(frame[right_name])
        bad = (a.notna() & b.notna()).to_numpy() & ~holds(op, a, b + off)
        if not bad.any():
            break
        # left op right + off  <=>  right mirror(op) left - off
        target = (b + off if moved == left_name else a - off).to_numpy()[bad]
        new = _nearest(target, which, col)
        if col.lower is not None:
            lo, hi = col.bound_values()
            new = np.clip(new, lo, hi)
        frame = _assign(frame, col, bad, new)
    return frame
