"""A diffprivlib model trained on a budget drawn from the ledger."""

from __future__ import annotations

import numpy as np
import pytest

from privsynth.budget import Budget, Ledger
from privsynth.budget.adapters import LedgerAccountant

diffprivlib = pytest.importorskip("diffprivlib")
dp = pytest.importorskip("opendp.prelude")
dp.enable_features("contrib")


@pytest.fixture
def ledger(tmp_path):
    with Ledger.open(tmp_path / "ledger.db", dataset_id="adult", cap=Budget(1.0, 1e-9)) as led:
        yield led


def test_diffprivlib_model_fit(ledger):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 2))
    y = (X[:, 0] > 0).astype(int)
    acc = LedgerAccountant(ledger, purpose="naive bayes")
    clf = diffprivlib.models.GaussianNB(
        epsilon=0.5, bounds=([-4, -4], [4, 4]), accountant=acc, random_state=0
    )
    clf.fit(X, y)
    assert ledger.spent().epsilon == 0.5
    assert [e["kind"] for e in ledger.entries()] == ["cap", "reserve", "commit"]
