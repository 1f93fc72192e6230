"""Rules end to end: every generator keeps every rule kind in 10k sampled rows, and a release
refuses real rows that break a rule before any spend, or drops them and reports 0 violations."""

import json

import numpy as np
import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privsynth.budget import Budget, Ledger, list_datasets
from privsynth.cli import main
from privsynth.errors import EXIT_CODES, ConfigError, DataError
from privsynth.generators.registry import make_generator
from privsynth.pipeline import release
from privsynth.report.keys import keygen
from privsynth.schema import Schema
from tests.unit.test_rules import EDU_NUM, toy_rules_table

# DP-SGD: a few epochs on a small table keep the test fast; the rules are kept whatever the
# model learned, which is the point (an untrained model breaks them most).
PARAMS = {
    "mst": {},
    "aim": {"round_iters": 50},
    "dpvae": {"epochs": 2},
    "dpctgan": {"epochs": 1},
}


@pytest.fixture(scope="module")
def toy():
    return toy_rules_table(1500)


@pytest.mark.parametrize("name", list(PARAMS))
@pytest.mark.parametrize("mapping", [True, False], ids=["mapping", "no-mapping"])
def test_every_generator_keeps_every_rule_kind_in_10k_rows(toy, name, mapping):
    df, schema = toy
    if not mapping:  # the same rules, but education-num's mapping is not declared
        d = schema.to_dict()
        del d["rules"][0]["mapping"]
        schema = Schema.from_dict(d)
    gen = make_generator(name, 1.0, 1e-9, **PARAMS[name]).fit(df, schema)
    out = gen.sample(10_000, seed=3)
    assert len(out) == 10_000
    assert schema.rule_violations(out) == [0, 0, 0]
    assert [c["violations"] for c in gen.rule_checks_] == [0, 0, 0]
    if mapping:  # derived from the declared mapping
        assert (out["edu_num"] == out["edu"].map(EDU_NUM)).all()
    if mapping and name in ("mst", "aim"):
        # the coarse column is not modelled; the forbidden cells are structural zeros, so
        # no row is redrawn for them (MST merges no value of a 1,500-row toy: nothing to
        # leak through a merged code)
        assert "edu_num" not in gen.model_.domain
        assert gen.rule_checks_[1]["rows_rejected"] == 0


def test_saved_marginal_model_keeps_the_rules_after_loading(toy, tmp_path):
    df, schema = toy
    gen = make_generator("mst", 1.0, 1e-9).fit(df, schema)
    gen.save(tmp_path / "m.json")
    again = type(gen).load(tmp_path / "m.json", device="cpu")
    out = again.sample(5000, seed=1)
    assert again.schema_.rules == schema.rules and schema.rule_violations(out) == [0, 0, 0]
    assert out.equals(gen.sample(5000, seed=1))


def test_streamed_parquet_keeps_the_rules_in_every_chunk(toy, tmp_path):
    df, schema = toy
    gen = make_generator("aim", 1.0, 1e-9, round_iters=50).fit(df, schema)
    gen.sample_to_parquet(tmp_path / "s.parquet", 7000, chunk_rows=3000, seed=2)
    out = pd.read_parquet(tmp_path / "s.parquet")
    assert len(out) == 7000 and schema.rule_violations(out) == [0, 0, 0]


def test_rules_need_a_row_level_unit_and_conditions_refuse_derived_columns(toy):
    df, schema = toy
    with pytest.raises(ConfigError, match="condition on the column that determines it"):
        make_generator("mst", 1.0, 1e-9).fit(df, schema).sample(10, conditions={"edu_num": 9})
    d = schema.to_dict()
    d["unit_of_privacy"] = {"column": "id", "max_rows": 2}
    with pytest.raises(ConfigError, match="rules are not supported yet when a person"):
        make_generator("mst", 1.0, 1e-9).plan(Schema.from_dict(d))


def test_release_drops_rows_breaking_a_rule_or_refuses_them_before_any_spend(toy, tmp_path):
    df, schema = toy
    bad = df.copy()
    bad.loc[[3, 8, 11], ["rel", "sex"]] = ["Husband", "F"]
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "l.sqlite"
    with Ledger.open(path, dataset_id="d", cap=Budget(3, 1e-6)) as ledger:
        res = release(
            bad,
            schema,
            out=tmp_path / "rel",
            ledger=ledger,
            key=key,
            rows=2000,
            seed=0,
            canary=False,
            on_rule_violation="drop",
        )
    assert any("rules[1] (forbid rel, sex): 3 row(s)" in n for n in res.custodian_notes)
    report = json.loads((tmp_path / "rel" / "audit.json").read_text())
    rules = report["schema"]["rules"]
    assert [r["violations"] for r in rules] == [0, 0, 0]
    assert rules[1]["rule"] == "rules[1] (forbid rel, sex)"
    assert "3 row" not in json.dumps(report)  # the dropped count stays with the custodian
    assert "Rules every synthetic row keeps" in (tmp_path / "rel" / "audit.html").read_text()

    before = path.read_bytes()
    with (
        Ledger.open(path, dataset_id="d") as ledger,
        pytest.raises(DataError, match=r"rules\[1\] \(forbid rel, sex\): 3 row\(s\)"),
    ):
        release(bad, schema, out=tmp_path / "refused", ledger=ledger, key=key, canary=False)
    assert path.read_bytes() == before and not (tmp_path / "refused").exists()


def test_release_refuses_rules_on_an_engine(toy, tmp_path):
    duckdb_source = pytest.importorskip("privsynth.sources.duckdb")
    df, schema = toy
    csv = tmp_path / "t.csv"
    df.to_csv(csv, index=False)
    with (
        Ledger.open(tmp_path / "l.sqlite", dataset_id="d", cap=Budget(3, 1e-6)) as ledger,
        pytest.raises(ConfigError, match="rules are not supported with --engine duckdb"),
    ):
        release(
            duckdb_source.DuckDBSource(csv),
            schema,
            out=tmp_path / "r",
            ledger=ledger,
            key=Ed25519PrivateKey.generate(),
            source=csv,
        )


def test_schema_check_counts_rows_breaking_each_rule(toy, tmp_path, capsys):
    df, schema = toy
    bad = df.copy()
    bad.loc[[0, 1], "edu_num"] = 2
    bad.to_csv(tmp_path / "t.csv", index=False)
    schema.save(tmp_path / "s.json")
    with pytest.raises(SystemExit) as done:
        main(["schema", "check", str(tmp_path / "t.csv"), str(tmp_path / "s.json")])
    out = capsys.readouterr().out
    assert done.value.code == 0, out
    assert (
        "rules[0] (determines edu, edu_num) edu determines edu_num (declared mapping): 2 row(s)"
        in out
    )
    assert "rules[1] (forbid rel, sex)" in out and "no row breaks it" in out
    assert "--drop-rule-violations" in out


def test_rejection_rate_is_recorded_and_sampling_is_reproducible(toy):
    df, schema = toy
    gen = make_generator("dpvae", 1.0, 1e-9, epochs=1).fit(df, schema)
    a, b = gen.sample(3000, seed=7), gen.sample(3000, seed=7)
    assert a.equals(b)
    rates = [c["rejection_rate"] for c in gen.rule_checks_]
    assert all(0 <= r < 1 for r in rates) and np.isfinite(rates).all()


def test_cli_release_refuses_then_drops_rows_breaking_a_rule(toy, tmp_path, capsys):
    df, schema = toy
    bad = df.copy()
    bad.loc[[4, 6], "edu_num"] = 1  # PhD or HS with code 1: breaks the declared mapping
    bad.to_csv(tmp_path / "t.csv", index=False)
    schema.save(tmp_path / "s.json")
    keygen(tmp_path / "k")
    args = [
        "release",
        str(tmp_path / "t.csv"),
        "--schema",
        str(tmp_path / "s.json"),
        "--epsilon",
        "1",
        "--ledger",
        str(tmp_path / "l.sqlite"),
        "--cap-epsilon",
        "3",
        "--key",
        str(tmp_path / "k"),
        "--no-canary",
        "--rows",
        "1000",
        "--out",
        str(tmp_path / "rel"),
    ]
    with pytest.raises(SystemExit) as exc:
        main(args)
    err = capsys.readouterr().err
    assert exc.value.code == EXIT_CODES["DataError"], err
    assert "rules[0] (determines edu, edu_num): 2 row(s)" in err and "--drop-rule-violations" in err
    assert list_datasets(tmp_path / "l.sqlite") == []  # refused before the cap is written
    with pytest.raises(SystemExit) as exc:
        main([*args, "--drop-rule-violations"])
    out = capsys.readouterr()
    assert exc.value.code == 0, out.err
    assert "rules[0] (determines edu, edu_num): 2 row(s) break it and were left out" in out.err
    report = json.loads((tmp_path / "rel" / "audit.json").read_text())
    assert [r["violations"] for r in report["schema"]["rules"]] == [0, 0, 0]


@pytest.mark.parametrize("name", ["mst", "dpvae"])
def test_a_date_rule_is_kept_by_modelling_the_gap(name, tmp_path):
    # Stays of 1-39 days spread over 2020 (toy_rules_table). Modelled as a gap the stay length
    # is a column of its own, so rows keep leave >= admit + 1 by construction;
    # two binned dates alone put about half the stays before their admission. KS of the stay
    # lengths: 2,000 real rows against 2,000 synthetic ones differ by ~1.36 * sqrt(2 / 2000)
    # = 0.043 at 95% without any noise; 0.15 leaves room for the DP noise at epsilon 3 and is
    # far below the ~0.4 of a model of the two dates.
    df, schema = toy_rules_table(2000, seed=5)
    gen = make_generator(name, 3.0, 1e-9, device="cpu")
    syn = gen.fit(df, schema).sample(2000, seed=0)
    check = next(c for c in gen.rule_checks_ if c["description"].startswith("leave"))
    # Only a stay clipped to the year's end (an admission drawn on 2020-12-31) can break the
    # rule and be redrawn: a handful at most, against ~half the rows without the gap model.
    assert check["rows_rejected"] <= 20 and check["violations"] == 0
    real = (pd.to_datetime(df["leave"]) - pd.to_datetime(df["admit"])).dt.days.to_numpy()
    fake = (syn["leave"] - syn["admit"]).dt.days.to_numpy()
    grid = np.union1d(real, fake)
    cdf = [np.searchsorted(np.sort(x), grid, side="right") / len(x) for x in (real, fake)]
    assert np.abs(cdf[0] - cdf[1]).max() < 0.15
    assert (fake >= 1).all()
    if name == "mst":  # the model's gap encoding survives save and load
        gen.save(tmp_path / "m.json")
        again = type(gen).load(tmp_path / "m.json")
        pd.testing.assert_frame_equal(gen.sample(300, seed=4), again.sample(300, seed=4))
