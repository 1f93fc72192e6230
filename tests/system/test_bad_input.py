"""A battery of bad inputs through ``privsynth release``: each must end with a non-zero exit,
one readable ``error:`` line naming what is wrong (no traceback), no release folder, and no
ledger entry beyond what was there. The count of cases and how many behaved is printed (run
with ``-s`` to see it) and asserted."""

import json
import os
import sqlite3

import numpy as np
import pandas as pd
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privsynth.budget import Budget, Ledger, list_datasets
from privsynth.cli import main
from privsynth.report.keys import keygen

SCHEMA = {
    "version": 1,
    "columns": {
        "sex": {"kind": "categorical", "categories": ["F", "M"]},
        "age": {"kind": "integer", "lower": 18, "upper": 90, "bins": 12},
        "seen": {"kind": "datetime", "lower": "2020-01-01", "upper": "2024-12-31", "bins": 8},
    },
}


def _good(n=300):
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "sex": rng.choice(["F", "M"], n),
            "age": rng.integers(20, 80, n),
            "seen": pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D"),
        }
    )


def _csv(tmp, name, df):
    p = tmp / name
    df.to_csv(p, index=False)
    return p


def _bytes(tmp, name, data: bytes):
    p = tmp / name
    p.write_bytes(data)
    return p


def _schema(tmp, name, doc):
    p = tmp / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return p


def cases(tmp):
    """(label, expected words in the error, data path, schema path, extra args, key path)."""
    good = _good()
    data = _csv(tmp, "good.csv", good)
    schema = _schema(tmp, "schema.json", SCHEMA)
    key, key_pub = keygen(tmp / "key")
    pk, _ = keygen(tmp / "pkey", passphrase=b"s3cret")
    loose = tmp / "loose.key"
    loose.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(loose, 0o644)
    parquet = tmp / "good.parquet"
    good.to_parquet(parquet)
    truncated = _bytes(tmp, "trunc.parquet", parquet.read_bytes()[: parquet.stat().st_size // 2])
    dup = good.copy()
    csv_dup = "sex,age,age,seen\n" + "\n".join(
        f"{r.sex},{r.age},{r.age},{r.seen.date()}" for r in dup.itertuples()
    )
    mixed = good.astype({"age": object})
    mixed.loc[7, "age"] = "forty"
    nan = good.astype({"age": float})
    nan.loc[5, "age"] = np.nan
    inf = good.astype({"age": float})
    inf.loc[5, "age"] = np.inf
    unknown = good.copy()
    unknown.loc[11, "sex"] = "X"
    ident = good.assign(patient_id=[f"P{i:05d}" for i in range(len(good))])
    dates = good.astype({"seen": object})
    dates.loc[3, "seen"] = "31/12/2021"
    dates.loc[4, "seen"] = "not a date"
    huge = good.astype({"age": object})
    huge.loc[6, "age"] = "1e400"  # beyond float range: reads as infinity
    not_null = good.astype({"sex": object})
    not_null.loc[2, "sex"] = None
    public = tmp / "public.pem"  # the public half given as the signing key
    public.write_bytes(key_pub.read_bytes())
    os.chmod(public, 0o600)
    not_release = tmp / "not_a_release"
    not_release.mkdir()
    (not_release / "precious.txt").write_text("keep me")
    one = _csv(tmp, "one.csv", good.head(1))
    twice = json.dumps(SCHEMA).replace('"columns": {', '"columns": {"sex": {"kind": "integer"}, ')
    inverted = {**SCHEMA, "columns": {**SCHEMA["columns"], "age": {"kind": "integer"}}}
    inverted["columns"]["age"] |= {"lower": 90, "upper": 18}
    junk = _bytes(tmp, "junk.key", b"hello")
    os.chmod(junk, 0o600)
    ledger_bad = tmp / "corrupt.sqlite"
    with Ledger.open(ledger_bad, dataset_id="good", cap=Budget(5, 1e-6)) as new:
        new.register()
    with sqlite3.connect(ledger_bad) as con:  # rewrite an entry behind the chain's back
        con.execute("UPDATE entries SET purpose = 'forged' WHERE seq = 1")
    return [
        ("empty file", "empty", _bytes(tmp, "empty.csv", b""), schema, [], key),
        ("header only", "no rows", _bytes(tmp, "header.csv", b"sex,age,seen\n"), schema, [], key),
        (
            "duplicate column names",
            "age",
            _bytes(tmp, "dup.csv", csv_dup.encode()),
            schema,
            [],
            key,
        ),
        (
            "empty column name",
            "column",
            _bytes(tmp, "noname.csv", b"sex,,seen\nF,30,2021-01-01\nM,40,2021-02-01\n"),
            schema,
            [],
            key,
        ),
        (
            "non-UTF-8 bytes",
            "UTF-8",
            _bytes(tmp, "latin1.csv", "sex,age,seen\nF,3\xe9,2021-01-01\n".encode("latin-1")),
            schema,
            [],
            key,
        ),
        (
            "mixed types in a numeric column",
            "forty",
            _csv(tmp, "mixed.csv", mixed),
            schema,
            [],
            key,
        ),
        ("missing value, not nullable", "age", _csv(tmp, "nan.csv", nan), schema, [], key),
        ("infinite number", "age", _csv(tmp, "inf.csv", inf), schema, [], key),
        ("unparseable dates", "not a date", _csv(tmp, "dates.csv", dates), schema, [], key),
        ("unknown category", "'X'", _csv(tmp, "unknown.csv", unknown), schema, [], key),
        (
            "identifier the schema missed",
            "patient_id",
            _csv(tmp, "ident.csv", ident),
            schema,
            [],
            key,
        ),
        (
            "schema names a missing column",
            "income",
            data,
            _schema(
                tmp,
                "s_missing.json",
                {
                    **SCHEMA,
                    "columns": {
                        **SCHEMA["columns"],
                        "income": {"kind": "categorical", "categories": ["a"]},
                    },
                },
            ),
            [],
            key,
        ),
        (
            "unknown kind",
            "kind",
            data,
            _schema(
                tmp,
                "s_kind.json",
                {**SCHEMA, "columns": {**SCHEMA["columns"], "age": {"kind": "number"}}},
            ),
            [],
            key,
        ),
        ("schema is not JSON", "JSON", data, _schema(tmp, "s_bad.json", "{not json"), [], key),
        ("truncated Parquet file", "trunc.parquet", truncated, schema, [], key),
        ("missing data file", "missing.csv", tmp / "missing.csv", schema, [], key),
        ("corrupt ledger", "corrupt", data, schema, ["--ledger", str(ledger_bad)], key),
        ("key file is not a key", "PEM", data, schema, [], junk),
        ("passphrase-protected key, none given", "passphrase", data, schema, [], pk),
        ("world-readable key", "chmod 600", data, schema, [], loose),
        ("negative epsilon", "epsilon", data, schema, ["--epsilon", "-1"], key),
        ("delta of 1", "delta", data, schema, ["--delta", "1"], key),
        ("unknown sensitive column", "salary", data, schema, ["--sensitive", "salary"], key),
        ("unknown policy", "policy", data, schema, ["--policy", "lenient"], key),
        ("budget short", "cap", data, schema, ["--epsilon", "50"], key),
        ("one row", "1 row", one, schema, [], key),
        ("one row, no holdout", "1 row", one, schema, ["--holdout-fraction", "0"], key),
        ("number beyond float range", "age", _csv(tmp, "huge.csv", huge), schema, [], key),
        ("missing category, not nullable", "sex", _csv(tmp, "null.csv", not_null), schema, [], key),
        ("schema declares a column twice", "twice", data, _schema(tmp, "s2.json", twice), [], key),
        ("schema bounds inverted", "lower", data, _schema(tmp, "s_inv.json", inverted), [], key),
        ("schema without columns", "columns", data, _schema(tmp, "s0.json", {"version": 1}), [],
         key),
        ("data path is a folder", "directory", tmp, schema, [], key),
        ("unknown data format", "unknown format", _bytes(tmp, "t.xlsx", b"PK"), schema, [], key),
        ("public key given to sign", "private key", data, schema, [], public),
        ("wrong passphrase", "passphrase", data, schema, [], pk,
         {"PRIVSYNTH_KEY_PASSPHRASE": "wrong"}),
        ("holdout fraction 1", "holdout", data, schema, ["--holdout-fraction", "1"], key),
        ("epsilon not a number", "epsilon", data, schema, ["--epsilon", "lots"], key),
        ("unknown generator", "generator", data, schema, ["--generator", "gan"], key),
        ("--out is ..", "new folder", data, schema, ["--out", str(tmp / "x" / "..")], key),
        ("--force on a non-release", "only a release", data, schema,
         ["--out", str(not_release), "--force"], key),
    ]  # fmt: skip


def test_bad_inputs_fail_cleanly_and_write_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PRIVSYNTH_KEY_PASSPHRASE", raising=False)
    battery = cases(tmp_path)
    behaved, failures = 0, []
    for i, (label, words, data, schema, extra, key, *env) in enumerate(battery):
        for name, value in (env[0] if env else {}).items():
            monkeypatch.setenv(name, value)
        out = tmp_path / f"out{i}"
        ledger = tmp_path / f"ledger{i}.sqlite"
        args = [
            "release", str(data), "--schema", str(schema), "--epsilon", "1",
            "--ledger", str(ledger), "--cap-epsilon", "5", "--dataset-id", "good",
            "--key", str(key), "--out", str(out), "--no-canary",
        ]  # fmt: skip
        with pytest.raises(SystemExit) as exc:
            main(args + extra)
        monkeypatch.delenv("PRIVSYNTH_KEY_PASSPHRASE", raising=False)
        err = capsys.readouterr().err
        entries = _kinds(ledger)  # the corrupt-ledger case passes its own ledger instead
        problems = []
        if exc.value.code in (0, 70):
            problems.append(f"exit {exc.value.code}")
        if not err.startswith("error: ") or err.count("\n") != 1 or "Traceback" in err:
            problems.append(f"not one error line: {err!r}")
        if words.lower() not in err.lower():
            problems.append(f"{words!r} not named in {err.strip()!r}")
        if out.exists() or list(tmp_path.glob(f".out{i}.*")):
            problems.append("wrote output")
        if entries not in (None, []):  # a refused release writes nothing, not even the cap
            problems.append(f"ledger entries {entries}")
        if problems:
            failures.append(f"{label}: {'; '.join(problems)}")
        else:
            behaved += 1
    print(f"\nbad-input battery: {len(battery)} cases tried, {behaved} behaved")
    assert not failures, "\n".join(failures)
    assert (tmp_path / "not_a_release" / "precious.txt").read_text() == "keep me"


def _kinds(path):
    if not os.path.exists(path):
        return None
    if "good" not in list_datasets(path):
        return []
    with Ledger.open(path, dataset_id="good", readonly=True) as led:
        return [e["kind"] for e in led.entries()]
