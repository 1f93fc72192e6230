"""The contract every generator keeps, checked once for each of MST, AIM, DPVAE and DPCTGAN.

Each generator is fitted once (tiny settings: the DP-SGD ones train for two epochs) on a messy
table: zero-inflated and top-coded integers, a continuous column far inside its public range,
dates, nulls and an undeclared category list with a value held by three rows. Behaviour that
only one family has (MST's tree, AIM's rounds, DP-SGD's sigma calibration) is tested beside
that family in tests/unit and tests/system.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

import privsynth
from privsynth import Budget, Ledger, Schema
from privsynth.budget import epsilon_spent, event_from_dict
from privsynth.errors import BudgetExceeded, ConfigError, PrivsynthError, SchemaError

EPSILON, DELTA = 5.0, 1e-9
ROWS = 2000
NAMES = ["MST", "AIM", "DPVAE", "DPCTGAN"]
#: Settings that keep each fit to a second or two; the DP statement does not depend on them.
FAST: dict[str, dict] = {
    "MST": {},
    "AIM": {"round_iters": 20},
    "DPVAE": {"epochs": 2, "batch_size": 500},
    "DPCTGAN": {
        "epochs": 2,
        "batch_size": 500,
        "embedding_dim": 8,
        "generator_hidden": (32,),
        "discriminator_hidden": (32,),
    },
}


#: The column type a sample has for each kind of column.
KIND_DTYPE = {
    "integer": pd.api.types.is_integer_dtype,
    "continuous": pd.api.types.is_float_dtype,
    "datetime": pd.api.types.is_datetime64_any_dtype,
    "categorical": lambda d: pd.api.types.is_object_dtype(d) or pd.api.types.is_string_dtype(d),
}


def make(name: str, **params):
    """An unfitted generator ``name`` with the fast settings."""
    return getattr(privsynth, name)(**{"device": "cpu", **FAST[name], **params})


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny networks gain nothing from threads, and on shared cores OpenMP's spinning
    barrier slows them down many times."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(make_messy):
    df, schema = make_messy(ROWS)
    return df, Schema.from_dict(schema)


@pytest.fixture(scope="module", params=NAMES)
def fitted(request, data, tmp_path_factory):
    df, schema = data
    ledger = Ledger.open(
        tmp_path_factory.mktemp("ledger") / "l.sqlite", dataset_id="t", cap=Budget(10.0, 1e-6)
    )
    gen = make(request.param, epsilon=EPSILON, delta=DELTA)
    assert gen.fit(df, schema, ledger) is gen  # fit returns the estimator
    yield gen, ledger
    ledger.close()


def test_samples_have_the_schema_columns_types_and_stay_in_the_declared_domains(fitted, data):
    gen, _ = fitted
    df, schema = data
    out = gen.sample(500, seed=0)
    assert list(out.columns) == schema.names and len(out) == 500
    gen.schema_.validate(out)  # raises on an unknown category or a value of the wrong type
    for col in gen.schema_.columns:
        values = out[col.name]
        assert KIND_DTYPE[col.kind](values.dtype), (col.name, values.dtype)
        if not col.nullable:
            assert values.notna().all(), col.name
        values = values.dropna()
        if col.categories is not None:
            assert set(values) <= set(col.categories), col.name
        elif col.lower is not None:
            lo, hi = col.bound_values()  # datetimes in nanoseconds since the epoch
            numeric = values.dt.as_unit("ns").astype("int64") if col.kind == "datetime" else values
            assert numeric.between(lo, hi).all(), col.name


def test_a_value_held_by_three_rows_is_never_learned_or_sampled(fitted):
    gen, _ = fitted
    assert "Z-rare" not in gen.schema_["code"].categories
    assert "Z-rare" not in set(gen.sample(3000, seed=3)["code"])


def test_the_default_sample_size_is_the_dp_row_estimate(fitted):
    # Every generator spends a small share of its budget on the row count (noise sd in
    # the tens of rows at epsilon 5); 10% of 2,000 rows is far outside it.
    gen, _ = fitted
    assert abs(len(gen.sample(seed=1)) - ROWS) < 0.1 * ROWS


def test_the_ledger_is_charged_exactly_the_plan_and_the_plan_meets_the_budget(fitted, data):
    gen, ledger = fitted
    _, schema = data
    entries = ledger.entries()
    reserves = [e for e in entries if e["kind"] == "reserve"]
    committed = {e["reservation"] for e in entries if e["kind"] == "commit"}
    assert reserves and {r["reservation"] for r in reserves} == committed
    charged = [event_from_dict(e) for r in reserves for e in r["events"]]
    spec = gen.privacy_spec()
    assert charged == gen.planned_
    assert [event_from_dict(e) for e in spec["planned_charges"]] == charged
    assert [event_from_dict(e) for e in spec["charges"]] == gen.charges_
    assert len(gen.plan(schema)) == len(charged)
    # The plan composes to at most (epsilon, delta); what the mechanisms spent fits inside it.
    assert epsilon_spent(charged, DELTA) <= EPSILON
    assert spec["epsilon_spent"] <= EPSILON * (1 + 1e-9)
    assert (spec["epsilon"], spec["delta"]) == (EPSILON, DELTA)
    assert ledger.spent().epsilon <= ledger.cap.epsilon


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("name", NAMES)
def test_a_fit_over_budget_is_refused_before_reading_and_leaves_the_ledger_untouched(
    name, data, tripwire, tmp_path
):
    _, schema = data
    folder = tmp_path / "ledger"
    folder.mkdir()
    with Ledger.open(folder / "l.sqlite", dataset_id="t", cap=Budget(0.5, 1e-6)) as new:
        new.register()
    before = _files(folder)
    ledger = Ledger.open(folder / "l.sqlite", dataset_id="t")
    with pytest.raises(BudgetExceeded):
        make(name, epsilon=1.0, delta=DELTA).fit(tripwire, schema, ledger)
    assert [e["kind"] for e in ledger.entries()] == ["cap"]
    ledger.close()
    assert _files(folder) == before


def test_save_and_load_reproduce_samples_and_the_privacy_spec(fitted, tmp_path):
    gen, _ = fitted
    gen.save(tmp_path / "model")
    again = type(gen).load(tmp_path / "model", device="cpu")
    pd.testing.assert_frame_equal(gen.sample(200, seed=5), again.sample(200, seed=5))
    assert again.privacy_spec() == gen.privacy_spec()


def test_a_seed_fixes_the_sample_and_another_seed_changes_it(fitted):
    gen, _ = fitted
    pd.testing.assert_frame_equal(gen.sample(300, seed=9), gen.sample(300, seed=9))
    assert not gen.sample(300, seed=9).equals(gen.sample(300, seed=10))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("call", ["sample", "save", "privacy_spec"])
def test_using_an_unfitted_generator_is_a_clear_error(name, call, tmp_path):
    gen = make(name)
    args = {"sample": (10,), "save": (tmp_path / "m",), "privacy_spec": ()}[call]
    with pytest.raises(PrivsynthError, match=r"not fitted yet; call fit\(data, schema\)"):
        getattr(gen, call)(*args)
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("name", NAMES)
def test_data_dependent_domains_are_refused_without_the_opt_in(name, data, tripwire):
    df, _ = data
    with pytest.raises(SchemaError, match="source: data"):
        make(name, epsilon=1.0).fit(tripwire, Schema.draft(df))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "bad",
    [
        {"epsilon": 0},
        {"epsilon": -1.0},
        {"epsilon": math.nan},
        {"epsilon": math.inf},
        {"delta": 0},
        {"delta": 1.5},
        {"device": "gpu"},
    ],
    ids=lambda bad: "{}={}".format(*next(iter(bad.items()))),
)
def test_bad_budget_or_device_names_itself_before_the_data_is_read(name, bad, data, tripwire):
    _, schema = data
    params = {"epsilon": 1.0, "delta": DELTA, **bad}
    with pytest.raises(ConfigError, match=next(iter(bad))):
        make(name, **params).fit(tripwire, schema)


def test_every_generator_is_in_the_contract():
    """A generator added to the public API must be added here."""
    public = {n for n in privsynth.__all__ if n.isupper() and n not in {"ZCDP"}}
    assert public == set(NAMES)
