"""release() end to end: signed folders, --force, the CLI, targets, holdout fraction 0,
data-dependent domains and engine sources."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privsynth.budget import Budget, Ledger
from privsynth.cli import main
from privsynth.errors import EXIT_CODES, ConfigError
from privsynth.pipeline import release
from privsynth.report import ENVELOPE
from privsynth.report.keys import keygen
from privsynth.report.verify import verify_release
from privsynth.schema import Schema
from tests.unit.test_release import kinds, release_data


@pytest.fixture
def data():
    return release_data()


@pytest.fixture(scope="module")
def key():
    return Ed25519PrivateKey.generate()


def test_release_writes_a_whole_signed_folder(data, key, tmp_path):
    df, schema = data
    with Ledger.open(tmp_path / "l.sqlite", dataset_id="d", cap=Budget(3, 1e-6)) as ledger:
        res = release(
            df,
            schema,
            out=tmp_path / "rel",
            ledger=ledger,
            key=key,
            epsilon=1.0,
            rows=100,
            seed=0,
            fmt="parquet",
            canary=False,
        )
        assert kinds(ledger) == ["cap", "reserve", "commit"]
    files = sorted(p.name for p in (tmp_path / "rel").iterdir())
    assert files == [
        "VERIFY.md",
        "audit.html",
        "audit.intoto.dsse.json",
        "audit.json",
        "model.json",
        "signer.pub.pem",
        "synthetic.parquet",
    ]
    out = pd.read_parquet(tmp_path / "rel" / "synthetic.parquet")
    assert list(out.columns) == ["sex", "age"] and len(out) == 100  # the identifier is dropped
    report = json.loads((tmp_path / "rel" / "audit.json").read_text())
    assert report["release"]["files"]["synthetic.parquet"] == res.files["synthetic.parquet"]
    assert report["ledger"]["reservations"] and report["report_id"] == res.report_id
    assert report["attacks"]["canary"] is None  # canary=False, and the report says so
    assert verify_release(tmp_path / "rel").report_id == res.report_id
    assert not list(tmp_path.glob(".rel.*"))  # no temporary folder left behind


def test_an_existing_folder_is_kept_unless_forced(data, key, tmp_path):
    df, schema = data
    (tmp_path / "rel").mkdir()
    (tmp_path / "rel" / "old.txt").write_text("old")
    with Ledger.open(tmp_path / "l.sqlite", dataset_id="d", cap=Budget(3, 1e-6)) as ledger:
        with pytest.raises(ConfigError, match="exists"):
            release(df, schema, out=tmp_path / "rel", ledger=ledger, key=key, epsilon=1.0)
        # --force never wipes a folder that is not a release (think --out ~ --force).
        with pytest.raises(ConfigError, match="only a release folder"):
            release(df, schema, out=tmp_path / "rel", ledger=ledger, key=key, force=True)
        (tmp_path / "file").write_text("x")
        with pytest.raises(ConfigError, match="not a folder"):
            release(df, schema, out=tmp_path / "file", ledger=ledger, key=key, force=True)
        for bad in (tmp_path / "rel" / "..", Path("/"), Path(".")):
            with pytest.raises(ConfigError, match="name of a new folder"):
                release(df, schema, out=bad, ledger=ledger, key=key, force=True)
        assert kinds(ledger) == [] and (tmp_path / "rel" / "old.txt").exists()
        (tmp_path / "rel" / ENVELOPE).write_text("{}")  # an earlier release
        release(
            df,
            schema,
            out=tmp_path / "rel",
            ledger=ledger,
            key=key,
            epsilon=1.0,
            force=True,
            canary=False,
        )
    assert not (tmp_path / "rel" / "old.txt").exists()


def test_cli_release_end_to_end(data, tmp_path, capsys):
    df, schema = data
    df.to_csv(tmp_path / "people.csv", index=False)
    schema.save(tmp_path / "s.json")
    keygen(tmp_path / "k")
    args = [
        "release",
        str(tmp_path / "people.csv"),
        "--schema",
        str(tmp_path / "s.json"),
        "--epsilon",
        "1",
        "--ledger",
        str(tmp_path / "l.sqlite"),
        "--key",
        str(tmp_path / "k"),
        "--no-canary",
        "--out",
        str(tmp_path / "rel"),
    ]
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == EXIT_CODES["ConfigError"]
    assert "no budget cap" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([*args, "--cap-epsilon", "1.1", "--generator", "aim"])
    out = capsys.readouterr()
    assert exc.value.code == 0, out.err
    assert "released" in out.out and "remaining epsilon" in out.out
    with pytest.raises(SystemExit) as exc:
        # A second (1, 1e-9) release composes (zCDP) to about epsilon 1.25 at the cap's delta
        # 1e-6, more than the cap of 1.1; the first alone is about 0.88.
        main([*args[:-1], str(tmp_path / "rel2")])
    err = capsys.readouterr().err
    assert exc.value.code == EXIT_CODES["BudgetExceeded"] and err.count("\n") == 1
    assert not (tmp_path / "rel2").exists()
    with Ledger.open(tmp_path / "l.sqlite", dataset_id="people", readonly=True) as ledger:
        assert kinds(ledger) == ["cap", "reserve", "commit"]


def test_a_release_target_reaches_mst_unless_its_parameters_say_otherwise(data, key, tmp_path):
    df, schema = data
    targets = []
    with Ledger.open(tmp_path / "l.sqlite", dataset_id="d", cap=Budget(3, 1e-6)) as ledger:
        for name, params in (("a", None), ("b", {"target": None})):
            res = release(
                df,
                schema,
                out=tmp_path / name,
                ledger=ledger,
                key=key,
                epsilon=1.0,
                target="sex",
                generator_params=params,
                canary=False,
                seed=0,
            )
            targets.append(verify_release(res.out).report["release"]["parameters"]["target"])
    assert targets == ["sex", None]


def test_holdout_fraction_zero_skips_membership_attacks_and_says_so(data, key, tmp_path):
    df, schema = data
    with Ledger.open(tmp_path / "l.sqlite", dataset_id="d", cap=Budget(3, 1e-6)) as ledger:
        res = release(
            df,
            schema,
            out=tmp_path / "rel",
            ledger=ledger,
            key=key,
            holdout_fraction=0,
            canary=False,
            seed=0,
        )
    report = verify_release(res.out).report
    names = {a["name"] for a in report["attacks"]["attacks"]}
    assert not any(n.startswith("membership") for n in names)
    assert any("holdout" in s["reason"] for s in report["attacks"]["skipped"])
    assert report["release"]["holdout_fraction"] == 0


def test_data_dependent_domains_with_opt_in_are_reported_and_reach_the_canary_fit(
    data, key, tmp_path
):
    df, schema = data
    drafted = schema.with_columns([replace(schema["age"], source="data")])
    with Ledger.open(tmp_path / "l.sqlite", dataset_id="d", cap=Budget(3, 1e-6)) as ledger:
        res = release(
            df,
            drafted,
            out=tmp_path / "rel",
            ledger=ledger,
            key=key,
            allow_data_dependent_domain=True,
            seed=0,
        )
    report = verify_release(res.out).report
    assert report["schema"]["data_dependent_caveats"]
    assert any("CAVEAT" in p for p in report["dp_guarantee"]["data_dependent_preprocessing"])
    assert report["attacks"]["canary"]["status"] in ("consistent", "loose")


def test_cli_release_from_an_engine(data, engine_source, tmp_path, capsys):
    df, schema = data
    df.to_parquet(tmp_path / "people.parquet")
    schema.save(tmp_path / "s.json")
    keygen(tmp_path / "k")
    engine = engine_source.engine
    args = ["release", str(tmp_path / "people.parquet"), "--schema", str(tmp_path / "s.json")]
    args += ["--epsilon", "1", "--cap-epsilon", "3", "--ledger", str(tmp_path / "l.sqlite")]
    args += ["--key", str(tmp_path / "k"), "--engine", engine, "--seed", "0"]
    with pytest.raises(SystemExit) as exc:
        main([*args, "--generator", "dpvae", "--out", str(tmp_path / "no")])
    assert exc.value.code == EXIT_CODES["ConfigError"]
    assert "marginal generators" in capsys.readouterr().err and not (tmp_path / "no").exists()
    with pytest.raises(SystemExit) as exc:
        main([*args, "--format", "parquet", "--out", str(tmp_path / "rel")])
    out = capsys.readouterr()
    assert exc.value.code == 0, out.err
    report = json.loads((tmp_path / "rel" / "audit.json").read_text())
    assert report["release"]["engine"] == engine
    assert report["release"]["split"].startswith("keyed hash of each row's values")
    assert report["attacks"]["canary"] is not None  # the canary refit ran on the train sample
    assert verify_release(tmp_path / "rel").report_id == report["report_id"]
    assert list(pd.read_parquet(tmp_path / "rel" / "synthetic.parquet").columns) == ["sex", "age"]
    with Ledger.open(tmp_path / "l.sqlite", dataset_id="people", readonly=True) as ledger:
        assert kinds(ledger) == ["cap", "reserve", "commit"]


def test_a_ledger_file_path_is_accepted_and_names_its_dataset(data, key, tmp_path):
    df, schema = data
    path = str(tmp_path / "l.sqlite")
    opts = {"key": key, "epsilon": 1.0, "canary": False, "seed": 0}
    with pytest.raises(ConfigError, match="holds no dataset: say which with dataset_id="):
        release(df, schema, out=tmp_path / "r0", ledger=path, **opts)
    release(
        df, schema, out=tmp_path / "r1", ledger=path, dataset_id="d", cap=Budget(3, 1e-6), **opts
    )
    release(df, schema, out=tmp_path / "r2", ledger=path, **opts)  # its only dataset: implied
    with Ledger.open(path, dataset_id="d", readonly=True) as ledger:
        assert kinds(ledger) == ["cap", "reserve", "commit", "reserve", "commit"]
    with Ledger.open(path, dataset_id="e", cap=Budget(1, 1e-6)) as other:
        other.register()
    with pytest.raises(ConfigError, match=r"holds datasets \['d', 'e'\]"):
        release(df, schema, out=tmp_path / "r3", ledger=path, **opts)


def test_a_category_held_by_three_rows_shows_no_real_share_in_the_report(key, tmp_path):
    df, schema = release_data()
    df["dx"] = np.where(np.arange(len(df)) < 3, "rare", np.where(np.arange(len(df)) % 2, "a", "b"))
    doc = schema.to_dict()
    doc["columns"]["dx"] = {"kind": "categorical", "categories": ["a", "b", "rare"]}
    with Ledger.open(tmp_path / "l.sqlite", dataset_id="d", cap=Budget(3, 1e-6)) as ledger:
        res = release(df, Schema.from_dict(doc), out=tmp_path / "rel", ledger=ledger, key=key,
                      epsilon=1.0, seed=0, canary=False)  # fmt: skip
    report = json.loads((res.out / "audit.json").read_text())
    (dx,) = [m for m in report["utility"]["plots"]["marginals"] if m["column"] == "dx"]
    shares = dict(zip(dx["labels"], dx["real"], strict=True))
    assert shares["rare"] is None  # 3 rows (fewer than 10 in train)
    assert shares["a"] is not None and shares["b"] is not None
    assert report["attacks"]["policy"]["thresholds"]["report"]["min_cell_rows"] == 10
    assert "small-cell suppression" in (res.out / "audit.html").read_text()
