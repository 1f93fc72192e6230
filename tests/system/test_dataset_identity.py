"""The data's identity in the ledger (issue #24, item 5): the same table under another dataset id
is refused before anything is spent, unless the user says it is a new dataset (recorded)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privsynth.budget import Budget, Ledger
from privsynth.cli import main
from privsynth.errors import EXIT_CODES, ConfigError
from privsynth.pipeline import release
from privsynth.pipeline.identity import data_fingerprint
from privsynth.report.keys import keygen
from tests.unit.test_release import release_data

OPTIONS = {"epsilon": 0.5, "rows": 100, "seed": 0, "canary": False, "holdout_fraction": 0.0}


def files(folder):
    return {p.name: p.read_bytes() if p.is_file() else None for p in folder.iterdir()}


def reserves(path, dataset_id):
    with Ledger.open(path, dataset_id=dataset_id, readonly=True) as ledger:
        return [e for e in ledger.entries() if e["kind"] == "reserve"]


def test_the_same_table_under_another_id_is_refused_unless_declared_new(tmp_path):
    df, schema = release_data()
    key = Ed25519PrivateKey.generate()
    ledger = tmp_path / "l.sqlite"
    cap = Budget(5, 1e-6)
    release(df, schema, ledger=ledger, dataset_id="a", cap=cap, key=key, out=tmp_path / "r1",
            **OPTIONS)  # fmt: skip
    before = files(tmp_path)
    with pytest.raises(ConfigError, match="already charged .* as dataset 'a', not 'b'"):
        release(df, schema, ledger=ledger, dataset_id="b", cap=cap, key=key,
                out=tmp_path / "r2", **OPTIONS)  # fmt: skip
    assert files(tmp_path) == before  # the ledger byte-identical, no release folder
    # The same rows in another order are another table: not refused.
    release(df.iloc[::-1], schema, ledger=ledger, dataset_id="c", cap=cap, key=key,
            out=tmp_path / "r3", **OPTIONS)  # fmt: skip
    release(df, schema, ledger=ledger, dataset_id="b", cap=cap, key=key, out=tmp_path / "r4",
            new_dataset=True, **OPTIONS)  # fmt: skip
    (entry,) = reserves(ledger, "b")
    assert entry["metadata"]["new_dataset_despite"] == ["a"]
    assert entry["metadata"]["data_fingerprint"] == data_fingerprint(df)
    assert reserves(ledger, "a")[0]["metadata"]["data_fingerprint"] == data_fingerprint(df)
    # Each dataset that charged this table before releases it again without saying anything.
    release(df, schema, ledger=ledger, dataset_id="a", key=key, out=tmp_path / "r5", **OPTIONS)
    release(df, schema, ledger=ledger, dataset_id="b", key=key, out=tmp_path / "r6", **OPTIONS)


def test_the_fingerprint_is_the_content_whatever_the_file(tmp_path):
    df, _ = release_data()
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_parquet(tmp_path / "t.parquet", index=False)
    import pandas as pd

    csv, parquet = pd.read_csv(tmp_path / "t.csv"), pd.read_parquet(tmp_path / "t.parquet")
    assert data_fingerprint(csv) == data_fingerprint(parquet) == data_fingerprint(df)
    changed = df.copy()
    changed.loc[7, "age"] += 1
    assert data_fingerprint(changed) != data_fingerprint(df)
    assert data_fingerprint(tmp_path / "t.csv") != data_fingerprint(tmp_path / "t.parquet")


def test_the_cli_refuses_a_copied_file_in_one_line_and_records_new_dataset(tmp_path, capsys):
    df, schema = release_data()
    df.to_csv(tmp_path / "people.csv", index=False)
    df.to_csv(tmp_path / "people_copy.csv", index=False)
    schema.save(tmp_path / "s.json")
    keygen(tmp_path / "k")

    def release_cli(data: str, out: str, *extra: str) -> int:
        args = ["release", str(tmp_path / data), "--schema", str(tmp_path / "s.json"),
                "--epsilon", "0.5", "--ledger", str(tmp_path / "l.sqlite"), "--cap-epsilon",
                "5", "--key", str(tmp_path / "k"), "--no-canary", "--holdout-fraction", "0",
                "--out", str(tmp_path / out), *extra]  # fmt: skip
        with pytest.raises(SystemExit) as exc:
            main(args)
        return int(exc.value.code)

    assert release_cli("people.csv", "r1") == 0
    capsys.readouterr()
    assert release_cli("people_copy.csv", "r2") == EXIT_CODES["ConfigError"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--dataset-id people" in err and "--new-dataset" in err
    assert not (tmp_path / "r2").exists()
    assert release_cli("people_copy.csv", "r3", "--new-dataset") == 0
    assert reserves(tmp_path / "l.sqlite", "people_copy")[0]["metadata"]["new_dataset_despite"] == [
        "people"
    ]
