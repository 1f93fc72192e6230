"""Classifier-based utility on encoded tables: train-on-one-test-on-another scores and the
classifier two-sample test (C2ST) between real and synthetic rows.

The model is scikit-learn's ``HistGradientBoostingClassifier(max_iter=100)`` on integer codes,
with the columns flagged in ``categorical`` split as unordered categories and the others
(ordinal, numeric bins) as ordered values. It runs on one OpenMP thread: at these sizes (up to
tens of thousands of rows) more threads gain little, and on a busy shared machine OpenMP's
spin-waiting made the same fits 10-20 times slower on two threads than on one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

#: HistGradientBoosting's limit on the number of categories of a categorical feature.
MAX_CATEGORIES = 255
#: Training rows from which the C2ST stops early (its 10% validation split holds >= 20 rows).
MIN_EARLY_STOPPING_ROWS = 200
MODEL = "sklearn HistGradientBoostingClassifier(max_iter=100, early_stopping=True) on codes"


def classifier(categorical: np.ndarray, seed: int, *, early_stopping: bool | str = "auto"):
    """A fresh ``HistGradientBoostingClassifier`` (``categorical``: boolean mask of features;
    ``early_stopping="auto"`` stops on a 10% validation split from 10,000 rows on)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    mask = np.asarray(categorical, dtype=bool)
    return HistGradientBoostingClassifier(
        categorical_features=mask if mask.any() else None,
        max_iter=100,
        early_stopping=early_stopping,
        random_state=seed,
    )


def fit_score(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    categorical: np.ndarray,
    binary: bool,
    seed: int = 0,
) -> float | None:
    """Fit on the train rows, score on the test rows.

    ``binary`` (labels 0 and 1): ROC AUC of the predicted probability of 1; otherwise macro F1
    over the classes in the test labels or the predictions. ``None`` where the score is
    undefined: fewer than two classes to train on, or (AUC) in the test labels.
    """
    return fit_scores(
        x_train, y_train, [(x_test, y_test)], categorical=categorical, binary=binary, seed=seed
    )[0]


def fit_scores(
    x_train: np.ndarray,
    y_train: np.ndarray,
    tests: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    categorical: np.ndarray,
    binary: bool,
    seed: int = 0,
) -> list[float | None]:
    """Fit once on the train rows and score on each ``(x_test, y_test)`` of ``tests``, as
    :func:`fit_score` does (one model for all of them: a score per group of test rows
    compares groups under the same model, and costs one fit, not one per group).

    Returns
    -------
    list
        One score per test set; ``None`` where it is undefined (see :func:`fit_score`, and
        an empty test set).
    """
    from sklearn.metrics import f1_score, roc_auc_score

    if len(np.unique(y_train)) < 2:
        return [None] * len(tests)
    with threadpool_limits(limits=1, user_api="openmp"):
        clf = classifier(categorical, seed).fit(x_train, y_train)
        out: list[float | None] = []
        for x_test, y_test in tests:
            if len(y_test) == 0 or (binary and len(np.unique(y_test)) < 2):
                out.append(None)
            elif binary:
                # Two codes, both in y_train: classes_ is [0, 1].
                out.append(float(roc_auc_score(y_test, clf.predict_proba(x_test)[:, 1])))
            else:
                pred = clf.predict(x_test)
                out.append(float(f1_score(y_test, pred, average="macro", zero_division=0)))
    return out


@dataclass(frozen=True)
class C2ST:
    """Held-out result of a classifier telling real (0) from synthetic (1) rows.

    ``auc``: ROC AUC on the held-out half (0.5: indistinguishable, 1: separable).
    ``pmse``: mean of (p - 1/2)^2 over the held-out propensities p (0 .. 0.25).
    ``auc_null_se``: standard error of the AUC of an uninformative classifier at this test
    size, sqrt((n0 + n1 + 1) / (12 n0 n1)) (Mann-Whitney U under the null), to 2 significant
    digits.
    """

    auc: float
    pmse: float
    auc_null_se: float


def auc_null_se(n0: int, n1: int) -> float:
    """Standard error of the AUC under "no signal" with n0 negatives and n1 positives.

    Examples
    --------
    >>> round(auc_null_se(100, 100), 4)
    0.0409
    """
    return float(np.sqrt((n0 + n1 + 1) / (12.0 * n0 * n1)))


def c2st(
    real: np.ndarray, synthetic: np.ndarray, *, categorical: np.ndarray, n: int, seed: int
) -> C2ST:
    """Classifier two-sample test on ``n`` rows drawn from each table without replacement.

    Each table's draw is split in halves: the classifier trains on half of the real and half
    of the synthetic rows and is scored on the other halves (balanced, so chance is 0.5).
    Early stopping is on from :data:`MIN_EARLY_STOPPING_ROWS` training rows, so a model that
    finds no signal stays near p = 1/2 instead of fitting noise (which would inflate the pMSE
    of indistinguishable tables). A synthetic table that copies real rows can score below 0.5:
    the held-out real rows are then the ones the model never saw labelled real.
    """
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    half = n // 2
    parts = [t[rng.choice(len(t), size=n, replace=False)] for t in (real, synthetic)]
    x_train = np.vstack([p[:half] for p in parts])
    x_test = np.vstack([p[half:] for p in parts])
    y_train = np.repeat([0, 1], half)
    y_test = np.repeat([0, 1], n - half)
    stop = len(x_train) >= MIN_EARLY_STOPPING_ROWS
    with threadpool_limits(limits=1, user_api="openmp"):
        clf = classifier(categorical, seed, early_stopping=stop).fit(x_train, y_train)
        p = clf.predict_proba(x_test)[:, 1]
    se = auc_null_se(n - half, n - half)
    return C2ST(
        auc=float(roc_auc_score(y_test, p)),
        pmse=float(np.mean((p - 0.5) ** 2)),
        auc_null_se=float(f"{se:.2g}"),
    )
