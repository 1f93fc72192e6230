"""The report's decision: the attacker bounds behind the privacy verdict, the usefulness and
implementation verdicts, the overall word, and the first screen that shows them."""

import copy
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from privsynth.attacks.policy import OPTIONAL, load_policy
from privsynth.errors import ConfigError
from privsynth.report.render_html import decision
from privsynth.report.verdicts import (
    decide,
    membership_accuracy_bound,
    membership_tpr_bound,
    usefulness,
    usefulness_thresholds,
)

THRESHOLDS = dict(OPTIONAL["usefulness"])
HAZARDS = [
    {"hazard": "floating-point noise", "status": "mitigated", "how": "."},
    {"hazard": "timing side channels", "status": "outside the threat model", "how": "."},
]


def _utility(*, auc=0.7, tstr=(0.85, 0.9), assoc=(0.02, 0.1)):
    return {
        "tvd": {"2way": {"mean": 0.05}},
        "correlation_difference": {"mean": assoc[0]},
        "baselines": {"independent_columns": {"association_difference_mean": assoc[1]}},
        "c2st": {"auc": auc},
        "tstr": {"metric": "roc_auc", "synthetic": tstr[0], "real": tstr[1]},
    }


REPORT = {
    "verdict": {"policy": "standard", "passed": True, "failed_checks": []},
    "dp_guarantee": {"epsilon_spent": 1.0, "delta": 1e-9, "implementation_hazards": HAZARDS},
    "ledger": {
        "dataset_id": "adult",
        "spent_after": {"epsilon": 2.0},
        "cap": {"epsilon": 3.0, "delta": 1e-6},
    },
    "attacks": {
        "policy": {"thresholds": {"usefulness": THRESHOLDS, "report": {"min_cell_rows": 10}}}
    },
    "utility": _utility(),
}


def _best_test(epsilon, delta, fprs, steps=100_000):
    """The best TPR DP allows at each FPR, by brute force over a grid of TPRs: the largest
    one that satisfies both DP inequalities, on the event and on its complement."""
    a = np.asarray(fprs)
    b = np.linspace(0, 1, steps + 1)[None, :]
    ok = (b <= math.exp(epsilon) * a[:, None] + delta) & (
        1 - a[:, None] <= math.exp(epsilon) * (1 - b) + delta
    )
    return np.where(ok, b, -1).max(axis=1)


@given(st.floats(0, 5), st.sampled_from([0.0, 1e-6, 1e-3, 0.05]), st.floats(0, 1))
def test_the_tpr_bound_is_the_largest_tpr_both_dp_inequalities_allow(epsilon, delta, fpr):
    brute = _best_test(epsilon, delta, [fpr])[0]
    # The grid's step is 1e-5, and a grid point on the boundary may fail the inequality by a
    # rounding error (0.85 at epsilon 0, delta 0.05, fpr 0.8): two steps of tolerance.
    assert membership_tpr_bound(epsilon, delta, fpr) == pytest.approx(brute, abs=2e-5)


@pytest.mark.parametrize(
    ("epsilon", "delta"), [(0.1, 0), (0.1, 0.2), (1, 1e-9), (2, 1e-3), (5, 0.05)]
)
def test_the_accuracy_bound_is_the_best_test_over_every_fpr(epsilon, delta):
    fprs = np.linspace(0, 1, 1001)
    best = float(np.max(0.5 * (1 - fprs) + 0.5 * _best_test(epsilon, delta, fprs, 10_000)))
    closed = membership_accuracy_bound(epsilon, delta)
    assert closed == pytest.approx((math.exp(epsilon) + delta) / (math.exp(epsilon) + 1))
    assert best == pytest.approx(closed, abs=1e-3) and best <= closed + 1e-9


def test_bounds_grow_with_epsilon_and_delta_and_refuse_bad_input():
    assert membership_accuracy_bound(0, 0) == 0.5
    assert membership_accuracy_bound(1, 0) < membership_accuracy_bound(2, 0)
    assert membership_accuracy_bound(1, 0) < membership_accuracy_bound(1, 0.01)
    assert membership_tpr_bound(1, 0, 0.01) == pytest.approx(math.e * 0.01)
    with pytest.raises(ConfigError, match="epsilon"):
        membership_accuracy_bound(-1, 0)
    with pytest.raises(ConfigError, match="delta"):
        membership_tpr_bound(1, 1.0, 0.01)


@pytest.mark.parametrize(
    ("utility", "level"),
    [
        (_utility(), "good"),
        (_utility(auc=0.9), "acceptable"),  # a classifier tells them apart fairly well
        (_utility(auc=0.97), "poor"),
        (_utility(tstr=(0.6, 0.8)), "poor"),  # keeps 1/3 of the real model's skill
        (_utility(assoc=(0.07, 0.1)), "acceptable"),
        (_utility(assoc=(0.12, 0.1)), "poor"),  # worse than independent columns
    ],
)
def test_usefulness_is_the_worst_of_its_checks(utility, level):
    assert usefulness(utility, THRESHOLDS)["status"] == level


def test_macro_f1_is_judged_as_it_is_and_missing_checks_are_left_out():
    u = _utility()
    u["tstr"] = {"metric": "macro_f1", "synthetic": 0.32, "real": 0.75}  # the release
    assert usefulness(u, THRESHOLDS)["status"] == "poor"
    u = {"tvd": {"2way": {"mean": 0.1}}, "correlation_difference": {"mean": 0.1}, "c2st": None}
    assert usefulness(u, THRESHOLDS) == {"status": "not judged", "checks": []}  # an old report
    assert usefulness(_utility(), None)["status"] == "not judged"


def test_the_policies_state_usefulness_thresholds_in_a_consistent_order(tmp_path):
    for name in ("standard", "strict"):
        assert usefulness_thresholds(load_policy(name).thresholds) is not None
    bad = dict(THRESHOLDS, max_c2st_auc_good=0.99)
    with pytest.raises(ConfigError, match="max_c2st_auc_good"):
        usefulness_thresholds({"usefulness": bad})


def _with(**changes):
    report = copy.deepcopy(REPORT)
    for path, value in changes.items():
        *keys, last = path.split("__")
        node = report
        for k in keys:
            node = node[k]
        node[last] = value
    return report


@pytest.mark.parametrize(
    ("report", "overall"),
    [
        (REPORT, "pass"),
        (_with(verdict__passed=False), "fail"),
        (_with(utility=_utility(auc=0.99)), "fail"),
        (
            _with(
                dp_guarantee__implementation_hazards=[
                    *HAZARDS,
                    {"hazard": "DP-SGD sampler", "status": "NOT mitigated", "how": "."},
                ]
            ),
            "fail",
        ),
        (_with(attacks=None), "incomplete"),  # no suite, no policy: nothing judged
        (_with(utility=None), "incomplete"),
    ],
)
def test_all_checks_passed_appears_only_when_all_three_pass(report, overall):
    d = decide(report)
    assert d["overall"] == overall
    html = decision({**report, "decision": d})
    assert ("All checks passed" in html) == (overall == "pass")
    for name in ("privacy", "usefulness", "implementation"):
        assert f'id="verdict-{name}"' in html
    assert "may be shared outside the trusted environment" in html
    assert ("fewer than 10 real rows" in html) == (report["attacks"] is not None)


def test_a_report_without_a_decision_gets_one_when_rendered():
    html = decision(REPORT)  # made before the decision existed: derived from its content
    assert "All checks passed" in html and "right at most 73.1%" in html
