"""``schema draft``: a starting schema read from the data, for the custodian to review.

Every domain it reads is marked ``source: data``: reading categories or bounds from private
data without paying for it breaks the DP guarantee, so a release refuses them unless they are
reviewed (declared public or deleted to be learned with DP) or explicitly accepted.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from privsynth.errors import DataError
from privsynth.io import check_frame
from privsynth.schema.columns import ONE_CODE_PER_VALUE, Column, canonical_series

_ID_NAME = re.compile(
    r"(^|[_\-\s])(id|uuid|guid|ssn|nin|mrn|name|first_?name|last_?name|surname|e-?mail|phone|"
    r"telephone|mobile|address|street|zip|postcode|account|iban|passport)($|[_\-\s])|id$",
    re.IGNORECASE,
)
# A column is flagged as a likely identifier when this share of its non-missing values is unique.
_NEAR_UNIQUE = 0.9
_MIN_ROWS_FOR_UNIQUENESS = 20
#: A few letters then five or more digits (``P000123``, ``MRN044110``): a record code when
#: there are many of them (diagnosis codes such as ``E119`` are shorter).
_RECORD_CODE = r"[A-Za-z]{0,4}[-_]?\d{5,}"
_MANY_CODES = 50


def draft_columns(df: pd.DataFrame, *, bins: int | None = None) -> tuple[Column, ...]:
    """One column per column of ``df``, its domain read from the data (``source: data``);
    see :meth:`privsynth.schema.Schema.draft`."""
    check_frame(df)
    return tuple(_draft_column(str(n), df[n], bins) for n in df.columns)


def _is_textual(s: pd.Series) -> bool:
    return bool(
        pd.api.types.is_string_dtype(s.dtype)
        or pd.api.types.is_object_dtype(s.dtype)
        or isinstance(s.dtype, pd.CategoricalDtype)
    )


def _draft_column(name: str, s: pd.Series, bins: int | None) -> Column:
    nonnull = s.dropna()
    nullable = bool(s.isna().any())
    as_dates = _parse_dates(nonnull) if _is_textual(s) else None
    why = _identifier_reason(name, nonnull, as_dates is not None)
    if why:
        return Column(name, "identifier", note=f"likely identifier ({why}); review")
    if pd.api.types.is_bool_dtype(s.dtype):
        cats = tuple(sorted(set(canonical_series(nonnull))))
        return Column(name, "categorical", cats, nullable=nullable, source="data")
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return _draft_bounded(name, "datetime", nonnull, nullable, bins)
    if as_dates is not None:
        return _draft_bounded(name, "datetime", as_dates, nullable, bins)
    if pd.api.types.is_integer_dtype(s.dtype):
        return _draft_bounded(name, "integer", nonnull, nullable, bins)
    if pd.api.types.is_float_dtype(s.dtype):
        is_int = bool(len(nonnull)) and bool(np.all(np.mod(nonnull.to_numpy(float), 1) == 0))
        return _draft_bounded(name, "integer" if is_int else "continuous", nonnull, nullable, bins)
    if _is_textual(s):
        cats = tuple(sorted(set(canonical_series(nonnull))))
        if not cats:
            return Column(name, "categorical", nullable=True, note="no values seen")
        return Column(name, "categorical", cats, nullable=nullable, source="data")
    raise DataError(f"column {name!r} has unsupported type {s.dtype}; convert it first")


def _identifier_reason(name: str, nonnull: pd.Series, is_dates: bool) -> str | None:
    """Why a column looks like an identifier, or None.

    By name (id, name, ssn, email, phone, ...), or by values: many distinct record codes (a
    few letters then five or more digits, e.g. ``P000123``), near-unique text that is not
    dates, or near-unique integers packed in a range (1..n-like counters). Near-unique
    measurements (floats, salaries, timestamps) are not identifiers.
    """
    if _ID_NAME.search(name):
        return "name looks like an identifier"
    n = len(nonnull)
    if n < _MIN_ROWS_FOR_UNIQUENESS or is_dates:
        return None
    distinct = nonnull.nunique()
    if (
        distinct >= _MANY_CODES
        and _is_textual(nonnull)
        and nonnull.astype(str).str.fullmatch(_RECORD_CODE).all()
    ):  # P000123, MRN4411: a record code, repeating when one person owns several rows
        return f"{distinct} distinct record codes (letters then digits)"
    if distinct / n < _NEAR_UNIQUE:
        return None
    if _is_textual(nonnull):
        return f"{distinct / n:.0%} of values are distinct"
    if pd.api.types.is_integer_dtype(nonnull.dtype) and (
        int(nonnull.max()) - int(nonnull.min()) + 1 <= 2 * distinct
    ):
        return f"{distinct / n:.0%} of values are distinct and form a counter-like range"
    return None


def _draft_bounded(
    name: str, kind: str, nonnull: pd.Series, nullable: bool, bins: int | None
) -> Column:
    """Bounds (and a date unit or decimals) read from the data. Without ``bins`` the
    encoding is left to be learned with DP at the fit (point masses, bins that follow the
    data), which is what a custodian who knows only the range should want."""
    if not len(nonnull):
        return Column(name, kind, nullable=True, note="no values seen")
    lo, hi = nonnull.min(), nonnull.max()
    unit = decimals = None
    if kind == "datetime":
        ts = pd.to_datetime(nonnull)
        unit = "day" if bool((ts == ts.dt.normalize()).all()) else None
        lo, hi = pd.Timestamp(lo).isoformat(), pd.Timestamp(hi).isoformat()
        if lo == hi:
            hi = (pd.Timestamp(hi) + pd.Timedelta(days=1)).isoformat()
    else:
        lo, hi = (int(lo), int(hi)) if kind == "integer" else (float(lo), float(hi))
        if lo == hi:
            hi = hi + 1
        if kind == "continuous":
            decimals = _decimals(nonnull.to_numpy(dtype=np.float64))
    width_ok = kind == "integer" and hi - lo + 1 <= (bins or ONE_CODE_PER_VALUE)
    return Column(
        name,
        kind,
        lower=lo,
        upper=hi,
        bins=None if width_ok else bins,
        unit=unit,
        decimals=decimals,
        nullable=nullable,
        source="data",
    )


def _decimals(x: np.ndarray, most: int = 6) -> int | None:
    """The fewest decimals (up to ``most``) every value is written with, or None."""
    for k in range(most + 1):
        if np.allclose(np.round(x, k), x, rtol=0, atol=1e-9 * max(1.0, float(np.abs(x).max()))):
            return k
    return None


def _parse_dates(s: pd.Series) -> pd.Series | None:
    """Parse a text column as dates when every value looks like one; else None."""
    if not len(s):
        return None
    sample = s.astype(str).head(1000)
    if not sample.str.contains(r"^\d{4}-\d{2}-\d{2}|^\d{1,2}/\d{1,2}/\d{2,4}", regex=True).all():
        return None
    try:
        return pd.to_datetime(s, format="mixed")
    except (ValueError, TypeError):
        return None
