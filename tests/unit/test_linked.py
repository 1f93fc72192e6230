"""Linked tables (issue #22, item 5): the schema of a parent and a child table, their join and
their split, without a fit."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest

from privsynth.datasets import LINKED_VISITS_SCHEMA, make_patients_and_visits
from privsynth.errors import DataError, SchemaError
from privsynth.schema import LinkedSchema, Schema, load_schema


@pytest.fixture(scope="module")
def linked():
    return make_patients_and_visits(80, seed=3)


def doc():
    return copy.deepcopy(LINKED_VISITS_SCHEMA)


def test_the_join_is_a_person_level_table_with_the_parents_columns_constant(linked):
    tables, schema = linked
    joined = schema.joined()
    assert joined.unit_of_privacy.describe() == "person (column 'patient'), at most 12 rows each"
    assert [c.name for c in joined.columns if c.level == "unit"] == ["sex", "arm", "birth_year"]
    assert joined["day"].order
    rows, notes = schema.join(tables)
    assert len(rows) == len(tables["visits"]) and rows.columns.tolist() == joined.names
    assert (rows.groupby("patient")[["sex", "arm", "birth_year"]].nunique() == 1).all().all()
    childless = int((~tables["patients"]["patient"].isin(tables["visits"]["patient"])).sum())
    assert childless == 4  # 5% of 80 patients were made without visits
    assert notes == [
        f"patients: {childless} person(s) have no row in visits; they are not modelled, and "
        "the synthetic table has no childless persons"
    ]
    joined.validate(rows)  # a valid person-level table: unit columns constant


def test_split_gives_one_parent_row_per_person_and_keys_that_agree(linked):
    tables, schema = linked
    rows, _ = schema.join(tables)
    out = schema.split(rows)
    assert out["patients"]["patient"].is_unique
    assert set(out["visits"]["patient"]) == set(out["patients"]["patient"])
    assert out["patients"].columns.tolist() == ["patient", "sex", "arm", "birth_year"]
    assert out["visits"].columns.tolist() == ["patient", "day", "ward", "glucose", "cost"]
    # Round trip: the patients with visits, unchanged.
    real = tables["patients"].set_index("patient").loc[out["patients"]["patient"]]
    pd.testing.assert_frame_equal(out["patients"].set_index("patient"), real)


def test_the_schema_round_trips_and_a_file_is_read_by_its_form(tmp_path):
    schema = LinkedSchema.from_dict(doc())
    assert LinkedSchema.from_dict(json.loads(schema.to_json())) == schema
    (tmp_path / "linked.json").write_text(schema.to_json())
    assert load_schema(tmp_path / "linked.json") == schema
    with pytest.raises(SchemaError, match="load_schema"):
        Schema.load(tmp_path / "linked.json")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["tables"].pop("patients"), "two tables"),
        (lambda d: d["tables"]["visits"].pop("foreign_key"), "exactly one table needs"),
        (lambda d: d["tables"]["visits"].pop("max_rows"), "give 'max_rows'"),
        (
            lambda d: d["tables"]["visits"]["foreign_key"].update(parent="people"),
            "names parent 'people'",
        ),
        (
            lambda d: d["tables"]["patients"]["columns"].pop("patient"),
            "table 'patients': the key 'patient' must be one of its columns",
        ),
        (
            lambda d: d["tables"]["patients"]["columns"].update(
                ward={"kind": "categorical", "categories": ["A"]}
            ),
            r"both have column\(s\) \['ward'\]",
        ),
        (
            lambda d: d["tables"]["patients"]["columns"]["sex"].update(level="unit"),
            "a parent row is the person",
        ),
        (lambda d: d["tables"]["visits"].update(rows=3), r"unknown field\(s\) \['rows'\]"),
        (
            lambda d: d["tables"]["visits"]["columns"]["ward"].update(kind="colour"),
            "table 'visits': column 'ward'",
        ),
    ],
)
def test_a_bad_linked_schema_is_named(edit, message):
    d = doc()
    edit(d)
    with pytest.raises(SchemaError, match=message):
        LinkedSchema.from_dict(d)


def test_bad_tables_name_the_table_column_and_rows(linked):
    tables, schema = linked
    p, v = tables["patients"], tables["visits"]
    with pytest.raises(DataError, match="give both"):
        schema.join({"visits": v})
    orphan = v.copy()
    orphan.loc[7, "patient"] = "P999999"
    with pytest.raises(DataError, match=r"'P999999' \(row\(s\) 7\) names no row of 'patients'"):
        schema.join({"patients": p, "visits": orphan})
    missing = v.copy()
    missing.loc[[2, 5], "patient"] = None
    with pytest.raises(
        DataError, match=r"table 'visits': key 'patient' is missing in row\(s\) 2, 5"
    ):
        schema.join({"patients": p, "visits": missing})
    twice = pd.concat([p, p.iloc[[0]]], ignore_index=True)
    last = len(twice) - 1
    with pytest.raises(
        DataError, match=rf"key 'patient' repeats \('P000000' in row\(s\) 0, {last}\)"
    ):
        schema.join({"patients": twice, "visits": v})
    with pytest.raises(DataError, match=r"table 'patients' lacks column\(s\) \['sex'\]"):
        schema.join({"patients": p.drop(columns="sex"), "visits": v})
