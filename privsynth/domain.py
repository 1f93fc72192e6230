"""Finite domains: encoding a table to integer codes, decoding codes back, and learning
undeclared domains with DP.

Encoding uses only the schema (public or DP-learned domains), never the data's own range:
categorical values become their index in the category list, numeric values the index of
their bin between the bounds (values outside are clipped into the edge bins), and a missing
value in a nullable column gets one extra code at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from privsynth import mechanisms
from privsynth.budget.accounting import ApproxDP, PrivacyEvent, PureDP
from privsynth.errors import ConfigError, DataError, SchemaError
from privsynth.marginals.source import TableSource, as_source
from privsynth.schema import (
    CATEGORICAL_KINDS,
    DEFAULT_BINS,
    OTHER,
    Column,
    Schema,
    canonical_series,
)

#: Chance that some bucket holding no row clears the threshold in :func:`_dp_bounds`.
BOUNDS_FALSE_POSITIVE = 1e-6


# ------------------------------------------------------------------ encoding
@dataclass(frozen=True)
class ColumnCodec:
    """Maps one column to codes ``0..size-1`` and back.

    ``labels`` (categorical) or ``edges`` (numeric bins; bin j is ``[edges[j], edges[j+1])``)
    define the codes; a nullable column's last code means "missing".
    """

    column: Column
    labels: tuple[str, ...] | None = None
    edges: np.ndarray | None = None

    @classmethod
    def from_column(cls, col: Column) -> ColumnCodec:
        if not col.has_domain:
            raise SchemaError(
                f"column {col.name!r} has no domain yet: declare it in the schema or learn it "
                "with DP (privsynth.domain.discover_domains) before encoding"
            )
        if col.kind in CATEGORICAL_KINDS:
            return cls(col, labels=col.categories)
        return cls(col, edges=bin_edges(col))

    @property
    def n_values(self) -> int:
        """Codes for values (excluding the missing code)."""
        return len(self.labels) if self.labels is not None else len(self.edges) - 1

    @property
    def size(self) -> int:
        return self.n_values + int(self.column.nullable)

    def encode(self, s: pd.Series) -> np.ndarray:
        col = self.column
        isna = s.isna().to_numpy()
        if self.labels is not None:
            values = canonical_series(s)
            codes = pd.Index(self.labels).get_indexer(values).astype(np.int64)
            unknown = (codes < 0) & ~isna
            if unknown.any():
                v = values[unknown].iloc[0]
                raise DataError(
                    f"column {col.name!r}: value {v!r} is not in the schema's categories; "
                    "validate the data with Schema.validate first"
                )
        else:
            x = numeric_values(col, s)
            codes = np.searchsorted(self.edges, np.nan_to_num(x), side="right") - 1
            codes = np.clip(codes, 0, self.n_values - 1).astype(np.int64)
        if isna.any():
            if not col.nullable:
                raise DataError(
                    f"column {col.name!r}: missing values but the column is not nullable"
                )
            codes[isna] = self.n_values
        return codes

    def decode(self, codes: np.ndarray, rng: np.random.Generator) -> pd.Series:
        """Values for codes: categories, or a uniform draw inside the bin (post-processing)."""
        col = self.column
        codes = np.asarray(codes, dtype=np.int64)
        missing = codes == self.n_values if col.nullable else np.zeros(len(codes), bool)
        safe = np.where(missing, 0, codes)
        if self.labels is not None:
            out = np.asarray(self.labels, dtype=object)[safe]
            out[missing] = None
            return pd.Series(out, name=col.name, dtype=object)
        lo, hi = self.edges[safe], self.edges[safe + 1]
        if col.kind == "integer":
            # Integer bins hold the integers lo .. hi-1.
            vals = rng.integers(lo.astype(np.int64), hi.astype(np.int64))
            ser = pd.Series(vals, name=col.name, dtype="Int64" if col.nullable else "int64")
        else:
            vals = lo + rng.random(len(codes)) * (hi - lo)
            if col.kind == "datetime":
                ser = pd.Series(
                    pd.to_datetime(np.round(vals / 1e9).astype(np.int64), unit="s"), name=col.name
                )
            else:
                ser = pd.Series(vals, name=col.name, dtype=float)
        return ser.mask(pd.Series(missing), None) if missing.any() else ser


def bin_edges(col: Column) -> np.ndarray:
    """Public bin edges of a numeric column, from its bounds and ``bins`` only."""
    lo, hi = col.bound_values()
    if col.edges is not None:
        edges = np.asarray(col.edges, dtype=np.float64)
        if col.kind == "integer":  # bin j holds integers [e_j, e_{j+1}); the last one holds hi
            edges[-1] += 1
        return edges
    bins = col.bins
    if col.kind == "integer":
        lo_i, hi_i = int(np.ceil(lo)), int(np.floor(hi))
        width = hi_i - lo_i + 1
        if bins is None:
            bins = width if width <= DEFAULT_BINS else DEFAULT_BINS
        bins = min(bins, width)
        # Integer edges: bin j holds integers [edges[j], edges[j+1]).
        return np.unique(np.floor(np.linspace(lo_i, hi_i + 1, bins + 1))).astype(np.float64)
    return np.linspace(lo, hi, (bins or DEFAULT_BINS) + 1)


def numeric_values(col: Column, s: pd.Series) -> np.ndarray:
    """A validated numeric or datetime column as float64 (datetimes as ns since 1970)."""
    if col.kind == "datetime" and not pd.api.types.is_numeric_dtype(s.dtype):
        return (
            pd.to_datetime(s, format="mixed")
            .astype("datetime64[ns]")
            .astype("int64")
            .to_numpy(dtype=np.float64)
        )
    return pd.to_numeric(s).to_numpy(dtype=np.float64, na_value=np.nan)


class Encoder:
    """Encodes a validated table to an ``(n_rows, n_columns)`` integer array and back.

    Built from the schema alone (no data): all synthesised columns need a domain.

    Examples
    --------
    >>> s = Schema.from_dict({"version": 1, "columns": {
    ...     "age": {"kind": "integer", "lower": 0, "upper": 9},
    ...     "sex": {"kind": "categorical", "categories": ["F", "M"]}}})
    >>> enc = Encoder(s)
    >>> enc.shape
    {'age': 10, 'sex': 2}
    >>> enc.encode(pd.DataFrame({"age": [3, 12], "sex": ["M", "F"]})).tolist()
    [[3, 1], [9, 0]]
    """

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.codecs = [ColumnCodec.from_column(c) for c in schema.synthesised]

    @property
    def names(self) -> list[str]:
        return [c.column.name for c in self.codecs]

    @property
    def shape(self) -> dict[str, int]:
        """Number of codes per column: the finite domain."""
        return {c.column.name: c.size for c in self.codecs}

    def encode(self, df: pd.DataFrame) -> np.ndarray:
        missing = [n for n in self.names if n not in df.columns]
        if missing:
            raise DataError(f"data lacks column(s) {missing} named in the schema")
        return np.column_stack([c.encode(df[c.column.name]) for c in self.codecs]).astype(np.int64)

    def decode(
        self, codes: np.ndarray, *, seed: int | np.random.Generator | None = None
    ) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        codes = np.asarray(codes)
        return pd.concat([c.decode(codes[:, j], rng) for j, c in enumerate(self.codecs)], axis=1)


# ------------------------------------------------------------- DP discovery
def bound_candidates(kind: str) -> np.ndarray:
    """Public candidate values for DP bounds: a 1-2-3-5-ish log grid, or monthly dates."""
    if kind == "datetime":
        months = pd.date_range("1900-01-01", "2100-01-01", freq="MS")
        return months.astype("datetime64[ns]").astype("int64").to_numpy(dtype=np.float64)
    mantissas = np.array([1, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9])
    pos = (mantissas[None, :] * 10.0 ** np.arange(-2, 10)[:, None]).ravel()
    return np.unique(np.concatenate([-pos, [0.0], pos]))


def plan_discovery(schema: Schema, *, epsilon: float, delta: float) -> list[PrivacyEvent]:
    """The charges :func:`discover_domains` will make, computed from the schema alone.

    The budget is split evenly over the undeclared columns; a categorical column spends its
    share on one stable histogram (with an equal share of ``delta``), a numeric column on one
    noisy histogram over public log-scale buckets (see :func:`_dp_bounds`).
    """
    cols = [schema[n] for n in schema.undeclared_columns()]
    if not cols:
        return []
    if epsilon <= 0 or not np.isfinite(epsilon):
        raise ConfigError(f"domain epsilon ({epsilon!r}) must be > 0")
    n_cat = sum(c.kind in CATEGORICAL_KINDS for c in cols)
    if n_cat and not 0 < delta < 1:
        raise ConfigError(f"domain delta ({delta!r}) must be in (0, 1) to learn categories")
    eps_col = epsilon / len(cols)
    events: list[PrivacyEvent] = []
    for c in cols:
        if c.kind in CATEGORICAL_KINDS:
            events.append(ApproxDP(eps_col, delta / n_cat))
        else:
            events.append(PureDP(eps_col))
    return events


def discover_domains(
    data: pd.DataFrame | TableSource, schema: Schema, *, epsilon: float, delta: float
) -> tuple[Schema, list[PrivacyEvent]]:
    """Learn the undeclared domains of ``schema`` from validated data, under DP.

    ``data`` is a validated DataFrame or a validated :class:`~privsynth.marginals.source.
    TableSource` (DuckDB, Spark): only its exact counts are read, the noise is added here.
    The caller must have reserved :func:`plan_discovery`'s charges in the ledger first.
    Returns the completed schema (learned columns get ``source: dp``) and the charges spent,
    each no larger than planned.
    """
    source = as_source(data)
    planned = iter(plan_discovery(schema, epsilon=epsilon, delta=delta))
    learned: list[Column] = []
    spent: list[PrivacyEvent] = []
    for name in schema.undeclared_columns():
        col = schema[name]
        if col.kind in CATEGORICAL_KINDS:
            share = next(planned)
            kept, charge = mechanisms.stable_histogram(
                source.value_counts(col), epsilon=share.epsilon, delta=share.delta
            )
            cats = _sorted_categories(kept) + [OTHER]
            learned.append(
                replace(
                    col,
                    categories=tuple(cats),
                    source="dp",
                    note=f"categories learned with DP ({charge.epsilon:.3g}, {charge.delta:.2g})",
                )
            )
            spent.append(charge)
        else:
            cands = bound_candidates(col.kind)
            counts = source.bucket_counts(col, cands)
            lo, hi, charge = _dp_bounds(counts, cands, next(planned).epsilon)
            learned.append(
                replace(
                    col,
                    lower=_bound_value(col, lo),
                    upper=_bound_value(col, hi),
                    source="dp",
                    note="bounds learned with DP; values beyond are clipped",
                )
            )
            spent.append(charge)
    return schema.with_columns(learned), spent


def _dp_bounds(
    counts: np.ndarray, cands: np.ndarray, epsilon: float
) -> tuple[float, float, PureDP]:
    """Numeric bounds from a noisy histogram over public buckets; epsilon-DP.

    Math: bucket j is [c_j, c_{j+1}) for the public candidates c (values beyond the grid fall
    in the edge buckets; ``counts`` holds the exact bucket counts). Counting rows per bucket
    has L1 sensitivity 1, so Laplace noise of scale 1/epsilon makes the histogram epsilon-DP;
    everything after is post-processing.
    The bounds are the outer edges of the lowest and highest buckets whose noisy count
    reaches T = ln(B / beta) / epsilon, chosen so that any of the B buckets holding no row
    clears it with probability <= beta / 2. A bucket needs about T rows to be kept, so one
    outlier never sets a bound; it is clipped. (Exponential-mechanism quantiles are a poor
    fit here: on a wide public grid the many equally bad candidates outside the data win
    too often at extreme quantiles.)
    """
    n_buckets = len(cands) - 1
    noisy, charge = mechanisms.laplace_counts(counts, epsilon)
    threshold = np.log(n_buckets / BOUNDS_FALSE_POSITIVE) / epsilon
    kept = np.flatnonzero(noisy >= threshold)
    if kept.size == 0:  # too few rows for this epsilon: fall back to the fullest bucket
        kept = np.array([int(np.argmax(noisy))])
    return float(cands[kept[0]]), float(cands[kept[-1] + 1]), charge


def _bound_value(col: Column, v: float) -> float | int | str:
    if col.kind == "datetime":
        return pd.Timestamp(int(v)).isoformat()
    if col.kind == "integer":
        return int(round(v))
    return float(v)


def _sorted_categories(values: Sequence[str]) -> list[str]:
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)
