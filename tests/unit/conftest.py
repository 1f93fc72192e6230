"""Fixtures shared by the generator contract tests (marginal and DP-SGD)."""

import numpy as np
import pandas as pd
import pytest

from privsynth.schema import Schema


@pytest.fixture(scope="module")
def table():
    """A small table every generator contract test fits: a perfect 2-way link (x, y), an
    undeclared category list with a value held by one row."""
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
