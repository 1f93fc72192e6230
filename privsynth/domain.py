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
from privsynth.budget.accounting import ApproxZCDP, PrivacyEvent
from privsynth.encoding_dp import (  # noqa: F401 (bound_candidates: re-exported)
    bound_candidates,
    draw_within,
    lattice,
    learn_column,
    needs,
    plan_column,
)
from privsynth.errors import ConfigError, DataError, SchemaError
from privsynth.marginals.source import TableSource, as_source
from privsynth.schema import (
    CATEGORICAL_KINDS,
    DATE_UNITS,
    DEFAULT_BINS,
    ONE_CODE_PER_VALUE,
    OTHER,
    Column,
    Schema,
    canonical_series,
)


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
    point_masses: tuple[float, ...] = ()

    @classmethod
    def from_column(cls, col: Column) -> ColumnCodec:
        if not col.has_domain:
            raise SchemaError(
                f"column {col.name!r} has no domain yet: declare it in the schema or learn it "
                "with DP (privsynth.domain.discover_domains) before encoding"
            )
        if col.kind in CATEGORICAL_KINDS:
            return cls(col, labels=col.categories)
        if col.learned is not None:
            enc = col.learned
            return cls(col, edges=np.asarray(enc.edges), point_masses=enc.point_masses)
        return cls(col, edges=bin_edges(col))

    @property
    def n_values(self) -> int:
        """Codes for values (excluding the missing code): point masses first, then bins."""
        if self.labels is not None:
            return len(self.labels)
        return len(self.point_masses) + len(self.edges) - 1

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
            x = np.nan_to_num(numeric_values(col, s))
            n_pm = len(self.point_masses)
            codes = np.searchsorted(self.edges, x, side="right") - 1
            codes = n_pm + np.clip(codes, 0, len(self.edges) - 2).astype(np.int64)
            if n_pm:
                pms = np.asarray(self.point_masses)
                at = np.clip(np.searchsorted(pms, x), 0, n_pm - 1)
                hit = pms[at] == x
                codes[hit] = at[hit]
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
        vals = self._values(safe, rng)
        if col.kind == "integer":
            ser = pd.Series(vals.astype(np.int64), name=col.name)
            ser = ser.astype("Int64") if col.nullable else ser
        elif col.kind == "datetime":
            unit = DATE_UNITS[col.unit or "second"]
            whole = (np.floor(vals / unit) * unit).astype(np.int64)
            ser = pd.Series(pd.to_datetime(whole, unit="ns"), name=col.name)
        else:
            if col.decimals is not None:
                vals = np.round(vals, col.decimals)
            ser = pd.Series(vals, name=col.name, dtype=float)
        return ser.mask(pd.Series(missing), None) if missing.any() else ser

    def _values(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A value inside each code's bin: from the learned fine density, or uniform over a
        declared bin (integer bins hold the integers lo .. hi-1)."""
        col = self.column
        if col.learned is not None:
            return draw_within(col.learned, codes, lattice(col), rng)
        lo, hi = self.edges[codes], self.edges[codes + 1]
        if col.kind == "integer":
            return rng.integers(lo.astype(np.int64), hi.astype(np.int64)).astype(np.float64)
        return lo + rng.random(len(codes)) * (hi - lo)


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
            bins = width if width <= ONE_CODE_PER_VALUE else DEFAULT_BINS
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
def plan_discovery(schema: Schema, *, rho: float, delta: float) -> list[PrivacyEvent]:
    """The charges :func:`discover_domains` will make, computed from the schema alone.

    The zCDP budget ``rho`` is split evenly over the undeclared columns (``delta`` evenly
    over those that need one). A categorical column spends its share on one Gaussian stable
    histogram; a numeric column on what :func:`privsynth.encoding_dp.plan_column` lists for
    it (bounds, point masses, the fine density).
    """
    cols = [schema[n] for n in schema.undeclared_columns()]
    if not cols:
        return []
    if not (rho > 0 and np.isfinite(rho)):
        raise ConfigError(f"domain rho ({rho!r}) must be > 0")
    n_delta = sum(_needs_delta(c) for c in cols)
    if n_delta and not 0 < delta < 1:
        raise ConfigError(
            f"domain delta ({delta!r}) must be in (0, 1) to learn categories or point masses"
        )
    rho_col = rho / len(cols)
    events: list[PrivacyEvent] = []
    for c in cols:
        if c.kind in CATEGORICAL_KINDS:
            events.append(ApproxZCDP(rho_col, delta / n_delta))
        else:
            events += plan_column(c, rho=rho_col, delta=delta / max(n_delta, 1))
    return events


def _needs_delta(col: Column) -> bool:
    return col.kind in CATEGORICAL_KINDS or "point_masses" in needs(col)


def discover_domains(
    data: pd.DataFrame | TableSource, schema: Schema, *, rho: float, delta: float
) -> tuple[Schema, list[PrivacyEvent]]:
    """Learn the undeclared domains of ``schema`` from validated data, under DP.

    ``data`` is a validated DataFrame or a validated :class:`~privsynth.marginals.source.
    TableSource` (DuckDB, Spark): only its exact counts are read, the noise is added here.
    The caller must have reserved :func:`plan_discovery`'s charges in the ledger first.
    Returns the completed schema (learned columns get ``source: dp``) and the charges spent,
    each no larger than planned.
    """
    source = as_source(data)
    planned = plan_discovery(schema, rho=rho, delta=delta)
    learned: list[Column] = []
    spent: list[PrivacyEvent] = []
    for name in schema.undeclared_columns():
        col = schema[name]
        if col.kind in CATEGORICAL_KINDS:
            share = planned.pop(0)
            kept, charge = mechanisms.stable_histogram(
                source.value_counts(col), rho=share.rho, delta=share.delta
            )
            cats = _sorted_categories(kept) + [OTHER]
            learned.append(
                replace(
                    col,
                    categories=tuple(cats),
                    source="dp",
                    note=f"categories learned with DP (rho {charge.rho:.3g}, "
                    f"delta {charge.delta:.2g})",
                )
            )
            spent.append(charge)
        else:
            mine, planned = planned[: len(needs(col))], planned[len(needs(col)) :]
            col, charges = learn_column(source, col, mine)
            learned.append(col)
            spent += charges
    return schema.with_columns(learned), spent


def _sorted_categories(values: Sequence[str]) -> list[str]:
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)
