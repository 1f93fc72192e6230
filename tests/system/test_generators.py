"""Fitted marginal generators (MST, AIM): 2-way links, conditions, MST's target tree, rare
merged values, DuckDB/Spark sources, Parquet streaming and AIM's warm-started rounds. What
every generator does (shape, domains, ledger, save/load, seeds) is in tests/contract/."""

import numpy as np
import pandas as pd
import pytest

from privsynth.budget import Budget, Ledger
from privsynth.errors import ConfigError
from privsynth.generators.marginal.aim import AIM
from privsynth.generators.marginal.mst import MST
from privsynth.schema import Schema
from privsynth.utility import mean_tvd

GENERATORS = [MST, lambda **kw: AIM(round_iters=20, **kw)]
IDS = ["MST", "AIM"]


@pytest.fixture(scope="module", params=range(len(GENERATORS)), ids=IDS)
def fitted(request, table, tmp_path_factory):
    df, schema = table
    path = tmp_path_factory.mktemp("ledger") / "l.sqlite"
    ledger = Ledger.open(path, dataset_id="t", cap=Budget(10.0, 1e-6))
    gen = GENERATORS[request.param](epsilon=5.0, delta=1e-9, device="cpu")
    gen.fit(df, schema, ledger)
    return gen, ledger, schema


def test_two_way_links_survive_sampling(fitted, table):
    # At epsilon 5 the (x, y) pair is measured with noise sd ~ 2 against counts ~ 750, so the
    # synthetic (x, y) marginal is within sampling error: 1/2 sum |p - q| over 16 cells with
    # sd ~ sqrt(p/5000) per cell is < 0.05. Sampling columns independently would give 0.75.
    gen, _, _ = fitted
    df, _ = table
    out = gen.sample(5000, seed=4)
    s2 = Schema.from_dict(
        {
            "version": 1,
            "columns": {
                "x": {"kind": "categorical", "categories": ["0", "1", "2", "3"]},
                "y": {"kind": "categorical", "categories": ["0", "1", "2", "3"]},
            },
        }
    )
    assert mean_tvd(df[["x", "y"]], out[["x", "y"]], s2, way=2) < 0.05


def test_conditions_clamp_a_column_and_unknown_values_are_refused(fitted):
    gen, _, _ = fitted
    rich = gen.sample(400, seed=2, conditions={"income": ">50K"})
    assert (rich["income"] == ">50K").all()
    with pytest.raises(ConfigError, match="not a category"):
        gen.sample(10, conditions={"income": "rich"})


@pytest.mark.parametrize("make", GENERATORS, ids=IDS)
def test_data_dependent_domains_with_the_opt_in_are_a_caveat(make, table):
    df, _ = table
    draft = Schema.draft(df)
    gen = make(epsilon=3.0, allow_data_dependent_domain=True, device="cpu").fit(df, draft)
    assert any("DP caveat" in c for c in gen.privacy_spec()["caveats"])


def test_mst_with_a_target_pairs_it_with_every_column_and_spans_the_rest(table, tmp_path):
    """Tree-augmented naive Bayes: the target's 2-way marginal with each other column, and a
    spanning tree of the other columns picked by d - 2 exponential-mechanism draws; the same
    rho in total."""
    from privsynth.budget import ZCDP

    df, schema = table
    gen = MST(epsilon=5.0, delta=1e-9, device="cpu", target="income").fit(df, schema)
    others = [c for c in schema.names if c != "income"]
    pairs = [m.clique for m in gen.measurements_ if len(m.clique) == 2]
    star = sorted(c for p in pairs if "income" in p for c in p if c != "income")
    assert star == sorted(others)
    tree = [p for p in pairs if "income" not in p]
    assert len(tree) == len(others) - 1
    component = {c: c for c in others}  # the tree joins all the other columns
    for a, b in tree:
        old = component[b]
        component = {c: component[a] if k == old else k for c, k in component.items()}
    assert len(set(component.values())) == 1
    d = len(schema.names)
    zcdp = [e for e in gen.charges_ if isinstance(e, ZCDP)]
    assert len(zcdp) == d + (d - 2) + len(pairs)  # 1-way, selection picks, 2-way
    planned = sum(e.rho for e in gen.planned_ if isinstance(e, ZCDP))
    assert sum(e.rho for e in zcdp) == pytest.approx(planned, rel=1e-6)
    gen.save(tmp_path / "m.json")
    back = MST.load(tmp_path / "m.json", device="cpu")
    assert back.target == "income"
    pd.testing.assert_frame_equal(back.sample(50, seed=4), gen.sample(50, seed=4))


def test_conditioning_on_a_rare_merged_value_returns_only_that_value():
    # At epsilon 0.1 MST's 1-way noise sd is ~160 here, so values held by 5 of 4,000 rows fall
    # under its 3-sigma threshold and share one code unless the noise exceeds ~3 sd
    # (P < 0.3% for the pair; then the check below still holds, just without the merge).
    # Conditioning on one of them must return only it, never its code-mate.
    rng = np.random.default_rng(5)
    n = 4000
    g = rng.choice(["a", "b"], n).astype(object)
    g[:5], g[5:10] = "rare1", "rare2"
    df = pd.DataFrame({"g": g, "h": rng.choice(["x", "y"], n)})
    schema = Schema.from_dict(
        {
            "version": 1,
            "columns": {
                "g": {"kind": "categorical", "categories": ["a", "b", "rare1", "rare2"]},
                "h": {"kind": "categorical", "categories": ["x", "y"]},
            },
        }
    )
    gen = MST(epsilon=0.1, device="cpu").fit(df, schema)
    out = gen.sample(300, seed=0, conditions={"g": "rare1"})
    assert (out["g"] == "rare1").all()


@pytest.mark.parametrize("make", GENERATORS, ids=IDS)
def test_fitting_in_an_engine_measures_exactly_what_pandas_measures(
    make, table, engine_source, tmp_path, monkeypatch
):
    """Same data through DuckDB/Spark and through pandas: with the noise replaced by zero
    (every mechanism still runs for its charge, its output is the exact input), each run asks
    the same questions in the same order, so the exact counts handed to the mechanisms must
    be identical, discovery of the undeclared 'clinic' column included."""
    from privsynth import mechanisms

    calls: list[tuple] = []
    real = {
        n: getattr(mechanisms, n) for n in ("gaussian_counts", "select_max", "stable_histogram")
    }

    def gaussian_counts(counts, rho):
        calls.append(("gaussian", np.asarray(counts).tolist(), rho))
        return np.asarray(counts, dtype=np.float64), real["gaussian_counts"](counts, rho)[1]

    def select_max(scores, **kw):
        calls.append(("select", np.round(np.asarray(scores), 6).tolist()))
        return int(np.argmax(scores)), real["select_max"](scores, **kw)[1]

    def stable_histogram(counts, **kw):
        calls.append(("histogram", dict(counts)))
        return dict(counts), real["stable_histogram"](counts, **kw)[1]

    for name, fn in [
        ("gaussian_counts", gaussian_counts),
        ("select_max", select_max),
        ("stable_histogram", stable_histogram),
    ]:
        monkeypatch.setattr(mechanisms, name, fn)
    df, schema = table
    df.to_parquet(tmp_path / "t.parquet")
    runs = []
    for data in (df, engine_source(tmp_path / "t.parquet")):
        calls.clear()
        gen = make(epsilon=5.0, delta=1e-9, device="cpu", iters=20).fit(data, schema)
        runs.append((list(calls), gen.schema_, gen.sample(50, seed=1)))
    (pandas_calls, pandas_schema, pandas_rows), (engine_calls, engine_schema, engine_rows) = runs
    assert len(pandas_calls) > 2 * len(schema.names)
    assert engine_calls == pandas_calls
    assert engine_schema == pandas_schema
    pd.testing.assert_frame_equal(engine_rows, pandas_rows)


def test_sample_to_parquet_streams_chunks_and_is_atomic(fitted, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    gen, _, schema = fitted
    path = tmp_path / "syn.parquet"
    asked = []
    real = gen._sample_codes

    def spy(n, rng, conditions):
        asked.append(n)
        return real(n, rng, conditions)

    monkeypatch.setattr(gen, "_sample_codes", spy)
    assert gen.sample_to_parquet(path, 2500, chunk_rows=1000, seed=3) == 2500
    assert asked == [1000, 1000, 500]  # memory holds one chunk at a time
    meta = pq.ParquetFile(path).metadata
    assert (meta.num_rows, meta.num_row_groups) == (2500, 3)
    out = pd.read_parquet(path)
    assert list(out.columns) == [c.name for c in gen.schema_.synthesised]
    assert out["age"].between(18, 80).all() and out["x"].isin(["0", "1", "2", "3"]).all()
    again = tmp_path / "again.parquet"
    gen.sample_to_parquet(again, 2500, chunk_rows=1000, seed=3)
    pd.testing.assert_frame_equal(pd.read_parquet(again), out)

    def boom(n, rng, conditions):  # fails on the second chunk
        asked.append(n)
        if len(asked) == 2:
            raise RuntimeError("killed mid-write")
        return real(n, rng, conditions)

    asked.clear()
    monkeypatch.setattr(gen, "_sample_codes", boom)
    with pytest.raises(RuntimeError):
        gen.sample_to_parquet(path, 2500, chunk_rows=1000, seed=4)
    pd.testing.assert_frame_equal(pd.read_parquet(path), out)  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.parquet", "syn.parquet"]


def test_cli_sample_streams_a_saved_model(fitted, tmp_path, capsys):
    from privsynth.cli import main
    from privsynth.errors import EXIT_CODES

    gen, _, _ = fitted
    gen.save(tmp_path / "model.json")
    args = ["sample", str(tmp_path / "model.json"), "--out", str(tmp_path / "s.parquet")]
    args += ["--rows", "2500", "--chunk-rows", "1000", "--seed", "0"]
    for expected in (0, EXIT_CODES["ConfigError"]):  # the second run refuses to overwrite
        with pytest.raises(SystemExit) as exc:
            main(args)
        assert exc.value.code == expected, capsys.readouterr().err
    out = pd.read_parquet(tmp_path / "s.parquet")
    assert len(out) == 2500 and list(out.columns) == [c.name for c in gen.schema_.synthesised]


def test_aim_starts_every_round_estimate_from_the_ipf_step_on_the_clique_it_measured(
    table, monkeypatch
):
    # If the round loop dropped the start (or passed another clique's), this fails: each
    # warm-started estimate between rounds must get exactly _ipf_start's output for the
    # measurement just taken.
    import privsynth.generators.marginal.aim as aim

    calls, real = [], aim.estimate

    def spy(measurements, domain, **kw):
        calls.append((list(measurements), kw))
        return real(measurements, domain, **kw)

    starts = []
    real_start = aim._ipf_start

    def start_spy(model, clique, y, before, step):
        out = real_start(model, clique, y, before, step)
        starts.append((clique, y, out))
        return out

    monkeypatch.setattr(aim, "estimate", spy)
    monkeypatch.setattr(aim, "_ipf_start", start_spy)
    df, schema = table
    AIM(epsilon=5.0, delta=1e-9, round_iters=5, iters=5, device="cpu").fit(df, schema)
    rounds = calls[1:-1]  # the first estimate (1-way only) and the final one have no start
    assert rounds and len(starts) == len(rounds)
    for (measurements, kw), (clique, y, out) in zip(rounds, starts, strict=True):
        assert measurements[-1].clique == clique and measurements[-1].values is y
        assert kw["init"] is out and kw["warm_start"] is not None
    assert "init" not in calls[0][1] and "init" not in calls[-1][1]
