"""Encoding a table to integer codes and decoding codes back, from the schema alone.

Encoding uses only the schema's domains (declared, or already learned with DP by
:mod:`privsynth.discovery`), never the data's own range: categorical values become their
index in the category list, numeric values the index of their bin between the bounds (values
outside are clipped into the edge bins), and a missing value in a nullable column gets one
extra code at the end. Decoding draws values inside each code's bin. Nothing here reads
private data beyond the rows it is given, and nothing spends privacy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from privsynth.errors import DataError, SchemaError
from privsynth.schema import (
    CATEGORICAL_KINDS,
    DATE_UNITS,
    DEFAULT_BINS,
    ONE_CODE_PER_VALUE,
    Column,
    LearnedEncoding,
    Schema,
    canonical_series,
)


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
                "with DP (privsynth.discovery.discover_domains) before encoding"
            )
        if col.kind in CATEGORICAL_KINDS:
            return cls(col, labels=col.categories)
        if col.learned is not None:
            enc = col.learned
            return cls(col, edges=np.asarray(enc.edges), point_masses=enc.point_masses)
        return cls(col, edges=bin_edges(col))

    @property
    def numeric_edges(self) -> np.ndarray:
        """The bin edges of a numeric column (a categorical column has labels instead)."""
        if self.edges is None:
            raise SchemaError(f"column {self.column.name!r} is categorical: it has no bins")
        return self.edges

    @property
    def n_values(self) -> int:
        """Codes for values (excluding the missing code): point masses first, then bins."""
        if self.labels is not None:
            return len(self.labels)
        return len(self.point_masses) + len(self.numeric_edges) - 1

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
            edges = self.numeric_edges
            codes = np.searchsorted(edges, x, side="right") - 1
            codes = n_pm + np.clip(codes, 0, len(edges) - 2).astype(np.int64)
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
        edges = self.numeric_edges
        lo, hi = edges[codes], edges[codes + 1]
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


# A learned encoding (privsynth.discovery.numeric) is decoded here: drawing a value inside a
# bin from its fine density is post-processing and spends nothing.
@dataclass(frozen=True)
class Lattice:
    """The values a column can hold: ``k * step / per`` for whole ``k`` (integers: step 1;
    dated columns: the unit in ns; continuous with ``decimals``: per 10^decimals, so the
    values are what ``round(x, decimals)`` gives, computed by one division)."""

    step: float
    per: int = 1

    def index(self, v: np.ndarray | float) -> np.ndarray:
        return np.asarray(v, dtype=np.float64) * self.per / self.step

    def value(self, k: np.ndarray | float) -> np.ndarray:
        return np.asarray(k, dtype=np.float64) * self.step / self.per

    def holds(self, v: float) -> bool:
        k = float(self.index(v))
        return abs(k - round(k)) < 1e-9

    @property
    def spacing(self) -> float:
        return self.step / self.per


def lattice(col: Column) -> Lattice | None:
    """The column's :class:`Lattice`, or None for continuous values of any precision."""
    if col.kind == "integer":
        return Lattice(1.0)
    if col.kind == "datetime":
        return Lattice(float(DATE_UNITS[col.unit or "second"]))
    if col.decimals is not None:
        return Lattice(1.0, 10**col.decimals)
    return None


def draw_within(
    enc: LearnedEncoding, codes: np.ndarray, grid: Lattice | None, rng: np.random.Generator
) -> np.ndarray:
    """Values for codes of a learned encoding (post-processing): a point mass's value, or a
    fine bucket drawn by its weight inside the code's bin and a value uniform inside it
    (a lattice value for columns on a :class:`Lattice`)."""
    n_pm = len(enc.point_masses)
    fine = np.asarray(enc.fine_edges)
    weights = np.asarray(enc.fine_weights)
    singles = np.isin(fine[:-1], enc.point_masses) & (
        (fine[1:] - fine[:-1] <= grid.spacing * (1 + 1e-9))
        if grid is not None
        else (fine[1:] == np.nextafter(fine[:-1], np.inf))
    )
    out = np.empty(len(codes), dtype=np.float64)
    is_pm = codes < n_pm
    out[is_pm] = np.asarray(enc.point_masses)[codes[is_pm]] if n_pm else 0.0
    starts = np.searchsorted(fine, enc.edges)
    for j in np.unique(codes[~is_pm]):
        rows = np.flatnonzero(codes == j)
        a, b = starts[j - n_pm], starts[j - n_pm + 1]
        w = np.where(singles[a:b], 0.0, weights[a:b])
        if w.sum() <= 0:
            w = np.where(singles[a:b], 0.0, 1.0)
        if w.sum() <= 0:
            w = np.ones(b - a)
        bucket = a + rng.choice(b - a, size=len(rows), p=w / w.sum())
        lo, hi = fine[bucket], fine[bucket + 1]
        if grid is not None:
            k = rng.integers(
                np.round(grid.index(lo)).astype(np.int64), np.round(grid.index(hi)).astype(np.int64)
            )
            out[rows] = grid.value(k)
        else:
            out[rows] = lo + rng.random(len(rows)) * (hi - lo)
    return out
