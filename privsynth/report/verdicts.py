"""The decision a report leads with: three plain verdicts and one overall word.

* **privacy**: the attack policy's result, with the release's (epsilon, delta) translated into
  the most an attacker can gain from it (:func:`membership_bounds`);
* **usefulness**: good / acceptable / poor against the thresholds the policy states in its
  ``[usefulness]`` section (public values, :data:`USEFULNESS_KEYS`);
* **implementation**: every implementation hazard mitigated, or outside the threat model.

The overall word is ``pass`` only when all three pass, ``fail`` when one fails, and
``incomplete`` when none fails but one could not be judged (no attack suite, no utility, or
a policy without usefulness thresholds). Everything here is a function of the report: it reads
no data, so a report made before these verdicts existed gets them when it is rendered.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from privsynth.errors import ConfigError

#: False-positive rates at which the report bounds a membership guess's true-positive rate.
FPRS = (0.01, 0.001)

#: The policy's ``[usefulness]`` keys: per check, the bound for "good" and for "acceptable".
USEFULNESS_KEYS = {
    "prediction": ("min_prediction_ratio_good", "min_prediction_ratio_acceptable"),
    "relationships": ("max_association_ratio_good", "max_association_ratio_acceptable"),
    "realism": ("max_c2st_auc_good", "max_c2st_auc_acceptable"),
}
#: Checks where a larger value is better (the others: smaller is better).
HIGHER_IS_BETTER = {"prediction"}

#: Hazard statuses that pass the implementation verdict.
HANDLED = ("mitigated", "outside the threat model")

LEVELS = ("good", "acceptable", "poor")


def membership_tpr_bound(epsilon: float, delta: float, fpr: float) -> float:
    """The largest true-positive rate any membership test can reach at false-positive rate
    ``fpr`` against an (epsilon, delta)-DP release.

    Why: (epsilon, delta)-DP is equivalent to a bound on every hypothesis test between two
    neighbouring datasets D (the person's row out) and D' (in) (Wasserman & Zhou 2010; Kairouz,
    Oh & Viswanath 2015, Thm 2.1). For a test with false-positive rate a = P_D(reject) and
    true-positive rate b = P_D'(reject), DP applied to the rejection event gives
    ``b <= e^eps a + delta``, and applied to its complement ``1 - a <= e^eps (1 - b) + delta``,
    that is ``b <= 1 - e^-eps (1 - delta - a)``. The bound is the smaller of the two (and 1).

    Examples
    --------
    >>> round(membership_tpr_bound(1.0, 0.0, 0.01), 5)  # e^1 * 0.01
    0.02718
    >>> round(membership_tpr_bound(0.0, 0.0, 0.2), 12)  # epsilon 0: no better than guessing
    0.2
    """
    _check_privacy(epsilon, delta)
    if not 0 <= fpr <= 1:
        raise ConfigError(f"fpr ({fpr!r}) must be in [0, 1]")
    first = math.exp(epsilon) * fpr + delta
    second = 1 - math.exp(-epsilon) * (1 - delta - fpr)
    return min(1.0, first, second)


def membership_accuracy_bound(epsilon: float, delta: float) -> float:
    """The largest accuracy of a guess whether one person's row is in the data, when in and
    out are equally likely beforehand: ``(e^eps + delta) / (e^eps + 1)``.

    Why: the guess is a test with accuracy ``1/2 (1 - a) + 1/2 b = 1/2 + (b - a) / 2``. Under
    the two bounds of :func:`membership_tpr_bound`, ``b - a`` grows with ``a`` along the first
    (slope e^eps - 1) and shrinks along the second (slope e^-eps - 1); its maximum is where
    they cross, ``a* = (1 - delta) / (e^eps + 1)``, where
    ``b - a = (e^eps - 1)(1 - delta) / (e^eps + 1) + delta``. So the accuracy is at most
    ``1/2 + (e^eps - 1 + 2 delta) / (2 (e^eps + 1)) = (e^eps + delta) / (e^eps + 1)``.

    Examples
    --------
    >>> round(membership_accuracy_bound(1.0, 0.0), 4)  # e / (e + 1)
    0.7311
    >>> membership_accuracy_bound(0.0, 0.0)  # a coin toss
    0.5
    """
    _check_privacy(epsilon, delta)
    e = math.exp(epsilon)
    return (e + delta) / (e + 1)


def _check_privacy(epsilon: float, delta: float) -> None:
    if not (epsilon >= 0 and math.isfinite(epsilon)):
        raise ConfigError(f"epsilon ({epsilon!r}) must be a finite number >= 0")
    if not 0 <= delta < 1:
        raise ConfigError(f"delta ({delta!r}) must be in [0, 1)")


def membership_bounds(epsilon: float, delta: float) -> dict[str, Any]:
    """The attacker's best membership guess against (epsilon, delta): its accuracy with a
    50/50 prior and its true-positive rate at each false-positive rate of :data:`FPRS`."""
    return {
        "epsilon": epsilon,
        "delta": delta,
        "accuracy_max": membership_accuracy_bound(epsilon, delta),
        "tpr_max": [{"fpr": a, "tpr": membership_tpr_bound(epsilon, delta, a)} for a in FPRS],
    }


def privacy(report: Mapping[str, Any]) -> dict[str, Any]:
    """The privacy verdict: the policy's result on the attacks (``not checked`` when the
    suite did not run), and the attacker's best membership guess against this release alone
    and against every release of the dataset so far (the ledger's total, at the cap's delta).
    """
    verdict, dp, led = report["verdict"], report["dp_guarantee"], report["ledger"]
    if report.get("attacks") is None:
        status = "not checked"
    else:
        status = "pass" if verdict["passed"] else "fail"
    return {
        "status": status,
        "policy": verdict["policy"],
        "failed": list(verdict.get("failed_checks", [])),
        "this_release": membership_bounds(dp["epsilon_spent"], dp["delta"]),
        "all_releases": membership_bounds(led["spent_after"]["epsilon"], led["cap"]["delta"]),
    }


def usefulness_thresholds(thresholds: Mapping[str, Any]) -> dict[str, float] | None:
    """The policy's ``[usefulness]`` thresholds, or ``None`` if it states none (a report made
    before they existed).

    Raises
    ------
    ConfigError
        If a "good" bound is looser than its "acceptable" one.
    """
    given = thresholds.get("usefulness")
    if not given:
        return None
    for check, (good, ok) in USEFULNESS_KEYS.items():
        if good not in given or ok not in given:
            raise ConfigError(f"policy [usefulness] needs {good} and {ok}")
        looser = given[good] < given[ok] if check in HIGHER_IS_BETTER else given[good] > given[ok]
        if looser:
            raise ConfigError(
                f"policy [usefulness] {good} ({given[good]:g}) must be at least as strict as "
                f"{ok} ({given[ok]:g})"
            )
    return {k: float(v) for k, v in given.items()}


def prediction_ratio(tstr: Mapping[str, Any] | None) -> float | None:
    """How much of the real model's skill a model trained on synthetic rows keeps.

    For ROC AUC the skill is measured above the 0.5 a coin toss gets,
    ``(synthetic - 0.5) / (real - 0.5)``; for macro F1 it is ``synthetic / real``. ``None``
    without both scores or when the real model has no skill to keep.
    """
    if not tstr or tstr.get("synthetic") is None or tstr.get("real") is None:
        return None
    chance = 0.5 if tstr["metric"] == "roc_auc" else 0.0
    if tstr["real"] - chance <= 0:
        return None
    return float(max(0.0, (tstr["synthetic"] - chance) / (tstr["real"] - chance)))


def association_ratio(utility: Mapping[str, Any]) -> float | None:
    """The mean difference in column-pair associations of the synthetic table, over that of
    columns drawn independently from the real shares: 0 keeps every relationship between
    columns, 1 keeps none (as if each column were drawn on its own). ``None`` without the
    baseline (a report made before it existed) or when the real columns are unrelated."""
    base = (utility.get("baselines") or {}).get("independent_columns") or {}
    ours = utility["correlation_difference"]["mean"]
    theirs = base.get("association_difference_mean")
    if ours is None or not theirs:
        return None
    return float(ours / theirs)


def _level(check: str, value: float, t: Mapping[str, float]) -> str:
    good, ok = (t[k] for k in USEFULNESS_KEYS[check])
    if check in HIGHER_IS_BETTER:
        return "good" if value >= good else "acceptable" if value >= ok else "poor"
    return "good" if value <= good else "acceptable" if value <= ok else "poor"


def usefulness(
    utility: Mapping[str, Any] | None, thresholds: Mapping[str, float] | None
) -> dict[str, Any]:
    """The usefulness verdict: each check the utility results allow, judged against the
    policy's thresholds; the verdict is the worst of them (``not judged`` without any)."""
    if not utility or thresholds is None:
        return {"status": "not judged", "checks": []}
    values = {
        "prediction": prediction_ratio(utility.get("tstr")),
        "relationships": association_ratio(utility),
        "realism": (utility.get("c2st") or {}).get("auc"),
    }
    checks = [
        {
            "check": name,
            "value": value,
            "good": thresholds[USEFULNESS_KEYS[name][0]],
            "acceptable": thresholds[USEFULNESS_KEYS[name][1]],
            "status": _level(name, value, thresholds),
        }
        for name, value in values.items()
        if value is not None
    ]
    if not checks:
        return {"status": "not judged", "checks": []}
    worst = max(LEVELS.index(c["status"]) for c in checks)
    return {"status": LEVELS[worst], "checks": checks}


def implementation(hazards: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The implementation verdict: ``pass`` when every hazard is mitigated or outside the
    threat model, else ``fail`` naming the open ones."""
    open_ = [h["hazard"] for h in hazards if h["status"].lower() not in HANDLED]
    return {"status": "fail" if open_ else "pass", "open_hazards": open_}


def decide(report: Mapping[str, Any]) -> dict[str, Any]:
    """The three verdicts of ``report`` and the overall word (see the module docstring)."""
    policy = (report.get("attacks") or {}).get("policy") or {}
    parts = {
        "privacy": privacy(report),
        "usefulness": usefulness(
            report.get("utility"), usefulness_thresholds(policy.get("thresholds", {}))
        ),
        "implementation": implementation(report["dp_guarantee"]["implementation_hazards"]),
    }
    passed = {
        "privacy": parts["privacy"]["status"] == "pass",
        "usefulness": parts["usefulness"]["status"] in ("good", "acceptable"),
        "implementation": parts["implementation"]["status"] == "pass",
    }
    failed = {
        "privacy": parts["privacy"]["status"] == "fail",
        "usefulness": parts["usefulness"]["status"] == "poor",
        "implementation": parts["implementation"]["status"] == "fail",
    }
    overall = "fail" if any(failed.values()) else "incomplete"
    return {"overall": "pass" if all(passed.values()) else overall, **parts}
