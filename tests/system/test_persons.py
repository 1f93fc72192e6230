"""People, not rows: a release whose unit of privacy is a person owning many rows."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privsynth import (
    AIM,
    DPCTGAN,
    DPVAE,
    MST,
    Budget,
    ConfigError,
    DataError,
    Ledger,
    Schema,
    release,
)
from privsynth.datasets import VISITS_SCHEMA, make_visits
from privsynth.errors import SchemaError
from privsynth.report.verify import verify_release


@pytest.fixture(scope="module")
def visits():
    return make_visits(400, seed=3)


@pytest.fixture(scope="module")
def key():
    return Ed25519PrivateKey.generate()


def files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.exists() else {}


@pytest.mark.parametrize("gen", [MST, AIM], ids=["MST", "AIM"])
def test_synthetic_persons_keep_unit_columns_order_and_fresh_ids(visits, gen):
    df, schema = visits
    model = gen(epsilon=3.0, **({"round_iters": 20} if gen is AIM else {})).fit(df, schema)
    syn = model.sample(seed=0)
    spec = model.privacy_spec()
    assert spec["unit_of_privacy"] == "person (column 'patient'), at most 12 rows each"
    assert spec["neighbouring_relation"] == "add/remove one person (all their rows, at most 12)"
    assert list(syn.columns) == list(df.columns)
    assert syn["patient"].str.fullmatch(r"S-\d{6}").all()
    assert not set(syn["patient"]) & set(df["patient"])
    per_person = syn.groupby("patient")
    assert (per_person[["sex", "arm", "birth_year"]].nunique() == 1).all().all()
    assert per_person["day"].apply(lambda d: d.is_monotonic_increasing).all()
    assert per_person.size().max() <= 12
    truncated = int((df.groupby("patient").size() > 12).sum())
    assert truncated > 0 and model.custodian_notes_[0].startswith(
        f"patient: {truncated} person(s) own more than 12 rows"
    )


def test_a_saved_model_of_persons_samples_the_same_persons(visits, tmp_path):
    df, schema = visits
    model = MST(epsilon=2.0).fit(df, schema)
    model.save(tmp_path / "m.json")
    again = MST.load(tmp_path / "m.json")
    pd.testing.assert_frame_equal(model.sample(300, seed=4), again.sample(300, seed=4))
    assert again.privacy_spec()["unit_of_privacy"] == model.privacy_spec()["unit_of_privacy"]


def test_k_chosen_with_dp_is_stated_and_bounds_every_person():
    df, _ = make_visits(3000, seed=4)
    doc = {**VISITS_SCHEMA, "unit_of_privacy": {"column": "patient", "max_rows": "dp"}}
    model = MST(epsilon=20.0).fit(df, Schema.from_dict(doc))
    k = model.persons_["max_rows"]
    # Sizes are geometric(0.15) capped at 30: 91.3 % of persons own <= 15 rows, 96.1 % <= 20,
    # 98.3 % <= 25. The candidate nearest the 0.95 quantile is 20 (rank error 34 of 3,000
    # persons, against 64 for 25 and 111 for 15). At epsilon 20 the quantile's epsilon is
    # sqrt(0.05 rho) ~ 0.5, so a candidate 30 ranks worse is picked with odds e^(-0.5*30/2)
    # ~ 6e-4 at most each: K is 20.
    assert k == 20
    assert model.privacy_spec()["unit_of_privacy"].endswith(f"at most {k} rows each")
    assert model.sample(seed=1).groupby("patient").size().max() <= k


def test_the_signed_release_states_the_person_and_splits_by_person(visits, key, tmp_path):
    df, schema = visits
    with Ledger.open(tmp_path / "l.sqlite", dataset_id="v", cap=Budget(5, 1e-6)) as ledger:
        res = release(df, schema, out=tmp_path / "rel", ledger=ledger, key=key, epsilon=2.0, seed=0)
        purposes = [e["purpose"] for e in ledger.entries() if e["kind"] == "reserve"]
    report = verify_release(res.out).report
    unit = "person (column 'patient'), at most 12 rows each"
    assert report["dp_guarantee"]["unit_of_privacy"] == unit
    assert report["schema"]["unit_of_privacy"] == unit
    assert report["release"]["split"].startswith("uniform random by person (patient)")
    assert purposes == [f"MST fit, per {unit}"]
    syn = pd.read_csv(res.out / "synthetic.csv")
    assert syn["patient"].str.startswith("S-").all()
    assert any("person(s) own more than 12 rows" in n for n in res.custodian_notes)
    canary = report["attacks"]["canary"]
    assert canary["canaries"].startswith("persons of 12 identical rows")
    assert canary["epsilon_lower_bound"] <= canary["epsilon_claimed"] == 2.0
    by_name = {a["name"]: a for a in report["attacks"]["attacks"]}
    assert by_name["membership_person"]["details"]["n_targets"]["members"] > 0
    people = report["utility"]["persons"]
    assert people["unit_consistency"] == 1.0 and people["order_consistency"] == 1.0
    # Against all of a patient's real rows, truncation to 12 alone gives a KS of about 0.14
    # (the share of patients with more visits). Sizes come from a noisy histogram at 5% of
    # rho: sigma ~ 15 persons per size at epsilon 2, so a cumulative share over 12 sizes of
    # ~320 training persons is off by at most 3 * 15 * sqrt(12) / 320 ~ 0.16 (three sds).
    assert 0 <= people["rows_per_person_ks"] < 0.14 + 0.16


def test_a_repeating_identifier_in_a_row_level_schema_is_refused_before_anything_is_spent(
    visits, key, tmp_path
):
    df, _ = visits
    doc = json.loads(json.dumps(VISITS_SCHEMA))
    doc["unit_of_privacy"] = "row"
    for col in doc["columns"].values():
        col.pop("level", None), col.pop("order", None)
    schema = Schema.from_dict(doc)
    with Ledger.open(tmp_path / "l.sqlite", dataset_id="v", cap=Budget(5, 1e-6)) as new:
        new.register()
    before = files(tmp_path)
    with (
        Ledger.open(tmp_path / "l.sqlite", dataset_id="v") as ledger,
        pytest.raises(SchemaError) as err,
    ):
        release(df, schema, out=tmp_path / "rel", ledger=ledger, key=key, seed=0)
    most = int(df.groupby("patient").size().max())
    assert f"identifier column 'patient' repeats (up to {most} rows" in str(err.value)
    assert files(tmp_path) == before  # the ledger byte-identical, no release folder


def test_the_cli_refuses_a_repeating_identifier_in_one_line_and_releases_persons(visits, tmp_path):
    df, _ = visits
    df.to_csv(tmp_path / "visits.csv", index=False)
    row_level = json.loads(json.dumps(VISITS_SCHEMA))
    row_level["unit_of_privacy"] = "row"
    for col in row_level["columns"].values():
        col.pop("level", None), col.pop("order", None)
    (tmp_path / "row.json").write_text(json.dumps(row_level))
    (tmp_path / "person.json").write_text(json.dumps(VISITS_SCHEMA))

    def cli(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "privsynth.cli", *args]
        return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)

    assert cli("keygen", "--out", "k.key").returncode == 0
    common = ("--epsilon", "2", "--ledger", "l.sqlite", "--cap-epsilon", "5", "--key", "k.key")
    refused = cli("release", "visits.csv", "--schema", "row.json", *common, "--out", "r1")
    assert refused.returncode != 0 and not (tmp_path / "r1").exists()
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "identifier column 'patient' repeats" in refused.stderr
    checked = cli("schema", "check", "visits.csv", "row.json")
    assert checked.returncode != 0 and "'patient' repeats" in checked.stderr
    checked = cli("schema", "check", "visits.csv", "person.json")
    assert checked.returncode == 0, checked.stderr
    assert "unit of privacy: person (column 'patient'), at most 12 rows each" in checked.stdout
    assert "persons own more than 12 rows" in checked.stdout  # the custodian's screen
    ok = cli("release", "visits.csv", "--schema", "person.json", *common, "--out", "r2")
    assert ok.returncode == 0, ok.stderr
    assert "person(s) own more than 12 rows" in ok.stderr


@pytest.mark.parametrize("gen", [DPVAE, DPCTGAN], ids=["DPVAE", "DPCTGAN"])
def test_generators_that_cannot_bound_a_person_refuse_before_reading(visits, gen, tripwire):
    _, schema = visits
    with pytest.raises(ConfigError, match=f"{gen.__name__} cannot yet protect a person"):
        gen(epsilon=1.0).fit(tripwire, schema)


def test_a_table_left_in_an_engine_is_refused_for_a_person_before_reading(visits, tmp_path):
    pytest.importorskip("duckdb", reason="needs duckdb: pip install '.[scale]'")
    from privsynth.sources.duckdb import DuckDBSource

    df, schema = visits
    df.to_parquet(tmp_path / "v.parquet")
    with pytest.raises(ConfigError, match="bounded in memory for now"):
        MST(epsilon=1.0).fit(DuckDBSource(tmp_path / "v.parquet"), schema)


def test_a_unit_level_column_that_varies_within_a_person_is_named(visits):
    df, schema = visits
    bad = df.copy()
    sizes = bad.groupby("patient", sort=False).size()
    rows = np.flatnonzero(bad["patient"] == sizes.index[sizes.to_numpy() > 1][0])
    bad.loc[rows[1], "sex"] = "M" if bad.loc[rows[0], "sex"] == "F" else "F"
    with pytest.raises(DataError, match=rf"'sex' is declared 'level': 'unit'.*rows \[{rows[0]}, "):
        schema.validate(bad)


def test_every_measurement_but_the_persons_histogram_is_noised_for_k_rows(visits, monkeypatch):
    # The rows-per-person histogram counts persons (sensitivity 1); every other count of the
    # fit must be calibrated to a person of K = 12 rows. Record the unit each Gaussian
    # measurement was calibrated to.
    from privsynth import mechanisms

    seen: list[int] = []
    measure = mechanisms.gaussian_counts

    def spy(counts, rho):
        seen.append(mechanisms.count_sensitivity())
        return measure(counts, rho)

    monkeypatch.setattr(mechanisms, "gaussian_counts", spy)
    df, schema = visits
    model = MST(epsilon=1.0).fit(df, schema)
    assert seen[0] == 1 and len(seen) > 10 and set(seen[1:]) == {12}
    spec = model.privacy_spec()
    assert spec["epsilon_spent"] <= 1.0 + 1e-9


def test_schema_draft_proposes_the_repeating_identifier_as_the_person(tmp_path):
    df = pd.DataFrame({"patient_id": ["a", "a", "b", "c", "c", "c"], "x": [1, 2, 3, 4, 5, 6]})
    drafted = Schema.draft(df)
    assert drafted.unit_of_privacy.column == "patient_id"
    assert drafted.unit_of_privacy.max_rows == "dp"  # the data's 3 is a hint, not a K
    df.to_csv(tmp_path / "t.csv", index=False)
    out = subprocess.run(
        [sys.executable, "-m", "privsynth.cli", "schema", "draft", "t.csv"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "patient_id repeats, up to 3 rows per value" in out.stderr
    assert json.loads(out.stdout)["unit_of_privacy"] == {"column": "patient_id", "max_rows": "dp"}


def test_membership_of_persons_finds_copied_persons_and_not_fresh_ones():
    from privsynth.attacks import run

    df, schema = make_visits(600, seed=11)
    rows = schema.row_view()
    is_train = df["patient"].isin(df["patient"].drop_duplicates().sample(frac=0.5, random_state=0))
    train, holdout = df[is_train].reset_index(drop=True), df[~is_train].reset_index(drop=True)
    persons = (train["patient"], holdout["patient"])
    fresh, _ = make_visits(600, seed=12)  # the same population, none of these persons

    def person_auc(synthetic):
        out = run(
            train[rows.names],
            holdout[rows.names],
            synthetic[rows.names],
            rows,
            persons=persons,
            self_test=False,
            seed=0,
        ).to_dict()
        return next(a for a in out["attacks"] if a["name"] == "membership_person")

    copied = person_auc(train)
    assert copied["value"] > 0.99 and not copied["passed"]  # every member's rows are copies
    null = person_auc(fresh)
    # ~300 persons a side: DeLong's 95% interval covers the true 0.5 but for a 5% chance.
    assert null["ci"][0] <= 0.5 <= null["ci"][1], null


def test_linked_tables_release_two_tables_whose_keys_agree(key, tmp_path):
    from privsynth.datasets import make_patients_and_visits

    tables, schema = make_patients_and_visits(400, seed=2)
    res = release(
        tables, schema, ledger=tmp_path / "l.sqlite", dataset_id="h", cap=Budget(5, 1e-6),
        key=key, out=tmp_path / "rel", epsilon=2.0, seed=0, canary=False,
    )  # fmt: skip
    report = verify_release(res.out).report
    files = report["release"]["tables"]
    assert report["release"]["data_file"] == files["visits"]["file"] == "synthetic.visits.csv"
    patients = pd.read_csv(res.out / files["patients"]["file"])
    visits = pd.read_csv(res.out / files["visits"]["file"])
    assert (len(patients), len(visits)) == (files["patients"]["rows"], files["visits"]["rows"])
    assert patients.columns.tolist() == ["patient", "sex", "arm", "birth_year"]
    assert visits.columns.tolist() == ["patient", "day", "ward", "glucose", "cost"]
    assert patients["patient"].is_unique and patients["patient"].str.startswith("S-").all()
    assert set(visits["patient"]) == set(patients["patient"])  # every key has its parent
    assert visits.groupby("patient").size().max() <= 12
    assert report["dp_guarantee"]["unit_of_privacy"] == (
        "person (column 'patient'), at most 12 rows each"
    )
    assert any("have no row in visits" in n for n in res.custodian_notes)
    with pytest.raises(ConfigError, match="linked tables come as"):
        release(tables["visits"], schema, ledger=tmp_path / "l.sqlite", key=key,
                out=tmp_path / "r2", epsilon=1.0)  # fmt: skip


def test_the_cli_releases_a_folder_of_linked_tables(tmp_path):
    from privsynth.datasets import LINKED_VISITS_SCHEMA, make_patients_and_visits

    tables, _ = make_patients_and_visits(300, seed=4)
    (tmp_path / "hospital").mkdir()
    tables["patients"].to_csv(tmp_path / "hospital" / "patients.csv", index=False)
    tables["visits"].to_parquet(tmp_path / "hospital" / "visits.parquet", index=False)
    (tmp_path / "linked.json").write_text(json.dumps(LINKED_VISITS_SCHEMA))

    def cli(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "privsynth.cli", *args]
        return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)

    assert cli("keygen", "--out", "k.key").returncode == 0
    checked = cli("schema", "check", "hospital", "linked.json")
    assert checked.returncode == 0 and "have no row in visits" in checked.stdout
    common = ("--schema", "linked.json", "--epsilon", "2", "--ledger", "l.sqlite", "--key", "k.key")
    wrong = cli("release", "hospital/patients.csv", *common, "--cap-epsilon", "5", "--out", "r1")
    assert wrong.returncode != 0 and "is not a folder" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1 and not (tmp_path / "l.sqlite").exists()
    ok = cli("release", "hospital", *common, "--cap-epsilon", "5", "--out", "r2", "--no-canary")
    assert ok.returncode == 0, ok.stderr
    assert sorted(p.name for p in (tmp_path / "r2").glob("synthetic.*")) == [
        "synthetic.patients.csv",
        "synthetic.visits.csv",
    ]
    assert cli("verify", "r2").returncode == 0


def test_a_distinct_order_column_never_repeats_within_a_synthetic_person():
    # A panel: each woman interviewed in 1-8 of the years 68-88, once a year; wage grows with
    # the year. Drawn without the rule, a person of m rows repeats a year with probability
    # ~1 - prod(1 - i/21) (a third of persons at m = 4): the test can fail.
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 9, 600)
    years = np.concatenate(
        [np.sort(rng.choice(np.arange(68, 89), m, replace=False)) for m in sizes]
    )
    df = pd.DataFrame(
        {
            "woman": np.repeat([f"W{i}" for i in range(600)], sizes),
            "year": years,
            "wage": (1 + (years - 68) / 10 + rng.normal(0, 0.2, len(years))).clip(0, 5).round(2),
        }
    )
    schema = Schema.from_dict({
        "version": 1,
        "unit_of_privacy": {"column": "woman", "max_rows": 8},
        "columns": {
            "woman": {"kind": "identifier"},
            "year": {"kind": "integer", "lower": 68, "upper": 88, "order": "distinct"},
            "wage": {"kind": "continuous", "lower": 0, "upper": 5},
        },
    })  # fmt: skip
    syn = MST(epsilon=3.0).fit(df, schema).sample(3000, seed=2)
    per = syn.groupby("woman")["year"]
    assert per.apply(lambda y: y.is_unique and y.is_monotonic_increasing).all()
    assert syn["year"].between(68, 88).all()
    twice = pd.concat([df, df.iloc[[0]]], ignore_index=True)
    message = rf"'year' is declared 'order': 'distinct'.*rows \[0, {len(df)}\]"
    with pytest.raises(DataError, match=message):
        schema.validate(twice)
