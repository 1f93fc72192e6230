"""The schema: the file a data custodian writes and reviews before any release.

A schema names every column, its kind and its *domain* (categories, numeric bounds, bins).
A declared domain is public information. A column without one has its domain learned with DP
(see :mod:`privsynth.domain`), and a domain that :meth:`Schema.draft` read from the data is
marked ``"source": "data"``: it must be reviewed (or learned with DP) before a release, because
reading categories or bounds from private data without paying for it breaks the DP guarantee.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from privsynth.errors import DataError, SchemaError

SCHEMA_VERSION = 1
KINDS = ("categorical", "ordinal", "integer", "continuous", "datetime", "identifier")
NUMERIC_KINDS = ("integer", "continuous", "datetime")
CATEGORICAL_KINDS = ("categorical", "ordinal")
#: Where a column's domain comes from: declared by the custodian, learned under DP (charged),
#: or read from the data by ``Schema.draft`` (not private: needs review or an explicit opt-in).
SOURCES = ("public", "dp", "data")
DEFAULT_BINS = 32
#: An integer column whose declared range holds at most this many values (ages, hours a week,
#: a 1-10 score) gets one code per value and needs no learned encoding.
ONE_CODE_PER_VALUE = 100
#: Last category of every DP-learned category list: it stands for all values too rare to be
#: released, and validation maps such values to it.
OTHER = "(other)"
UNITS_OF_PRIVACY = ("row",)
#: Granularities a datetime column can declare (``"unit"``): values are whole units, and
#: synthetic values come out as whole units (a ``day`` column holds dates, never times).
DATE_UNITS = {"day": 86_400 * 10**9, "hour": 3_600 * 10**9, "minute": 60 * 10**9, "second": 10**9}
RELATIVE_DATES = ("now", "today", "tomorrow", "yesterday")
#: Dates are handled as nanoseconds since 1970 (int64): this is the range that fits.
DATE_MIN, DATE_MAX = pd.Timestamp.min.date().isoformat(), pd.Timestamp.max.date().isoformat()

_ID_NAME = re.compile(
    r"(^|[_\-\s])(id|uuid|guid|ssn|nin|mrn|name|first_?name|last_?name|surname|e-?mail|phone|"
    r"telephone|mobile|address|street|zip|postcode|account|iban|passport)($|[_\-\s])|id$",
    re.IGNORECASE,
)
# A column is flagged as a likely identifier when this share of its non-missing values is unique.
_NEAR_UNIQUE = 0.9
_MIN_ROWS_FOR_UNIQUENESS = 20


def canonical_category(value: Any) -> str:
    """The string a category value is matched by: ``1``, ``1.0`` and ``"1"`` are the same."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def canonical_series(s: pd.Series) -> pd.Series:
    """:func:`canonical_category` of every value (missing stays missing), as object dtype.

    Each distinct value is converted once, so this is a hash lookup per row."""
    mapping = {v: canonical_category(v) for v in pd.unique(s.dropna())}
    return s.map(mapping).astype(object)


@dataclass(frozen=True)
class Column:
    """One column of the schema.

    Parameters
    ----------
    name
        Column name in the data.
    kind
        One of ``categorical``, ``ordinal``, ``integer``, ``continuous``, ``datetime``,
        ``identifier`` (never synthesised).
    categories
        Categorical/ordinal domain (ordinal: in order). ``None`` means "learn it with DP".
    lower, upper
        Numeric bounds (datetime: ISO-8601 strings). ``None`` means "learn them with DP".
    bins
        Number of equal-width bins a numeric column is encoded with (public). Without
        ``bins`` or ``edges`` the encoding is learned with DP (:mod:`privsynth.encoding_dp`),
        except for integer ranges of at most :data:`ONE_CODE_PER_VALUE` values: one code
        per value.
    edges
        Explicit public bin edges instead of ``bins`` (increasing; the first and last are the
        bounds), e.g. ``[0, 1, 1000, 10000, 100000]`` keeps zero apart. Integer columns need
        integer edges; the last bin includes the upper bound.
    nullable
        Missing values are a value of their own (its own code), not an error.
    point_masses
        Public values that many rows hold exactly (0, a top-code, 40 hours), each kept as its
        own code. Undeclared, a learned encoding finds them with DP.
    unit
        Datetime granularity (``day``, ``hour``, ``minute``, ``second``): values must be
        whole units and synthetic values are. Default: seconds.
    decimals
        Continuous columns: synthetic values are rounded to this many decimals (public
        precision, e.g. 2 for amounts in cents).
    learned
        The DP-learned encoding of a numeric column declared with bounds only (no ``bins``
        or ``edges``): set by the fit, see :mod:`privsynth.encoding_dp`.
    source
        ``public`` (declared), ``dp`` (learned under DP) or ``data`` (read from the data).
    note
        Free text for the reviewer (e.g. why ``draft`` flagged a column).
    """

    name: str
    kind: str
    categories: tuple[str, ...] | None = None
    lower: float | str | None = None
    upper: float | str | None = None
    bins: int | None = None
    edges: tuple[float, ...] | None = None
    nullable: bool = False
    point_masses: tuple[float, ...] | None = None
    unit: str | None = None
    decimals: int | None = None
    learned: Any = None
    source: str = "public"
    note: str | None = None

    def __post_init__(self) -> None:
        where = f"column {self.name!r}"
        if not isinstance(self.name, str) or not self.name.strip():
            raise SchemaError(f"column names must be non-empty strings, got {self.name!r}")
        if self.kind not in KINDS:
            raise SchemaError(f"{where}: unknown kind {self.kind!r}; use one of {', '.join(KINDS)}")
        if self.source not in SOURCES:
            raise SchemaError(f"{where}: source {self.source!r} must be one of {SOURCES}")
        if self.categories is not None:
            if self.kind not in CATEGORICAL_KINDS:
                raise SchemaError(f"{where}: 'categories' only applies to categorical/ordinal")
            cats = tuple(canonical_category(c) for c in self.categories)
            if not cats:
                raise SchemaError(f"{where}: 'categories' is empty; list the values or omit it")
            dupes = sorted({c for c in cats if cats.count(c) > 1})
            if dupes:
                raise SchemaError(f"{where}: categories repeat {dupes}; list each value once")
            object.__setattr__(self, "categories", cats)
        if self.edges is not None:
            self._check_edges(where)
        if (self.lower is None) != (self.upper is None):
            raise SchemaError(f"{where}: give both 'lower' and 'upper', or neither (learn with DP)")
        if self.lower is not None:
            if self.kind not in NUMERIC_KINDS:
                raise SchemaError(f"{where}: 'lower'/'upper' only apply to numeric/datetime kinds")
            lo, hi = self.bound_values()
            if not lo < hi:
                raise SchemaError(
                    f"{where}: lower ({self.lower!r}) must be < upper ({self.upper!r})"
                )
        if self.bins is not None:
            if self.kind not in NUMERIC_KINDS:
                raise SchemaError(f"{where}: 'bins' only applies to numeric/datetime kinds")
            if isinstance(self.bins, bool) or not isinstance(self.bins, int) or self.bins < 1:
                raise SchemaError(f"{where}: bins ({self.bins!r}) must be an integer >= 1")
        self._check_numeric_options(where)

    def _check_numeric_options(self, where: str) -> None:
        if self.unit is not None:
            if self.kind != "datetime":
                raise SchemaError(f"{where}: 'unit' only applies to datetime columns")
            if self.unit not in DATE_UNITS:
                raise SchemaError(
                    f"{where}: unit {self.unit!r} must be one of {', '.join(DATE_UNITS)}"
                )
        if self.decimals is not None:
            if self.kind != "continuous":
                raise SchemaError(f"{where}: 'decimals' only applies to continuous columns")
            if (
                isinstance(self.decimals, bool)
                or not isinstance(self.decimals, int)
                or not (0 <= self.decimals <= 12)
            ):
                raise SchemaError(f"{where}: decimals ({self.decimals!r}) must be 0..12")
        if self.point_masses is not None:
            if self.kind not in ("integer", "continuous"):
                raise SchemaError(f"{where}: 'point_masses' applies to integer/continuous columns")
            if self.bins is not None or self.edges is not None:
                raise SchemaError(
                    f"{where}: 'point_masses' go with a learned encoding; drop 'bins'/'edges' "
                    "(or put the value in 'edges' as a bin of its own)"
                )
            try:
                pms = tuple(sorted({float(v) for v in self.point_masses}))
            except (TypeError, ValueError) as exc:
                raise SchemaError(f"{where}: 'point_masses' must be a list of numbers") from exc
            if not all(map(math.isfinite, pms)):
                raise SchemaError(f"{where}: 'point_masses' must be finite numbers")
            if self.kind == "integer" and not all(v.is_integer() for v in pms):
                raise SchemaError(f"{where}: an integer column needs integer 'point_masses'")
            if self.lower is not None:
                lo, hi = self.bound_values()
                outside = [v for v in pms if not lo <= v <= hi]
                if outside:
                    raise SchemaError(
                        f"{where}: point mass(es) {outside} lie outside the bounds {lo:g}..{hi:g}"
                    )
            object.__setattr__(self, "point_masses", pms)

    def _check_edges(self, where: str) -> None:
        if self.kind not in ("integer", "continuous"):
            raise SchemaError(f"{where}: 'edges' applies to integer and continuous columns")
        if self.bins is not None:
            raise SchemaError(f"{where}: give 'bins' or 'edges', not both")
        try:
            edges = tuple(float(e) for e in self.edges)
        except (TypeError, ValueError) as exc:
            raise SchemaError(f"{where}: 'edges' must be a list of numbers") from exc
        if (
            len(edges) < 2
            or not all(map(math.isfinite, edges))
            or any(b <= a for a, b in zip(edges, edges[1:], strict=False))
        ):
            raise SchemaError(f"{where}: 'edges' must be >= 2 increasing finite numbers")
        if self.kind == "integer" and not all(e.is_integer() for e in edges):
            raise SchemaError(f"{where}: an integer column needs integer 'edges'")
        if self.lower is not None or self.upper is not None:
            try:
                same = (float(self.lower), float(self.upper)) == (edges[0], edges[-1])
            except (TypeError, ValueError, OverflowError):
                same = False
            if not same:
                raise SchemaError(
                    f"{where}: lower/upper ({self.lower!r}, {self.upper!r}) must equal the first "
                    "and last edge (or leave them out)"
                )
        cast = int if self.kind == "integer" else float
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "lower", cast(edges[0]))
        object.__setattr__(self, "upper", cast(edges[-1]))

    @property
    def has_domain(self) -> bool:
        """Whether the column can be encoded: its domain is known (declared, DP-learned or
        read from data) and, if numeric, so is its encoding (public bins/edges, one code per
        value of a narrow integer range, or a learned encoding)."""
        if self.kind in CATEGORICAL_KINDS:
            return self.categories is not None
        if self.kind in NUMERIC_KINDS:
            return self.lower is not None and not self.needs_learned_encoding
        return True

    @property
    def needs_learned_encoding(self) -> bool:
        """A numeric column without public ``bins``/``edges`` (and wider than
        :data:`ONE_CODE_PER_VALUE` integers) whose encoding is not learned yet."""
        if self.kind not in NUMERIC_KINDS or self.learned is not None:
            return False
        if self.bins is not None or self.edges is not None:
            return False
        if self.kind == "integer" and self.lower is not None:
            lo, hi = self.bound_values()
            if math.floor(hi) - math.ceil(lo) + 1 <= ONE_CODE_PER_VALUE:
                return False  # one code per value: exact, nothing to learn
        return True

    def bound_values(self) -> tuple[float, float]:
        """Bounds as floats (datetimes as nanoseconds since the epoch)."""
        if self.lower is None or self.upper is None:
            raise SchemaError(f"column {self.name!r} has no bounds yet")
        if self.kind == "datetime":
            try:
                return (
                    float(pd.Timestamp(self.lower).value),
                    float(pd.Timestamp(self.upper).value),
                )
            except (ValueError, TypeError, OverflowError) as exc:
                raise SchemaError(
                    f"column {self.name!r}: bounds must be ISO-8601 dates between {DATE_MIN} and "
                    f"{DATE_MAX}, got {self.lower!r}..{self.upper!r}"
                ) from exc
        try:
            lo, hi = float(self.lower), float(self.upper)
        except (TypeError, ValueError, OverflowError) as exc:
            raise SchemaError(
                f"column {self.name!r}: bounds must be numbers, got {self.lower!r}..{self.upper!r}"
            ) from exc
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise SchemaError(f"column {self.name!r}: bounds must be finite, got {lo}..{hi}")
        return lo, hi

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.categories is not None:
            out["categories"] = list(self.categories)
        if self.lower is not None:
            out["lower"], out["upper"] = self.lower, self.upper
        if self.bins is not None:
            out["bins"] = self.bins
        if self.edges is not None:
            cast = int if self.kind == "integer" else float
            out["edges"] = [cast(e) for e in self.edges]
            del out["lower"], out["upper"]
        if self.nullable:
            out["nullable"] = True
        if self.point_masses is not None:
            cast = int if self.kind == "integer" else float
            out["point_masses"] = [cast(v) for v in self.point_masses]
        for key in ("unit", "decimals"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.learned is not None:
            out["learned"] = self.learned.to_dict()
        if self.source != "public":
            out["source"] = self.source
        if self.note:
            out["note"] = self.note
        return out

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> Column:
        if not isinstance(data, Mapping):
            raise SchemaError(f"column {name!r}: expected an object, got {type(data).__name__}")
        allowed = {
            "kind",
            "categories",
            "lower",
            "upper",
            "bins",
            "edges",
            "nullable",
            "point_masses",
            "unit",
            "decimals",
            "learned",
            "source",
            "note",
        }
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise SchemaError(
                f"column {name!r}: unknown field(s) {unknown}; allowed: {sorted(allowed)}"
            )
        if "kind" not in data:
            raise SchemaError(f"column {name!r}: 'kind' is required ({', '.join(KINDS)})")
        cats = data.get("categories")
        if cats is not None and not isinstance(cats, list):
            raise SchemaError(f"column {name!r}: 'categories' must be a list")
        return cls(
            name=name,
            kind=data["kind"],
            categories=tuple(cats) if cats is not None else None,
            lower=data.get("lower"),
            upper=data.get("upper"),
            bins=data.get("bins"),
            edges=tuple(data["edges"])
            if isinstance(data.get("edges"), list)
            else data.get("edges"),
            nullable=bool(data.get("nullable", False)),
            point_masses=_tuple_or_none(name, "point_masses", data.get("point_masses")),
            unit=data.get("unit"),
            decimals=data.get("decimals"),
            learned=_learned_from_dict(name, data.get("learned")),
            source=data.get("source", "public"),
            note=data.get("note"),
        )


def _tuple_or_none(name: str, key: str, value: Any) -> tuple | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise SchemaError(f"column {name!r}: {key!r} must be a list")
    return tuple(value)


def _learned_from_dict(name: str, value: Any) -> Any:
    if value is None:
        return None
    from privsynth.encoding_dp import LearnedEncoding

    return LearnedEncoding.from_dict(name, value)


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


@dataclass(frozen=True)
class Schema:
    """The columns of a table, their kinds and domains. See ``docs/schema.md``.

    Examples
    --------
    >>> s = Schema.from_dict({"version": 1, "columns": {
    ...     "age": {"kind": "integer", "lower": 17, "upper": 90},
    ...     "income": {"kind": "categorical", "categories": ["<=50K", ">50K"]}}})
    >>> s.names
    ['age', 'income']
    >>> s.data_dependent_columns()
    []
    """

    columns: tuple[Column, ...]
    unit_of_privacy: str = "row"
    version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SchemaError(f"schema names column(s) {dupes} more than once")
        if not self.columns:
            raise SchemaError("schema has no columns")
        if self.unit_of_privacy not in UNITS_OF_PRIVACY:
            raise SchemaError(
                f"unit_of_privacy {self.unit_of_privacy!r} is not supported; use 'row' "
                "(one row = one person: deduplicate people first)"
            )
        if self.version != SCHEMA_VERSION:
            raise SchemaError(
                f"schema version {self.version!r} is not supported (this privsynth reads "
                f"version {SCHEMA_VERSION})"
            )

    # ----------------------------------------------------------------- access
    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def synthesised(self) -> tuple[Column, ...]:
        """Columns that are modelled and released (all but identifiers)."""
        return tuple(c for c in self.columns if c.kind != "identifier")

    def __getitem__(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise SchemaError(f"schema has no column {name!r}; columns: {self.names}")

    def with_columns(self, columns: Iterable[Column]) -> Schema:
        """A copy with the given columns replaced (matched by name)."""
        new = {c.name: c for c in columns}
        return replace(self, columns=tuple(new.get(c.name, c) for c in self.columns))

    def undeclared_columns(self) -> list[str]:
        """Columns whose domain must be learned with DP before encoding."""
        return [c.name for c in self.synthesised if not c.has_domain]

    def data_dependent_columns(self) -> list[str]:
        """Columns whose domain was read from the data (``source: data``)."""
        return [c.name for c in self.synthesised if c.source == "data"]

    def release_caveats(self, *, allow_data_dependent_domain: bool = False) -> list[str]:
        """Refuse data-dependent domains unless the caller opts in; return the DP caveats.

        Raises
        ------
        SchemaError
            If a domain was read from the data and ``allow_data_dependent_domain`` is false.
        """
        cols = self.data_dependent_columns()
        if cols and not allow_data_dependent_domain:
            raise SchemaError(
                f"the domain of column(s) {', '.join(cols)} was read from the data "
                "(source: data), which is not differentially private. Declare it as public "
                "knowledge (edit the schema and remove 'source'), delete it to have it learned "
                "with DP, or pass allow_data_dependent_domain=True (CLI --unsafe-data-domain) "
                "to accept a recorded DP caveat"
            )
        return [
            f"DP caveat: the domain of column {c!r} was read from the private data without "
            "noise; the release is not differentially private with respect to that domain"
            for c in cols
        ]

    # ------------------------------------------------------------ round trip
    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "unit_of_privacy": self.unit_of_privacy,
            "columns": {c.name: c.to_dict() for c in self.columns},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schema:
        if not isinstance(data, Mapping):
            raise SchemaError("a schema must be a JSON object with 'version' and 'columns'")
        unknown = sorted(set(data) - {"version", "unit_of_privacy", "columns"})
        if unknown:
            raise SchemaError(f"schema has unknown field(s) {unknown}")
        cols = data.get("columns")
        if not isinstance(cols, Mapping) or not cols:
            raise SchemaError("schema needs a non-empty 'columns' object: {name: {kind: ...}}")
        return cls(
            columns=tuple(Column.from_dict(str(n), spec) for n, spec in cols.items()),
            unit_of_privacy=data.get("unit_of_privacy", "row"),
            version=data.get("version", SCHEMA_VERSION),
        )

    @classmethod
    def load(cls, path: str | Path) -> Schema:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise SchemaError(f"schema file {path} does not exist") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise SchemaError(f"cannot read schema file {path}: {exc}") from exc

        def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            keys = [k for k, _ in pairs]
            if dupes := sorted({k for k in keys if keys.count(k) > 1}):
                raise SchemaError(
                    f"schema file {path}: {', '.join(map(repr, dupes))} appears twice in one "
                    "object (JSON keeps only the last); keep one"
                )
            return dict(pairs)

        try:
            data = json.loads(text, object_pairs_hook=unique_keys)
        except json.JSONDecodeError as exc:
            raise SchemaError(
                f"schema file {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: "
                f"{exc.msg})"
            ) from exc
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        from privsynth.io import atomic_write_text

        atomic_write_text(path, self.to_json())

    # ----------------------------------------------------------------- draft
    @classmethod
    def draft(cls, df: pd.DataFrame, *, bins: int | None = None) -> Schema:
        """A starting point read from the data: every domain is marked ``source: data``.

        Numeric columns get bounds and, unless ``bins`` asks for equal-width bins, an
        encoding learned with DP at the fit.

        Likely identifiers (near-unique columns, names like id/name/ssn/email/phone) get kind
        ``identifier`` and a note. Review the result: declare domains that are public
        knowledge, delete those that are not (they will be learned with DP).
        """
        from privsynth.io import check_frame

        check_frame(df)
        return cls(columns=tuple(_draft_column(str(n), df[n], bins) for n in df.columns))

    # -------------------------------------------------------------- validate
    def validate(
        self, df: pd.DataFrame, *, on_unknown: Literal["error", "missing"] = "error"
    ) -> tuple[pd.DataFrame, ValidationReport]:
        """Check ``df`` against the schema and return a cleaned copy.

        Policy: numeric values outside declared bounds are clipped to them; categorical values
        outside declared categories raise :class:`DataError` (``on_unknown="error"``) or become
        missing (``on_unknown="missing"``, the column must be nullable); in a DP-learned
        category list they become ``(other)``. Missing values in a
        non-nullable column, or non-numeric values in a numeric column, raise DataError.
        Identifier columns are dropped. Columns whose domain is still undeclared are checked
        for type only.
        """
        from privsynth.io import check_frame

        if on_unknown not in ("error", "missing"):
            raise SchemaError(f"on_unknown ({on_unknown!r}) must be 'error' or 'missing'")
        check_frame(df)
        missing = [n for n in self.names if n not in df.columns]
        if missing:
            raise SchemaError(
                f"schema column(s) {missing} are not in the data (data has {list(df.columns)})"
            )
        extra = [str(n) for n in df.columns if n not in self.names]
        if extra:
            raise SchemaError(
                f"data column(s) {extra} are not in the schema; add them (kind 'identifier' "
                "to drop them from the release) or remove them from the data"
            )
        report = ValidationReport()
        out: dict[str, pd.Series] = {}
        for col in self.columns:
            if col.kind == "identifier":
                report.dropped_identifiers.append(col.name)
                continue
            out[col.name] = _validate_column(col, df[col.name], on_unknown, report)
        return pd.DataFrame(out, index=df.index), report


# --------------------------------------------------------------------- helpers
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

    By name (id, name, ssn, email, phone, ...), or by values: near-unique text that is not
    dates, or near-unique integers packed in a range (1..n-like counters). Near-unique
    measurements (floats, salaries, timestamps) are not identifiers.
    """
    if _ID_NAME.search(name):
        return "name looks like an identifier"
    n = len(nonnull)
    if n < _MIN_ROWS_FOR_UNIQUENESS or is_dates:
        return None
    distinct = nonnull.nunique()
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


def _first_rows(mask: pd.Series, k: int = 3) -> str:
    return rows_text(list(mask[mask].index[:k]), int(mask.sum()), k)


# Validation errors, shared by Schema.validate and the engine sources (privsynth.marginals):
# each names the column, how many rows, an example row and value, and what to do.
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
