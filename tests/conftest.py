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
