"""A ``compare`` rule kept by construction: the left column is modelled as its gap to the right.

``discharge >= admission`` over dates four years wide is a rule no marginal model learns from
two binned dates: half its synthetic stays would end before they begin, and redrawing until the
rule holds shifts both dates. Modelled instead as ``gap = discharge - admission`` (a number of
days, its encoding learned with DP like any numeric column's), the stay length is learned
directly and the rule holds for every row drawn: ``discharge = admission + gap`` with
``gap >= 0``.

For a rule ``left op right + offset`` the modelled value is
``sign * (left - right - offset)`` (``sign`` +1 for ``>=``/``>``, -1 for ``<=``/``<``), in the
left column's unit (a datetime column's ``unit``, seconds if none), bounded below by 0 (1 for a
strict rule on integers) and above by what the two columns' bounds allow. The transform is
public (the rule and the bounds) and row by row, so the model of gaps is as private as a model
of the column; back in the column's space a left value is clipped to its bounds, and a row the
clip breaks is left to the redraw and repair of :mod:`privsynth.generators.rules`.

A rule is modelled as a gap when both columns are numeric of one family (dates with dates)
with declared bounds, neither is the coarse column of a ``determines`` rule, and its left
column is the left of no other rule and the right of none.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from privsynth.encoding import numeric_values
from privsynth.schema import DATE_UNITS, NUMERIC_KINDS, Column, Schema
from privsynth.schema.rules import Rule
from privsynth.sources.source import FrameSource

#: A datetime column without a ``unit`` has its gaps counted in seconds.
DEFAULT_GAP_UNIT = "second"


def gap_rules(schema: Schema) -> list[Rule]:
    """The schema's ``compare`` rules whose left column is modelled as a gap (see above)."""
    compare = [r for r in schema.rules if r.kind == "compare"]
    lefts = [r.columns[0] for r in compare]
    rights = {r.columns[1] for r in compare}
    coarse = {r.columns[1] for r in schema.rules if r.kind == "determines"}
    out = []
    for rule in compare:
        left, right = (schema[c] for c in rule.columns)
        if (
            lefts.count(left.name) == 1
            and left.name not in rights
            and not {left.name, right.name} & coarse
            and left.kind in NUMERIC_KINDS
            and (left.kind == "datetime") == (right.kind == "datetime")
            and None not in (left.lower, left.upper, right.lower, right.upper)
        ):
            out.append(rule)
    return out


def modelled_gaps(schema: Schema, model: Schema) -> list[Rule]:
    """The rules a fitted model keeps as gaps: the compare rules of ``schema`` (the table's
    terms) that ``model`` (the encoder's schema, :func:`gap_schema` of the fit) dropped."""
    return [r for r in schema.rules if r.kind == "compare" and r not in model.rules]


def gap_schema(schema: Schema) -> Schema:
    """The schema the model fits: each gap rule's left column replaced by its gap, and the
    rule dropped (the model's rows keep it by construction). ``schema`` itself if none."""
    rules = gap_rules(schema)
    if not rules:
        return schema
    gaps = {rule.columns[0]: _gap_column(schema, rule) for rule in rules}
    return replace(  # columns and rules at once: the schema checks its rules on its columns
        schema,
        columns=tuple(gaps.get(c.name, c) for c in schema.columns),
        rules=tuple(r for r in schema.rules if r not in rules),
    )


def to_gaps(source: FrameSource, schema: Schema) -> FrameSource:
    """Validated rows with each gap rule's left column replaced by its gap (the model's
    space); the rows break no rule (a release refuses or drops those first)."""
    frame, raw = source.frame.copy(), source.raw.copy()
    for rule in gap_rules(schema):
        left, right = rule.columns
        sign, unit, offset = _terms(schema, rule)
        gap = sign * (frame[left] - frame[right] - offset) / unit
        col = _gap_column(schema, rule)
        lo, hi = col.bound_values()
        frame[left] = gap.round() if col.kind == "integer" else gap
        frame[left] = frame[left].clip(lo, hi)
        # The raw rows are what an encoding under learned domains validates again.
        raw[left] = frame[left].to_numpy()
    out = FrameSource(frame, raw=raw)
    out.clipped = source.clipped
    return out


def from_gaps(frame: pd.DataFrame, schema: Schema, model: Schema) -> pd.DataFrame:
    """Decoded rows of ``model`` with each gap turned back into its left column, clipped to
    the column's bounds in ``schema``."""
    rules = modelled_gaps(schema, model)
    if not rules:
        return frame
    frame = frame.copy()
    for rule in rules:
        left, right = rule.columns
        sign, unit, offset = _terms(schema, rule)
        col = schema[left]
        lo, hi = col.bound_values()
        base = numeric_values(schema[right], frame[right])
        value = np.clip(base + offset + sign * frame[left].to_numpy(dtype=float) * unit, lo, hi)
        if col.kind == "datetime":
            frame[left] = pd.to_datetime(pd.Series(value, index=frame.index).round(), unit="ns")
        elif col.kind == "integer":
            rounded = pd.Series(np.round(value), index=frame.index)
            frame[left] = rounded.astype("Int64" if rounded.isna().any() else "int64")
        else:
            digits = col.decimals
            frame[left] = np.round(value, digits) if digits is not None else value
    return frame


def _terms(schema: Schema, rule: Rule) -> tuple[int, float, float]:
    """``sign``, the gap unit (in the columns' numeric units) and the offset in those units."""
    left = schema[rule.columns[0]]
    sign = 1 if rule.op in (">=", ">") else -1
    if left.kind == "datetime":
        unit = float(DATE_UNITS[left.unit or DEFAULT_GAP_UNIT])
        return sign, unit, float(rule.offset) * DATE_UNITS["day"]  # offsets are in days
    return sign, 1.0, float(rule.offset)


def _gap_column(schema: Schema, rule: Rule) -> Column:
    left, right = (schema[c] for c in rule.columns)
    sign, unit, offset = _terms(schema, rule)
    (lo_l, hi_l), (lo_r, hi_r) = left.bound_values(), right.bound_values()
    top = (hi_l - lo_r - offset) if sign > 0 else (hi_r + offset - lo_l)
    integer = left.kind == "datetime" or (left.kind == "integer" and right.kind == "integer")
    low = 1 if integer and rule.op in (">", "<") else 0
    return Column.from_dict(
        left.name,
        {
            "kind": "integer" if integer else "continuous",
            "lower": low,
            "upper": int(max(low, np.floor(top / unit))) if integer else max(0.0, top / unit),
            "nullable": left.nullable or right.nullable,
            **({"decimals": left.decimals} if left.decimals is not None and not integer else {}),
            "note": f"modelled as the gap to {right.name!r} ({rule.op}), in {_unit_name(left)}",
        },
    )


def _unit_name(col: Column) -> str:
    return f"{col.unit or DEFAULT_GAP_UNIT}s" if col.kind == "datetime" else "the column's unit"
