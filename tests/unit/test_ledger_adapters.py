"""diffprivlib and OpenDP spends drawn from the ledger, with real library calls (the model
fit is in tests/system/test_ledger_adapters.py)."""

from __future__ import annotations

import numpy as np
import pytest

from privsynth.budget import ZCDP, ApproxDP, Budget, Ledger, PureDP
from privsynth.budget.adapters import (
    LedgerAccountant,
    LedgerBudgetExceeded,
    charge_opendp,
    event_for_measurement,
    ledger_measure,
)
from privsynth.errors import BudgetExceeded, ConfigError

diffprivlib = pytest.importorskip("diffprivlib")
dp = pytest.importorskip("opendp.prelude")
dp.enable_features("contrib")


@pytest.fixture
def ledger(tmp_path):
    with Ledger.open(tmp_path / "ledger.db", dataset_id="adult", cap=Budget(1.0, 1e-9)) as led:
        yield led


@pytest.fixture
def x():
    return np.random.default_rng(0).uniform(0, 1, 500)


# ------------------------------------------------------------------------------ diffprivlib


def test_diffprivlib_mean_is_charged_to_the_ledger(ledger, x):
    acc = LedgerAccountant(ledger, purpose="mean of x")
    value = diffprivlib.tools.mean(x, epsilon=0.25, bounds=(0, 1), accountant=acc, random_state=0)
    assert 0 <= value <= 1
    kinds = [(e["kind"], e["purpose"]) for e in ledger.entries()]
    assert kinds == [("cap", "initial cap"), ("reserve", "mean of x"), ("commit", "mean of x")]
    assert ledger.entries()[1]["events"] == [{"type": "PureDP", "epsilon": 0.25}]
    assert ledger.spent().epsilon == 0.25
    assert acc.spent_budget == [(0.25, 0.0)]
    assert tuple(acc.total()) == (0.25, 1e-9)
    assert tuple(acc.remaining()) == (0.75, 1e-9)


def test_diffprivlib_refusal_happens_before_the_data_is_touched(ledger, x, monkeypatch):
    acc = LedgerAccountant(ledger)
    diffprivlib.tools.mean(x, epsilon=0.6, bounds=(0, 1), accountant=acc)
    touched = []
    import diffprivlib.tools.utils as dpl_utils

    original = dpl_utils.clip_to_bounds
    monkeypatch.setattr(
        dpl_utils, "clip_to_bounds", lambda *a, **k: touched.append(1) or original(*a, **k)
    )
    n = len(ledger.entries())
    with pytest.raises(BudgetExceeded) as exc:
        diffprivlib.tools.mean(x, epsilon=0.6, bounds=(0, 1), accountant=acc)
    assert isinstance(exc.value, diffprivlib.utils.BudgetError)  # diffprivlib code can catch it
    assert isinstance(exc.value, LedgerBudgetExceeded)
    assert touched == []
    assert len(ledger.entries()) == n
    diffprivlib.tools.mean(x, epsilon=0.4, bounds=(0, 1), accountant=acc)  # what is left fits
    assert touched == [1]
    assert ledger.remaining().epsilon == 0.0


def test_two_accountants_share_one_budget(ledger, x):
    a, b = LedgerAccountant(ledger, purpose="a"), LedgerAccountant(ledger, purpose="b")
    diffprivlib.tools.var(x, epsilon=0.5, bounds=(0, 1), accountant=a)
    diffprivlib.tools.std(x, epsilon=0.5, bounds=(0, 1), accountant=b)
    with pytest.raises(BudgetExceeded):
        diffprivlib.tools.mean(x, epsilon=0.01, bounds=(0, 1), accountant=a)
    assert ledger.spent().epsilon == 1.0


def test_accountant_remaining_for_k_queries_and_direct_spend(ledger):
    acc = LedgerAccountant(ledger)
    acc.spend(0.2, 0)  # spend without a check first: reserved and committed at once
    assert ledger.spent().epsilon == 0.2
    each = acc.remaining(k=4)[0]
    assert each == pytest.approx(0.2, rel=1e-6)
    ledger.check([PureDP(each)] * 4)
    acc.spend(0.1, 1e-10)
    assert ledger.entries()[-2]["events"] == [{"type": "ApproxDP", "epsilon": 0.1, "delta": 1e-10}]
    assert acc.epsilon == 1.0 and acc.delta == 1e-9
    with pytest.raises(ConfigError):
        LedgerAccountant("not a ledger")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ OpenDP


def _laplace(scale):
    return dp.m.make_laplace(
        dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float), scale=scale
    )


def _gaussian(scale):
    return dp.m.make_gaussian(
        dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float), scale=scale
    )


def test_event_for_each_supported_measure():
    assert event_for_measurement(_laplace(2.0), 1.0) == PureDP(0.5)
    assert event_for_measurement(_gaussian(2.0), 1.0) == ZCDP(0.125)
    approx = dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(_gaussian(2.0)), 1e-9)
    eps, delta = approx.map(1.0)
    assert event_for_measurement(approx, 1.0) == ApproxDP(eps, delta)
    smoothed = dp.c.make_zCDP_to_approxDP(_gaussian(2.0))
    with pytest.raises(ConfigError, match="make_fix_delta"):
        event_for_measurement(smoothed, 1.0)
    with pytest.raises(ConfigError, match="OpenDP Measurement"):
        event_for_measurement(object(), 1.0)


def test_charge_opendp_reserves(ledger):
    res = charge_opendp(ledger, _laplace(4.0), 1.0, purpose="noisy sum")
    assert res.events == (PureDP(0.25),)
    entry = ledger.entries()[-1]
    assert entry["metadata"]["measure"] == "MaxDivergence"
    assert ledger.spent().epsilon == 0.25
    res.commit()


def test_ledger_measure_reserves_then_releases(ledger):
    value = ledger_measure(ledger, _laplace(2.0), 10.0, 1.0, purpose="noisy value")
    assert isinstance(value, float)
    assert [e["kind"] for e in ledger.entries()] == ["cap", "reserve", "commit"]
    assert ledger.spent().epsilon == 0.5


def test_ledger_measure_refuses_before_invoking(ledger):
    ledger.reserve(PureDP(0.9), purpose="earlier")

    class Untouchable:
        def __float__(self):
            raise AssertionError("the measurement must not read the data")

    with pytest.raises(BudgetExceeded):
        ledger_measure(ledger, _laplace(2.0), Untouchable(), 1.0, purpose="too expensive")
    assert [e["kind"] for e in ledger.entries()] == ["cap", "reserve"]
