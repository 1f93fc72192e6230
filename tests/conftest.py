"""Shared fixtures. Test data is generated here or sliced from the bundled Adult sample."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def toy_frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 200
    return pd.DataFrame(
        {
            "patient_id": np.arange(n),
            "age": rng.integers(18, 90, n),
            "weight": rng.normal(75, 12, n).round(1),
            "sex": rng.choice(["F", "M"], n),
            "clinic": rng.choice(["north", "south", "east"], n),
            "visit": pd.date_range("2020-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
        }
    )


@pytest.fixture
def toy_schema_dict() -> dict:
    return {
        "version": 1,
        "unit_of_privacy": "row",
        "columns": {
            "patient_id": {"kind": "identifier"},
            "age": {"kind": "integer", "lower": 0, "upper": 100},
            "weight": {"kind": "continuous", "lower": 30, "upper": 150, "bins": 24},
            "sex": {"kind": "categorical", "categories": ["F", "M"]},
            "clinic": {"kind": "categorical"},
            "visit": {"kind": "datetime", "lower": "2019-01-01", "upper": "2022-01-01"},
        },
    }


@pytest.fixture(scope="session")
def adult_rows():
    """2,400 rows of the bundled Adult sample in a seeded random order, and its schema."""
    from privsynth.datasets import load_adult

    df, schema = load_adult()
    rows = np.random.default_rng(5).permutation(len(df))[:2400]
    return df.iloc[rows].reset_index(drop=True), schema


@pytest.fixture(scope="session")
def adult_split(adult_rows):
    """Disjoint Adult train and holdout sets of 800 rows each, and the schema."""
    df, schema = adult_rows
    return df.iloc[:800].reset_index(drop=True), df.iloc[800:1600].reset_index(drop=True), schema


@pytest.fixture(scope="session")
def spark():
    """One small local Spark session for every Spark test (skipped without pyspark or Java)."""
    import shutil

    pytest.importorskip("pyspark", reason="Spark tests need pyspark: pip install '.[scale]'")
    if shutil.which("java") is None:
        pytest.skip("Spark tests need Java (17 or later) on PATH; none was found")
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[1]")
        .appName("privsynth-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def pg_server():
    """One throwaway PostgreSQL server for the session (skipped without PostgreSQL)."""
    from tests.ledger_backends import Server, find_bin

    bindir = find_bin()
    if bindir is None:
        pytest.skip(
            "PostgreSQL ledger tests need a PostgreSQL server: initdb was not found "
            "(apt-get install postgresql)"
        )
    server = Server(bindir)
    server.start()
    yield server
    server.remove()


@pytest.fixture
def pg_url(pg_server):
    """The URL of a fresh, empty PostgreSQL database (no ledger tables yet)."""
    url = pg_server.new_database()
    yield url
    pg_server.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_at(request, tmp_path):
    """Where a new ledger goes: an SQLite file path, or a fresh PostgreSQL database's URL."""
    if request.param == "sqlite":
        return tmp_path / "ledger.db"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def other_ledger_at(ledger_at, tmp_path, request):
    """A second new ledger of the same backend as ``ledger_at``."""
    if isinstance(ledger_at, str):
        server = request.getfixturevalue("pg_server")
        url = server.new_database()
        yield url
        server.drop_database(url)
    else:
        yield tmp_path / "other.db"


@pytest.fixture(params=["duckdb", "spark"])
def engine_source(request):
    """``engine_source(path)``: a DuckDB or Spark source reading a Parquet file
    (``engine_source.engine`` names the engine)."""
    if request.param == "duckdb":
        pytest.importorskip("duckdb", reason="DuckDB tests need duckdb: pip install '.[scale]'")
        from privsynth.sources.duckdb import DuckDBSource

        def make(path):
            return DuckDBSource(path)
    else:
        session = request.getfixturevalue("spark")
        from privsynth.sources.spark import SparkSource

        def make(path):
            return SparkSource(session.read.parquet(str(path)))

    make.engine = request.param
    return make


def messy_frame(n: int = 4000, seed: int = 11) -> pd.DataFrame:
    """A table as custodians hold them: zero-inflated heavy-tailed amounts, a point mass,
    turnaround times far below their public range, dates, nulls and a rare code."""
    rng = np.random.default_rng(seed)
    amount = np.where(rng.random(n) < 0.7, 0, np.round(rng.lognormal(8, 1.5, n)))
    amount = np.minimum(amount, 99_999)
    amount[rng.random(n) < 0.02] = 99_999  # top-coded
    hours = np.where(rng.random(n) < 0.45, 40, rng.integers(1, 100, n))
    turnaround = rng.lognormal(np.log(1.9), 0.8, n)  # hours; public range 0..2,000
    visit = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1500, n), "D")
    frame = pd.DataFrame(
        {
            "amount": amount.astype(np.int64),
            "hours": hours,
            "turnaround": turnaround.round(3),
            "visit": visit.strftime("%Y-%m-%d"),
            "balance": np.where(rng.random(n) < 0.1, np.nan, rng.normal(500, 2000, n).round(2)),
            "code": rng.choice(["A", "B", "C"], n, p=[0.6, 0.3, 0.1]).astype(object),
        }
    )
    frame.loc[:2, "code"] = "Z-rare"
    return frame


MESSY_SCHEMA = {
    "version": 1,
    "columns": {
        "amount": {"kind": "integer", "lower": 0, "upper": 99_999},
        "hours": {"kind": "integer", "lower": 1, "upper": 168},  # hours in a week
        "turnaround": {"kind": "continuous", "lower": 0, "upper": 2000, "decimals": 3},
        "visit": {"kind": "datetime", "lower": "2019-01-01", "upper": "2025-01-01", "unit": "day"},
        "balance": {"kind": "continuous", "lower": -20_000, "upper": 20_000, "nullable": True},
        "code": {"kind": "categorical"},
    },
}


@pytest.fixture
def messy() -> tuple[pd.DataFrame, dict]:
    return messy_frame(), copy.deepcopy(MESSY_SCHEMA)


@pytest.fixture(scope="session")
def make_messy():
    """``make_messy(n, seed)``: :func:`messy_frame` and a fresh copy of its schema, for
    module-scoped fixtures."""
    return lambda n=4000, seed=11: (messy_frame(n, seed), copy.deepcopy(MESSY_SCHEMA))


@pytest.fixture(scope="module")
def table():
    """A small table every generator fits: a perfect 2-way link (x, y), an undeclared
    category list with a value held by one row."""
    from privsynth import Schema

    rng = np.random.default_rng(11)
    n = 3000
    x = rng.integers(0, 4, n)
    df = pd.DataFrame(
        {
            "x": x.astype(str),
            "y": x.astype(str),  # a perfect 2-way link that independent sampling would break
            "age": rng.integers(20, 70, n),
            "clinic": rng.choice(["north", "south", "east"], n).astype(object),
            "income": rng.choice(["<=50K", ">50K"], n, p=[0.8, 0.2]),
        }
    )
    df.loc[7, "clinic"] = "Dr. Unique"  # held by one row
    schema = Schema.from_dict(
        {
            "version": 1,
            "columns": {
                "x": {"kind": "categorical", "categories": ["0", "1", "2", "3"]},
                "y": {"kind": "categorical", "categories": ["0", "1", "2", "3"]},
                "age": {"kind": "integer", "lower": 18, "upper": 80, "bins": 16},
                "clinic": {"kind": "categorical"},
                "income": {"kind": "categorical", "categories": ["<=50K", ">50K"]},
            },
        }
    )
    return df, schema


class _Tripwire:
    """Stands in for data that must not be touched: any use of it fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"the data was read ({name}) before the budget was checked")

    def __len__(self):
        raise AssertionError("the data was read (len) before the budget was checked")


@pytest.fixture
def tripwire() -> _Tripwire:
    """Data a generator must refuse before reading (budget, parameters, domains)."""
    return _Tripwire()
