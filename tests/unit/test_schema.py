import json

import numpy as np
import pandas as pd
import pytest

from privsynth.errors import DataError, SchemaError
from privsynth.schema import Column, Schema, canonical_category


def test_round_trip_through_dict_and_file(tmp_path, toy_schema_dict):
    s = Schema.from_dict(toy_schema_dict)
    assert Schema.from_dict(s.to_dict()) == s
    s.save(tmp_path / "s.json")
    assert Schema.load(tmp_path / "s.json") == s
    assert json.loads((tmp_path / "s.json").read_text())["columns"]["clinic"] == {
        "kind": "categorical"
    }


@pytest.mark.parametrize(
    "spec, words",
    [
        ({"kind": "colour"}, ["'c'", "unknown kind 'colour'", "categorical"]),
        ({}, ["'c'", "'kind' is required"]),
        ({"kind": "integer", "lower": 0}, ["both 'lower' and 'upper'"]),
        ({"kind": "integer", "lower": 5, "upper": 5}, ["lower (5) must be < upper (5)"]),
        ({"kind": "integer", "categories": ["a"]}, ["only applies to categorical"]),
        ({"kind": "categorical", "categories": ["a", "a"]}, ["repeat ['a']"]),
        ({"kind": "categorical", "categories": []}, ["is empty"]),
        ({"kind": "continuous", "lower": 0, "upper": 1, "bins": 0}, ["bins (0)"]),
        ({"kind": "integer", "lower": 0, "upper": "x"}, ["must be numbers"]),
        ({"kind": "integer", "colour": 1}, ["unknown field(s) ['colour']"]),
    ],
)
def test_bad_column_specs_name_the_column_and_problem(spec, words):
    with pytest.raises(SchemaError) as err:
        Schema.from_dict({"version": 1, "columns": {"c": spec}})
    for w in words:
        assert w in str(err.value)


def test_bad_schema_files(tmp_path):
    (tmp_path / "bad.json").write_text('{"version": 1,\n "columns": {,}}')
    with pytest.raises(SchemaError, match=r"not valid JSON \(line 2"):
        Schema.load(tmp_path / "bad.json")
    with pytest.raises(SchemaError, match="does not exist"):
        Schema.load(tmp_path / "nope.json")
    with pytest.raises(SchemaError, match="version 2 is not supported"):
        Schema.from_dict({"version": 2, "columns": {"a": {"kind": "categorical"}}})
    with pytest.raises(SchemaError, match="unit_of_privacy"):
        Schema.from_dict(
            {
                "version": 1,
                "unit_of_privacy": "household",
                "columns": {"a": {"kind": "categorical"}},
            }
        )


def test_draft_flags_identifiers_and_marks_data_domains(toy_frame):
    df = toy_frame.assign(
        email=[f"p{i}@x.org" for i in range(len(toy_frame))],
        code=[f"c{i}" for i in range(len(toy_frame))],
    )
    df.loc[3, "clinic"] = None
    s = Schema.draft(df)
    assert s["patient_id"].kind == "identifier"  # by name
    assert s["email"].kind == "identifier"  # by name
    assert s["code"].kind == "identifier"  # near-unique values
    assert "distinct" in s["code"].note
    assert s["age"].kind == "integer" and s["age"].source == "data"
    assert (s["age"].lower, s["age"].upper) == (int(df.age.min()), int(df.age.max()))
    # numeric encodings are left to DP at the fit; precision and date units are proposed
    assert s["weight"].kind == "continuous" and s["weight"].bins is None
    assert s["weight"].decimals == 1 and s["weight"].needs_learned_encoding
    assert s["visit"].unit == "day"
    assert Schema.draft(df, bins=16)["weight"].bins == 16
    assert s["clinic"].categories == ("east", "north", "south") and s["clinic"].nullable
    assert s["sex"].nullable is False
    assert s["visit"].kind == "datetime"
    assert set(s.data_dependent_columns()) == {"age", "weight", "sex", "clinic", "visit"}


def test_release_refuses_data_domains_without_opt_in(toy_frame):
    s = Schema.draft(toy_frame)
    with pytest.raises(SchemaError, match="read from the data") as err:
        s.release_caveats()
    assert "--unsafe-data-domain" in str(err.value)
    caveats = s.release_caveats(allow_data_dependent_domain=True)
    assert len(caveats) == len(s.data_dependent_columns()) and "DP caveat" in caveats[0]
    assert (
        Schema.from_dict(
            {"version": 1, "columns": {"a": {"kind": "categorical"}}}
        ).release_caveats()
        == []
    )


def test_validate_clips_numbers_and_drops_identifiers(toy_frame, toy_schema_dict):
    s = Schema.from_dict(toy_schema_dict)
    df = toy_frame.copy()
    df.loc[0, "age"] = 130
    df.loc[1, "weight"] = 10.0
    clean, report = s.validate(df)
    assert "patient_id" not in clean.columns
    assert clean.loc[0, "age"] == 100 and clean.loc[1, "weight"] == 30
    assert report.clipped["age"] == 1 and report.clipped["weight"] == 1
    assert report.dropped_identifiers == ["patient_id"]
    assert any("clipped" in line for line in report.lines())


def test_unknown_category_error_names_column_value_and_fix(toy_frame, toy_schema_dict):
    s = Schema.from_dict(toy_schema_dict)
    df = toy_frame.copy()
    df.loc[[4, 9], "sex"] = "X"
    with pytest.raises(DataError) as err:
        s.validate(df)
    msg = str(err.value)
    assert "column 'sex'" in msg and "'X'" in msg and "2 row(s)" in msg and "row 4, 9" in msg
    assert "on_unknown='missing'" in msg
    with pytest.raises(SchemaError, match="nullable"):
        s.validate(df, on_unknown="missing")
    nullable = s.with_columns([Column("sex", "categorical", ("F", "M"), nullable=True)])
    clean, report = nullable.validate(df, on_unknown="missing")
    assert clean["sex"].isna().sum() == 2 and report.unknown_to_missing == {"sex": 2}


def test_missing_and_malformed_values(toy_frame, toy_schema_dict):
    s = Schema.from_dict(toy_schema_dict)
    df = toy_frame.copy()
    df["age"] = df["age"].astype(object)
    df.loc[5, "age"] = "old"
    with pytest.raises(DataError, match=r"column 'age'.*not numbers.*'old' at row 5"):
        s.validate(df)
    df = toy_frame.copy()
    df.loc[2, "weight"] = np.nan
    with pytest.raises(DataError, match=r"column 'weight': 1 missing.*nullable"):
        s.validate(df)
    df = toy_frame.copy()
    df.loc[2, "weight"] = np.inf
    with pytest.raises(DataError, match="infinite"):
        s.validate(df)
    df = toy_frame.copy()
    df.loc[2, "visit"] = "yesterday"
    with pytest.raises(DataError, match=r"column 'visit'.*not dates.*'yesterday'"):
        s.validate(df)


def test_columns_must_match(toy_frame, toy_schema_dict):
    s = Schema.from_dict(toy_schema_dict)
    with pytest.raises(SchemaError, match=r"\['age'\] are not in the data"):
        s.validate(toy_frame.drop(columns=["age"]))
    with pytest.raises(SchemaError, match=r"\['extra'\] are not in the schema"):
        s.validate(toy_frame.assign(extra=1))


def test_categories_match_across_types():
    assert canonical_category(1) == canonical_category(1.0) == canonical_category("1") == "1"
    s = Schema.from_dict(
        {"version": 1, "columns": {"sex": {"kind": "categorical", "categories": [0, 1]}}}
    )
    clean, _ = s.validate(pd.DataFrame({"sex": [0.0, 1.0, 1.0]}))
    assert clean["sex"].tolist() == ["0", "1", "1"]


def test_relative_dates_are_not_dates():
    schema = Schema.from_dict(
        {"version": 1, "columns": {"d": {"kind": "datetime", "lower": "2020-01-01",
                                         "upper": "2021-01-01"}}}
    )  # fmt: skip
    with pytest.raises(DataError, match="'today'"):
        schema.validate(pd.DataFrame({"d": ["2020-05-01", "today"]}))


def test_the_row_view_drops_identifiers_and_person_structure():
    from privsynth.datasets import VISITS_SCHEMA

    view = Schema.from_dict(VISITS_SCHEMA).row_view()
    assert "patient" not in view.names and not view.unit_of_privacy.is_person
    assert all(c.level == "row" and not c.order for c in view.columns)


def test_draft_takes_many_record_codes_for_an_identifier_but_not_diagnosis_codes():
    rng = np.random.default_rng(0)
    ids = [f"P{i:06d}" for i in rng.integers(0, 120, 600)]  # ~120 patients, repeating
    icd = [f"E{i:03d}" for i in rng.integers(0, 200, 600)]  # short codes: categories
    drafted = Schema.draft(pd.DataFrame({"patient": ids, "diagnosis": icd}))
    assert drafted["patient"].kind == "identifier" and "record codes" in drafted["patient"].note
    assert drafted["diagnosis"].kind == "categorical"
    assert drafted.unit_of_privacy.column == "patient"
