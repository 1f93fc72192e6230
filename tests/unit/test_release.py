"""release() refusals (before any fit) and the engine split. Releases are in
tests/system/test_release.py."""

import numpy as np
import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privsynth.budget import Budget, Ledger, list_datasets
from privsynth.errors import BudgetExceeded, ConfigError, DataError
from privsynth.pipeline import release
from privsynth.schema import Schema


def release_data():
    """1,500 people: an identifier, sex and age, and their schema."""
    rng = np.random.default_rng(2)
    n = 1500
    df = pd.DataFrame(
        {"id": np.arange(n), "sex": rng.choice(["F", "M"], n), "age": rng.integers(20, 80, n)}
    )
    schema = Schema.from_dict(
        {
            "version": 1,
            "columns": {
                "id": {"kind": "identifier"},
                "sex": {"kind": "categorical", "categories": ["F", "M"]},
                "age": {"kind": "integer", "lower": 18, "upper": 90, "bins": 12},
            },
        }
    )
    return df, schema


@pytest.fixture
def data():
    return release_data()


@pytest.fixture(scope="module")
def key():
    return Ed25519PrivateKey.generate()


def kinds(ledger):
    return [e["kind"] for e in ledger.entries()]


def test_refused_releases_write_nothing_and_leave_the_ledger_unchanged(
    data, key, tmp_path, monkeypatch
):
    df, schema = data
    monkeypatch.setattr("privsynth.pipeline.steps.find_browser", lambda: None)
    with Ledger.open(tmp_path / "l.sqlite", dataset_id="d", cap=Budget(0.5, 1e-6)) as ledger:
        refusals = [
            (BudgetExceeded, "cap", {"epsilon": 1.0}),
            # an unknown category in a row that may land in the holdout: refused up front
            (DataError, "'X'", {"data": df.assign(sex=df["sex"].where(df.index != 3, "X"))}),
            (ConfigError, "policy", {"policy": "no-such-policy"}),
            (ConfigError, "'salary' is not in the schema", {"sensitive": ["salary"]}),
            (ConfigError, "identifier", {"quasi_identifiers": ["id"]}),
            (ConfigError, "holdout fraction", {"holdout_fraction": 1.0}),
            (ConfigError, "cannot read key file", {"key": tmp_path / "missing.key"}),
            (ConfigError, "needs a Chromium", {"pdf": True}),  # refused before the fit
        ]
        for i, (error, match, override) in enumerate(refusals):
            args = {"data": df, "epsilon": 0.1, "key": key, **override}
            with pytest.raises(error, match=match):
                release(args.pop("data"), schema, out=tmp_path / f"r{i}", ledger=ledger, **args)
            assert not (tmp_path / f"r{i}").exists()
        assert kinds(ledger) == []  # a new dataset: not even its cap was written
    assert not list(tmp_path.glob(".r*"))


def test_engine_split_is_a_partition_of_about_the_asked_fraction(data, engine_source, tmp_path):
    df, _ = data
    df.to_parquet(tmp_path / "p.parquet")
    source = engine_source(tmp_path / "p.parquet")
    train, holdout = source.split(0.2, key=12345)
    ids = [set(s.sample_rows(10_000, seed=1)["id"].tolist()) for s in (train, holdout)]
    assert ids[0].isdisjoint(ids[1]) and ids[0] | ids[1] == set(range(len(df)))
    # Holdout size ~ Binomial(1500, 0.2): mean 300, sd 15.5; 4 sd either side.
    assert abs(len(ids[1]) - 300) < 62
    assert set(holdout.sample_rows(50, seed=2)["id"]) <= ids[1]  # a sample stays on its side


def test_a_holdout_too_small_for_the_attacks_is_refused_before_anything_is_spent(tmp_path):
    from privsynth.datasets import make_visits

    # 8 patients with 1-30 visits: a 0.3 holdout holds 2-3 of them, and a holdout target's
    # density reference (5 rows of *other* holdout persons) may not exist. Refused at the
    # split, before the ledger is touched, whichever seed; a row-level table of 20 rows with
    # a holdout of under 6 rows likewise.
    df, schema = make_visits(8, seed=2)
    key = Ed25519PrivateKey.generate()
    outcomes = []
    for seed in range(4):
        held = None
        try:
            with Ledger.open(
                tmp_path / f"l{seed}.sqlite", dataset_id="v", cap=Budget(5, 1e-6)
            ) as led:
                release(df, schema, out=tmp_path / f"r{seed}", ledger=led, key=key, epsilon=1.0,
                        seed=seed, canary=False, holdout_fraction=0.3)  # fmt: skip
        except DataError as err:
            held = str(err)
            assert "besides any one person's" in held and "--holdout-fraction 0" in held
            assert list_datasets(tmp_path / f"l{seed}.sqlite") == []  # nothing written
        assert held is not None or (tmp_path / f"r{seed}" / "audit.json").exists()
        outcomes.append(held is None)
    assert set(outcomes) == {True, False}  # these seeds both release and refuse


class _Rows:
    """Stands in for a fitted generator: ``sample`` draws messy rows from ``seed`` (a number,
    a date, a category with nulls), as a generator's post-processing would."""

    def sample(self, n, *, seed=None):
        rng = np.random.default_rng(seed)
        return pd.DataFrame(
            {
                "amount": np.where(rng.random(n) < 0.4, 0.0, rng.lognormal(8, 2, n)),
                "day": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, n), "D"),
                "code": pd.Series(rng.choice(["a", "b", None], n), dtype=object),
            }
        )


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_streamed_table_is_the_rows_drawn_chunk_by_chunk_and_a_uniform_sample_of_them(
    tmp_path, fmt
):
    from privsynth.pipeline.tables import stream_table

    read = pd.read_csv if fmt == "csv" else pd.read_parquet
    file, kept = stream_table(
        _Rows(), 1000, tmp_path, fmt, np.random.default_rng(1), 100, chunk_rows=300
    )
    written = read(tmp_path / file)
    # the same stream, drawn by hand: the sample's positions first, then four chunks
    rng = np.random.default_rng(1)
    chosen = np.sort(rng.choice(1000, 100, replace=False))
    chunks = [_Rows().sample(k, seed=rng) for k in (300, 300, 300, 100)]
    expected = pd.concat(chunks, ignore_index=True)
    assert len(written) == 1000  # one header, every chunk
    roundtrip = tmp_path / f"expected.{fmt}"
    getattr(expected, f"to_{fmt}")(roundtrip, index=False)
    pd.testing.assert_frame_equal(written, read(roundtrip))
    pd.testing.assert_frame_equal(kept, expected.iloc[chosen].reset_index(drop=True))


def test_a_table_no_larger_than_the_audit_sample_is_drawn_as_one_sample(tmp_path):
    from privsynth.pipeline.tables import stream_table

    file, kept = stream_table(_Rows(), 500, tmp_path, "csv", np.random.default_rng(3), 500)
    whole = _Rows().sample(500, seed=np.random.default_rng(3))
    pd.testing.assert_frame_equal(kept, whole)  # nothing else drawn from the stream
    assert len(pd.read_csv(tmp_path / file)) == 500


def test_a_text_column_missing_in_the_first_chunk_still_streams_to_parquet(tmp_path):
    # Before the fix the first chunk fixed the column's type as "null" and the second chunk,
    # which holds a value, failed to write: after the budget was spent.
    from privsynth.pipeline.tables import _writer

    with _writer(tmp_path / "t.parquet", "parquet") as write:
        write(pd.DataFrame({"code": pd.Series([None, None], dtype=object), "x": [1.0, 2.0]}))
        write(pd.DataFrame({"code": pd.Series(["a", None], dtype=object), "x": [3.0, 4.0]}))
    back = pd.read_parquet(tmp_path / "t.parquet")
    assert back["code"].tolist()[2] == "a" and back["code"].isna().sum() == 3
    assert back["x"].tolist() == [1.0, 2.0, 3.0, 4.0]
