"""People, not rows: parsing the unit of privacy, the refusal, bounding, splitting, ids."""

import secrets

import numpy as np
import pandas as pd
import pytest

from privsynth.errors import DataError, SchemaError
from privsynth.persons import (
    KEEP_SHARE,
    bound_rows,
    choose_max_rows,
    held_out_persons,
    measure_rows_per_person,
    person_sizes,
    rows_per_person,
    rows_pmf,
    synthetic_ids,
)
from privsynth.schema.unit import UnitOfPrivacy, check_persons


def visits(seed: int = 0) -> pd.DataFrame:
    """Patients with 1-30 visits each (heavy-tailed), a lab value and a visit day."""
    rng = np.random.default_rng(seed)
    sizes = np.minimum(rng.geometric(0.15, 300), 30)
    pid = np.repeat([f"P{i:04d}" for i in range(300)], sizes)
    return pd.DataFrame(
        {"pid": pid, "lab": rng.lognormal(1, 1, len(pid)), "day": rng.integers(0, 365, len(pid))}
    )


@pytest.mark.parametrize(
    ("doc", "unit"),
    [
        ("row", UnitOfPrivacy()),
        (None, UnitOfPrivacy()),
        ({"column": "pid", "max_rows": 20}, UnitOfPrivacy("pid", 20)),
        ({"column": "pid", "max_rows": "dp"}, UnitOfPrivacy("pid", "dp")),
        ({"column": "hh", "rows_are_people": True}, UnitOfPrivacy("hh", rows_are_people=True)),
    ],
)
def test_the_unit_round_trips_through_the_schema_file(doc, unit):
    assert UnitOfPrivacy.parse(doc) == unit
    assert UnitOfPrivacy.parse(unit.to_json()) == unit


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("person", "is not supported"),
        ({"max_rows": 3}, "name the identifier 'column'"),
        ({"column": "pid"}, "give 'max_rows'"),
        ({"column": "pid", "max_rows": 0}, "whole number >= 1"),
        ({"column": "pid", "max_rows": 2.5}, "whole number >= 1"),
        ({"column": "pid", "max_rows": 3, "rows_are_people": True}, "exclude each other"),
        ({"column": "pid", "max_rows": 3, "k": 1}, "unknown key"),
    ],
)
def test_a_bad_unit_is_a_schema_error_naming_the_fix(doc, message):
    with pytest.raises(SchemaError, match=message):
        UnitOfPrivacy.parse(doc)


def test_the_report_line_states_the_person_and_k():
    assert UnitOfPrivacy("pid", 20).describe() == "person (column 'pid'), at most 20 rows each"
    assert UnitOfPrivacy("pid", "dp").describe(7) == "person (column 'pid'), at most 7 rows each"
    assert UnitOfPrivacy().describe().startswith("row")


def test_a_row_level_schema_with_a_repeating_identifier_is_refused():
    df = visits()
    most = int(rows_per_person(df["pid"]).max())
    with pytest.raises(SchemaError) as err:
        check_persons(df, UnitOfPrivacy(), ["pid"])
    msg = str(err.value)
    assert f"'pid' repeats (up to {most} rows" in msg
    assert '"max_rows": K' in msg and '"rows_are_people": true' in msg
    # Declared either way, the check passes.
    check_persons(df, UnitOfPrivacy("pid", 10), ["pid"])
    check_persons(df, UnitOfPrivacy("pid", rows_are_people=True), ["pid"])
    # A unique identifier is not refused.
    check_persons(df.drop_duplicates("pid"), UnitOfPrivacy(), ["pid"])


def test_missing_and_synthetic_looking_person_ids_are_refused_naming_the_row():
    df = visits()
    df.loc[7, "pid"] = None
    with pytest.raises(DataError, match=r"'pid' .* missing at row\(s\) \[7\]"):
        check_persons(df, UnitOfPrivacy("pid", 5), ["pid"])
    df.loc[7, "pid"] = "S-000012"
    with pytest.raises(DataError, match="'S-000012' at row 7"):
        check_persons(df, UnitOfPrivacy("pid", 5), ["pid"])


@pytest.mark.parametrize("k", [1, 3, 12])
def test_bounding_keeps_at_most_k_rows_per_person_and_every_short_person_whole(k):
    df = visits()
    before = df["pid"].value_counts()
    keep, truncated = bound_rows(df, "pid", k, np.random.default_rng(1))
    out = df[keep]
    after = out["pid"].value_counts()
    assert after.max() <= k
    assert (after == np.minimum(before, k).reindex(after.index)).all()
    assert truncated == int((before > k).sum())


def test_bounding_drops_a_different_subset_each_release():
    # Seeded from OS entropy as a release does: two draws keep different subsets of a
    # person's 30 rows (the chance that 5 of 30 come out the same is 1/C(30,5) < 1e-5).
    df = pd.DataFrame({"pid": ["a"] * 30, "x": range(30)})
    keep = [
        tuple(df["x"][bound_rows(df, "pid", 5, np.random.default_rng(secrets.randbits(128)))[0]])
        for _ in range(2)
    ]
    assert keep[0] != keep[1]


def test_the_holdout_split_keeps_each_person_on_one_side():
    df = visits()
    held = held_out_persons(df["pid"], 0.3, np.random.default_rng(0))
    train, hold = df[~held], df[held]
    assert not set(train["pid"]) & set(hold["pid"])
    assert len(train) + len(hold) == len(df)
    # About 30% of 300 persons held out: sd sqrt(300 * 0.3 * 0.7) ~ 7.9; 4 sds is 32.
    assert abs(hold["pid"].nunique() - 90) < 32


def test_k_is_a_dp_quantile_of_rows_per_person():
    # 1,000 persons: 900 own 2 rows, 100 own 40. The 0.95 quantile is 40; at epsilon 20 the
    # exponential mechanism's rank error is about ln(100) / 20 < 1 person in 1,000, so K
    # lands on 40's side of the jump from 2 (the candidates between 2 and 40 all hold rank
    # 900, far from the wanted 950).
    assert KEEP_SHARE == 0.95
    ids = pd.Series(np.repeat(np.arange(1000), [2] * 900 + [40] * 100))
    k, charge = choose_max_rows(ids, epsilon=20.0)
    assert k == 40 and charge.epsilon == pytest.approx(20.0)


def test_the_rows_per_person_distribution_is_post_processed_noise():
    np.testing.assert_allclose(rows_pmf(np.array([30.0, -5.0, 10.0])), [0.75, 0.0, 0.25])
    np.testing.assert_allclose(rows_pmf(np.array([-1.0, -2.0])), [1.0, 0.0])  # all noise


def test_the_rows_per_person_histogram_has_person_sensitivity_one():
    # Each person is one count, whatever their rows: with 200 persons the noisy histogram
    # sums to 200 within a few sigma (sigma = 1/sqrt(2 rho) = 1 per bucket at rho = 0.5, so
    # the sum of 5 buckets has sd sqrt(5) ~ 2.2; 12 is over 5 sds).
    ids = pd.Series(np.repeat(np.arange(200), np.arange(200) % 7 + 1))
    noisy, charge = measure_rows_per_person(ids, 5, rho=0.5)
    assert len(noisy) == 5 and abs(noisy.sum() - 200) < 12 and charge.rho == pytest.approx(0.5)


def test_synthetic_persons_hold_exactly_the_rows_asked_for():
    pmf = np.array([0.5, 0.0, 0.5])  # 1 or 3 rows
    sizes = person_sizes(pmf, 1001, np.random.default_rng(3))
    assert sizes.sum() == 1001 and sizes.min() >= 1 and sizes[:-1].max() <= 3
    assert set(np.unique(sizes[:-1])) <= {1, 3}
    ids = synthetic_ids(len(sizes))
    assert ids[0] == "S-000001" and len(set(ids)) == len(ids)


def test_a_distinct_order_column_is_an_integer_and_round_trips():
    from privsynth.schema import Column

    year = Column.from_dict(
        "year", {"kind": "integer", "lower": 68, "upper": 88, "order": "distinct"}
    )
    assert year.order == "distinct" and Column.from_dict("year", year.to_dict()) == year
    with pytest.raises(SchemaError, match="needs an integer column"):
        Column.from_dict("day", {"kind": "continuous", "lower": 0, "upper": 1, "order": "distinct"})
    with pytest.raises(SchemaError, match='must be true, false or "distinct"'):
        Column.from_dict("year", {"kind": "integer", "lower": 0, "upper": 1, "order": "strict"})
