import numpy as np
import pandas as pd
import pytest

from privsynth.budget.events import ZCDP, ApproxZCDP
from privsynth.discovery import discover_domains, plan_discovery
from privsynth.discovery.numeric import bound_candidates
from privsynth.encoding import Encoder, bin_edges
from privsynth.errors import SchemaError
from privsynth.generators.marginal.base import MarginalGenerator
from privsynth.schema import OTHER, Column, Schema


def _schema(**cols) -> Schema:
    return Schema(columns=tuple(Column(name=n, **spec) for n, spec in cols.items()))


def test_encode_decode_round_trip_keeps_every_code():
    s = _schema(
        sex={"kind": "categorical", "categories": ("F", "M")},
        grade={"kind": "ordinal", "categories": ("low", "mid", "high"), "nullable": True},
        age={"kind": "integer", "lower": 0, "upper": 9},
        income={"kind": "integer", "lower": 0, "upper": 1000, "bins": 10},
        weight={"kind": "continuous", "lower": 30.0, "upper": 150.0, "bins": 24},
        visit={"kind": "datetime", "lower": "2020-01-01", "upper": "2021-01-01", "bins": 12},
    )
    rng = np.random.default_rng(0)
    n = 500
    df = pd.DataFrame(
        {
            "sex": rng.choice(["F", "M"], n),
            "grade": rng.choice(["low", "mid", "high", None], n),
            "age": rng.integers(0, 10, n),
            "income": rng.integers(0, 1001, n),
            "weight": rng.uniform(30, 150, n),
            "visit": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 365, n), "D"),
        }
    )
    clean, _ = s.validate(df)
    enc = Encoder(s)
    assert enc.shape == {"sex": 2, "grade": 4, "age": 10, "income": 10, "weight": 24, "visit": 12}
    codes = enc.encode(clean)
    assert codes.shape == (n, 6) and codes.min() >= 0
    assert (codes < np.array(list(enc.shape.values()))).all()
    decoded = enc.decode(codes, seed=1)
    # Decoding draws a value inside the code's bin, so re-encoding gives the same codes.
    assert (enc.encode(s.validate(decoded)[0]) == codes).all()
    # Exact where the domain is exact.
    assert decoded["sex"].tolist() == clean["sex"].tolist()
    assert decoded["age"].tolist() == clean["age"].astype(int).tolist()
    assert decoded["grade"].isna().tolist() == clean["grade"].isna().tolist()
    assert decoded["age"].dtype == np.int64
    assert pd.api.types.is_datetime64_any_dtype(decoded["visit"])


def test_values_outside_bounds_go_to_edge_bins():
    s = _schema(x={"kind": "continuous", "lower": 0.0, "upper": 10.0, "bins": 5})
    enc = Encoder(s)
    codes = enc.encode(pd.DataFrame({"x": [-5.0, 0.0, 9.99, 10.0, 50.0]}))
    assert codes[:, 0].tolist() == [0, 0, 4, 4, 4]


def test_integer_bins_cover_every_integer_once():
    col = Column("n", "integer", lower=0, upper=99, bins=7)
    edges = bin_edges(col)
    assert edges[0] == 0 and edges[-1] == 100 and len(edges) == 8
    assert np.all(np.diff(edges) >= 1)
    assert len(bin_edges(Column("n", "integer", lower=1, upper=16))) == 17  # one per value


def test_encoder_needs_every_domain():
    with pytest.raises(SchemaError, match="'clinic' has no domain yet"):
        Encoder(_schema(clinic={"kind": "categorical"}))


def test_plan_splits_the_budget_over_undeclared_columns():
    s = _schema(
        a={"kind": "categorical"},
        b={"kind": "integer"},
        c={"kind": "categorical", "categories": ("x",)},
    )
    # rho 0.125 per column: the categorical one's stable histogram, and for the integer
    # one 1/4 to bounds, 1/4 to point masses (a stable histogram) and 1/2 to the fine
    # density; delta is shared by the two columns that need one.
    assert plan_discovery(s, rho=0.25, delta=1e-8) == [
        ApproxZCDP(0.125, 5e-9),
        ZCDP(0.03125),
        ApproxZCDP(0.03125, 5e-9),
        ZCDP(0.0625),
    ]
    assert (
        plan_discovery(
            _schema(c={"kind": "categorical", "categories": ("x",)}), rho=1.0, delta=1e-8
        )
        == []
    )


def test_discovery_never_reveals_a_value_held_by_one_row():
    # A stable histogram keeps a count-1 key with probability <= delta = 5e-11 per trial, so
    # 20 trials reveal it with probability <= 1e-9; frequent keys (count 500; rho 0.5, sd 1,
    # threshold ~ 1 + sqrt(2 ln(1/delta)) ~ 8) are kept with probability > 1 - 1e-100.
    rng = np.random.default_rng(3)
    n = 2000
    clinic = rng.choice(["north", "south", "east", "west"], n).astype(object)
    clinic[17] = "Dr. Rare's clinic"
    age = rng.integers(20, 60, n)
    age[42] = 1_000_000  # one extreme outlier
    df = pd.DataFrame({"clinic": clinic, "age": age})
    s = _schema(clinic={"kind": "categorical"}, age={"kind": "integer"})
    planned = plan_discovery(s, rho=1.0, delta=1e-10)
    cands = set(bound_candidates("integer").tolist())
    for _ in range(20):
        learned, spent = discover_domains(df, s, rho=1.0, delta=1e-10)
        cats = learned["clinic"].categories
        assert "Dr. Rare's clinic" not in cats
        assert set(cats) == {"east", "north", "south", "west", OTHER}
        assert learned["clinic"].source == learned["age"].source == "dp"
        lo, hi = learned["age"].lower, learned["age"].upper
        # rho 0.5 for the column, a quarter (0.125) for the bounds, noise sd
        # sigma = 1/sqrt(0.25) = 2 per bucket. Buckets [20, 25) .. [50, 60) hold 250-500 rows,
        # far above the threshold sqrt(2 ln(264 / 1e-6)) * sigma = 12.5. The outlier's bucket
        # (1 row) clears it with probability P(Z >= 5.7) < 1e-8 and the 262 empty ones with
        # 262 * P(Z >= 6.2) < 1e-7 per trial. The bounds are the kept range widened by a
        # decade of the grid (11 candidates) on each side: [2, 600).
        assert lo in cands and hi in cands and (lo, hi) == (2, 600)
        MarginalGenerator._check_within(spent, planned)  # raises if a charge exceeds the plan
    enc = Encoder(learned)
    codes = enc.encode(learned.validate(df)[0])  # rare values validate to "(other)"
    assert codes[17, 0] == learned["clinic"].categories.index(OTHER)
    assert codes[42, 1] == enc.shape["age"] - 1  # the outlier is clipped into the top bin
    assert learned.validate(df)[1].clipped["age"] == 1


def test_bound_candidates_are_public_and_sorted():
    c = bound_candidates("continuous")
    assert np.all(np.diff(c) > 0) and 0.0 in c and -1.0 in c and 1e9 in c
    d = bound_candidates("datetime")
    assert d[0] == pd.Timestamp("1900-01-01").value


def test_explicit_edges_keep_zero_apart():
    col = Column("gain", "integer", edges=(0, 1, 1000, 100000))
    assert (col.lower, col.upper) == (0, 100000)
    enc = Encoder(Schema(columns=(col,)))
    codes = enc.encode(pd.DataFrame({"gain": [0, 0, 1, 999, 1000, 100000]}))
    assert codes[:, 0].tolist() == [0, 0, 1, 1, 2, 2]
    back = enc.decode(codes, seed=0)["gain"]
    assert back[:2].tolist() == [0, 0] and back.between(0, 100000).all()
    assert Column.from_dict("gain", col.to_dict()) == col
    with pytest.raises(SchemaError, match="integer 'edges'"):
        Column("gain", "integer", edges=(0, 0.5, 2))
    with pytest.raises(SchemaError, match="increasing"):
        Column("gain", "continuous", edges=(0, 2, 1))
    with pytest.raises(SchemaError, match="not both"):
        Column("gain", "continuous", edges=(0, 1), bins=3)
