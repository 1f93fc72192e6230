"""A compare rule kept by construction: the left column modelled as its gap to the right
(:mod:`privsynth.generators.gaps`), without a fit."""

from __future__ import annotations

import pandas as pd

from privsynth.generators.gaps import from_gaps, gap_rules, gap_schema, to_gaps
from privsynth.sources.source import FrameSource
from tests.unit.test_rules import COLUMNS, RULES, schema_with, toy_rules_table


def test_the_left_column_of_a_date_rule_becomes_a_gap_in_days():
    schema = schema_with(RULES)  # leave >= admit + 1 day, both dates of 2020
    assert [r.kind for r in gap_rules(schema)] == ["compare"]
    model = gap_schema(schema)
    gap = model["leave"]
    # 2020 has 366 days: the longest gap is 2020-12-31 - 2020-01-01 - 1 day offset = 364 days.
    assert (gap.kind, gap.lower, gap.upper) == ("integer", 0, 364)
    assert [r.kind for r in model.rules] == ["determines", "forbid"]  # kept by construction
    assert model["admit"] == schema["admit"]


def test_integers_under_a_strict_rule_have_gaps_of_at_least_one():
    columns = {"a": {"kind": "integer", "lower": 0, "upper": 10},
               "b": {"kind": "integer", "lower": 0, "upper": 10}}  # fmt: skip
    rule = {"kind": "compare", "left": "a", "op": "<", "right": "b", "offset": 2}
    from privsynth.schema import Schema

    schema = Schema.from_dict({"version": 1, "columns": columns, "rules": [rule]})
    gap = gap_schema(schema)["a"]
    # a < b + 2: gap = b + 2 - a >= 1, at most 10 + 2 - 0 = 12.
    assert (gap.kind, gap.lower, gap.upper) == ("integer", 1, 12)
    rows = pd.DataFrame({"a": [0, 5, 11], "b": [0, 4, 10]})
    source = FrameSource(rows).validate(schema)
    gaps = to_gaps(source, schema).frame
    assert gaps["a"].tolist() == [2, 1, 2]  # 11 was clipped to the bound 10 by validation
    back = from_gaps(gaps.astype({"a": "int64", "b": "int64"}), schema, gap_schema(schema))
    assert back["a"].tolist() == [0, 5, 10]


def test_gaps_round_trip_to_the_dates_they_came_from():
    df, schema = toy_rules_table(300, seed=3)
    source = FrameSource(df).validate(schema)
    gaps = to_gaps(source, schema)
    days = (pd.to_datetime(df["leave"]) - pd.to_datetime(df["admit"])).dt.days - 1
    assert gaps.frame["leave"].tolist() == days.tolist()
    assert gaps.raw["leave"].tolist() == days.tolist()  # what a learned encoding re-validates
    decoded = gaps.frame.assign(admit=pd.to_datetime(df["admit"]))
    back = from_gaps(decoded, schema, gap_schema(schema))
    pd.testing.assert_series_equal(
        back["leave"], pd.to_datetime(df["leave"]).astype("datetime64[ns]"), check_names=False
    )


def test_a_column_in_two_rules_or_a_chain_is_not_modelled_as_a_gap():
    twice = [*RULES, {"kind": "compare", "left": "leave", "op": "<=", "right": "admit",
                      "offset": 60}]  # fmt: skip
    assert gap_rules(schema_with(twice)) == []
    assert gap_schema(schema_with(twice))["leave"].kind == "datetime"
    no_compare = [r for r in RULES if r["kind"] != "compare"]
    assert gap_rules(schema_with(no_compare)) == []


def test_a_rule_on_columns_without_declared_bounds_is_kept_by_redraw_instead():
    columns = {**COLUMNS, "leave": {"kind": "datetime", "unit": "day"}}
    from privsynth.schema import Schema

    schema = Schema.from_dict({"version": 1, "columns": columns, "rules": RULES})
    assert gap_rules(schema) == [] and gap_schema(schema) is schema
