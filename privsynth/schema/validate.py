"""Validating a table against the schema's columns, and the errors it raises.

The error builders are shared with the SQL engines (:mod:`privsynth.sources.sql`), so a
table validated inside DuckDB or Spark fails with the same message as one validated here:
each names the column, how many rows, an example row and value, and what to do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from privsynth.errors import DataError, SchemaError
from privsynth.io import check_frame
from privsynth.schema.columns import (
    CATEGORICAL_KINDS,
    DATE_MAX,
    DATE_MIN,
    DATE_UNITS,
    OTHER,
    RELATIVE_DATES,
    Column,
    canonical_series,
)

OnUnknown = Literal["error", "missing"]


@dataclass
class ValidationReport:
    """What :meth:`Schema.validate` changed. For the custodian only: exact counts are private."""

    clipped: dict[str, int] = field(default_factory=dict)
    unknown_to_missing: dict[str, int] = field(default_factory=dict)
    dropped_identifiers: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{c}: {n} value(s) clipped to the bounds" for c, n in self.clipped.items() if n]
        out += [
            f"{c}: {n} unknown value(s) mapped to missing"
            for c, n in self.unknown_to_missing.items()
            if n
        ]
        out += [f"{c}: identifier, dropped (never synthesised)" for c in self.dropped_identifiers]
        return out


def validate_frame(
    columns: Sequence[Column], df: pd.DataFrame, *, on_unknown: OnUnknown = "error"
) -> tuple[pd.DataFrame, ValidationReport]:
    """Check ``df`` against ``columns`` and return a cleaned copy (see
    :meth:`privsynth.schema.Schema.validate` for the policy)."""
    if on_unknown not in ("error", "missing"):
        raise SchemaError(f"on_unknown ({on_unknown!r}) must be 'error' or 'missing'")
    check_frame(df)
    names = [c.name for c in columns]
    missing = [n for n in names if n not in df.columns]
    if missing:
        raise SchemaError(
            f"schema column(s) {missing} are not in the data (data has {list(df.columns)})"
        )
    extra = [str(n) for n in df.columns if n not in names]
    if extra:
        raise SchemaError(
            f"data column(s) {extra} are not in the schema; add them (kind 'identifier' "
            "to drop them from the release) or remove them from the data"
        )
    report = ValidationReport()
    out: dict[str, pd.Series] = {}
    for col in columns:
        if col.kind == "identifier":
            report.dropped_identifiers.append(col.name)
            continue
        out[col.name] = _validate_column(col, df[col.name], on_unknown, report)
    return pd.DataFrame(out, index=df.index), report


def rows_text(rows: list, total: int, k: int = 3) -> str:
    """``"3, 8, 9 ..."``: the first ``k`` offending rows, and an ellipsis when there are more."""
    return ", ".join(str(r) for r in rows[:k]) + (" ..." if total > k else "")


def unknown_categories_error(name: str, total: int, rows: list, seen: list[str]) -> DataError:
    shown = ", ".join(repr(v) for v in seen[:5]) + (" ..." if len(seen) > 5 else "")
    return DataError(
        f"column {name!r}: {total} row(s) (e.g. row {rows_text(rows, total)}) hold value(s) not "
        f"in the declared categories: {shown}. Add them to 'categories', or validate with "
        "on_unknown='missing' (CLI --on-unknown missing) on a nullable column"
    )


def missing_values_error(name: str, total: int, rows: list) -> DataError:
    return DataError(
        f"column {name!r}: {total} missing value(s) (e.g. row {rows_text(rows, total)}); set "
        "'nullable': true in the schema to model missingness, or fill them first"
    )


def bad_values_error(name: str, total: int, value: Any, row: Any, what: str, fix: str) -> DataError:
    return DataError(
        f"column {name!r}: {total} value(s) are not {what} (e.g. {value!r} at row {row}); {fix}"
    )


def infinite_values_error(name: str, total: int, rows: list) -> DataError:
    return DataError(
        f"column {name!r}: {total} infinite value(s) (e.g. row {rows_text(rows, total)}); "
        "replace them with a finite value or missing"
    )


#: What :func:`bad_values_error` says for each numeric check of :meth:`Schema.validate`.
NOT_NUMBERS = ("numbers", "fix them, or declare the column categorical")
NOT_DATES = ("dates", "use ISO-8601 (YYYY-MM-DD) or fix the column")
DATES_OUT_OF_RANGE = (f"dates between {DATE_MIN} and {DATE_MAX}", "fix or drop them")


def _validate_column(
    col: Column, s: pd.Series, on_unknown: str, report: ValidationReport
) -> pd.Series:
    where = f"column {col.name!r}"
    isna = s.isna()
    if col.kind in CATEGORICAL_KINDS:
        values = canonical_series(s)
        if col.categories is not None:
            unknown = ~isna & ~values.isin(col.categories)
            if unknown.any() and col.source == "dp" and OTHER in col.categories:
                values = values.where(~unknown, OTHER)
            elif unknown.any():
                seen = sorted(set(values[unknown].tolist()))
                if on_unknown == "error":
                    raise unknown_categories_error(
                        col.name, int(unknown.sum()), list(unknown[unknown].index[:3]), seen
                    )
                if not col.nullable:
                    raise SchemaError(
                        f"{where}: on_unknown='missing' needs a nullable column; set "
                        "'nullable': true in the schema"
                    )
                report.unknown_to_missing[col.name] = int(unknown.sum())
                values = values.where(~unknown, None)
                isna = isna | unknown
        values = values.where(~isna, None)
    else:
        values = _to_numeric(col, s, isna)
        if col.lower is not None:
            lo, hi = col.bound_values()
            outside = ~isna & ((values < lo) | (values > hi))
            report.clipped[col.name] = int(outside.sum())
            values = values.clip(lo, hi)
    if isna.any() and not col.nullable:
        raise missing_values_error(col.name, int(isna.sum()), list(isna[isna].index[:3]))
    return values


def _refuse_bad(name: str, s: pd.Series, bad: pd.Series, what: tuple[str, str]) -> None:
    if bad.any():
        raise bad_values_error(name, int(bad.sum()), s[bad].iloc[0], bad[bad].index[0], *what)


def _float_or_nan(v: Any) -> float:
    try:
        return float(v)
    except OverflowError:  # a huge Python int
        return -math.inf if v < 0 else math.inf
    except (TypeError, ValueError):
        return math.nan


def _whole_units(unit: str) -> tuple[str, str]:
    return f"whole {unit}s", f"the schema declares unit {unit!r}; fix the values or the unit"


def _to_numeric(col: Column, s: pd.Series, isna: pd.Series) -> pd.Series:
    """Numeric view of a column (datetimes as ns since epoch, as float)."""
    if col.kind == "datetime" and pd.api.types.is_numeric_dtype(s.dtype):
        # already ns since the epoch (a validated frame): validating again keeps the values
        values = s.astype(float)
        if col.unit is not None:
            off = ~isna & (np.mod(values, DATE_UNITS[col.unit]) != 0)
            _refuse_bad(col.name, s, off, _whole_units(col.unit))
        return values
    if col.kind == "datetime":
        # utc=True: values with different UTC offsets (or none, read as UTC) become one axis.
        # A column with a declared unit takes ISO-8601 only: "03/07/2020" is not guessed.
        fmt = "ISO8601" if col.unit is not None else "mixed"
        parsed = pd.to_datetime(s, errors="coerce", format=fmt, utc=True)
        # "now", "today"... parse to the time of the run: not a value of the data.
        relative = s.astype(str).str.strip().str.lower().isin(RELATIVE_DATES)
        _refuse_bad(col.name, s, (parsed.isna() | relative) & ~isna, NOT_DATES)
        parsed = parsed.dt.tz_localize(None)
        outside = (parsed < pd.Timestamp.min) | (parsed > pd.Timestamp.max)
        _refuse_bad(col.name, s, outside, DATES_OUT_OF_RANGE)
        values = pd.Series(np.nan, index=s.index, dtype=float)
        ok = ~parsed.isna()
        ns = parsed[ok].astype("datetime64[ns]").astype("int64")
        if col.unit is not None:
            off = pd.Series(False, index=s.index)
            off[ok] = ns % DATE_UNITS[col.unit] != 0
            _refuse_bad(col.name, s, off, _whole_units(col.unit))
        values[ok] = ns.astype(float)
        return values
    try:
        values = pd.to_numeric(s, errors="coerce").astype(float)
    except OverflowError:  # an integer beyond float range: parse one by one, it becomes inf
        values = s.map(_float_or_nan).astype(float)
    _refuse_bad(col.name, s, values.isna() & ~isna, NOT_NUMBERS)
    inf = np.isinf(values)
    if inf.any():
        raise infinite_values_error(col.name, int(inf.sum()), list(inf[inf].index[:3]))
    return values
