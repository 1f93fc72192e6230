"""The regulator-ready blocks end to end: two releases of one table from the command line, the
second's report carrying the dataset's privacy profile as the ledger composes it, and the
options a person states (or "not stated"); a bad option refused before anything is read."""

import json
import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privsynth import Budget, Ledger, Schema, release
from privsynth.budget import list_datasets
from privsynth.cli import main
from privsynth.datasets import VISITS_SCHEMA, make_visits
from privsynth.report import REPORT_JSON
from privsynth.report.keys import keygen
from privsynth.report.render import render_release
from privsynth.report.verify import verify_release

SCHEMA = {
    "version": 1,
    "columns": {
        "sex": {"kind": "categorical", "categories": ["F", "M"]},
        "age": {"kind": "integer", "lower": 18, "upper": 90, "bins": 12},
        "ward": {"kind": "categorical", "categories": ["A", "B", "C"]},
    },
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("reg")
    rng = np.random.default_rng(3)
    n = 400
    pd.DataFrame(
        {
            "sex": rng.choice(["F", "M"], n),
            "age": rng.integers(18, 91, n),
            "ward": rng.choice(["A", "B", "C"], n),
        }
    ).to_csv(root / "t.csv", index=False)
    (root / "s.json").write_text(json.dumps(SCHEMA))
    key, _ = keygen(root / "key")
    return root, key


def _args(root, key, out, epsilon, *extra):
    return [
        "release", str(root / "t.csv"), "--schema", str(root / "s.json"),
        "--epsilon", str(epsilon), "--ledger", str(root / "l.sqlite"), "--cap-epsilon", "5",
        "--dataset-id", "t", "--key", str(key), "--out", str(root / out), "--no-canary",
        "--seed", "0", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def two(setup):
    root, key = setup
    until = (datetime.now(UTC).date() + timedelta(days=365)).isoformat()
    for out, eps, extra in (
        ("r1", 1, ("--recipient", "Acme Research", "--signer-role", "DPO", "--valid-until", until)),
        ("r2", 0.5, ()),
    ):
        with pytest.raises(SystemExit) as exc:
            main(_args(root, key, out, eps, *extra))
        assert exc.value.code == 0
    return root, until


def test_the_stated_options_reach_the_signed_report(two):
    root, until = two
    report = verify_release(root / "r1").report
    assert report["report_format"] == "privsynth-audit/2"
    h = report["regulator"]["hipaa_expert_determination"]
    assert (h["anticipated_recipient"], h["signer_role"], h["valid_until"]) == (
        "Acme Research",
        "DPO",
        until,
    )


def test_the_dataset_profile_is_the_ledgers_total_and_covers_both_releases(two):
    root, _ = two
    report = verify_release(root / "r2", ledger=root / "l.sqlite").report
    profile = report["regulator"]["privacy_profile"]
    assert profile["dataset_included"]
    at = {p["delta"]: p for p in profile["points"]}
    cap_delta = report["ledger"]["cap"]["delta"]
    assert at[cap_delta]["all_releases"] == report["ledger"]["spent_after"]["epsilon"]
    first = json.loads((root / "r1" / REPORT_JSON).read_bytes())["regulator"]["privacy_profile"]
    for p, q in zip(profile["points"], first["points"], strict=True):
        if p["all_releases"] is not None:
            assert p["all_releases"] > max(p["this_release"], q["this_release"])


def test_what_nobody_stated_reads_not_stated_and_the_page_re_renders_identically(two, tmp_path):
    root, _ = two
    ledger_bytes = (root / "l.sqlite").read_bytes()
    a = render_release(root / "r2", out=tmp_path / "a").html.read_bytes()
    b = render_release(root / "r2", out=tmp_path / "b").html.read_bytes()
    assert a == b and (root / "l.sqlite").read_bytes() == ledger_bytes
    page = a.decode()
    for heading in ("DP Deployments Registry record", "Privacy profile", "WP29 criteria"):
        assert heading in page
    hipaa = page.split("HIPAA expert determination")[1].split("Threat model")[0]
    assert "<td>anticipated recipient</td><td>not stated</td>" in hipaa
    assert "<td>signer&#x27;s role</td><td>not stated</td>" in hipaa


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (("--valid-until", "31/12/2030"), "YYYY-MM-DD"),
        (("--valid-until", "2001-01-01"), "before today"),
        (("--recipient", " "), "recipient"),
    ],
)
def test_a_bad_option_fails_in_one_line_before_anything_is_read(setup, capsys, extra, words):
    root, key = setup
    ledger = root / "bad.sqlite"
    args = _args(root, key, "bad", 1, *extra)
    args[args.index("--ledger") + 1] = str(ledger)
    with pytest.raises(SystemExit) as exc:
        main(args)
    err = capsys.readouterr().err
    assert exc.value.code == 3
    assert err.startswith("error: ") and err.count("\n") == 1 and words in err
    assert not (root / "bad").exists()
    assert not ledger.exists() or "t" not in list_datasets(ledger)  # nothing charged


def test_a_person_level_release_records_the_person_and_the_k_its_fit_chose(tmp_path):
    df, _ = make_visits(300, seed=5)
    schema = Schema.from_dict(
        {**VISITS_SCHEMA, "unit_of_privacy": {"column": "patient", "max_rows": "dp"}}
    )
    with Ledger.open(tmp_path / "l.sqlite", dataset_id="v", cap=Budget(5, 1e-6)) as ledger:
        res = release(
            df, schema, out=tmp_path / "rel", ledger=ledger, key=Ed25519PrivateKey.generate(),
            epsilon=2.0, seed=0, canary=False,
        )  # fmt: skip
    report = verify_release(res.out).report
    loss = report["regulator"]["registry_record"]["privacy_loss"]
    stated = re.search(r"at most (\d+) rows", report["dp_guarantee"]["unit_of_privacy"])
    assert stated is not None
    assert loss["privacy_unit"] == "User-level"
    assert loss["unit_of_privacy"]["unit"] == "person"
    assert loss["unit_of_privacy"]["column"] == "patient"
    assert loss["unit_of_privacy"]["max_rows"] == int(stated.group(1))  # K as fitted, not "dp"
    inference = report["regulator"]["wp29"]["criteria"][2]
    assert "membership_person" in [a["attack"] for a in inference["attacks"]]
