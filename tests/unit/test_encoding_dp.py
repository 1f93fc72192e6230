"""DP-learned numeric encodings: the grid, the density, the bins, the codes, the charges."""

import math

import numpy as np
import pandas as pd
import pytest

from privsynth.budget.events import ZCDP, ApproxZCDP
from privsynth.discovery import discover_domains, plan_discovery
from privsynth.discovery.density import (
    FINE_BUCKETS,
    LEARNED_BINS,
    fine_grid,
    quantile_edges,
    tree_density,
)
from privsynth.discovery.numeric import needs, plan_column
from privsynth.encoding import Encoder, Lattice
from privsynth.errors import DataError, SchemaError
from privsynth.generators.marginal.base import MarginalGenerator
from privsynth.schema import Column, LearnedEncoding, Schema


def test_fine_grid_resolves_hours_on_a_range_of_two_thousand():
    edges, singles = fine_grid(0.0, 2000.0, None)
    assert edges[0] == 0.0 and edges[-1] == 2000.0 and len(edges) == FINE_BUCKETS + 1
    assert np.all(np.diff(edges) > 0) and singles.size == 0
    # A linear grid would put everything below 3.9 h in one bucket; the asinh grid keeps
    # buckets around 2 h narrower than 0.05 h.
    j = np.searchsorted(edges, 1.9)
    assert edges[j] - edges[j - 1] < 0.05


def test_fine_grid_gives_point_masses_a_bucket_of_their_own():
    edges, singles = fine_grid(1, 99, Lattice(1.0), (40.0,))
    assert edges.tolist() == list(range(1, 101))  # one bucket per integer, last holds 99
    assert edges[singles[0]] == 40 and edges[singles[0] + 1] == 41
    wide, singles = fine_grid(0, 99_999, Lattice(1.0), (0.0, 15024.0, 99_999.0))
    assert np.all(wide == np.round(wide)) and wide[0] == 0 and wide[-1] == 100_000
    for i, v in zip(singles, (0, 15024, 99_999), strict=True):
        assert (wide[i], wide[i + 1]) == (v, v + 1)
    cont, singles = fine_grid(0.0, 10.0, None, (10.0,))
    assert cont[singles[0]] == 10.0 and cont[-1] == np.nextafter(10.0, np.inf)
    cents, _ = fine_grid(0.0, 2.0, Lattice(1.0, 100))  # values with 2 decimals
    assert cents[:3].tolist() == [0.0, 0.01, 0.02] and cents[-1] == 2.01


def test_tree_density_is_the_counts_when_the_noise_is_negligible():
    counts = np.zeros(300, dtype=np.int64)
    counts[[3, 4, 5, 120, 299]] = [50, 7, 1, 400, 30]
    weights, charges = tree_density(counts, rho=1e3)
    # 10 levels at rho 100 each: discrete Gaussian sd sqrt(1/200) = 0.07, so every noisy
    # count is exact except with probability ~ 2 exp(-1 / (2 * 0.005)) = 1e-43.
    np.testing.assert_allclose(weights, counts, atol=1e-9)
    assert len(charges) == 10 and all(isinstance(c, ZCDP) for c in charges)
    assert math.fsum(c.rho for c in charges) <= 1e3


def test_tree_density_invents_little_mass_far_from_the_data():
    counts = np.zeros(512, dtype=np.int64)
    counts[100:120] = 200  # 4,000 rows in 20 of 512 buckets
    weights, _ = tree_density(counts, rho=0.01)
    leak = weights.sum() - weights[100:120].sum()
    # Level sd sigma = sqrt(10 / 0.02) = 22.4. Mass reaches empty buckets only where a
    # split gives an empty child a share X / (c + X) of a node holding about c, X the
    # positive part of its noise: about X rows. Two data edges, 10 levels: at most 20 such
    # X, mean 0.4 sigma and sd 0.58 sigma each, so leak <= 20*0.4*sigma + 6*sqrt(20)*0.58*
    # sigma = 528 rows (13%) except with probability < 1e-8. A flat histogram clipped at 0
    # would invent 492 * 0.4 * 7.1 = 1,400 rows (35%).
    assert leak < 0.13 * weights.sum()


def test_quantile_edges_hold_equal_mass_and_skip_point_mass_buckets():
    fine = np.arange(0.0, 513.0)
    w = np.ones(512)
    edges = quantile_edges(fine, w, np.array([], dtype=np.int64))
    assert len(edges) == LEARNED_BINS + 1 and np.all(np.diff(edges) == 16)
    small = np.arange(1.0, 12.0)  # 10 one-value buckets, one of them (at 5) a point mass
    out = quantile_edges(small, np.ones(10), np.array([4]))
    assert 5.0 not in out and out[0] == 1.0 and out[-1] == 11.0 and len(out) == 10


def test_plan_is_what_learning_charges():
    col = Column("amount", "integer")
    rho = 0.08
    planned = plan_column(col, rho=rho, delta=1e-9)
    assert needs(col) == ["bounds", "point_masses", "density"]  # rho split 1/4, 1/4, 1/2
    assert planned == [ZCDP(rho / 4), ApproxZCDP(rho / 4, 1e-9), ZCDP(rho / 2)]
    assert needs(Column("d", "datetime", lower="2020-01-01", upper="2021-01-01")) == ["density"]
    assert needs(Column("n", "integer", lower=1, upper=16)) == []  # one code per value
    assert needs(Column("x", "continuous", lower=0, upper=1, bins=8)) == []


def test_messy_table_learns_point_masses_and_charges_the_plan(messy):
    df, spec = messy
    schema = Schema.from_dict(spec)
    clean, _ = schema.validate(df)
    # A large budget makes the noise negligible, so what is asserted is the encoding.
    planned = plan_discovery(schema, rho=100.0, delta=1e-6)
    learned, spent = discover_domains(clean, schema, rho=100.0, delta=1e-6)
    MarginalGenerator._check_within(spent, planned)  # raises if any charge exceeds the plan
    amount, hours = learned["amount"].learned, learned["hours"].learned
    assert {0.0, 99_999.0} <= set(amount.point_masses) and 40.0 in hours.point_masses
    assert learned["visit"].learned.point_masses == ()  # no point masses for dates
    enc = Encoder(learned)
    codes = enc.encode(learned.validate(df)[0])
    back = enc.decode(codes, seed=0)
    # decode(encode(x)) stays in x's code: its point mass or its bin
    assert (enc.encode(learned.validate(back)[0]) == codes).all()
    assert (back["amount"] == 0).mean() == pytest.approx((df["amount"] == 0).mean(), abs=1e-12)
    assert back["amount"].dtype == np.int64 and back["visit"].dt.normalize().eq(back["visit"]).all()
    assert back["turnaround"].round(3).eq(back["turnaround"]).all()
    assert back["balance"].isna().sum() == df["balance"].isna().sum()
    # The fine density puts turnaround values where they are (median 1.9 h of 0..2,000 h).
    assert back["turnaround"].median() == pytest.approx(df["turnaround"].median(), rel=0.1)


def test_a_column_of_one_value_and_an_all_null_column_are_valid_domains():
    n = 500
    df = pd.DataFrame({"zeros": np.zeros(n, dtype=int), "empty": [None] * n})
    schema = Schema.from_dict(
        {
            "version": 1,
            "columns": {
                "zeros": {"kind": "integer"},  # bounds learned too
                "empty": {"kind": "continuous", "lower": 0, "upper": 10, "nullable": True},
            },
        }
    )
    learned, _ = discover_domains(schema.validate(df)[0], schema, rho=4.0, delta=1e-6)
    zeros = learned["zeros"]
    assert zeros.lower < zeros.upper and zeros.learned.point_masses == (0.0,)
    enc = Encoder(learned)
    back = enc.decode(enc.encode(learned.validate(df)[0]), seed=0)
    assert (back["zeros"] == 0).all() and back["empty"].isna().all()


def test_dates_keep_their_unit_and_a_time_in_a_day_column_is_an_error():
    col = {"kind": "datetime", "lower": "2020-01-01", "upper": "2021-01-01", "unit": "day"}
    schema = Schema.from_dict({"version": 1, "columns": {"d": col}})
    with pytest.raises(DataError, match=r"column 'd'.*whole days.*2020-03-07 02:00.*row 1"):
        schema.validate(pd.DataFrame({"d": ["2020-03-06", "2020-03-07 02:00"]}))
    with pytest.raises(DataError, match=r"column 'd'.*not dates.*'07/03/2020' at row 1"):
        schema.validate(pd.DataFrame({"d": ["2020-03-06", "07/03/2020"]}))  # one format only
    with pytest.raises(SchemaError, match="unit 'week'"):
        Schema.from_dict({"version": 1, "columns": {"d": {**col, "unit": "week"}}})


def test_learned_encodings_and_point_masses_round_trip_and_are_checked():
    enc = LearnedEncoding((0.0,), (0.0, 5.0, 11.0), (0.0, 1.0, 5.0, 11.0), (0.0, 3.0, 2.0))
    col = Column("x", "integer", lower=0, upper=10, learned=enc, source="dp")
    assert Column.from_dict("x", col.to_dict()) == col
    with pytest.raises(SchemaError, match="fine edges"):
        LearnedEncoding((), (0.0, 4.0), (0.0, 5.0), (1.0,))
    with pytest.raises(SchemaError, match="outside the bounds"):
        Column("x", "integer", lower=0, upper=10, point_masses=(20,))
    with pytest.raises(SchemaError, match="point_masses"):
        Column("x", "integer", lower=0, upper=10, bins=4, point_masses=(0,))
    declared = Column("x", "integer", lower=0, upper=1000, point_masses=(0,))
    assert needs(declared) == ["density"]  # a declared point mass is not searched for


@pytest.mark.parametrize("k", [1, 20])
def test_learned_bounds_stay_near_the_data_when_a_person_owns_k_rows(k):
    # 20,000 values in [10, 100]. Inside unit_of_privacy(K) the noise sd is K/sqrt(2 rho), and
    # the threshold must follow it: with a threshold set for K = 1, about a third of the ~260
    # empty buckets (sd 20 against a threshold near 5) would pass and the bounds would run
    # to the grid's ends. Kept: the data's buckets widened by a decade (BOUNDS_WIDEN), so the
    # bounds lie within [1, 2000].
    from privsynth import mechanisms
    from privsynth.discovery.numeric import bound_candidates, dp_bounds

    cands = bound_candidates("integer")
    values = np.random.default_rng(0).integers(10, 101, 20_000)
    counts = np.bincount(
        np.clip(np.searchsorted(cands, values, side="right") - 1, 0, len(cands) - 2),
        minlength=len(cands) - 1,
    ).astype(np.int64)
    with mechanisms.unit_of_privacy(k):
        lo, hi, _ = dp_bounds(counts, cands, rho=0.5)
    assert 1 <= lo <= 10 and 100 <= hi <= 2000
