"""Quality metrics for the marginal benchmark on pre-encoded CSVs (project venv): the TVD and
TSTR arithmetic is :mod:`privsynth.utility`'s, run on the CSVs' codes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from privsynth.utility.classifiers import fit_score
from privsynth.utility.marginals import column_sets, marginal_tvds

TARGET = "income>50K"


def marginal_sets(columns: list[str], n3: int = 100, seed: int = 12345) -> dict[str, list]:
    """All 1-way, all 2-way and ``n3`` random 3-way column sets (fixed by ``seed``)."""
    return {
        "1way": column_sets(columns, 1),
        "2way": column_sets(columns, 2),
        "3way": column_sets(columns, 3, max_sets=n3, seed=seed),
    }


def mean_tvd(
    a: pd.DataFrame, b: pd.DataFrame, domain: dict[str, int], sets: dict[str, list]
) -> dict[str, float]:
    """Mean total-variation distance between ``a``'s and ``b``'s marginals per set."""
    pos = {c: i for i, c in enumerate(domain)}
    ca, cb = _codes(a, domain), _codes(b, domain)
    out = {}
    for name, cliques in sets.items():
        idx = [[pos[c] for c in cl] for cl in cliques]
        out[name] = float(np.mean(marginal_tvds(ca, cb, list(domain.values()), idx)))
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
    """Train on ``train`` (synthetic or real), test on the real holdout: ROC AUC for TARGET
    (NaN if ``train`` holds one class).

    HistGradientBoostingClassifier with every feature declared categorical."""
    feats = [i for i, c in enumerate(domain) if c != TARGET]
    ti = list(domain).index(TARGET)
    xtr, xte = _codes(train, domain), _codes(test, domain)
    auc = fit_score(
        xtr[:, feats],
        xtr[:, ti],
        xte[:, feats],
        xte[:, ti],
        categorical=np.ones(len(feats), dtype=bool),
        binary=True,
        seed=seed,
    )
    return float("nan") if auc is None else auc


def independent_sample(train: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """Baseline: each column drawn independently from its (non-private) training 1-way."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({c: rng.choice(train[c].to_numpy(), size=n) for c in train.columns})
