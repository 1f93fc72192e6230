"""Attribute inference: given a person's quasi-identifiers, guess their sensitive value.

Two attackers learn from the synthetic data only: the nearest synthetic record on the
quasi-identifiers (shared distance), and a gradient-boosted model trained on the synthetic
data. Each guesses for training targets and for holdout targets. What synthetic data is
meant to teach (population patterns) helps both equally; the *difference* in success is
what the release reveals about its training records. A guess of a numeric value succeeds
when it is within ``tolerance`` of the column's range.

The random baseline is exact, not simulated: the success of guessing the value of a
uniformly drawn synthetic record, ``sum_c p_synthetic(c) * p_targets(c)`` (numeric: the mean
share of synthetic values within tolerance of the target's).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from privsynth.attacks.base import AttackResult
from privsynth.attacks.stats import newcombe, wilson
from privsynth.schema import CATEGORICAL_KINDS, Column, canonical_series

#: A numeric guess within this share of the column's range counts as correct.
TOLERANCE = 0.05
MISSING = "\x00missing"

THREAT = (
    "An attacker who knows a person's quasi-identifiers ({qi}) and holds the synthetic data "
    "guesses their {col} with {how}."
)
HOW = {
    "nn": "the value of the closest synthetic record on the quasi-identifiers",
    "model": "a gradient-boosted model trained on the synthetic data",
}


def _as_labels(s: pd.Series) -> np.ndarray:
    return canonical_series(s).fillna(MISSING).to_numpy(dtype=object)


def _numeric(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s).to_numpy(dtype=np.float64, na_value=np.nan)


def correct(col: Column, guess: pd.Series, truth: pd.Series) -> np.ndarray:
    """Whether each guess is right (missing is a value; numeric within tolerance)."""
    if col.kind in CATEGORICAL_KINDS:
        return _as_labels(guess) == _as_labels(truth)
    g, t = _numeric(guess), _numeric(truth)
    lo, hi = col.bound_values()
    both_na = np.isnan(g) & np.isnan(t)
    with np.errstate(invalid="ignore"):
        close = np.abs(g - t) <= TOLERANCE * (hi - lo)
    return both_na | close


def random_baseline(col: Column, synthetic: pd.Series, truth: pd.Series) -> float:
    """Expected success of guessing the value of a uniformly drawn synthetic record."""
    if col.kind in CATEGORICAL_KINDS:
        p_syn = pd.Series(_as_labels(synthetic)).value_counts(normalize=True)
        p_tgt = pd.Series(_as_labels(truth)).value_counts(normalize=True)
        return float((p_syn * p_tgt).dropna().sum())
    s, t = _numeric(synthetic), _numeric(truth)
    lo, hi = col.bound_values()
    tol = TOLERANCE * (hi - lo)
    present = np.sort(s[~np.isnan(s)])
    share_na = float(np.isnan(s).mean())
    tv = t[~np.isnan(t)]
    within = (
        np.searchsorted(present, tv + tol, "right") - np.searchsorted(present, tv - tol, "left")
    ) / len(s)
    return float((within.sum() + np.isnan(t).sum() * share_na) / len(t))


def model_guesses(
    col: Column,
    x_synthetic: np.ndarray,
    y_synthetic: pd.Series,
    x_targets: list[np.ndarray],
    categorical: np.ndarray,
) -> list[pd.Series]:
    """Fit a gradient-boosted model on synthetic data, predict for each target set.

    ``x_*`` are the quasi-identifiers' integer codes; ``categorical`` marks the columns the
    model treats as unordered categories.
    """
    kw = {
        "max_iter": 50,
        "early_stopping": False,
        "random_state": 0,
        "categorical_features": categorical,
    }
    # One OpenMP thread: beside torch's runtime, more threads contend and run several times
    # slower on small machines.
    with threadpool_limits(1, user_api="openmp"):
        return _fit_predict(col, x_synthetic, y_synthetic, x_targets, kw)


def _fit_predict(
    col: Column, x_synthetic: np.ndarray, y_synthetic: pd.Series, x_targets: list, kw: dict
) -> list[pd.Series]:
    if col.kind in CATEGORICAL_KINDS:
        y = _as_labels(y_synthetic)
        if len(set(y)) == 1:
            return [pd.Series([y[0]] * len(x)).replace(MISSING, None) for x in x_targets]
        model = HistGradientBoostingClassifier(**kw).fit(x_synthetic, y)
        return [pd.Series(model.predict(x)).replace(MISSING, None) for x in x_targets]
    y = _numeric(y_synthetic)
    ok = ~np.isnan(y)
    model = HistGradientBoostingRegressor(**kw).fit(x_synthetic[ok], y[ok])
    return [pd.Series(model.predict(x)) for x in x_targets]


def score_inference(
    col: Column,
    method: str,
    quasi_identifiers: list[str],
    guesses: tuple[pd.Series, pd.Series],
    truths: tuple[pd.Series, pd.Series],
    synthetic: pd.Series,
) -> AttackResult:
    """Success on training targets minus success on holdout targets, with Newcombe's CI."""
    ok_in = correct(col, guesses[0].reset_index(drop=True), truths[0].reset_index(drop=True))
    ok_out = correct(col, guesses[1].reset_index(drop=True), truths[1].reset_index(drop=True))
    k1, n1, k2, n2 = int(ok_in.sum()), len(ok_in), int(ok_out.sum()), len(ok_out)
    return AttackResult(
        name=f"attribute_inference_{method}[{col.name}]",
        threat_model=THREAT.format(qi=", ".join(quasi_identifiers), col=col.name, how=HOW[method]),
        metric="success_rate_difference",
        value=k1 / n1 - k2 / n2,
        ci=newcombe(k1, n1, k2, n2),
        baseline=0.0,
        details={
            "sensitive": col.name,
            "method": method,
            "train_success": {"rate": k1 / n1, "ci": list(wilson(k1, n1))},
            "holdout_success": {"rate": k2 / n2, "ci": list(wilson(k2, n2))},
            "random_baseline": random_baseline(col, synthetic, truths[0]),
            "n_targets": {"train": n1, "holdout": n2},
            "numeric_tolerance": TOLERANCE if col.kind not in CATEGORICAL_KINDS else None,
        },
    )
