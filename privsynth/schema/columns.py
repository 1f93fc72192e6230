"""Columns: a column's kind and domain, and the checks each field must pass.

A declared domain (categories, bounds, bins, edges, point masses) is public information; a
column without one has it learned with DP (:mod:`privsynth.discovery`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from privsynth.errors import SchemaError
from privsynth.schema.learned import LearnedEncoding

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
#: ``level`` of a column when a person owns many rows: ``row`` (may change from row to row) or
#: ``unit`` (constant within a person: sex, birth year, treatment arm).
LEVELS = ("row", "unit")
#: Granularities a datetime column can declare (``"unit"``): values are whole units, and
#: synthetic values come out as whole units (a ``day`` column holds dates, never times).
DATE_UNITS = {"day": 86_400 * 10**9, "hour": 3_600 * 10**9, "minute": 60 * 10**9, "second": 10**9}
RELATIVE_DATES = ("now", "today", "tomorrow", "yesterday")
#: Dates are handled as nanoseconds since 1970 (int64): this is the range that fits.
DATE_MIN, DATE_MAX = pd.Timestamp.min.date().isoformat(), pd.Timestamp.max.date().isoformat()


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
        ``bins`` or ``edges`` the encoding is learned with DP
        (:mod:`privsynth.discovery.numeric`), except for integer ranges of at most
        :data:`ONE_CODE_PER_VALUE` values: one code per value.
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
        or ``edges``): set by the fit, see :mod:`privsynth.discovery.numeric`.
    source
        ``public`` (declared), ``dp`` (learned under DP) or ``data`` (read from the data).
    note
        Free text for the reviewer (e.g. why ``draft`` flagged a column).
    level
        When a person owns many rows (``unit_of_privacy`` names a person): ``unit`` for a
        column constant within a person (sex, birth year, treatment arm), which every synthetic
        person keeps constant too; ``row`` (default) otherwise.
    order
        This column orders a person's rows (visit day, year): each synthetic person's rows
        come sorted by it. ``"distinct"`` (integer columns): no two rows of a person share a
        value, as in a panel with one row per survey year.
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
    learned: LearnedEncoding | None = None
    source: str = "public"
    note: str | None = None
    level: str = "row"
    order: bool | str = False

    def __post_init__(self) -> None:
        where = f"column {self.name!r}"
        if self.level not in LEVELS:
            raise SchemaError(f"{where}: level {self.level!r} must be one of {LEVELS}")
        if self.kind == "identifier" and (self.level != "row" or self.order):
            raise SchemaError(f"{where}: an identifier takes no 'level' or 'order'")
        if not isinstance(self.order, bool) and self.order != "distinct":
            raise SchemaError(f'{where}: order ({self.order!r}) must be true, false or "distinct"')
        if self.order == "distinct" and self.kind != "integer":
            raise SchemaError(
                f'{where}: order "distinct" needs an integer column (a year, a wave, a day '
                f'number), not {self.kind}; use "order": true'
            )
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
            self._check_edges(where, self.edges)
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

    def _check_edges(self, where: str, given: tuple[float, ...]) -> None:
        if self.kind not in ("integer", "continuous"):
            raise SchemaError(f"{where}: 'edges' applies to integer and continuous columns")
        if self.bins is not None:
            raise SchemaError(f"{where}: give 'bins' or 'edges', not both")
        try:
            edges = tuple(float(e) for e in given)
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
                same = (
                    self.lower is not None
                    and self.upper is not None
                    and (float(self.lower), float(self.upper)) == (edges[0], edges[-1])
                )
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
        if self.level != "row":
            out["level"] = self.level
        if self.order:
            out["order"] = self.order
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
            "level",
            "order",
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
            level=data.get("level", "row"),
            order=data.get("order", False),
        )


def _tuple_or_none(name: str, key: str, value: Any) -> tuple | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise SchemaError(f"column {name!r}: {key!r} must be a list")
    return tuple(value)


def _learned_from_dict(name: str, value: Any) -> LearnedEncoding | None:
    if value is None:
        return None
    return LearnedEncoding.from_dict(name, value)
