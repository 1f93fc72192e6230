"""Utility metrics: hand-computed values on tiny tables and evaluate()'s argument checks.
evaluate() end to end (it trains classifiers) is in tests/system/test_utility.py."""

import math

import numpy as np
import pandas as pd
import pytest

from privsynth.errors import ConfigError, DataError
from privsynth.schema import Schema
from privsynth.utility import evaluate, mean_tvd
from privsynth.utility.association import association, cramers_v, pearson
from privsynth.utility.marginals import column_sets, kl_1way, marginal_tvds

SCHEMA = Schema.from_dict(
    {
        "version": 1,
        "columns": {
            "id": {"kind": "identifier"},
            "a": {"kind": "categorical", "categories": ["p", "q", "r"]},
            "b": {"kind": "categorical", "categories": ["p", "q", "r"]},
            "n": {"kind": "integer", "lower": 0, "upper": 9},
            "w": {"kind": "continuous", "lower": 0, "upper": 1, "bins": 5, "nullable": True},
            "y": {"kind": "categorical", "categories": ["no", "yes"]},
            "k": {"kind": "ordinal", "categories": ["lo", "mid", "hi"]},
        },
    }
)


def draw(n: int, seed: int) -> pd.DataFrame:
    """b copies a 90% of the time; n rises with a; y = n >= 5; k = n // 4 (three classes)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 3, n)
    b = np.where(rng.random(n) < 0.9, a, rng.integers(0, 3, n))
    num = np.clip(3 * a + rng.integers(0, 4, n), 0, 9)
    w = rng.random(n).round(6)
    return pd.DataFrame(
        {
            "id": np.arange(n) + 10_000 * seed,
            "a": np.array(["p", "q", "r"])[a],
            "b": np.array(["p", "q", "r"])[b],
            "n": num,
            "w": np.where(rng.random(n) < 0.1, np.nan, w),
            "y": np.where(num >= 5, "yes", "no"),
            "k": np.array(["lo", "mid", "hi"])[num // 4],
        }
    )


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    return draw(1237, seed=1)


# ----------------------------------------------------------- hand-computed values
def test_tvd_of_known_distributions():
    # column 0: (1/2, 1/2) vs (3/4, 1/4) -> TVD 1/4; the pair: cells (0,0),(1,1) vs (0,1),(1,0)
    a = np.array([[0, 0], [0, 0], [1, 1], [1, 1]])
    b = np.array([[0, 1], [0, 1], [0, 1], [1, 0]])
    assert marginal_tvds(a, b, [2, 2], [(0,), (0, 1)]).tolist() == [0.25, 1.0]


def test_kl_with_half_count_smoothing():
    # real p = (1/2, 1/2, 0); synthetic counts (3, 1, 0) + 1/2 each -> q = (3.5, 1.5, 0.5) / 5.5
    real = np.array([[0], [1]])
    syn = np.array([[0], [0], [0], [1]])
    q = np.array([3.5, 1.5]) / 5.5
    expected = 0.5 * math.log(0.5 / q[0]) + 0.5 * math.log(0.5 / q[1])
    assert kl_1way(real, syn, [3])[0] == pytest.approx(expected, rel=1e-12)


def test_association_hand_values():
    # 2x2 table (0.4, 0.1; 0.1, 0.4): phi^2 = 0.36, Pearson of the indices = 0.6
    t = np.array([[0.4, 0.1], [0.1, 0.4]])
    assert cramers_v(t) == pytest.approx(0.6)
    assert pearson(t) == pytest.approx(0.6)
    # both numeric with a missing code (third row/column) left out of Pearson
    t3 = np.array([[0.4, 0.1, 0.0], [0.1, 0.4, 0.0], [0.0, 0.0, 0.5]])
    assert association(t3, (2, 2)) == pytest.approx(0.6)
    assert association(np.array([[1.0, 0.0]]), (None, None)) == 0.0  # a constant column


def test_column_sets_are_seeded_subsets():
    sets = column_sets(range(6), 3, max_sets=5, seed=4)
    assert len(sets) == 5 and sets == sorted(sets)
    assert sets == column_sets(range(6), 3, max_sets=5, seed=4)
    assert column_sets(range(4), 3, max_sets=100) == column_sets(range(4), 3)


def test_mean_tvd_on_frames(real):
    assert mean_tvd(real, real, SCHEMA, way=3) == 0.0


# ------------------------------------------------------------------- bad input
def test_target_not_in_schema_names_it(real):
    with pytest.raises(ConfigError, match="'income'"):
        evaluate(real, real, SCHEMA, target="income")


def test_target_missing_from_a_table_names_it(real):
    with pytest.raises(ConfigError, match="'y' is missing from the holdout table"):
        evaluate(real, real, SCHEMA, target="y", holdout=real.drop(columns="y"))


@pytest.mark.parametrize("kw", [{"max_rows": 0}, {"max_rows": 2.5}, {"seed": -1}])
def test_bad_parameters(real, kw):
    with pytest.raises(ConfigError, match=next(iter(kw))):
        evaluate(real, real, SCHEMA, **kw)


def test_empty_table(real):
    with pytest.raises(DataError, match="synthetic table has no rows"):
        evaluate(real, real.iloc[:0], SCHEMA)


def _shuffled_columns(df: pd.DataFrame, seed: int) -> pd.DataFrame:
    """``df`` with each column permuted on its own: every 1-way share kept, every link cut."""
    rng = np.random.default_rng(seed)
    return df.apply(lambda col: col.to_numpy()[rng.permutation(len(col))])


def test_the_independent_columns_baseline_sits_between_a_copy_and_cut_links(real):
    """A copy keeps every relationship (association ratio 0 to the baseline); columns
    shuffled apart keep none (ratio about 1); the usefulness verdict reads that ratio."""
    from privsynth.report.verdicts import association_ratio

    copy = evaluate(real, draw(1237, seed=2), SCHEMA, seed=0).to_dict()
    cut = evaluate(real, _shuffled_columns(draw(1237, seed=2), 3), SCHEMA, seed=0).to_dict()
    base = copy["baselines"]["independent_columns"]
    assert base["association_difference_mean"] > 0.1 and base["tvd_2way_mean"] > 0.05
    assert base == cut["baselines"]["independent_columns"]  # a function of real rows and seed
    assert association_ratio(copy) < 0.3
    assert 0.7 < association_ratio(cut) < 1.3
