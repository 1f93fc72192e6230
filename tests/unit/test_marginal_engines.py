"""DuckDB and Spark sources give exactly what the pandas path gives: the same validation
errors, the same DP-discovery counts and the same marginal counts, for every column kind."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from privsynth.errors import ConfigError, DataError, SchemaError
from privsynth.schema import OTHER, Schema
from privsynth.sources import ArrayTable, FrameSource, MappedTable

N = 400


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    f = pd.DataFrame(
        {
            "pid": np.arange(N),
            "sex": rng.choice(["F", "M", None], N).astype(object),
            "grade": rng.choice(["low", "mid", "high"], N),
            "code": rng.choice([1, 2, 3, 12], N),  # categorical stored as integers
            "dose": rng.choice([1.0, 2.5, 3.0], N),  # categorical stored as floats
            "smoker": rng.choice([True, False], N),
            "clinic": rng.choice(["north", "south", "rare1", "rare2"], N),
            "age": rng.integers(-5, 105, N),  # bounds 0..90: values beyond are clipped
            "visits": pd.array(rng.integers(0, 40, N), dtype="Int64"),
            "income": rng.lognormal(10, 1, N),
            "weight": np.where(
                rng.random(N) < 0.1,
                np.nan,
                np.where(rng.random(N) < 0.2, 80.0, rng.normal(75, 15, N)),
            ),
            "score": rng.normal(0, 1, N).round(3).astype(str),  # numbers stored as text
            "seen": pd.Timestamp("2019-06-01") + pd.to_timedelta(rng.integers(0, 900, N), "D"),
            "born": pd.to_datetime(rng.integers(0, 20000, N), unit="D").date,
        }
    )
    f.loc[rng.random(N) < 0.1, "visits"] = pd.NA
    f.loc[rng.random(N) < 0.1, "seen"] = pd.NaT
    return f


SCHEMA = Schema.from_dict(
    {
        "version": 1,
        "columns": {
            "pid": {"kind": "identifier"},
            "sex": {"kind": "categorical", "categories": ["F", "M"], "nullable": True},
            "grade": {"kind": "ordinal", "categories": ["low", "mid", "high"]},
            "code": {"kind": "categorical", "categories": ["1", "2", "3", "12", "01"]},
            "dose": {"kind": "categorical", "categories": ["1", "2.5", "3"]},
            "smoker": {"kind": "categorical", "categories": ["False", "True"]},
            # a DP-learned list: values not in it become "(other)"
            "clinic": {"kind": "categorical", "categories": ["north", OTHER], "source": "dp"},
            "age": {"kind": "integer", "lower": 0, "upper": 90, "bins": 10},
            "visits": {"kind": "integer", "edges": [0, 1, 5, 20, 39], "nullable": True},
            "income": {"kind": "continuous", "edges": [0, 1000, 20000, 50000, 1e6]},
            # a learned encoding: point masses (80, and 110 where clipped values pile up)
            # have codes of their own ahead of the bins
            "weight": {
                "kind": "continuous",
                "lower": 40,
                "upper": 110,
                "nullable": True,
                "learned": {
                    "point_masses": [80.0, 110.0],
                    "edges": [40.0, 60.0, 80.0, 110.0],
                    "fine_edges": [40.0, 60.0, 70.0, 80.0, 110.0],
                    "fine_weights": [1.0, 2.0, 2.0, 1.0],
                },
            },
            "score": {"kind": "continuous", "lower": -2, "upper": 2, "bins": 7},
            "seen": {
                "kind": "datetime",
                "lower": "2019-01-01",
                "upper": "2021-01-01",
                "bins": 9,
                "nullable": True,
            },
            "born": {
                "kind": "datetime",
                "lower": "1975-01-01",
                "upper": "2020-01-01",
                "unit": "day",
                "bins": 12,
            },
        },
    }
)


def _write(df: pd.DataFrame, path) -> pd.DataFrame:
    """Write Parquet (microsecond times, which Spark reads) and return what pandas reads."""
    df.to_parquet(path, coerce_timestamps="us", allow_truncated_timestamps=False)
    return pd.read_parquet(path)


# Spark's full-table query is a plain GROUP BY, which the Spark fits in
# tests/system/test_generators.py already take; here Spark runs only the GROUPING SETS path, to
# keep the suite short.
@pytest.mark.parametrize(
    ("engine_source", "strategy"),
    [("duckdb", "full table"), ("duckdb", "grouping sets"), ("spark", "grouping sets")],
    indirect=["engine_source"],
)
def test_marginals_match_pandas_for_every_column_kind(
    engine_source, tmp_path, strategy, monkeypatch
):
    if strategy == "grouping sets":  # no full contingency table: one GROUPING SETS query
        monkeypatch.setattr("privsynth.sources.sql.JOINT_MAX_CELLS", 0)
    path = tmp_path / "t.parquet"
    df = _write(_frame(), path)
    want = FrameSource(df).validate(SCHEMA).encode(SCHEMA)
    got = engine_source(path).validate(SCHEMA).encode(SCHEMA)
    assert got.shape == want.shape
    d = len(want.shape)
    cliques = [(j,) for j in range(d)] + [()]
    cliques += list(itertools.combinations(range(d), 2))[::3]
    cliques += [(0, 6, 12), (12, 7, 1), (3, 4, 5), (9, 10, 11)]
    for c, g, w in zip(cliques, got.marginals(cliques), want.marginals(cliques), strict=True):
        assert g.dtype == np.int64
        np.testing.assert_array_equal(g, w, err_msg=f"clique {c}")
    # The data exercises what it should: clipping, missing codes, (other), the "01" category.
    ones = dict(zip(want.shape, want.marginals([(j,) for j in range(d)]), strict=True))
    assert ones["age"][0] > 0 and ones["age"][-1] > 0
    assert ones["sex"][-1] > 0 and ones["seen"][-1] > 0 and ones["visits"][-1] > 0
    assert ones["clinic"][1] > ones["clinic"][0] / 2 and ones["code"][4] == 0


def test_discovery_counts_match_pandas(engine_source, tmp_path):
    from privsynth.discovery.numeric import bound_candidates

    path = tmp_path / "t.parquet"
    df = _write(_frame(), path)
    open_schema = SCHEMA.with_columns(
        [
            SCHEMA["code"].__class__(name, kind, nullable=True)
            for name, kind in [
                ("sex", "categorical"),
                ("code", "categorical"),
                ("dose", "categorical"),
                ("smoker", "categorical"),
                ("age", "integer"),
                ("weight", "continuous"),
                ("score", "continuous"),
                ("seen", "datetime"),
            ]
        ]
    )
    want = FrameSource(df).validate(open_schema)
    got = engine_source(path).validate(open_schema)
    for name in open_schema.undeclared_columns():
        col = open_schema[name]
        # categories, and numeric point-mass candidates
        assert got.value_counts(col) == want.value_counts(col), name
        if col.kind not in ("categorical", "ordinal"):
            cands = bound_candidates(col.kind)
            np.testing.assert_array_equal(
                got.bucket_counts(col, cands), want.bucket_counts(col, cands), err_msg=name
            )


BREAKS = {
    "unknown category": ("grade", 7, "top"),
    "missing in a non-nullable column": ("grade", 11, None),
    "text that is no number": ("score", 5, "abc"),
    "nan as text": ("score", 6, "nan"),
    "infinite": ("income", 9, np.inf),
    "missing number": ("income", 13, np.nan),
}


# Spark runs two of these (the SQL is DuckDB's), to keep the suite short.
@pytest.mark.parametrize(
    ("engine_source", "what"),
    [("duckdb", w) for w in BREAKS] + [("spark", "unknown category"), ("spark", "nan as text")],
    indirect=["engine_source"],
)
def test_validation_errors_match_pandas(engine_source, tmp_path, what):
    col, row, value = BREAKS[what]
    df = _frame()
    df[col] = df[col].astype(object)
    df.loc[row, col] = value
    df.loc[row + 20, col] = value
    path = tmp_path / "t.parquet"
    df = _write(df, path)
    with pytest.raises(DataError) as want:
        SCHEMA.validate(df)
    with pytest.raises(DataError) as got:
        engine_source(path).validate(SCHEMA)
    assert str(got.value) == str(want.value)
    assert f"row {row}" in str(got.value) and col in str(got.value)


def test_columns_the_engine_cannot_encode_are_refused_by_name(engine_source, tmp_path):
    path = tmp_path / "t.parquet"
    df = _frame()
    df["seen"] = df["seen"].astype(str)  # dates as text: parsed differently by each engine
    _write(df, path)
    with pytest.raises(ConfigError, match="column 'seen'.*datetime"):
        engine_source(path).validate(SCHEMA)


def test_mapped_table_sums_cells_like_mapping_each_row():
    rng = np.random.default_rng(0)
    codes = np.column_stack([rng.integers(0, 5, 300), rng.integers(0, 3, 300)])
    maps = [np.array([0, 0, 1, 2, 2]), np.array([1, 0, 1])]
    mapped = MappedTable(ArrayTable(codes, {"a": 5, "b": 3}), maps)
    direct = ArrayTable(np.column_stack([m[codes[:, j]] for j, m in enumerate(maps)]), mapped.shape)
    cl = [(0,), (1,), (0, 1), (1, 0), ()]
    for g, w in zip(mapped.marginals(cl), direct.marginals(cl), strict=True):
        np.testing.assert_array_equal(g, w)


def test_a_repeating_identifier_is_refused_in_the_engine_as_in_pandas(engine_source, tmp_path):
    df = pd.DataFrame({"pid": ["a", "a", "a", "b", None], "x": ["p", "q", "p", "q", "p"]})
    df.to_parquet(tmp_path / "t.parquet")
    doc = {
        "version": 1,
        "columns": {
            "pid": {"kind": "identifier"},
            "x": {"kind": "categorical", "categories": ["p", "q"]},
        },
    }
    schema = Schema.from_dict(doc)
    with pytest.raises(SchemaError) as in_pandas:
        schema.validate(df)
    with pytest.raises(SchemaError) as in_engine:
        engine_source(tmp_path / "t.parquet").validate(schema)
    assert str(in_engine.value) == str(in_pandas.value)
    assert "'pid' repeats (up to 3 rows" in str(in_engine.value)
    declared = Schema.from_dict(
        {**doc, "unit_of_privacy": {"column": "pid", "rows_are_people": True}}
    )
    engine_source(tmp_path / "t.parquet").validate(declared)  # said so: accepted
