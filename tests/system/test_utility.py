"""evaluate() end to end: C2ST, target models, duplicates, subsampling and aggregate-only
output."""

import json

import numpy as np
import pandas as pd
import pytest

from privsynth.errors import ConfigError
from privsynth.schema import Schema
from privsynth.utility import UtilityReport, evaluate
from privsynth.utility.classifiers import auc_null_se
from tests.unit.test_utility import SCHEMA, draw


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    return draw(1237, seed=1)


@pytest.fixture(scope="module")
def identical(real) -> UtilityReport:
    return evaluate(real, real.copy(), SCHEMA, seed=0)


@pytest.fixture(scope="module")
def fresh(real) -> UtilityReport:
    """A 'synthetic' table drawn from the real one's distribution, with a binary target."""
    return evaluate(real, draw(1000, seed=2), SCHEMA, target="y", holdout=draw(500, seed=3))


# --------------------------------------------------------------------- evaluate
def test_identical_tables(identical):
    d = identical.to_dict()
    assert [d["tvd"][w]["mean"] for w in ("1way", "2way", "3way")] == [0.0, 0.0, 0.0]
    assert d["tvd"]["3way"]["n_marginals"] == 20  # C(6, 3) < 100: all triples
    assert d["correlation_difference"] == {"mean": 0.0, "max": 0.0, "n_pairs": 15}
    # Only the KL smoothing separates identical tables: KL >= 0, and small at 1237 rows.
    assert 0 < d["kl_1way"]["mean"] <= d["kl_1way"]["max"] < 0.01


def test_c2st_near_chance_on_same_distribution(fresh, identical):
    # n = 1000 synthetic rows -> halves of 500 per class in the test set; the AUC of an
    # uninformative classifier has SE sqrt((500 + 500 + 1) / (12 * 500 * 500)) = 0.0183.
    # A 4-SE band fails by chance with probability 6e-5.
    se = auc_null_se(500, 500)
    assert fresh.c2st["auc_null_se"] == pytest.approx(se, rel=0.05)
    assert abs(fresh.c2st["auc"] - 0.5) < 4 * se
    # Identical tables, n = 1237 -> test halves of 619 rows (SE 0.0164). Not above chance;
    # below it is expected: the held-out real rows are the ones never seen labelled real,
    # while each held-out synthetic copy was seen as real in training with probability 1/2.
    assert identical.c2st["auc"] < 0.5 + 4 * auc_null_se(619, 619)


def test_shuffled_column_breaks_2way_fidelity(real, fresh):
    shuffled = real.assign(b=np.random.default_rng(0).permutation(real["b"].to_numpy()))
    rep = evaluate(real, shuffled, SCHEMA)
    assert rep.tvd["1way"]["mean"] == 0.0  # a permutation keeps every 1-way marginal
    assert rep.tvd["2way"]["mean"] > fresh.tvd["2way"]["mean"]
    assert rep.plots["worst_pairs"][0]["columns"] == ["a", "b"]
    assert rep.correlation_difference["max"] > 0.5  # Cramér's V of (a, b): about 0.85 -> 0
    assert rep.c2st["auc"] > 0.7
    assert rep.c2st["pmse"] > 4 * fresh.c2st["pmse"]


def test_duplicate_rate_counts_repeats_of_earlier_rows(real):
    syn = pd.concat([real.iloc[:6], real.iloc[[0, 0, 1, 2]]], ignore_index=True)
    syn["id"] = range(len(syn))  # repeats of the synthesised values, each its own row
    rep = evaluate(real, syn, SCHEMA)
    assert rep.duplicate_rate == pytest.approx(4 / 10)


def test_binary_target_with_holdout(fresh):
    t = fresh.tstr
    assert (t["task"], t["metric"], t["test_on"]) == ("binary", "roc_auc", "holdout")
    # y is a function of n, so both models rank the holdout perfectly.
    assert t["synthetic"] == pytest.approx(1.0)
    assert t["real"] == pytest.approx(1.0)


def test_multiclass_target_on_real(real):
    rep = evaluate(real, draw(800, seed=5), SCHEMA, target="k")
    t = rep.tstr
    assert (t["task"], t["metric"], t["test_on"]) == ("multiclass", "macro_f1", "real")
    assert t["synthetic"] == pytest.approx(1.0)  # k = n // 4 exactly
    assert t["real"] is None


def test_single_class_synthetic_target_is_undefined(real):
    syn = draw(300, seed=6).assign(y="no")
    rep = evaluate(real, syn, SCHEMA, target="y")
    assert rep.tstr["synthetic"] is None
    assert any("single class of 'y'" in n for n in rep.notes)


def test_subsampling_reveals_nothing_about_the_real_row_count(real):
    # Whether the real table was longer than max_rows is a function of the private count: the
    # output must be the same whichever side of max_rows the real table falls.
    syn = draw(300, seed=7)
    long, short = evaluate(real, syn, SCHEMA, max_rows=500), evaluate(real, syn, SCHEMA)
    assert long.sampling.keys() == short.sampling.keys()
    assert {k: v for k, v in long.sampling.items() if k != "max_rows"} == {
        k: v for k, v in short.sampling.items() if k != "max_rows"
    }


# ------------------------------------------------------------------- the output
def _leaves(x):
    if isinstance(x, dict):
        for v in x.values():
            yield from _leaves(v)
    elif isinstance(x, list):
        for v in x:
            yield from _leaves(v)
    else:
        yield x


def test_json_holds_aggregates_only(real, fresh):
    d = fresh.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert set(d) == {
        "tvd", "kl_1way", "correlation_difference", "c2st", "duplicate_rate", "tstr",
        "baselines", "plots", "sampling", "notes", "methods",
    }  # fmt: skip
    numbers = {v for v in _leaves(json.loads(text)) if isinstance(v, (int, float))}
    assert not numbers & set(real["w"].dropna())  # no real value
    assert not numbers & set(real["id"])
    assert len(real) not in numbers  # nor the real row count
    for dist in d["plots"]["marginals"]:
        for p in dist["real"] + dist["synthetic"]:
            assert p is None or p == round(p, 4)


def test_distributions_have_labels_and_merge_wide_columns():
    cats = [f"c{i:02d}" for i in range(45)]
    s = Schema.from_dict(
        {
            "version": 1,
            "columns": {
                "age": {"kind": "integer", "lower": 0, "upper": 99, "bins": 100},
                "cat": {"kind": "categorical", "categories": cats},
                "w": {"kind": "continuous", "lower": 0, "upper": 1, "bins": 4, "nullable": True},
            },
        }
    )
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "age": rng.integers(0, 100, 400),
            "cat": rng.choice(cats[:3], 400),
            "w": np.where(rng.random(400) < 0.5, np.nan, rng.random(400)),
        }
    )
    age, cat, w = evaluate(df, df, s).plots["marginals"]
    assert age["merged"] and len(age["labels"]) == 34  # 100 codes in runs of ceil(100/40) = 3
    assert age["labels"][:2] == ["0–2", "3–5"] and age["labels"][-1] == "99"
    assert cat["merged"] and len(cat["labels"]) == 40
    # The pooled bar holds no real row: suppressed (fewer than 10), not shown as 0.
    assert cat["labels"][-1] == "(other: 6 values)" and cat["real"][-1] is None
    assert w["labels"] == ["[0, 0.25)", "[0.25, 0.5)", "[0.5, 0.75)", "[0.75, 1]", "(missing)"]
    assert not w["merged"] and sum(w["real"]) == pytest.approx(1.0, abs=5e-4)


def test_a_category_held_by_a_few_real_rows_shows_no_real_share():
    s = Schema.from_dict(
        {"version": 1, "columns": {"dx": {"kind": "categorical", "categories": ["a", "b", "rare"]}}}
    )
    real = pd.DataFrame({"dx": ["a"] * 600 + ["b"] * 397 + ["rare"] * 3})
    synthetic = pd.DataFrame({"dx": ["a"] * 590 + ["b"] * 400 + ["rare"] * 10})
    (dx,) = evaluate(real, synthetic, s).plots["marginals"]
    assert dx["labels"] == ["a", "b", "rare"]
    assert dx["real"] == [0.6, 0.397, None]  # 3 rows < 10: no share, no count
    assert dx["synthetic"] == [0.59, 0.4, 0.01]  # the synthetic table is public
    (shown,) = evaluate(real, synthetic, s, min_cell=3).plots["marginals"]
    assert shown["real"][-1] == 0.003
    with pytest.raises(ConfigError, match="min_cell"):
        evaluate(real, synthetic, s, min_cell=-1)
