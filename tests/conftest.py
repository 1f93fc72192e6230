"""Shared fixtures. Test data is generated here or sliced from the bundled Adult sample."""

from __future__ import annotations

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


@pytest.fixture(params=["duckdb", "spark"])
def engine_source(request):
    """``engine_source(path)``: a DuckDB or Spark source reading a Parquet file
    (``engine_source.engine`` names the engine)."""
    if request.param == "duckdb":
        pytest.importorskip("duckdb", reason="DuckDB tests need duckdb: pip install '.[scale]'")
        from privsynth.marginals.duckdb import DuckDBSource

        def make(path):
            return DuckDBSource(path)
    else:
        session = request.getfixturevalue("spark")
        from privsynth.marginals.spark import SparkSource

        def make(path):
            return SparkSource(session.read.parquet(str(path)))

    make.engine = request.param
    return make
