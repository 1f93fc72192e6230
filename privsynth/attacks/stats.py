"""Interval estimates and rank statistics shared by the attacks (pure functions, no data)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

#: Two-sided 95% normal quantile.
Z95 = float(stats.norm.ppf(0.975))


def _z(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2))


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k / n``."""
    if n <= 0:
        return (0.0, 1.0)
    z = _z(confidence)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval for a binomial proportion ``k / n``."""
    if n <= 0:
        return (0.0, 1.0)
    a = 1 - confidence
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a / 2, k + 1, n - k))
    return (lo, hi)


def newcombe(k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid score interval for ``k1/n1 - k2/n2`` (method 10, from Wilson)."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, confidence)
    l2, u2 = wilson(k2, n2, confidence)
    d = p1 - p2
    return (
        d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
    )


def versus_control(
    k_t: int, n_t: int, k_c: int, n_c: int
) -> tuple[float, tuple[float, float], dict[str, Any]]:
    """An attack's success on ``k_t`` of ``n_t`` targets against ``k_c`` of ``n_c`` controls.

    Returns the difference of the two rates, its Newcombe interval, and the details: each
    rate with its Wilson interval, and the risk ``(target - control) / (1 - control)``.
    """
    s, c = k_t / n_t, k_c / n_c
    lo, hi = newcombe(k_t, n_t, k_c, n_c)
    details = {
        "target_success": {"rate": s, "ci": list(wilson(k_t, n_t))},
        "control_success": {"rate": c, "ci": list(wilson(k_c, n_c))},
        "risk": {
            "value": (s - c) / (1 - c) if c < 1 else 0.0,
            "ci": [lo / (1 - c), hi / (1 - c)] if c < 1 else [0.0, 0.0],
            "formula": "(target - control) / (1 - control)",
        },
    }
    return s - c, (lo, hi), details


def auc_delong(
    pos: np.ndarray, neg: np.ndarray, confidence: float = 0.95
) -> tuple[float, tuple[float, float]]:
    """ROC AUC of scores (higher = positive), ties counted one half, with DeLong's interval.

    The variance is DeLong, DeLong & Clarke-Pearson (1988): from the placement values
    ``V10_i = P(neg < pos_i)`` and ``V01_j = P(pos > neg_j)``.
    """
    pos = np.asarray(pos, dtype=np.float64)
    neg = np.sort(np.asarray(neg, dtype=np.float64))
    pos_sorted = np.sort(pos)
    below = np.searchsorted(neg, pos, "left")
    ties = np.searchsorted(neg, pos, "right") - below
    v10 = (below + 0.5 * ties) / len(neg)
    above_lo = np.searchsorted(pos_sorted, neg, "left")
    above_hi = np.searchsorted(pos_sorted, neg, "right")
    v01 = (len(pos) - above_hi + 0.5 * (above_hi - above_lo)) / len(pos)
    auc = float(v10.mean())
    var = 0.0
    if len(pos) > 1:
        var += float(v10.var(ddof=1)) / len(pos)
    if len(neg) > 1:
        var += float(v01.var(ddof=1)) / len(neg)
    half = _z(confidence) * math.sqrt(var)
    return auc, (max(0.0, auc - half), min(1.0, auc + half))


def roc(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The empirical ROC: ``(fpr, tpr, tp)`` at every distinct threshold, starting at (0, 0).

    A target is called a member when its score is >= the threshold.
    """
    scores = np.concatenate([pos, neg]).astype(np.float64)
    label = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    order = np.argsort(-scores, kind="stable")
    scores, label = scores[order], label[order]
    last = np.r_[np.flatnonzero(np.diff(scores) != 0), len(scores) - 1]
    tp = np.cumsum(label)[last]
    fp = (last + 1) - tp
    return (
        np.r_[0.0, fp / len(neg)],
        np.r_[0.0, tp / len(pos)],
        np.r_[0, tp].astype(np.int64),
    )


def tpr_at_fpr(pos: np.ndarray, neg: np.ndarray, fpr: float, confidence: float = 0.95) -> dict:
    """The best true-positive rate at false-positive rate <= ``fpr``, with a Clopper-Pearson
    interval (the threshold is chosen on the same targets, as in Carlini et al. 2022)."""
    f, t, tp = roc(pos, neg)
    i = int(np.searchsorted(f, fpr, "right") - 1)
    lo, hi = clopper_pearson(int(tp[i]), len(pos), confidence)
    return {"fpr": fpr, "tpr": float(t[i]), "ci": [lo, hi], "fpr_achieved": float(f[i])}


def roc_curve_points(pos: np.ndarray, neg: np.ndarray, n_points: int = 101) -> list[dict]:
    """At most ``n_points`` aggregate ROC points for plotting: the best TPR at FPR 0 and at
    ``n_points - 1`` log-spaced FPRs from 1e-3 to 1 (low FPRs matter most)."""
    f, t, _ = roc(pos, neg)
    grid = np.r_[0.0, np.logspace(-3, 0, n_points - 1)]
    idx = np.asarray(np.searchsorted(f, grid, "right")) - 1
    return [{"fpr": float(g), "tpr": float(t[i])} for g, i in zip(grid, idx, strict=True)]
