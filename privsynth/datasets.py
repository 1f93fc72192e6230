"""The bundled sample: UCI Adult (CC BY 4.0, see ``privsynth/data/ADULT_ATTRIBUTION.md``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from privsynth.schema import LinkedSchema, Schema

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


#: The schema of :func:`make_visits`: codebook facts only, the person declared.
VISITS_SCHEMA: dict[str, Any] = {
    "version": 1,
    "unit_of_privacy": {"column": "patient", "max_rows": 12},
    "columns": {
        "patient": {"kind": "identifier"},
        "sex": {"kind": "categorical", "categories": ["F", "M"], "level": "unit"},
        "arm": {"kind": "categorical", "categories": ["control", "drug"], "level": "unit"},
        "birth_year": {"kind": "integer", "lower": 1920, "upper": 2010, "level": "unit"},
        "day": {"kind": "integer", "lower": 0, "upper": 729, "order": True},
        "ward": {"kind": "categorical", "categories": ["A", "B", "C", "ICU"]},
        "glucose": {"kind": "continuous", "lower": 0, "upper": 1000, "decimals": 1},
        "cost": {"kind": "continuous", "lower": 0, "upper": 1000000, "decimals": 2},
    },
}


def make_visits(n_patients: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, Schema]:
    """A generated hospital-visits table with known structure, and its schema.

    Patients own 1-30 visits (heavy-tailed); sex, treatment arm and birth year are constant
    within a patient; visit days are ordered; glucose depends on sex and arm; cost is zero for
    most visits and heavy-tailed otherwise, higher in the ICU. Public synthetic data: made
    with numpy's generator for tests and benchmarks, not a privacy mechanism.

    Examples
    --------
    >>> df, schema = make_visits(50, seed=1)
    >>> int(df.groupby("patient")["sex"].nunique().max())
    1
    >>> schema.unit_of_privacy.describe()
    "person (column 'patient'), at most 12 rows each"
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    visits = np.minimum(rng.geometric(0.15, n_patients), 30)
    owner = np.repeat(np.arange(n_patients), visits)
    sex = rng.choice(["F", "M"], n_patients)[owner]
    arm = rng.choice(["control", "drug"], n_patients, p=[0.4, 0.6])[owner]
    birth = rng.integers(1930, 2005, n_patients)[owner]
    first = rng.integers(0, 365, n_patients)
    gaps = np.cumsum(rng.geometric(1 / 30, len(owner)))
    since_first = gaps - np.repeat(gaps[np.cumsum(visits) - visits], visits)
    day = np.minimum(first[owner] + since_first, 729)
    ward = rng.choice(["A", "B", "C", "ICU"], len(owner), p=[0.35, 0.3, 0.25, 0.1])
    glucose = rng.normal(100 + 15 * (sex == "M") - 10 * (arm == "drug"), 18).clip(30, 600)
    billed = rng.random(len(owner)) < 0.3 + 0.5 * (ward == "ICU")
    cost = np.where(billed, rng.lognormal(6 + 1.5 * (ward == "ICU"), 1.2), 0.0)
    df = pd.DataFrame(
        {
            "patient": np.char.add("P", np.char.zfill(owner.astype(str), 6)),
            "sex": sex,
            "arm": arm,
            "birth_year": birth,
            "day": day,
            "ward": ward,
            "glucose": glucose.round(1),
            "cost": cost.clip(0, 1_000_000).round(2),
        }
    )
    return df, Schema.from_dict(VISITS_SCHEMA)


#: The linked form of :data:`VISITS_SCHEMA`: a patients table and a visits table.
LINKED_VISITS_SCHEMA: dict[str, Any] = {
    "version": 1,
    "tables": {
        "patients": {
            "columns": {
                "patient": {"kind": "identifier"},
                **{
                    name: {k: v for k, v in spec.items() if k != "level"}
                    for name, spec in VISITS_SCHEMA["columns"].items()
                    if spec.get("level") == "unit"
                },
            }
        },
        "visits": {
            "foreign_key": {"column": "patient", "parent": "patients"},
            "max_rows": 12,
            "columns": {
                name: spec
                for name, spec in VISITS_SCHEMA["columns"].items()
                if spec.get("level") != "unit"
            },
        },
    },
}


def make_patients_and_visits(
    n_patients: int = 2000, seed: int = 0, childless: float = 0.05
) -> tuple[dict[str, pd.DataFrame], LinkedSchema]:
    """:func:`make_visits` as two linked tables, ``patients`` (one row each, plus a share
    ``childless`` of patients with no visit) and ``visits``, and their schema.

    Examples
    --------
    >>> tables, schema = make_patients_and_visits(50, seed=1)
    >>> sorted(tables), schema.key, schema.max_rows
    (['patients', 'visits'], 'patient', 12)
    >>> bool(tables["visits"]["patient"].isin(tables["patients"]["patient"]).all())
    True
    """
    import numpy as np

    df, _ = make_visits(n_patients, seed)
    schema = LinkedSchema.from_dict(LINKED_VISITS_SCHEMA)
    parent = [c.name for c in schema.parent_columns]
    patients = df.drop_duplicates("patient")[parent].reset_index(drop=True)
    rng = np.random.default_rng(seed + 1)
    extra = patients.sample(int(childless * n_patients), random_state=seed).reset_index(drop=True)
    extra["patient"] = [f"Q{i:06d}" for i in range(len(extra))]  # patients with no visit
    extra["birth_year"] = rng.integers(1930, 2005, len(extra))
    return {
        "patients": pd.concat([patients, extra], ignore_index=True),
        "visits": df[[c.name for c in schema.child_columns]],
    }, schema
