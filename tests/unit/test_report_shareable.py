"""What of the attack results the report may carry (small cells, run times), and the plain
words and plot labels of the HTML report."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from privsynth.report import words
from privsynth.report.plots import MAX_TICK, ellipsis, readable
from privsynth.report.shareable import merge_small_bins, shareable


def _suite(exact=2 / 1000, holdout_exact=0.0):
    return {
        "settings": {"synthetic_rows": 1000},
        "timing_s": {"membership_distance": 0.07, "total": 3.0},
        "attacks": [
            {
                "name": "exact_match_rate",
                "value": exact,
                "ci": [0.0, 0.007],
                "baseline": holdout_exact,
                "passed": None,
                "details": {},
            },
            {"name": "membership_distance", "value": 0.51, "ci": [0.47, 0.55], "baseline": 0.5},
        ],
        "diagnostics": {
            "n_synthetic_queries": 1000,
            "dcr_train_percentiles": {"p0.5": 0.0, "p1": 0.01, "p50": 0.9, "p99.5": 2.0},
        },
        "plots": {
            "dcr_histogram": {
                "bin_edges": [0, 1, 2, 3],
                "train": [2, 500, 498],
                "holdout": [0, 480, 520],
            }
        },
    }


def test_run_times_a_few_exact_copies_and_extreme_percentiles_stay_with_the_custodian():
    suite = _suite()
    out, notes = shareable(suite, 10)
    assert "timing_s" not in out and any("run times" in n for n in notes)
    copies = out["attacks"][0]
    assert copies["value"] is None and copies["ci"] == [None, None]
    assert "fewer than 10" in copies["details"]["withheld"]
    assert any("0.002 of 1000 synthetic rows" in n for n in notes)
    assert out["diagnostics"]["dcr_train_percentiles"] == {"p1": 0.01, "p50": 0.9}
    assert out["plots"]["dcr_histogram"]["train"] == [502, 498]
    assert out["attacks"][1] == suite["attacks"][1]
    assert suite["timing_s"] and suite["attacks"][0]["value"] == 0.002  # input unchanged


def test_no_exact_copy_or_many_of_them_are_shown():
    for exact in (0.0, 0.05):  # 0 rows, or 50 rows: not a small cell
        out, _ = shareable(_suite(exact=exact), 10)
        assert out["attacks"][0]["value"] == exact
    out, _ = shareable(_suite(exact=0.0, holdout_exact=0.003), 10)  # 3 held-out copies
    assert out["attacks"][0]["baseline"] is None
    assert shareable(None, 10) == (None, [])


def test_a_distance_histogram_ending_at_a_percentile_of_few_rows_is_left_out():
    suite = _suite()
    suite["settings"]["synthetic_rows"] = 500  # its 99th percentile has 5 rows beyond it
    out, notes = shareable(suite, 10)
    assert out["plots"]["dcr_histogram"] is None and any("histogram" in n for n in notes)


@given(
    st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), min_size=1, max_size=30),
    st.integers(1, 25),
)
def test_merged_distance_bins_each_hold_min_cell_rows_and_keep_every_row(counts, k):
    hist = {
        "bin_edges": list(range(len(counts) + 1)),
        "train": [a for a, _ in counts],
        "holdout": [b for _, b in counts],
    }
    m = merge_small_bins(hist, k)
    assert m["bin_edges"][0] == 0 and m["bin_edges"][-1] == len(counts)
    assert set(m["bin_edges"]) <= set(hist["bin_edges"])
    assert len(m["bin_edges"]) == len(m["train"]) + 1 == len(m["holdout"]) + 1
    for key in ("train", "holdout"):
        assert sum(m[key]) == sum(hist[key])
        # every bin holds k rows, unless the whole histogram is one bin of fewer
        assert len(m[key]) == 1 or min(m[key]) >= k


def test_attack_names_read_in_plain_words_and_unknown_ones_are_flagged():
    assert words.plain("dcr_closer_to_train") == (
        "share of synthetic rows closer to a training row than to a held-out one"
    )
    assert words.plain("attribute_inference_model[income]").startswith("guessing income")
    assert not words.known("some_new_attack") and words.plain("some_new_attack") == (
        "some new attack"
    )
    rows = words.glossary(["linkability", "auc", "linkability"])
    assert [r[1] for r in rows[:2]] == ["linkability", "auc"]
    assert any(r[0].startswith("loose") for r in rows)


@given(st.text(min_size=0, max_size=60))
def test_a_shortened_label_always_ends_in_an_ellipsis(text):
    short = ellipsis(text, MAX_TICK)
    assert len(short) <= MAX_TICK
    assert short == text or (short.endswith("…") and text.startswith(short[:-1]))


@pytest.mark.parametrize(
    ("labels", "kind", "expected"),
    [
        (["Married-AF-spouse"], "categorical", ["Married-AF-spouse"]),
        (["Married-civ-spouse-and-more"], "categorical", ["Married-civ-spous…"]),
        (["[2020-03-07T02:13:20, 2020-04-01)"], "datetime", ["from 2020-03-07"]),
        # two bins on one day keep their times, or they would read alike
        (
            ["[2020-03-07T02:00:00, 2020-03-07T14:00:00)", "[2020-03-07T14:00:00, 2020-03-08]"],
            "datetime",
            ["2020-03-07 02:00", "2020-03-07 14:00"],
        ),
        (["780565–1500000", "0–42520", "12–99"], "integer", ["781k–1.5M", "0–42.5k", "12–99"]),
    ],
)
def test_plot_labels_are_readable(labels, kind, expected):
    assert readable(labels, kind) == expected
