"""Rules in the schema: parsing, the checks that refuse bad rules, counting broken rows,
structural zeros and the repair at sampling (pure logic, no fit)."""

import numpy as np
import pandas as pd
import pytest

from privsynth.errors import DataError, SchemaError
from privsynth.generators.marginal.zeros import structural_zeros
from privsynth.generators.rules import derive, derived_columns, keep_rules
from privsynth.inference.estimate import Measurement, estimate
from privsynth.schema import Schema
from privsynth.schema.rules import broken_rows
from privsynth.sources.source import FrameSource

EDU_NUM = {"HS": 9, "BA": 13, "MA": 14, "PhD": 16}
COLUMNS = {
    "edu": {"kind": "categorical", "categories": list(EDU_NUM)},
    "edu_num": {"kind": "integer", "lower": 1, "upper": 16},
    "rel": {"kind": "categorical", "categories": ["Husband", "Wife", "Child"]},
    "sex": {"kind": "categorical", "categories": ["F", "M"]},
    "admit": {"kind": "datetime", "lower": "2020-01-01", "upper": "2020-12-31", "unit": "day"},
    "leave": {"kind": "datetime", "lower": "2020-01-01", "upper": "2020-12-31", "unit": "day"},
    "id": {"kind": "identifier"},
}
OFF_BOUNDS = {**EDU_NUM, "BA": 20}  # edu_num's upper bound is 16
RULES = [
    {"kind": "determines", "columns": ["edu", "edu_num"], "mapping": EDU_NUM},
    {"kind": "forbid", "columns": ["rel", "sex"], "values": [["Husband", "F"], ["Wife", "M"]]},
    {"kind": "compare", "left": "leave", "op": ">=", "right": "admit", "offset": 1},
]


def toy_rules_table(n: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, Schema]:
    """A table that keeps the three rules of :data:`RULES` (one of each kind)."""
    rng = np.random.default_rng(seed)
    edu = rng.choice(list(EDU_NUM), n, p=[0.4, 0.3, 0.2, 0.1])
    rel = rng.choice(["Husband", "Wife", "Child"], n)
    sex = np.where(rel == "Husband", "M", np.where(rel == "Wife", "F", rng.choice(["F", "M"], n)))
    admit = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 300, n), unit="D")
    leave = admit + pd.to_timedelta(rng.integers(1, 40, n), unit="D")
    df = pd.DataFrame(
        {
            "edu": edu,
            "edu_num": [EDU_NUM[e] for e in edu],
            "rel": rel,
            "sex": sex,
            "admit": admit.strftime("%Y-%m-%d"),
            "leave": leave.strftime("%Y-%m-%d"),
            "id": np.arange(n),
        }
    )
    return df, Schema.from_dict({"version": 1, "columns": COLUMNS, "rules": RULES})


def schema_with(rules: list) -> Schema:
    return Schema.from_dict({"version": 1, "columns": COLUMNS, "rules": rules})


def test_rules_round_trip_through_json():
    _, schema = toy_rules_table(10)
    again = Schema.from_dict(schema.to_dict())
    assert again == schema and again.to_dict()["rules"] == RULES
    assert [r.kind for r in schema.rules] == ["determines", "forbid", "compare"]


@pytest.mark.parametrize(
    ("rules", "says"),
    [
        ([{"kind": "forbid", "columns": ["rel", "nope"], "values": []}], "column 'nope' is not"),
        ([{"kind": "forbid", "columns": ["rel", "id"], "values": []}], "'id' is an identifier"),
        (
            [{"kind": "forbid", "columns": ["rel", "sex"], "values": [["Husband", "X"]]}],
            r"rules\[0\] \(forbid rel, sex\): value 'X' is not a category of column 'sex'",
        ),
        ([{"kind": "forbid", "columns": ["rel", "admit"], "values": []}], "'admit' is datetime"),
        ([{"kind": "compare", "left": "edu", "op": ">", "right": "admit"}], "'edu' is categorical"),
        ([{"kind": "compare", "left": "edu_num", "op": ">", "right": "admit"}], "a datetime"),
        ([{"kind": "compare", "left": "leave", "op": "=>", "right": "admit"}], "op '=>'"),
        ([{"kind": "determines", "columns": ["edu"]}], r"\[fine, coarse\]"),
        (
            [{"kind": "determines", "columns": ["edu", "edu_num"], "mapping": {"HS": 9}}],
            r"gives no 'edu_num' for 'edu' value\(s\) \['BA', 'MA', 'PhD'\]",
        ),
        (
            [
                {
                    "kind": "determines",
                    "columns": ["edu", "edu_num"],
                    "mapping": {**EDU_NUM, "BA": 20},
                }
            ],
            "outside the bounds",
        ),
        ([{"kind": "forbid", "columns": ["rel", "sex"], "value": []}], r"unknown field\(s\)"),
        ([{"kind": "sometimes", "columns": ["rel", "sex"]}], "kind 'sometimes'"),
    ],
)
def test_bad_rules_are_clear_schema_errors(rules, says):
    with pytest.raises(SchemaError, match=says):
        schema_with(rules)


def test_a_cyclic_determines_chain_is_refused():
    rules = [
        {"kind": "determines", "columns": ["rel", "sex"]},
        {"kind": "determines", "columns": ["sex", "edu"]},
        {"kind": "determines", "columns": ["edu", "rel"]},
    ]
    with pytest.raises(SchemaError, match=r"cycle \(sex -> edu -> rel -> sex\)"):
        schema_with(rules)
    with pytest.raises(SchemaError, match="already determined"):
        schema_with([rules[0], {"kind": "determines", "columns": ["edu", "sex"]}])


@pytest.mark.parametrize(
    "rules",
    [
        [
            {"kind": "allow", "columns": ["rel", "sex"], "values": [["Child", "F"]]},
            {"kind": "forbid", "columns": ["sex", "rel"], "values": [["F", "Child"]]},
        ],
        [{"kind": "allow", "columns": ["rel", "sex"], "values": []}],
        [
            {"kind": "compare", "left": "leave", "op": ">=", "right": "admit"},
            {"kind": "compare", "left": "admit", "op": ">", "right": "leave"},
        ],
        # each holds alone, not with the bounds: a year apart within one year
        [{"kind": "compare", "left": "leave", "op": ">=", "right": "admit", "offset": 400}],
    ],
)
def test_contradictory_rules_are_refused(rules):
    with pytest.raises(SchemaError, match="no row could keep them|cannot all hold|every row"):
        schema_with(rules)


def test_broken_rows_counts_each_kind_and_ignores_nulls():
    df, schema = toy_rules_table(50)
    clean, _ = schema.validate(df)
    assert schema.rule_violations(clean) == [0, 0, 0]
    bad = clean.copy()
    bad.loc[0, "edu_num"] = 3  # HS is 9
    bad.loc[[1, 2], "sex"] = np.where(bad.loc[[1, 2], "rel"] == "Husband", "F", "M")
    bad.loc[[1, 2], "rel"] = ["Husband", "Husband"]
    bad.loc[[1, 2], "sex"] = "F"
    bad.loc[3, "leave"] = bad.loc[3, "admit"]  # offset 1 day: same day breaks it
    assert schema.rule_violations(bad) == [1, 2, 1]
    bad.loc[[1, 2], "sex"] = None  # a null never breaks a rule
    bad.loc[3, "admit"] = np.nan
    assert schema.rule_violations(bad) == [1, 0, 0]


def test_determines_without_mapping_counts_rows_off_the_most_common_value():
    schema = schema_with([{"kind": "determines", "columns": ["edu", "edu_num"]}])
    frame = pd.DataFrame({"edu": ["HS"] * 5 + ["BA"] * 2, "edu_num": [9, 9, 9, 8, 7, 13, 13]})
    assert broken_rows(schema.rules[0], frame, {c.name: c for c in schema.columns}).sum() == 2


def test_source_refuses_rows_that_break_a_rule_or_drops_them():
    df, schema = toy_rules_table(200)
    df.loc[[5, 9], ["rel", "sex"]] = ["Wife", "M"]
    with pytest.raises(DataError, match=r"rules\[1\] \(forbid rel, sex\): 2 row\(s\).*drop"):
        FrameSource(df).validate(schema)
    kept = FrameSource(df).validate(schema, on_rule_violation="drop")
    assert len(kept.frame) == 198 and dict(kept.dropped_by_rules) == {
        "rules[1] (forbid rel, sex)": 2
    }
    no_mapping = schema_with([{"kind": "determines", "columns": ["edu", "edu_num"]}])
    df.loc[0, "edu_num"] = 1
    with pytest.raises(DataError, match="not a per-row filter"):
        FrameSource(df).validate(no_mapping, on_rule_violation="drop")


def test_structural_zeros_map_rule_values_to_codes_and_merged_codes():
    _, schema = toy_rules_table(10)
    shape = {"rel": 3, "sex": 2}
    zeros = structural_zeros(schema, shape)
    # rel codes Husband=0, Wife=1, Child=2; sex F=0, M=1 -> cells (0, F) = 0 and (1, M) = 3
    assert zeros[("rel", "sex")].tolist() == [True, False, False, True, False, False]
    # Husband and Wife merged into one code: (merged, F) holds (Husband, F) forbidden and
    # (Wife, F) allowed, so it is not a zero; the redraw at sampling handles it
    merged = structural_zeros(schema, {"rel": 2, "sex": 2}, [np.array([0, 0, 1]), np.arange(2)])
    assert ("rel", "sex") not in merged
    allow = schema_with([{"kind": "allow", "columns": ["sex", "rel"], "values": [["F", "Wife"]]}])
    assert structural_zeros(allow, shape)[("rel", "sex")].tolist() == [1, 1, 0, 1, 1, 1]


def test_structural_zeros_leave_the_other_marginals_unchanged_noise_free():
    # A distribution with no mass on the forbidden cells (rel, sex) = (0, 0), (1, 1): exact
    # marginals on (a, rel) and (rel, sex) fit exactly with or without the zeros, so the
    # model's other marginals must agree (tolerance: the estimator stops once a chunk of
    # calls improves the scaled loss by < 1e-4, i.e. counts within ~1e-2 of their optimum).
    rng = np.random.default_rng(1)
    p_rel_sex = np.array([[0.0, 0.3], [0.25, 0.0], [0.2, 0.25]])
    p_a_given_rel = rng.dirichlet(np.ones(4), size=3)  # a depends on rel only
    joint = p_a_given_rel.T[:, :, None] * p_rel_sex[None]  # (a, rel, sex)
    total = 10_000.0
    domain = {"a": 4, "rel": 3, "sex": 2}
    ms = [
        Measurement(("a", "rel"), total * joint.sum(2).ravel(), 1.0),
        Measurement(("rel", "sex"), total * joint.sum(0).ravel(), 1.0),
    ]
    _, schema = toy_rules_table(10)
    zeros = structural_zeros(schema, {"rel": 3, "sex": 2})
    free = estimate(ms, domain, iters=2000, device="cpu")
    held = estimate(ms, domain, iters=2000, device="cpu", zeros=zeros)
    assert held.marginal(("rel", "sex"))[[0, 3]].tolist() == [0.0, 0.0]  # exactly zero
    for clique in [("a",), ("a", "rel"), ("a", "sex"), ("rel",)]:
        np.testing.assert_allclose(held.marginal(clique), free.marginal(clique), atol=0.5)
        np.testing.assert_allclose(
            held.marginal(clique), total * joint.sum(axis=_axes(clique)).ravel(), atol=0.5
        )


def _axes(clique: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(i for i, a in enumerate(("a", "rel", "sex")) if a not in clique)


def test_keep_rules_redraws_then_repairs_to_zero_violations():
    df, schema = toy_rules_table(500)
    rows, _ = schema.validate(df)
    rows = rows.assign(
        admit=pd.to_datetime(rows["admit"], unit="ns"), leave=pd.to_datetime(rows["leave"])
    )

    def broken_draw(k: int, rng: np.random.Generator) -> pd.DataFrame:
        """A model that breaks every rule often, and compare always (never fixed by redraws)."""
        out = rows.sample(k, replace=True, random_state=rng).reset_index(drop=True)
        out["edu_num"] = 1
        out.loc[rng.random(k) < 0.5, ["rel", "sex"]] = ["Husband", "F"]
        out["leave"] = out["admit"] - pd.Timedelta(days=3)
        return out

    rng = np.random.default_rng(0)
    out, checks = keep_rules(broken_draw(5000, rng), schema, broken_draw, rng, {})
    assert schema.rule_violations(out) == [0, 0, 0] and len(out) == 5000
    assert out["edu_num"].tolist() == [EDU_NUM[e] for e in out["edu"]]  # derived
    assert (out["leave"] == out["admit"] + pd.Timedelta(days=1)).all()  # nearest valid date
    # forbid: half the rows rejected in each round, so about half of all drawn rows
    assert checks[1]["rejection_rate"] == pytest.approx(0.5, abs=0.05)
    assert checks[2]["rows_repaired"] == 5000 and checks[0]["rows_rejected"] == 0


def test_derive_follows_chains_and_derived_columns_are_named():
    _, schema = toy_rules_table(10)
    assert derived_columns(schema) == ["edu_num"]
    frame = pd.DataFrame({"edu": ["BA", None], "edu_num": [1, 2]})
    small = Schema.from_dict(
        {
            "version": 1,
            "columns": {
                "edu": {**COLUMNS["edu"], "nullable": True},
                "edu_num": {**COLUMNS["edu_num"], "nullable": True},
            },
            "rules": RULES[:1],
        }
    )
    out = derive(frame, small, {})
    assert out["edu_num"].iloc[0] == 13 and pd.isna(out["edu_num"].iloc[1])
