"""Hypothesis-driven bad input (issue #9): random CSV bytes, DataFrames and schemas.

Property: ``read_table`` + ``Schema.from_dict`` + ``Schema.validate`` either succeed or raise a
:class:`~privsynth.errors.PrivsynthError` whose message is one line and names the input it is
about (the file, for ``read_table``; a column, the schema or "the data" otherwise). No other
exception type (KeyError, ValueError, TypeError, UnicodeDecodeError, OverflowError...) may leak.
When validation succeeds, its output must respect the schema (bounds, categories, no missing
value in a non-nullable column).

The ten library bugs these properties found (overflowing bounds and numbers, dates outside
the nanosecond range or with mixed UTC offsets, list cells, a two-line message...) are fixed
and pinned by the ``test_bug_*`` regression tests at the bottom.

Run with ``-s`` for one summary line per property (cases tried / behaved).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privsynth.errors import DataError, PrivsynthError
from privsynth.io import read_table
from privsynth.schema import (
    CATEGORICAL_KINDS,
    KINDS,
    NUMERIC_KINDS,
    OTHER,
    Schema,
    canonical_category,
)

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    # Fixed seed. Hypothesis (>= 6.13x) also mixes in literals from the local modules that are
    # loaded, so the exact examples (and counts printed) depend on which test files are
    # collected together; they are the same for the same pytest command.
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ----------------------------------------------------------------- strategies
# Years well outside pandas' datetime64[ns] range (1677-09-21 .. 2262-04-11) included.
YEARS = (1, 9999)
DATE_FORMATS = [
    "%Y-%m-%d",
    "%d/%m/%Y",
    "%m/%d/%y",
    "%Y%m%d",
    "%d %b %Y",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
]
# Mixed or differing UTC offsets in one column.
TZ_SUFFIXES = ["", "", "Z", "+05:30", "-08:00"]

date_text = st.builds(
    lambda d, fmt, tz: d.strftime(fmt) + (tz if "T" in fmt else ""),
    st.dates(date(YEARS[0], 1, 1), date(YEARS[1], 12, 31)),
    st.sampled_from(DATE_FORMATS),
    st.sampled_from(TZ_SUFFIXES),
)
SPECIAL_TEXT = [
    "", " ", "nan", "NaN", "NA", "null", "None", "inf", "-inf", "Infinity", "1e400", "-1e400",
    "1e-400", "0x1A", "1_000", "1,5", "TRUE", "false", "٣", "½", " 7 ", "007", "-0",
    "9" * 25, "9" * 400, "today", "now", "1\n2", '"', "\\", "\t",
]  # fmt: skip
int_text = st.integers(-(10**20), 10**20).map(str)
float_text = st.floats().map(repr)  # includes nan, inf, -inf, 1e308, 5e-324
any_text = st.one_of(
    st.sampled_from(SPECIAL_TEXT), int_text, float_text, date_text, st.text(max_size=6)
)
#: A column's flavour: most of its cells look alike, so typed columns do occur.
FLAVOURS = {
    "int": int_text,
    "float": float_text,
    "date": date_text,
    "text": st.sampled_from(["a", "b", "c", "north", "south", "F", "M"]),
    "mixed": any_text,
}
NON_UTF8 = [b"\xff", b"\xfe\xff", b"\x80", b"caf\xe9", b"\xc3\x28", b"\x00", b"\xed\xa0\x80"]
NAMES = st.one_of(
    st.sampled_from(
        ["a", "b", "age", "a.1", "", " ", "Unnamed: 0", "x,y", 'q"t', "naïve", "l\nb", "id", "0"]
    ),
    st.text(max_size=6),
)
TIDY_NAMES = st.text("abcdefxyz_ ", min_size=1, max_size=5).filter(lambda n: n.strip() == n)


@st.composite
def csv_bytes(draw) -> bytes:
    """Bytes of a would-be CSV. Half are tidy (distinct names, one flavour per column, UTF-8,
    rectangular) so that validation gets exercised; the other half have random headers
    (duplicate, empty, quoted names), ragged rows, mixed cells and non-UTF-8 bytes. Both use
    numbers, NaN/inf/huge values, dates in several formats, three kinds of line ending and an
    optional BOM. One file in ten is arbitrary bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=120))
    tidy = draw(st.booleans())

    def field(text_strategy) -> bytes:
        raw = (
            draw(st.sampled_from(NON_UTF8))
            if not tidy and draw(st.integers(0, 29)) == 0
            else draw(text_strategy).encode("utf-8")
        )
        if draw(st.booleans()) or (tidy and any(c in raw for c in b'",\r\n')):
            return b'"' + raw.replace(b'"', b'""') + b'"'
        return raw

    ncols = draw(st.integers(1, 5))
    flavours = [FLAVOURS[draw(st.sampled_from(list(FLAVOURS)))] for _ in range(ncols)]
    end = draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    if tidy:
        names = draw(st.lists(TIDY_NAMES, min_size=ncols, max_size=ncols, unique=True))
        header = b",".join(field(st.just(n)) for n in names)
    else:
        header = b",".join(field(NAMES) for _ in range(ncols))
    lines = [header]
    for _ in range(draw(st.integers(1 if tidy else 0, 6))):
        width = ncols + (0 if tidy else draw(st.sampled_from([0, 0, 0, 0, 0, -1, 1])))
        cells = [
            field(flavours[j] if j < ncols and (tidy or draw(st.integers(0, 4))) else any_text)
            for j in range(max(width, 1))
        ]
        lines.append(b",".join(cells))
    out = end.join(lines) + (end if draw(st.booleans()) else b"")
    return (b"\xef\xbb\xbf" if draw(st.integers(0, 9)) == 0 else b"") + out


# Schema values, well-typed and not.
number = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(),  # nan, inf included
    st.sampled_from([0, 1, 1e308, -1e308, 10**400, -(10**400)]),  # beyond float range too
)
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=4),
    st.sampled_from([[1], {"a": 1}, " 2 ", "1e3", "abc", "2020-13-45"]),
    st.just("1\n"),  # a line break must not break the one-line message
)
bound = st.one_of(number, date_text, junk)


@st.composite
def column_spec(draw, sane: bool) -> dict:
    """A column spec. ``sane``: fields that fit the kind, with well-typed (random) values;
    otherwise any field with any value, unknown kinds and unknown fields included."""
    if sane:
        kind = draw(st.sampled_from(KINDS))
    else:
        kind = draw(
            st.one_of(
                st.sampled_from([*KINDS, "", "Categorical", "float", "string"]),
                st.sampled_from([1, None, ["integer"], {"kind": "integer"}]),
            )
        )
    spec: dict = {"kind": kind}
    if not sane and draw(st.integers(0, 19)) == 0:
        del spec["kind"]
    if sane:
        spec["nullable"] = draw(st.integers(0, 3)) > 0
    elif draw(st.booleans()):
        spec["nullable"] = draw(st.sampled_from([True, False, 0, "no", None]))
    want_cats = kind in CATEGORICAL_KINDS if sane else draw(st.integers(0, 3)) == 0
    want_bounds = kind in NUMERIC_KINDS if sane else draw(st.integers(0, 3)) == 0
    if want_cats and draw(st.booleans()):
        values = st.one_of(FLAVOURS["text"], int_text, st.integers(-3, 3), st.floats())
        if sane:
            spec["categories"] = draw(
                st.lists(values, min_size=1, max_size=6, unique_by=canonical_category)
            )
        elif draw(st.booleans()):
            spec["categories"] = draw(st.lists(values, max_size=6))
        else:
            spec["categories"] = draw(st.sampled_from(["a,b", 3, {"a": 1}, [[1], [2]]]))
    if want_bounds and draw(st.booleans()):
        if sane and kind == "datetime":
            lo = draw(st.dates(date(YEARS[0], 1, 1), date(YEARS[1] - 1, 12, 31)))
            days = draw(st.integers(1, 36500))
            hi = min(lo + timedelta(days=days), date(YEARS[1], 12, 31))
            lo, hi = lo.isoformat(), hi.isoformat()
        elif sane:
            lo = draw(st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6)))
            hi = lo + draw(st.one_of(st.integers(1, 1000), st.floats(0.5, 1e6)))
        else:
            lo, hi = draw(bound), draw(bound)
        spec["lower"], spec["upper"] = lo, hi
        if not sane and draw(st.integers(0, 4)) == 0:
            del spec[draw(st.sampled_from(["lower", "upper"]))]
    if want_bounds and draw(st.integers(0, 2)) == 0:
        spec["bins"] = draw(
            st.integers(1, 40) if sane else st.one_of(st.integers(-2, 40), st.floats(), junk)
        )
    if want_bounds and kind != "datetime" and draw(st.integers(0, 4)) == 0:
        spec.pop("bins", None)
        if sane:
            edges = st.lists(st.integers(-100, 100), min_size=2, max_size=5, unique=True)
            spec["edges"] = sorted(draw(edges))
            spec.pop("lower", None), spec.pop("upper", None)
        else:
            edges = st.lists(st.one_of(st.integers(-100, 100), st.floats()), max_size=5)
            spec["edges"] = draw(st.one_of(edges, junk))
    if not sane and draw(st.integers(0, 9)) == 0:
        spec["source"] = draw(st.sampled_from(["public", "dp", "data", "DP", 1]))
    if not sane and draw(st.integers(0, 9)) == 0:
        spec[draw(st.sampled_from(["bounds", "Kind", "range"]))] = 1
    return spec


@st.composite
def schema_dict(draw, names: list | None = None):
    """A schema dict: for ``names`` (the data's columns, some left out, a ghost one added)
    or for random names. Mostly well-formed at the top level."""
    if names is None:
        names = draw(st.lists(NAMES, min_size=0, max_size=4))
    else:
        names = [str(n) for n in names if draw(st.integers(0, 9))]
        if draw(st.integers(0, 9)) == 0:
            names.append("ghost")
    sane = draw(st.integers(0, 2)) > 0
    columns = {n: draw(column_spec(sane=sane)) for n in names}
    if not sane and draw(st.integers(0, 9)) == 0:
        columns = draw(st.sampled_from([[], None, "a", {"a": None}, {"a": "integer"}]))
    doc: dict = {"version": 1, "columns": columns}
    if sane:
        return doc
    if draw(st.integers(0, 4)) == 0:
        doc["version"] = draw(st.sampled_from([2, "1", None, 1.0]))
    if draw(st.integers(0, 4)) == 0:
        doc["unit_of_privacy"] = draw(st.sampled_from(["row", "person", None]))
    if draw(st.integers(0, 9)) == 0:
        doc["colums"] = {}
    return doc


python_value = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=5),
    date_text,
    st.sampled_from(
        [
            None,
            np.nan,
            pd.NaT,
            True,
            False,
            b"\xff",
            b"1",
            Decimal("1.5"),
            Decimal("NaN"),
            ("a", 1),
            1 + 2j,
            datetime(2020, 1, 2, 3, 4),
            pd.Timestamp("2021-06-01"),
            date(2019, 5, 6),
        ]
    ),
    st.sampled_from([[1, 2], {"a": 1}]),  # unhashable cells, e.g. a Parquet list column
)


@st.composite
def frames(draw) -> pd.DataFrame:
    """A small DataFrame: random (also non-string, duplicate, empty) column names; columns of
    one flavour or of mixed Python values; object, inferred, string or category dtype."""
    ncols = draw(st.integers(1, 4))
    nrows = draw(st.integers(0, 6))
    names = [draw(st.one_of(NAMES, st.sampled_from([0, 1.5, None]))) for _ in range(ncols)]
    data = []
    for _ in range(ncols):
        flavour = draw(st.sampled_from([*FLAVOURS, "python"]))
        cells = st.one_of(FLAVOURS.get(flavour, python_value), python_value)
        values = [draw(cells) for _ in range(nrows)]
        dtype = draw(st.sampled_from([None, object, "string", "category"]))
        try:
            data.append(pd.Series(values, dtype=dtype))
        except (TypeError, ValueError):  # that dtype cannot hold these values
            data.append(pd.Series(values, dtype=object))
    df = pd.concat(data, axis=1) if data else pd.DataFrame()
    df.columns = names
    return df


# ------------------------------------------------------------------- checks
def _check_refusal(exc: BaseException, *, path: Path | None = None) -> None:
    """A refusal must be a PrivsynthError with a one-line message naming the input."""
    assert isinstance(exc, PrivsynthError), f"leaked {type(exc).__name__}: {exc}"
    msg = str(exc)
    assert msg.strip(), f"{type(exc).__name__} with an empty message"
    assert len(msg.splitlines()) == 1, f"message is not one line: {msg!r}"
    if path is not None:
        assert str(path) in msg, f"message does not name the file: {msg!r}"
    else:
        assert any(w in msg for w in ("column", "schema", "unit_of_privacy", "the data")), (
            f"message names no column, schema or data: {msg!r}"
        )


def _check_output(schema: Schema, out: pd.DataFrame) -> None:
    """What validation lets through respects the schema."""
    assert list(out.columns) == [c.name for c in schema.synthesised]
    for col in schema.synthesised:
        s = out[col.name]
        if not col.nullable:
            assert not s.isna().any(), f"{col.name}: missing value in a non-nullable column"
        if col.kind in NUMERIC_KINDS:
            v = s.dropna().to_numpy(float)
            assert np.isfinite(v).all(), f"{col.name}: non-finite value passed validation"
            if col.lower is not None:
                lo, hi = col.bound_values()
                assert ((v >= lo) & (v <= hi)).all(), f"{col.name}: value outside the bounds"
        elif col.categories is not None:
            allowed = set(col.categories) | {OTHER}
            assert set(s.dropna()) <= allowed, f"{col.name}: value outside the categories"


def _validate(doc: dict, df: pd.DataFrame, stats: Counter) -> None:
    try:
        schema = Schema.from_dict(doc)
    except Exception as exc:  # noqa: BLE001 - the property is about which exceptions
        _check_refusal(exc)
        stats["schema refused"] += 1
        return
    try:
        out, _ = schema.validate(df)
    except Exception as exc:  # noqa: BLE001
        _check_refusal(exc)
        stats["data refused"] += 1
        return
    _check_output(schema, out)
    stats["validated"] += 1


def _summary(name: str, stats: Counter) -> None:
    tried = stats.pop("tried")
    detail = ", ".join(f"{k} {v}" for k, v in sorted(stats.items()))
    print(f"\n[input-properties] {name}: {tried} cases tried, {tried} behaved ({detail})")


# --------------------------------------------------------------- properties
def test_random_csv_bytes_are_read_and_validated_or_refused_cleanly():
    stats: Counter = Counter()
    tmp = tempfile.TemporaryDirectory(prefix="privsynth-hyp-")
    path = Path(tmp.name) / "input data.csv"

    @SETTINGS
    @given(raw=csv_bytes(), data=st.data())
    def prop(raw: bytes, data) -> None:
        stats["tried"] += 1
        path.write_bytes(raw)
        try:
            df = read_table(path)
        except Exception as exc:  # noqa: BLE001
            _check_refusal(exc, path=path)
            stats["file refused"] += 1
            return
        _validate(data.draw(schema_dict(list(df.columns))), df, stats)

    with tmp:
        prop()
    _summary("CSV bytes -> read_table -> schema -> validate", stats)


def test_random_schema_dicts_load_or_are_refused_cleanly():
    stats: Counter = Counter()

    @SETTINGS
    @given(doc=schema_dict())
    def prop(doc: dict) -> None:
        stats["tried"] += 1
        try:
            schema = Schema.from_dict(doc)
        except Exception as exc:  # noqa: BLE001
            _check_refusal(exc)
            stats["refused"] += 1
            return
        # A schema that loads survives its own JSON round trip.
        assert Schema.from_dict(schema.to_dict()) == schema
        stats["loaded"] += 1

    prop()
    _summary("schema dicts -> Schema.from_dict", stats)


def test_random_frames_and_schemas_validate_or_are_refused_cleanly():
    stats: Counter = Counter()

    @SETTINGS
    @given(df=frames(), data=st.data())
    def prop(df: pd.DataFrame, data) -> None:
        stats["tried"] += 1
        _validate(data.draw(schema_dict(list(df.columns))), df, stats)

    prop()
    _summary("DataFrames + schemas -> validate", stats)


# ------------------------------------------------------- known library bugs
# Each is a minimal input on which a non-PrivsynthError leaks (found by the properties above or
# while writing them). ``raises=`` pins the leaking type, so any other failure still shows.
def _schema(**spec) -> Schema:
    return Schema.from_dict({"version": 1, "columns": {"x": spec}})


def test_bug_edges_with_non_numeric_bounds_are_refused():
    with pytest.raises(PrivsynthError, match="'x'"):
        _schema(kind="integer", edges=[0, 1], lower="a", upper="b")


def test_bug_edges_with_lower_but_no_upper_is_refused():
    with pytest.raises(PrivsynthError, match="'x'"):
        _schema(kind="integer", edges=[0, 1], lower=0)


def test_bug_bound_with_a_line_break_gives_a_one_line_message():
    # float("1\n") == 1.0, so the bound is accepted, then printed raw in the lower >= upper
    # message: "column 'x': lower (1\n) must be < upper (0)" spans two lines.
    with pytest.raises(PrivsynthError) as info:
        _schema(kind="continuous", lower="1\n", upper="0")
    _check_refusal(info.value)


def test_bug_integer_bound_beyond_float_range_is_refused():
    # json.loads("1" + "0" * 400) is such an int, so a schema file can hold it.
    with pytest.raises(PrivsynthError, match="'x'"):
        _schema(kind="integer", lower=0, upper=10**400)


def test_bug_datetime_bound_outside_nanosecond_range_is_refused():
    with pytest.raises(PrivsynthError, match="'x'"):
        _schema(kind="datetime", lower="1000-01-01", upper="2020-01-01")


def _validate_file(path: Path, content: bytes, **spec) -> pd.DataFrame:
    """Read ``content`` as ``path`` and validate column ``x``."""
    path.write_bytes(content)
    return _schema(**spec).validate(read_table(path))[0]


DATES = {"kind": "datetime", "lower": "2000-01-01", "upper": "2030-01-01", "nullable": True}


def test_bug_dates_with_mixed_utc_offsets_are_converted_to_one_axis(tmp_path):
    clean = _validate_file(
        tmp_path / "d.csv", b"x\n2020-01-01T00:00:00+01:00\n2020-01-01\n", **DATES
    )
    # +01:00 midnight is 23:00 UTC the day before; a date without an offset is read as UTC
    want = [pd.Timestamp("2019-12-31T23:00").value, pd.Timestamp("2020-01-01").value]
    assert clean["x"].tolist() == [float(v) for v in want]


def test_bug_date_outside_nanosecond_range_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"column 'x'.*not dates between.*'0001-01-01' at row 0"):
        _validate_file(tmp_path / "d.csv", b"x\n0001-01-01\n2020-01-01\n", **DATES)


def test_bug_minus_one_in_a_datetime_column_is_refused():
    # Found by the DataFrame property: to_datetime parses "-1" as the year -1, out of range.
    with pytest.raises(PrivsynthError, match="'x'"):
        _schema(**DATES).validate(pd.DataFrame({"x": ["-1"]}))


def test_bug_number_beyond_float_range_in_a_numeric_column_is_refused(tmp_path):
    content = b"x\n" + b"9" * 400 + b"\n1\n"
    with pytest.raises(DataError, match=r"column 'x': 1 infinite value\(s\) \(e.g. row 0\)"):
        _validate_file(tmp_path / "x.csv", content, kind="continuous", lower=0, upper=1)


def test_bug_list_cells_in_a_categorical_column_are_refused(tmp_path):
    path = tmp_path / "x.parquet"
    pd.DataFrame({"x": [["a"], ["b"]]}).to_parquet(path)  # a Parquet list column
    with pytest.raises(PrivsynthError, match="'x'"):
        _schema(kind="categorical", categories=["a", "b"]).validate(read_table(path))
