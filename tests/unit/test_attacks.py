"""The attack suite's pieces, without running it: metrics against hand-computed values,
interval coverage, the one-run epsilon bound, policies, argument checks and the self-test's
null generator. Suite runs are in tests/system/test_attacks.py; what every attack does is in
tests/contract/test_attack_contract.py."""

from __future__ import annotations

import importlib
import math
import sys
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from privsynth.attacks import attribute, linkability, membership, run, singling_out
from privsynth.attacks.canary import epsilon_lower_bound, p_value, status
from privsynth.attacks.distance import MixedSpace, distance_diagnostics, nearest
from privsynth.attacks.policy import POLICY_DIR, available, load_policy
from privsynth.attacks.selftest import null_synthetic
from privsynth.attacks.stats import (
    auc_delong,
    clopper_pearson,
    newcombe,
    roc_curve_points,
    tpr_at_fpr,
    wilson,
)
from privsynth.errors import ConfigError, DataError
from privsynth.schema import Schema

TINY = Schema.from_dict(
    {
        "version": 1,
        "columns": {
            "c": {"kind": "categorical", "categories": ["a", "b", "c"]},
            "x": {"kind": "integer", "lower": 0, "upper": 10},
            "y": {"kind": "continuous", "lower": 0, "upper": 100, "nullable": True},
        },
    }
)


# ------------------------------------------------------------------ intervals
def test_intervals_match_hand_computed_values():
    # Wilson, k=5 of 10, z=1.96: centre 0.5, half-width 1.96*sqrt(.025+.0096)/1.384 = 0.2634.
    lo, hi = wilson(5, 10)
    assert lo == pytest.approx(0.23659, abs=1e-5) and hi == pytest.approx(0.76341, abs=1e-5)
    # Clopper-Pearson, k=0 of 10: the upper end solves (1-p)^10 = 0.025.
    assert clopper_pearson(0, 10) == pytest.approx((0.0, 1 - 0.025**0.1))
    # ... and k=n mirrors it.
    assert clopper_pearson(10, 10) == pytest.approx((0.025**0.1, 1.0))
    # Newcombe's interval contains the difference and is inside [-1, 1].
    lo, hi = newcombe(8, 10, 5, 10)
    assert -1 <= lo < 0.3 < hi <= 1


def test_auc_and_tpr_at_low_fpr_by_hand():
    # Pairs (pos, neg): (3,1) (3,2) (2,1) win, (2,2) ties: AUC = 3.5 / 4.
    auc, (lo, hi) = auc_delong(np.array([3.0, 2.0]), np.array([1.0, 2.0]))
    assert auc == 0.875 and lo <= auc <= hi
    neg = np.arange(10.0)
    pos = np.array([9.5, 8.5, 3.0])
    # FPR <= 0.1 allows one negative (9) above the threshold: 9.5 and 8.5 are caught.
    r = tpr_at_fpr(pos, neg, 0.1)
    assert r["tpr"] == pytest.approx(2 / 3) and r["fpr_achieved"] == pytest.approx(0.1)
    assert r["ci"] == pytest.approx(list(clopper_pearson(2, 3)))
    assert tpr_at_fpr(pos, neg, 0.0)["tpr"] == pytest.approx(1 / 3)
    pts = roc_curve_points(pos, neg)
    assert len(pts) <= 101 and pts[0]["fpr"] == 0 and pts[-1] == {"fpr": 1.0, "tpr": 1.0}
    assert all(a["tpr"] <= b["tpr"] for a, b in zip(pts, pts[1:], strict=False))


def test_interval_coverage_in_seeded_simulation():
    rng = np.random.default_rng(2024)
    reps, n = 4000, 60
    ps = np.array([0.1, 0.3, 0.5])
    # Monte Carlo sd of a coverage estimate near 0.95 over 4000 x 3 draws:
    # sqrt(0.95 * 0.05 / 12000) = 0.002; 3 sd = 0.006. Wilson's true coverage oscillates
    # around 0.95 (Brown, Cai & DasGupta 2001: within about 0.01 for n = 60 away from 0 and 1),
    # so it must lie within 0.95 +- 0.016; Clopper-Pearson is conservative: >= 0.95 - 0.006.
    cover_w = cover_cp = 0
    for p in ps:
        for k in rng.binomial(n, p, reps):
            lo, hi = wilson(int(k), n)
            cover_w += lo <= p <= hi
            lo, hi = clopper_pearson(int(k), n)
            cover_cp += lo <= p <= hi
    total = reps * len(ps)
    assert abs(cover_w / total - 0.95) <= 0.016
    assert cover_cp / total >= 0.95 - 0.006
    # DeLong's AUC interval: scores N(0,1) vs N(1,1), true AUC = Phi(1/sqrt 2) = 0.7602.
    # 400 repetitions: MC sd sqrt(.95*.05/400) = 0.011; 3 sd = 0.033.
    truth = 0.5 * (1 + math.erf(0.5))
    cover = 0
    for _ in range(400):
        _, (lo, hi) = auc_delong(rng.normal(1, 1, 200), rng.normal(0, 1, 200))
        cover += lo <= truth <= hi
    assert abs(cover / 400 - 0.95) <= 0.033


# --------------------------------------------------------------- one-run bound
def test_one_run_epsilon_bound_worked_numbers():
    # Steinke, Nasr & Jagielski 2023, Theorem 3.1 with delta = 0: with r guesses all correct,
    # P[Binomial(r, q) >= r] = q^r, so the 95% bound solves q^r = 0.05 with
    # q = e^eps / (1 + e^eps): eps = log(q / (1 - q)), q = 0.05^(1/r).
    for r, expected in ((100, 3.49296), (1000, 5.80907)):
        assert epsilon_lower_bound(r, r, r) == pytest.approx(expected, abs=1e-4)
        q = 0.05 ** (1 / r)
        assert expected == pytest.approx(math.log(q / (1 - q)), abs=1e-4)
    # Guessing right half the time is what eps = 0 gives: no bound.
    assert epsilon_lower_bound(1000, 500, 250) == 0.0
    # The delta term (Algorithm 2) can only lower the bound.
    assert epsilon_lower_bound(1000, 600, 600, 1e-5) < epsilon_lower_bound(1000, 600, 600)
    # At the bound the p-value is 0.05 (it is the largest eps rejected at 95%).
    eps = epsilon_lower_bound(1000, 400, 350, 1e-6)
    assert p_value(1000, 400, 350, eps, 1e-6) == pytest.approx(0.05, abs=1e-4)
    assert status(2.0, 1.0) == "VIOLATION" and status(0.05, 1.0) == "loose"
    assert status(0.5, 1.0) == "consistent"


# ------------------------------------------------------------------- distance
def test_mixed_distance_by_hand():
    df = pd.DataFrame({"c": ["a", "b", "a"], "x": [0, 10, 5], "y": [50.0, None, 60.0]})
    clean, _ = TINY.validate(df)
    space = MixedSpace(TINY, [clean])
    e = space.embed(clean)
    dist, idx = nearest(e[:1], e[1:], 2)
    # Row 0 vs row 2: 0 + (5/10)^2 + (10/100)^2 = 0.26; vs row 1: mismatch 1 + (10/10)^2 +
    # missing against present (1 + (0.5 - 0.5)^2) = 3.
    assert dist[0] == pytest.approx([math.sqrt(0.26), math.sqrt(3.0)])
    assert idx[0].tolist() == [1, 0]
    d, i = nearest(e, e, 1, exclude_self=True)
    assert i[:, 0].tolist() == [2, 2, 0]


def test_distance_diagnostics_by_hand():
    to_train = np.array([[0.0, 1.0], [1.0, 2.0], [0.5, 0.5]])
    to_holdout = np.array([1.0, 0.5, 0.5])
    hashes = (np.array([1, 2, 3]), np.array([1, 9]), np.array([2, 8]))
    results, summary, hist = distance_diagnostics(to_train, to_holdout, hashes)
    closer = {r.name: r for r in results}
    # Row 0 closer to train, row 1 to holdout, row 2 a tie (one half): 1.5 / 3.
    assert closer["dcr_closer_to_train"].value == pytest.approx(0.5)
    assert closer["dcr_closer_to_train"].baseline == 0.5  # 2 train rows, 2 holdout rows
    assert closer["exact_match_rate"].value == pytest.approx(1 / 3)
    assert closer["exact_match_rate"].baseline == pytest.approx(1 / 3)
    assert all(r.passed is None for r in results)
    # NNDR: 0/1, 1/2, 0.5/0.5.
    assert summary["nndr_percentiles"]["p50"] == pytest.approx(0.5)
    assert sum(hist["train"]) == 3 and len(hist["bin_edges"]) == len(hist["train"]) + 1


# ---------------------------------------------------------------- the attacks
def test_membership_scores_by_hand():
    members = np.array([[0.0, 1.0], [0.2, 1.0]])
    non_members = np.array([[0.5, 1.0], [0.2, 2.0]])
    res, roc = membership.distance_attack(members, non_members)
    # Scores -0, -0.2 vs -0.5, -0.2: wins (0,.5) (0,.2) (.2,.5), tie (.2,.2): 3.5/4.
    assert res.value == 0.875 and res.metric == "auc" and res.baseline == 0.5
    assert [t["fpr"] for t in res.details["tpr_at_fpr"]] == [0.001, 0.01, 0.1]
    assert len(roc) <= 101
    score = membership.log_density_ratio(np.array([[1.0, 1.0]]), np.array([[2.0, 2.0]]))
    floor = membership.LOG_FLOOR
    assert score[0] == pytest.approx(math.log(2 + floor) - math.log(1 + floor))


def test_attribute_inference_by_hand():
    col = TINY["c"]
    syn = pd.Series(["a", "a", "b", "b"])
    truth = pd.Series(["a", "b", "b", "b"])
    # sum_c p_syn(c) p_target(c) = 0.5 * 0.25 + 0.5 * 0.75.
    assert attribute.random_baseline(col, syn, truth) == pytest.approx(0.5)
    # Numeric: tolerance 5% of the range 0..100 = 5; only 10 is within 5 of 9.
    ycol = TINY["y"]
    assert attribute.random_baseline(
        ycol, pd.Series([0.0, 10.0, 50.0]), pd.Series([9.0])
    ) == pytest.approx(1 / 3)
    assert attribute.correct(ycol, pd.Series([9.0, None]), pd.Series([13.9, None])).all()
    res = attribute.score_inference(
        col,
        "nn",
        ["x"],
        (pd.Series(["a", "b", "b", "b"]), pd.Series(["a", "a", "a", "a"])),
        (truth, truth),
        syn,
    )
    assert res.value == pytest.approx(1.0 - 0.25) and res.ci[0] < res.value < res.ci[1]


def test_singling_out_by_hand():
    rng = np.random.default_rng(0)
    syn = np.array([[0], [0], [1], [2]])
    # Predicates from values seen once in the synthetic data: c==1 and c==2.
    target = np.array([[1], [3], [3], [3]])  # c==1 singles out one record, c==2 none
    control = np.array([[1], [1], [2], [3]])  # c==1 matches two, c==2 one
    res = singling_out.singling_out(syn, target, control, np.array([4]), rng, mode="univariate")
    assert res.details["queries_generated"] == 2
    assert res.details["target_success"]["rate"] == 0.5
    assert res.details["control_success"]["rate"] == 0.5 and res.value == 0.0
    with pytest.raises(ConfigError, match="same size"):
        singling_out.singling_out(syn, target, control[:3], np.array([4]), rng)


def test_linkability_by_hand():
    # Two features, one per group. Targets sit on synthetic rows (linked through the same
    # row); controls' nearest rows on A and on B differ.
    syn = np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 9.0], [9.0, 5.0]])
    targets = np.array([[0.0, 0.0], [1.0, 1.0]])
    controls = np.array([[5.0, 5.0], [9.0, 9.0]])
    res = linkability.linkability(
        targets, controls, syn, (np.array([0]), np.array([1])), (["a"], ["b"]), None, k=1
    )
    assert res.details["target_success"]["rate"] == 1.0
    assert res.details["control_success"]["rate"] == 0.0 and res.value == 1.0


# ------------------------------------------------------------------- policies
def test_policies_load_by_name_and_path(tmp_path):
    assert {"standard", "strict"} <= set(available())
    with resources.as_file(POLICY_DIR / "strict.toml") as strict_path:
        std, strict = load_policy("standard"), load_policy(strict_path)
    assert std.name == "standard" and strict.name == "strict"
    assert (
        strict.thresholds["membership"]["max_auc_lower"]
        < std.thresholds["membership"]["max_auc_lower"]
    )
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[membership]\nmax_auc_lower = "high"\n')
    with pytest.raises(ConfigError, match="max_auc_lower"):
        load_policy(bad)
    with pytest.raises(ConfigError, match="standard"):
        load_policy("nonexistent")
    # A name is looked up only as a plain name: this one would walk out and back in.
    with pytest.raises(ConfigError, match="does not exist"):
        load_policy(f"../{POLICY_DIR.name}/standard")


def test_policy_judges_the_lower_bound_and_leaves_diagnostics_alone():
    from privsynth.attacks.base import AttackResult

    std = load_policy("standard")

    def mia(lo, tpr_lo, non_members=1000):
        tpr = [{"fpr": 0.01, "tpr": 0.5, "ci": [tpr_lo, 0.9], "fpr_achieved": 0.01}]
        return AttackResult("membership_distance", "t", "auc", 0.6, (lo, 0.7), 0.5, None, {
            "tpr_at_fpr": tpr, "n_targets": {"members": 1000, "non_members": non_members}
        })  # fmt: skip

    assert std.judge(mia(0.55, 0.03)).passed is True  # at the thresholds: pass
    assert std.judge(mia(0.56, 0.0)).passed is False
    assert std.judge(mia(0.5, 0.031)).passed is False
    # 999 non-members cannot measure a 1% FPR: the TPR is not judged, the AUC still is.
    assert std.judge(mia(0.5, 0.5, non_members=999)).passed is True
    assert std.judge(mia(0.56, 0.5, non_members=999)).passed is False
    link = AttackResult("linkability", "t", "m", 0.05, (0.021, 0.08), 0.0)
    assert std.judge(link).passed is False
    diag = AttackResult("exact_match_rate", "t", "m", 0.5, (0.4, 0.6), 0.0)
    assert std.judge(diag).passed is None


def test_person_membership_scores_by_hand():
    # Persons 0 (rows at 0.0 and 0.4) and 1 (one row at 0.1) score -0.2 and -0.1; the
    # non-member (rows at 0.3, 0.5) scores -0.4: both members rank above it, AUC 1.
    res, _ = membership.person_attack(
        (np.array([0.0, 0.1, 0.4]), np.array([0, 1, 0])), (np.array([0.3, 0.5]), np.array([0, 0]))
    )
    assert res.name == "membership_person" and res.value == 1.0
    assert res.details["n_targets"] == {"members": 2, "non_members": 1}
    scores = membership.person_scores(np.array([0.0, 0.1, 0.4]), np.array([0, 1, 0]))
    assert scores.tolist() == pytest.approx([-0.2, -0.1])


def test_bad_arguments_name_the_problem(adult_split):
    train, holdout, schema = adult_split
    with pytest.raises(ConfigError, match="salary"):
        run(train, holdout, train, schema, sensitive=["salary"])
    with pytest.raises(DataError, match="synthetic lacks"):
        run(train, holdout, train.drop(columns=["age"]), schema)
    with pytest.raises(ConfigError, match="both sensitive and quasi"):
        run(train, holdout, train, schema, sensitive=["age"], quasi_identifiers=["age", "sex"])
    with pytest.raises(ConfigError, match="'epsilon'"):
        run(train, holdout, train, schema, canary={"factory": object})  # no epsilon
    with pytest.raises(ConfigError, match="for the .* train row"):
        run(train, holdout, train, schema, persons=(np.arange(3), np.arange(len(holdout))))


def test_exact_codes_are_shared_across_frames():
    from privsynth.attacks.battery import _exact_codes

    a = pd.DataFrame({"x": [1.0, 2.0, None], "c": ["u", "v", "u"]})
    b = pd.DataFrame({"x": [2.0, 3.0], "c": ["v", None]})
    (ca, cb), sizes = _exact_codes([a, b])
    assert ca[1, 0] == cb[0, 0] and ca[0, 1] == ca[2, 1] and ca[1, 1] == cb[0, 1]
    assert sizes.tolist() == [4, 3]  # x: 1, 2, missing, 3; c: u, v, missing


def test_null_generator_copies_no_rare_value_even_when_every_value_is_rare():
    """A column whose training values are all rare (here: all distinct) must be drawn from the
    schema's domain, not from the training rows: copying a value held by one row would single
    its holder out, and the self-test would call its own null generator a leak."""
    cats = [f"c{i}" for i in range(2000)]
    schema = Schema.from_dict(
        {"version": 1, "columns": {"big": {"kind": "categorical", "categories": cats},
                                   "sex": {"kind": "categorical", "categories": ["F", "M"]}}}
    )  # fmt: skip
    rng = np.random.default_rng(3)
    train = pd.DataFrame({"big": cats[:300], "sex": rng.choice(["F", "M"], 300)})
    out = null_synthetic(train, schema, 5000, np.random.default_rng(4))
    # Uniform over 2000 codes: about 5000 * 300 / 2000 = 750 draws land on training values by
    # chance; copying from the training rows would make all 5000 of them training values.
    hits = out["big"].isin(train["big"]).sum()
    sd = math.sqrt(5000 * 0.15 * 0.85)  # binomial sd, about 25.2
    assert abs(hits - 750) < 5 * sd
    assert set(out["sex"]) == {"F", "M"}


def test_old_audit_module_still_runs_the_suite_and_says_it_is_deprecated():
    sys.modules.pop("privsynth.audit", None)
    with pytest.warns(DeprecationWarning, match="privsynth.attacks.run"):
        old = importlib.import_module("privsynth.audit")
    assert old.run is run


def test_canary_persons_own_k_rows_that_differ_only_in_a_distinct_order_column():
    from privsynth.attacks.canary import _planted
    from privsynth.schema import Schema

    schema = Schema.from_dict({
        "version": 1,
        "unit_of_privacy": {"column": "pid", "max_rows": 3},
        "columns": {
            "pid": {"kind": "identifier"},
            "year": {"kind": "integer", "lower": 70, "upper": 90, "order": "distinct"},
            "job": {"kind": "categorical", "categories": ["a", "b"]},
        },
    })  # fmt: skip
    canaries = pd.DataFrame({"year": [80, 85], "job": ["a", "b"]})
    planted = _planted(canaries, schema)
    assert planted["pid"].tolist() == ["canary-1"] * 3 + ["canary-2"] * 3
    assert planted["year"].tolist() == [70, 71, 72, 70, 71, 72]
    assert planted["job"].tolist() == ["a"] * 3 + ["b"] * 3
    schema.validate(planted)  # a valid person-level table: no repeated year within a person


def test_the_report_section_of_a_policy_is_optional_and_checked(tmp_path):
    assert load_policy("standard").min_cell_rows == 10
    assert load_policy("strict").min_cell_rows == 20
    text = (POLICY_DIR / "standard.toml").read_text()
    older = text[: text.index("[report]")]  # a policy written before the section existed
    (tmp_path / "old.toml").write_text(older)
    assert load_policy(tmp_path / "old.toml").min_cell_rows == 10
    (tmp_path / "bad.toml").write_text(older + "[report]\nmin_cell_rows = -1\n")
    with pytest.raises(ConfigError, match=r"\[report\] min_cell_rows must be a number >= 0"):
        load_policy(tmp_path / "bad.toml")


def test_bounded_samples_keep_whole_persons_and_row_order():
    from privsynth.attacks.suite import _bounded

    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(100), rng.integers(1, 8, 100))  # 100 persons of 1-7 rows
    frame = pd.DataFrame({"row": np.arange(len(ids))})
    kept, kept_ids = _bounded(frame, ids, 150, np.random.default_rng(1))
    assert len(kept) <= 150 and kept["row"].is_monotonic_increasing
    assert kept_ids is not None and len(kept_ids) == len(kept)
    counts = pd.Series(ids).value_counts()
    # every person drawn is there with all of their rows
    got = pd.Series(kept_ids).value_counts().sort_index()
    assert got.equals(counts[got.index].sort_index())
    rows, _ = _bounded(frame, None, 150, np.random.default_rng(1))
    assert len(rows) == 150 and rows["row"].is_unique
    same, same_ids = _bounded(frame, ids, len(frame), np.random.default_rng(1))
    assert same is frame and same_ids is ids  # at or under the cap: untouched
