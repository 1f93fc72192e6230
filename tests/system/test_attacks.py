"""The attack suite end to end on Adult slices: the self-test, aggregate-only output, no
private row count, runs without a holdout, the CLI, the canary audit of MST and a wide
table's null generator. What every attack does is in tests/contract/test_attack_contract.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from privsynth.attacks import run
from privsynth.attacks.policy import POLICY_DIR, load_policy
from privsynth.attacks.selftest import leaky_synthetic, null_synthetic
from privsynth.cli.attacks import audit_cmd
from privsynth.errors import ConfigError
from privsynth.schema import Schema

QIS = ["age", "sex", "race", "marital-status", "education"]


def test_self_test_detects_the_leak_without_false_alarm(adult_split):
    train, holdout, schema = adult_split
    res = run(
        train,
        holdout,
        null_synthetic(train, schema, 800, np.random.default_rng(2)),
        schema,
        sensitive=["income"],
        quasi_identifiers=QIS,
        n_targets=400,
    )
    st = res.self_test
    assert st["detected_leak"] and not st["false_alarm"]
    assert res.verdict()["self_test_ok"] is True


def test_output_is_aggregate_only(adult_split):
    train, holdout, schema = adult_split
    syn = leaky_synthetic(train, schema, 800, np.random.default_rng(4))
    doc = run(train, holdout, syn, schema, sensitive=["income"], n_targets=300).to_dict()
    text = json.dumps(doc, allow_nan=False)
    for frame in (train, holdout, syn):
        for row in frame.head(200).itertuples(index=False):
            assert ", ".join(str(v) for v in row) not in text
            assert json.dumps([*row], default=str) not in text

    # No per-record lists: every list is at most an aggregate's size (ROC <= 101 points).
    def lists(x):
        if isinstance(x, dict):
            for v in x.values():
                yield from lists(v)
        elif isinstance(x, list):
            yield x
            for v in x:
                yield from lists(v)

    assert max(len(v) for v in lists(doc)) <= 101
    assert set(doc) == {
        "version", "note", "policy", "verdict", "settings", "attacks", "diagnostics", "canary",
        "self_test", "skipped", "timing_s", "plots",
    }  # fmt: skip
    assert "evidence, not a guarantee" in doc["note"]


def test_no_exact_private_row_count_in_the_output(adult_split):
    train, holdout, schema = adult_split
    train, holdout = train.iloc[:737], holdout.iloc[:713]  # counts no choice of ours hits
    syn = null_synthetic(train, schema, 500, np.random.default_rng(0))
    doc = run(train, holdout, syn, schema, sensitive=["income"]).to_dict()

    def ints(x):
        if isinstance(x, dict):
            for v in x.values():
                yield from ints(v)
        elif isinstance(x, list):
            for v in x:
                yield from ints(v)
        elif isinstance(x, int) and not isinstance(x, bool):
            yield x

    found = set(ints(doc))
    assert not found & {737, 713}
    assert 710 in found  # the targets drawn: the smaller set rounded down (2 digits)
    assert doc["settings"]["synthetic_rows"] == 500
    assert not found & {740, 730}  # not even a rounded training size


def test_without_holdout_only_diagnostics_run(adult_split):
    train, _, schema = adult_split
    res = run(train, None, null_synthetic(train, schema, 300, np.random.default_rng(0)), schema)
    assert [a.name for a in res.attacks] == ["exact_match_rate"]
    assert res.skipped and "no holdout" in res.skipped[0]["reason"]
    assert res.to_dict()["attacks"][0]["baseline"] is None


def test_cli_audit_writes_attacks_json(tmp_path, adult_split):
    train, holdout, schema = adult_split
    train.to_csv(tmp_path / "train.csv", index=False)
    holdout.to_csv(tmp_path / "holdout.csv", index=False)
    null_synthetic(train, schema, 400, np.random.default_rng(0)).to_csv(
        tmp_path / "syn.csv", index=False
    )
    schema.save(tmp_path / "schema.json")
    result = CliRunner().invoke(
        audit_cmd,
        [
            "--train", str(tmp_path / "train.csv"),
            "--holdout", str(tmp_path / "holdout.csv"),
            "--synthetic", str(tmp_path / "syn.csv"),
            "--schema", str(tmp_path / "schema.json"),
            "--out", str(tmp_path / "out"),
            "--sensitive", "income",
            "--quasi-identifiers", "age,sex,race",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "out" / "attacks.json").read_text())
    assert doc["verdict"]["policy"] == "standard" and "passed" in result.output
    names = {a["name"] for a in doc["attacks"]}
    assert {"membership_distance", "linkability", "singling_out_multivariate"} <= names


@pytest.mark.slow
def test_canary_audit_of_mst_finds_no_violation(adult_split):
    from privsynth.generators.marginal.mst import MST

    train, holdout, schema = adult_split
    res = run(
        train,
        holdout,
        null_synthetic(train, schema, 800, np.random.default_rng(0)),
        schema,
        canary={"factory": lambda: MST(epsilon=1.0, iters=200), "epsilon": 1.0, "m": 200},
        self_test=False,
    )
    assert res.canary["status"] != "VIOLATION" and res.canary["released"] is False
    assert res.canary["epsilon_lower_bound"] <= 1.0
    assert res.verdict()["canary_status"] == res.canary["status"]


def test_self_test_null_raises_no_false_alarm_on_a_wide_table():
    """200 independent fair binary columns, 50 training and 25 holdout rows (the self-test
    attacks 25 members). A null generator fitted on those members draws each bit from
    marginals in which every member has weight 1/25: a member agrees with a null row on
    about 200 / (2 * 25) = 4 more bits than a non-member does (expected match 1/2 + 1/(2n)
    per bit), against a nearest-row distance that spreads over a few bits, so the membership
    attacks read an AUC near 0.8 and their lower bounds pass 0.55: a false alarm (5 of 6
    seeds before the fix). Fitted on the other training rows, as the self-test now does,
    members and controls are exchangeable for the null, so each attack flags it with
    probability at most 2.5% (0 of 6 seeds); the planted copies are still caught (AUC 1).
    The data and the suite use different seeds (one seed would replay one random stream)."""
    d, rng = 200, np.random.default_rng(1)
    names = [f"b{j}" for j in range(d)]
    binary = {"kind": "categorical", "categories": ["0", "1"]}
    schema = Schema.from_dict({"version": 1, "columns": dict.fromkeys(names, binary)})

    def table(n: int) -> pd.DataFrame:
        return pd.DataFrame(rng.integers(0, 2, (n, d)).astype(str), columns=names)

    train, holdout, population = table(50), table(25), table(25)
    syn = null_synthetic(population, schema, 25, rng)
    st = run(train, holdout, syn, schema, seed=0).self_test
    assert st["detected_leak"], st["leak_flagged_by"]
    assert not st["false_alarm"], (st["null_flagged_by"], st["null"])


def _policy_with(tmp_path, **sample) -> Path:
    """The standard policy with its [sample] sizes replaced."""
    text = (POLICY_DIR / "standard.toml").read_text(encoding="utf-8")
    head = text[: text.index("[sample]")]
    lines = "".join(f"{k} = {v}\n" for k, v in sample.items())
    path = tmp_path / "sampled.toml"
    path.write_text(f"{head}[sample]\n{lines}", encoding="utf-8")
    return path


def test_a_table_under_the_sample_caps_is_attacked_whole_and_unchanged(adult_split, tmp_path):
    train, holdout, schema = adult_split
    syn = null_synthetic(train, schema, 800, np.random.default_rng(3))
    caps = _policy_with(
        tmp_path, synthetic_rows=800, reference_rows=800, targets=5000, queries=1000
    )
    kw = dict(sensitive=["income"], quasi_identifiers=QIS, self_test=False, seed=5)
    whole, capped = (run(train, holdout, syn, schema, policy=p, **kw) for p in ("standard", caps))
    assert capped.settings["synthetic_rows_attacked"] == 800
    assert [a.to_dict() for a in capped.attacks] == [a.to_dict() for a in whole.attacks]


def test_the_audit_attacks_fixed_size_samples_and_still_sees_a_leak(adult_rows, tmp_path):
    df, schema = adult_rows
    train, holdout = df.iloc[:1800].reset_index(drop=True), df.iloc[1800:]
    # Every synthetic row copies a training row (half of them perturbed); the suite sees 600
    # of the 1,800 synthetic rows and 600 training rows, so a sampled member's copy is in the
    # synthetic sample with probability about 1/3: members still sit closer than non-members.
    syn = leaky_synthetic(train, schema, 1800, np.random.default_rng(4))
    caps = _policy_with(tmp_path, synthetic_rows=600, reference_rows=600, targets=300, queries=200)
    res = run(train, holdout, syn, schema, policy=caps, self_test=False, seed=1)
    assert res.settings["synthetic_rows"] == 1800
    assert res.settings["synthetic_rows_attacked"] == 600
    assert res.settings["reference_rows_at_most"] == 600
    assert res.settings["n_targets_requested"] == 300
    by_name = {a.name: a for a in res.attacks}
    assert by_name["membership_distance"].details["n_targets"] == {
        "members": 300,
        "non_members": 300,
    }
    assert by_name["membership_distance"].ci[0] > 0.55  # the copies are still found


def test_sample_sizes_in_a_policy_are_checked(tmp_path):
    with pytest.raises(ConfigError, match=r"\[sample\] synthetic_rows must be a whole number"):
        load_policy(_policy_with(tmp_path, synthetic_rows=2.5))
    with pytest.raises(ConfigError, match=r"\[sample\] targets must be a whole number >= 10"):
        load_policy(_policy_with(tmp_path, targets=3))
    old = tmp_path / "old.toml"  # a policy written before [sample] existed gets the defaults
    text = (POLICY_DIR / "standard.toml").read_text(encoding="utf-8")
    old.write_text(text[: text.index("[sample]")], encoding="utf-8")
    assert load_policy(old).sample == load_policy("standard").sample


def test_the_audit_sample_sizes_do_not_change_with_the_table(adult_rows, tmp_path):
    df, schema = adult_rows
    caps = _policy_with(tmp_path, synthetic_rows=500, reference_rows=500, targets=200, queries=100)
    sizes = []
    for n in (1200, 1800):  # both above the caps
        train, holdout = df.iloc[:n].reset_index(drop=True), df.iloc[n:].reset_index(drop=True)
        holdout = holdout.iloc[rng_rows(len(holdout), 500 + n // 10)].reset_index(drop=True)
        syn = null_synthetic(train, schema, 2 * n, np.random.default_rng(n))
        res = run(train, holdout, syn, schema, policy=caps, self_test=False, seed=2)
        sizes.append(
            (
                res.settings["synthetic_rows_attacked"],
                res.diagnostics["n_synthetic_queries"],
                [a.details.get("n_targets") for a in res.attacks],
            )
        )
    assert sizes[0] == sizes[1]
    assert sizes[0][0] == 500


def rng_rows(n: int, k: int) -> np.ndarray:
    """``k`` of ``n`` row positions (seeded), or all of them when there are fewer."""
    return np.sort(np.random.default_rng(0).choice(n, min(n, k), replace=False))
