"""Quality metrics for the marginal benchmark (project venv: numpy, pandas, scikit-learn)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

TARGET = "income>50K"


def marginal_sets(columns: list[str], n3: int = 100, seed: int = 12345) -> dict[str, list]:
    """All 1-way, all 2-way and ``n3`` random 3-way column sets (fixed by ``seed``)."""
    three = list(itertools.combinations(columns, 3))
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(three), size=min(n3, len(three)), replace=False))
    return {
        "1way": [(c,) for c in columns],
        "2way": list(itertools.combinations(columns, 2)),
        "3way": [three[i] for i in pick],
    }


def _dist(codes: np.ndarray, cols: list[int], shape: list[int]) -> np.ndarray:
    idx = np.ravel_multi_index(tuple(codes[:, c] for c in cols), tuple(shape[c] for c in cols))
    counts = np.bincount(idx, minlength=int(np.prod([shape[c] for c in cols])))
    return counts / max(counts.sum(), 1)


def mean_tvd(
    a: pd.DataFrame, b: pd.DataFrame, domain: dict[str, int], sets: dict[str, list]
) -> dict[str, float]:
    """Mean total-variation distance between ``a``'s and ``b``'s marginals per set."""
    cols = list(domain)
    shape = [domain[c] for c in cols]
    pos = {c: i for i, c in enumerate(cols)}
    ca = _codes(a, domain)
    cb = _codes(b, domain)
    out = {}
    for name, cliques in sets.items():
        tv = [
            0.5
            * np.abs(
                _dist(ca, [pos[c] for c in cl], shape) - _dist(cb, [pos[c] for c in cl], shape)
            ).sum()
            for cl in cliques
        ]
        out[name] = float(np.mean(tv))
    return out


def _codes(df: pd.DataFrame, domain: dict[str, int]) -> np.ndarray:
    """Integer codes; missing or out-of-domain values are clipped into the domain."""
    arr = np.column_stack(
        [
            pd.to_numeric(df[c], errors="coerce")
            .fillna(0)
            .round()
            .astype(np.int64)
            .clip(0, k - 1)
            .to_numpy()
            for c, k in domain.items()
        ]
    )
    return arr


def tstr_auc(
    train: pd.DataFrame, test: pd.DataFrame, domain: dict[str, int], seed: int = 0
) -> float:
    """Train on ``train`` (synthetic or real), test on the real holdout: ROC AUC for TARGET.

    HistGradientBoostingClassifier with every feature declared categorical."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    feats = [c for c in domain if c != TARGET]
    xtr = _codes(train, domain)
    xte = _codes(test, domain)
    fi = [list(domain).index(c) for c in feats]
    ti = list(domain).index(TARGET)
    ytr = xtr[:, ti]
    if len(np.unique(ytr)) < 2:
        return float("nan")
    clf = HistGradientBoostingClassifier(
        categorical_features=list(range(len(feats))), max_iter=100, random_state=seed
    )
    clf.fit(xtr[:, fi], ytr)
    return float(roc_auc_score(xte[:, ti], clf.predict_proba(xte[:, fi])[:, 1]))


def independent_sample(train: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """Baseline: each column drawn independently from its (non-private) training 1-way."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({c: rng.choice(train[c].to_numpy(), size=n) for c in train.columns})
