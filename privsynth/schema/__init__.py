"""The schema a data custodian writes and reviews before any release.

``columns`` (a column's kind, domain and field checks), ``learned`` (a DP-learned numeric
encoding as the schema stores it), ``schema`` (:class:`Schema`: the columns, JSON round trip),
``draft`` (a starting schema read from the data) and ``validate`` (a table checked against
the columns). Everything is importable from here.
"""

from privsynth.schema.columns import (
    CATEGORICAL_KINDS,
    DATE_MAX,
    DATE_MIN,
    DATE_UNITS,
    DEFAULT_BINS,
    KINDS,
    LEVELS,
    NUMERIC_KINDS,
    ONE_CODE_PER_VALUE,
    OTHER,
    RELATIVE_DATES,
    SCHEMA_VERSION,
    SOURCES,
    Column,
    canonical_category,
    canonical_series,
)
from privsynth.schema.draft import draft_columns
from privsynth.schema.learned import LearnedEncoding
from privsynth.schema.linked import LinkedSchema, load_schema
from privsynth.schema.schema import Schema
from privsynth.schema.unit import UnitOfPrivacy
from privsynth.schema.validate import (
    DATES_OUT_OF_RANGE,
    NOT_DATES,
    NOT_NUMBERS,
    OnUnknown,
    ValidationReport,
    bad_values_error,
    infinite_values_error,
    missing_values_error,
    rows_text,
    unknown_categories_error,
    validate_frame,
)

__all__ = [
    "LinkedSchema",
    "load_schema",
    "CATEGORICAL_KINDS",
    "DATES_OUT_OF_RANGE",
    "DATE_MAX",
    "DATE_MIN",
    "DATE_UNITS",
    "DEFAULT_BINS",
    "KINDS",
    "NOT_DATES",
    "NOT_NUMBERS",
    "NUMERIC_KINDS",
    "ONE_CODE_PER_VALUE",
    "OTHER",
    "RELATIVE_DATES",
    "SCHEMA_VERSION",
    "SOURCES",
    "LEVELS",
    "UnitOfPrivacy",
    "Column",
    "LearnedEncoding",
    "OnUnknown",
    "Schema",
    "ValidationReport",
    "bad_values_error",
    "canonical_category",
    "canonical_series",
    "draft_columns",
    "infinite_values_error",
    "missing_values_error",
    "rows_text",
    "unknown_categories_error",
    "validate_frame",
]
