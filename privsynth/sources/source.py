"""Private tables before encoding: validation, DP-discovery counts and encoding, for a pandas
DataFrame here and inside DuckDB or Spark in the sibling modules.

A :class:`TableSource` is what a marginal generator fits on. It offers exactly the reads the
fit flow needs: :meth:`~TableSource.validate` (the schema's checks, raising the same errors),
the exact counts DP domain discovery noises (:meth:`~TableSource.value_counts`,
:meth:`~TableSource.bucket_counts`) and :meth:`~TableSource.encode` to an
:class:`~privsynth.sources.table.EncodedTable`. Every count it returns is exact (private).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

import numpy as np
import pandas as pd

from privsynth.encoding import Encoder, numeric_values
from privsynth.errors import ConfigError, DataError
from privsynth.schema import Column, Schema, canonical_series
from privsynth.schema.rules import broken_rows, label
from privsynth.sources.table import ArrayTable, EncodedTable

#: What a release does with private rows that break a rule of the schema: refuse (``error``)
#: or leave them out before fitting (``drop``).
OnRuleViolation = Literal["error", "drop"]
ON_RULE_VIOLATION = ("error", "drop")


def rules_unsupported(engine: str) -> ConfigError:
    """The error for a schema with rules on an engine that cannot check them yet."""
    return ConfigError(
        f"rules are not supported with --engine {engine} yet: read the table with "
        "--engine pandas, or remove 'rules' from the schema"
    )


class TableSource(ABC):
    """A private table a generator can fit on without holding its rows."""

    #: The schema this source's rows were checked against (None: not yet checked).
    validated_by: Schema | None = None
    #: Rows left out because they break a rule, per rule label (exact: custodian only).
    dropped_by_rules: Mapping[str, int] = MappingProxyType({})

    def validate(
        self, schema: Schema, *, on_rule_violation: OnRuleViolation = "error"
    ) -> TableSource:
        """Check the rows against ``schema`` as :meth:`Schema.validate` does (same errors,
        naming column, row and value) and against its rules; return the source of validated
        rows.

        Rows that break a rule are refused (``on_rule_violation="error"``) or left out
        (``"drop"``): a filter by a public per-row test, so a neighbouring table loses or
        gains at most the one differing row and the fit's guarantee holds as it is.

        A source already validated against ``schema`` (or cut from one that was) is returned
        as it is: a release checks every row once and hands the result on.
        """
        if on_rule_violation not in ON_RULE_VIOLATION:
            raise ConfigError(
                f"on_rule_violation ({on_rule_violation!r}) must be one of {ON_RULE_VIOLATION}"
            )
        if self.validated_by is schema:
            return self
        out = self._checked(schema)
        if schema.rules:
            out = out._keep_rules(schema, on_rule_violation)
        out.validated_by = schema
        return out

    def _keep_rules(self, schema: Schema, on_rule_violation: OnRuleViolation) -> TableSource:
        """The rows that keep every rule of ``schema`` (see :meth:`validate`)."""
        raise rules_unsupported(type(self).__name__.removesuffix("Source").lower())

    @abstractmethod
    def _checked(self, schema: Schema) -> TableSource:
        """The rows checked against ``schema`` (raising its errors), as a source."""

    @abstractmethod
    def value_counts(self, column: Column) -> dict[str, int]:
        """Exact count of each canonical value (:func:`~privsynth.schema.canonical_category`)
        of a categorical column, missing values left out."""

    @abstractmethod
    def bucket_counts(self, column: Column, edges: np.ndarray) -> np.ndarray:
        """Exact counts of a numeric column's non-missing values in the buckets
        ``[edges[j], edges[j+1])``; values beyond the edges count in the edge buckets."""

    @abstractmethod
    def encode(self, schema: Schema) -> EncodedTable:
        """The rows as codes of :class:`~privsynth.encoding.Encoder` (``schema`` complete)."""


def bucket_index(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bucket of each value: ``#{k in 1..B-1 : edges[k] <= x}`` for ``B = len(edges) - 1``
    buckets (values beyond the edges fall in the edge buckets)."""
    return np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)


class FrameSource(TableSource):
    """A pandas DataFrame (the default engine).

    ``validate`` keeps the raw frame, so encoding under a schema with learned domains
    re-validates it (values too rare to learn become ``(other)``), as ``Schema.validate`` does.
    """

    def __init__(self, frame: pd.DataFrame, *, raw: pd.DataFrame | None = None) -> None:
        self.frame = frame
        self.raw = frame if raw is None else raw
        #: Values clipped to declared bounds, per column (exact: for the custodian only).
        self.clipped: dict[str, int] = {}

    def _checked(self, schema: Schema) -> FrameSource:
        clean, report = schema.validate(self.raw)
        out = FrameSource(clean, raw=self.raw)
        out.clipped = dict(report.clipped)
        return out

    def _keep_rules(self, schema: Schema, on_rule_violation: OnRuleViolation) -> FrameSource:
        columns = {c.name: c for c in schema.columns}
        masks = [broken_rows(r, self.frame, columns) for r in schema.rules]
        labels = [label(i, r) for i, r in enumerate(schema.rules)]
        counts = {k: int(m.sum()) for k, m in zip(labels, masks, strict=True)}
        broken = {k: n for k, n in counts.items() if n}
        if not broken:
            return self
        listed = "; ".join(f"{k}: {n} row(s)" for k, n in broken.items())
        if on_rule_violation == "error":
            raise DataError(
                f"the data breaks the schema's rules ({listed}). Fix the data or the rule, or "
                "leave those rows out of the fit: on_rule_violation='drop' (CLI "
                "--drop-rule-violations), a per-row filter by public rules that costs no "
                "privacy"
            )
        relative = [
            label(i, r)
            for i, r in enumerate(schema.rules)
            if r.kind == "determines" and r.mapping is None and counts[label(i, r)]
        ]
        if relative:
            raise DataError(
                f"{', '.join(relative)}: without a mapping, which rows break a determines rule "
                "depends on the other rows (the most common value of each group), so leaving "
                "them out is not a per-row filter and would not be differentially private. "
                "Declare the rule's 'mapping', or fix the data"
            )
        out = self.rows(~np.logical_or.reduce(masks))
        out.dropped_by_rules = broken
        return out

    def rows(self, mask: np.ndarray) -> FrameSource:
        """The rows where ``mask`` is true, validated as this source was."""
        out = FrameSource(self.frame[mask], raw=self.raw[mask])
        out.validated_by = self.validated_by
        out.dropped_by_rules = self.dropped_by_rules
        return out

    def value_counts(self, column: Column) -> dict[str, int]:
        counts = canonical_series(self.frame[column.name].dropna()).value_counts()
        return {str(k): int(v) for k, v in counts.items()}

    def bucket_counts(self, column: Column, edges: np.ndarray) -> np.ndarray:
        x = numeric_values(column, self.frame[column.name].dropna())
        return np.bincount(bucket_index(x, edges), minlength=len(edges) - 1).astype(np.int64)

    def encode(self, schema: Schema) -> EncodedTable:
        clean = self.frame if schema is self.validated_by else schema.validate(self.raw)[0]
        encoder = Encoder(schema)
        return ArrayTable(encoder.encode(clean), encoder.shape)


def as_source(data: object) -> TableSource:
    """A DataFrame becomes a :class:`FrameSource`; a source stays itself."""
    if isinstance(data, TableSource):
        return data
    if isinstance(data, pd.DataFrame):
        return FrameSource(data)
    raise ConfigError(
        f"cannot fit on a {type(data).__name__}: give a pandas DataFrame, or a DuckDB or Spark "
        "table (privsynth.sources.duckdb.DuckDBSource, privsynth.sources.spark.SparkSource)"
    )
