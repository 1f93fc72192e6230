"""The bundled sample: UCI Adult (CC BY 4.0, see ``privsynth/data/ADULT_ATTRIBUTION.md``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from privsynth.schema import Schema

_DATA = Path(__file__).parent / "data"


def adult_path() -> Path:
    """Path of the bundled ``adult.csv.gz`` (48,842 rows, 15 columns)."""
    return _DATA / "adult.csv.gz"


def load_adult() -> tuple[pd.DataFrame, Schema]:
    """The Adult sample and its schema of public domains (codebook categories, public bounds).

    Examples
    --------
    >>> df, schema = load_adult()
    >>> df.shape
    (48842, 15)
    >>> schema.data_dependent_columns()
    []
    """
    df = pd.read_csv(adult_path())
    return df, Schema.load(_DATA / "adult.schema.json")
