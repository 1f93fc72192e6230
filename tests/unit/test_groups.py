"""Bias per protected group: the flags at their thresholds, the small-cell rule, the option
checked before anything is spent, the policy's [bias] section and the HTML section.
End to end (a signed release, DP noise) in tests/system/test_groups.py."""

import json
import re

import numpy as np
import pytest

from privsynth import ConfigError, ReleaseConfig, Schema
from privsynth.attacks.policy import OPTIONAL, POLICY_DIR, load_policy
from privsynth.budget import list_datasets
from privsynth.cli import main
from privsynth.errors import EXIT_CODES
from privsynth.report import bias
from privsynth.report.keys import keygen
from privsynth.report.render_html import decision
from privsynth.utility.groups import DEFAULT_THRESHOLDS, Cell, check_groups, summarise

SCHEMA = Schema.from_dict(
    {
        "version": 1,
        "columns": {
            "id": {"kind": "identifier"},
            "sex": {"kind": "categorical", "categories": ["F", "M"]},
            "race": {"kind": "categorical", "categories": ["A", "B"]},
            "band": {"kind": "ordinal", "categories": ["lo", "hi"]},
            "age": {"kind": "integer", "lower": 18, "upper": 90},
        },
    }
)


def cell(real_rows=100, test_rows=50, real_share=0.2, synthetic_share=0.2, group="B"):
    return Cell("race", group, real_rows, test_rows, real_share, synthetic_share, np.ones(1, bool))


def one(c, scores=None, min_cell=10, thresholds=DEFAULT_THRESHOLDS):
    return summarise([c], None if scores is None else [scores], min_cell=min_cell,
                     thresholds=thresholds, score=None)["groups"][0]  # fmt: skip


# ---------------------------------------------------------------- flags and suppression
@pytest.mark.parametrize(
    ("synthetic", "shrunk"),
    [(0.0999, True), (0.1, False), (0.0, True), (0.5, False)],  # real share 0.2, ratio 0.5
)
def test_shrunk_is_a_synthetic_share_below_the_ratio_of_the_real_one(synthetic, shrunk):
    row = one(cell(real_share=0.2, synthetic_share=synthetic))
    assert ("shrunk" in row["flags"]) is shrunk
    assert row["share_ratio"] == pytest.approx(synthetic / 0.2, abs=1e-4)


@pytest.mark.parametrize(
    ("scores", "worse"),
    [((0.79, 0.9), True), ((0.8, 0.9), False), ((0.95, 0.9), False), ((None, 0.9), False)],
)
def test_served_worse_is_a_tstr_score_more_than_the_margin_below_the_real_ones(scores, worse):
    row = one(cell(), scores)
    assert ("served_worse" in row["flags"]) is worse
    assert (row["tstr"], row["trtr"]) == scores


def test_the_thresholds_are_the_policys():
    strict = {"max_share_drop_ratio": 0.9, "max_score_drop": 0.0}
    row = one(cell(real_share=0.2, synthetic_share=0.17), (0.89, 0.9), thresholds=strict)
    assert row["flags"] == ["shrunk", "served_worse"]


@pytest.mark.parametrize(("real_rows", "test_rows"), [(9, 50), (100, 9), (0, 0)])
def test_a_group_under_the_small_cell_rule_in_train_or_test_shows_no_real_number(
    real_rows, test_rows
):
    # Shrunk and served worse if it were shown: suppression must hide the flags too.
    row = one(cell(real_rows, test_rows, real_share=0.2, synthetic_share=0.01), (0.1, 0.9))
    assert row["suppressed"] is True and row["flags"] == []
    assert [row[k] for k in ("real_share", "share_ratio", "tstr", "trtr")] == [None] * 4
    assert row["synthetic_share"] == 0.01  # the public synthetic table's: always shown


def test_at_the_small_cell_rule_a_group_is_shown_and_shares_are_rounded():
    row = one(cell(10, 10, real_share=0.123456, synthetic_share=0.0654321))
    assert row["suppressed"] is False
    assert (row["real_share"], row["synthetic_share"]) == (0.1235, 0.0654)


# ---------------------------------------------------------------- the option
@pytest.mark.parametrize(
    ("groups", "message"),
    [
        (("nope",), "groups: column 'nope' is not a categorical column"),
        (("age",), "groups: column 'age' is not a categorical column"),
        (("band",), "groups: column 'band' is not a categorical column"),
        (("id",), "groups: column 'id' is not a categorical column"),
        (("sex", "sex"), "groups: a column is named twice"),
    ],
)
def test_protected_columns_must_be_categorical_and_the_error_names_the_choices(groups, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as exc:
        check_groups(SCHEMA, groups)
    if "named twice" not in message:
        assert "one of ['sex', 'race']" in str(exc.value)


def test_the_release_config_holds_groups_and_checks_them_with_the_columns(tmp_path):
    assert ReleaseConfig(out=tmp_path / "r", groups="sex").groups == ("sex",)
    cfg = ReleaseConfig(out=tmp_path / "r", groups=["sex", "race"])
    assert cfg.groups == ("sex", "race")
    cfg.check_columns(SCHEMA)
    with pytest.raises(ConfigError, match="groups: column 'age'"):
        ReleaseConfig(out=tmp_path / "r", groups=("age",)).check_columns(SCHEMA)


def test_the_cli_refuses_a_bad_group_before_anything_is_spent(tmp_path, capsys):
    (tmp_path / "s.json").write_text(SCHEMA.to_json(), encoding="utf-8")
    (tmp_path / "d.csv").write_text("id,sex,race,band,age\n1,F,A,lo,30\n", encoding="utf-8")
    key, _ = keygen(tmp_path / "key")
    ledger = tmp_path / "l.sqlite"
    args = [
        "release", str(tmp_path / "d.csv"), "--schema", str(tmp_path / "s.json"),
        "--epsilon", "1", "--ledger", str(ledger), "--cap-epsilon", "5", "--key", str(key),
        "--out", str(tmp_path / "rel"), "--groups", "sex, age",
    ]  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        main(args)
    err = capsys.readouterr().err
    assert exc.value.code == EXIT_CODES["ConfigError"]
    assert err.startswith("error: groups: column 'age'") and err.count("\n") == 1
    assert "['sex', 'race']" in err
    assert not (tmp_path / "rel").exists()
    # Refused before the ledger is written: no file, or no entry for the dataset.
    assert not ledger.exists() or "d" not in list_datasets(ledger)


# ---------------------------------------------------------------- the policy
def test_the_policy_bias_defaults_are_the_computations_and_the_shipped_files_state_them():
    assert OPTIONAL["bias"] == DEFAULT_THRESHOLDS
    for name in ("standard", "strict"):
        text = (POLICY_DIR / f"{name}.toml").read_text(encoding="utf-8")
        assert text.rstrip().endswith("max_score_drop = 0.1")  # the [bias] block, appended
        assert load_policy(name).bias == DEFAULT_THRESHOLDS


def test_a_policy_without_bias_gets_the_defaults_and_a_negative_one_is_refused(tmp_path):
    base = (POLICY_DIR / "standard.toml").read_text(encoding="utf-8").split("[bias]")[0]
    (tmp_path / "old.toml").write_text(base, encoding="utf-8")
    assert load_policy(tmp_path / "old.toml").bias == DEFAULT_THRESHOLDS
    (tmp_path / "bad.toml").write_text(base + "[bias]\nmax_score_drop = -1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[bias\] max_score_drop must be a number >= 0"):
        load_policy(tmp_path / "bad.toml")


# ---------------------------------------------------------------- the HTML
GROUPS = {
    "columns": ["race"],
    "min_cell_rows": 10,
    "thresholds": DEFAULT_THRESHOLDS,
    "score": {"target": "y", "metric": "roc_auc", "test_on": "holdout"},
    "groups": [
        {"column": "race", "group": "A", "real_share": 0.9, "synthetic_share": 0.95,
         "share_ratio": 1.0556, "tstr": 0.9, "trtr": 0.91, "suppressed": False, "flags": []},
        {"column": "race", "group": "R<b>", "real_share": 0.08, "synthetic_share": 0.03,
         "share_ratio": 0.375, "tstr": 0.41, "trtr": 0.9, "suppressed": False,
         "flags": ["shrunk", "served_worse"]},
        {"column": "race", "group": "S", "real_share": None, "synthetic_share": 0.02,
         "share_ratio": None, "tstr": None, "trtr": None, "suppressed": True, "flags": []},
    ],
}  # fmt: skip


def test_the_section_explains_names_the_flagged_groups_and_says_suppressed():
    html = bias.bias_section({"utility": {"groups": GROUPS}})
    assert bias.WHY_SMALL_GROUPS in html
    assert "race = R&lt;b&gt;: shrunk (synthetic share 3% against 8% real); served worse" in html
    assert "<b>" not in html.replace("<b>Flagged:</b>", "")  # a category is text, not markup
    row_s = next(r for r in html.split("<tr>") if "<td>S</td>" in r).split("</tr>")[0]
    assert row_s.count("suppressed") == 4 and "2%" in row_s  # the synthetic share is shown
    assert "fewer than 10 real training or test rows" in html


def test_without_groups_the_section_says_none_were_named_and_the_card_is_unchanged():
    assert "No protected groups were named" in bias.bias_section({"utility": {}})
    assert bias.flag_lines({"utility": None}) == [] and bias.flagged_note({}) == ""


def test_the_usefulness_card_names_flagged_groups_without_changing_the_verdict():
    report = json.loads(json.dumps(_decided_report()))
    plain = decision(report)
    report["utility"]["groups"] = GROUPS
    flagged = decision(report)
    card = flagged.split('id="verdict-usefulness"')[1].split("</div>")[0]
    assert "race = R&lt;b&gt; (shrunk, served worse)" in card
    assert "Usefulness: good" in card  # the verdict stays the policy's
    assert "Protected groups flagged" not in plain


def _decided_report():
    """The least a report needs for its first screen, usefulness judged good."""
    return {
        "verdict": {"passed": True, "policy": "standard", "failed_checks": []},
        "dp_guarantee": {"epsilon": 1.0, "delta": 1e-9, "epsilon_spent": 1.0,
                         "implementation_hazards": []},
        "ledger": {"dataset_id": "d", "spent_after": {"epsilon": 1.0},
                   "cap": {"epsilon": 3.0, "delta": 1e-6}},
        "utility": {"c2st": {"auc": 0.6}, "correlation_difference": {"mean": None}},
        "attacks": {"policy": {"thresholds": {"usefulness": dict(OPTIONAL["usefulness"]),
                                              "report": {"min_cell_rows": 10}}}},
    }  # fmt: skip
