"""Privacy accounting: exact arithmetic, composition routes, anchors against OpenDP and Opacus."""

from __future__ import annotations

import math
import re
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privsynth.budget.analysis import (
    DENSE_ORDERS,
    SG_ORDERS,
    as_rational,
    epsilon_spent,
    epsilon_spent_exact,
    epsilon_subsampled_gaussian,
    rdp_curve,
    rdp_to_epsilon,
    rho_for_epsilon,
)
from privsynth.budget.events import (
    ZCDP,
    ApproxDP,
    Budget,
    PureDP,
    SubsampledGaussian,
    event_from_dict,
    event_to_dict,
)
from privsynth.errors import ConfigError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "ledger.md"
SUBNORMAL = 1e-310
BAD_VALUES = [-1.0, -1e-12, math.nan, math.inf, -math.inf, SUBNORMAL]


# ------------------------------------------------------------------------------ exact reading


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        (0.1, Fraction(1, 10)),
        (1 / 11, Fraction(1, 11)),
        (1 / 3, Fraction(1, 3)),
        (2 / 3, Fraction(2, 3)),
        (1e-9, Fraction(1, 10**9)),
        (0.3, Fraction(3, 10)),
        (1.0, Fraction(1)),
        (0.0, Fraction(0)),
        (22 / 7, Fraction(22, 7)),
    ],
)
def test_as_rational_reads_the_simplest_rational(x, expected):
    assert as_rational(x) == expected


@given(st.floats(min_value=0, max_value=1e300, allow_nan=False, allow_subnormal=False))
def test_as_rational_always_rounds_back_to_the_float(x):
    r = as_rational(x)
    assert float(r) == x
    # nothing simpler rounds to x: the next-smaller denominator's best approximation misses
    if r.denominator > 1:
        simpler = Fraction(x).limit_denominator(r.denominator - 1)
        assert float(simpler) != x


def test_eleven_spends_of_one_eleventh_fit_a_cap_of_one_and_a_twelfth_does_not():
    assert epsilon_spent_exact([PureDP(1 / 11)] * 11, 0.0) == 1
    assert epsilon_spent([PureDP(1 / 11)] * 11, 0.0) == 1.0
    assert epsilon_spent_exact([PureDP(1 / 11)] * 12, 0.0) == Fraction(12, 11)
    # the float sum gets the first answer wrong
    assert sum([1 / 11] * 11) != 1.0


def test_tenth_plus_fifths_is_exactly_three_tenths():
    assert epsilon_spent_exact([PureDP(0.1), PureDP(0.2)], 0.0) == as_rational(0.3)


def test_float_results_are_rounded_up_never_down():
    total = epsilon_spent_exact([PureDP(0.1)] * 3, 0.0)  # exactly 3/10
    assert Fraction(epsilon_spent([PureDP(0.1)] * 3, 0.0)) >= total
    assert epsilon_spent([PureDP(0.1)] * 3, 0.0) == math.nextafter(0.3, 1)


# ------------------------------------------------------------------------------ validation


@pytest.mark.parametrize("bad", BAD_VALUES)
@pytest.mark.parametrize(
    "make",
    [
        lambda v: ZCDP(v),
        lambda v: PureDP(v),
        lambda v: ApproxDP(v, 0.0),
        lambda v: ApproxDP(0.1, v),
        lambda v: SubsampledGaussian(v, 1.0, 10),
        lambda v: SubsampledGaussian(0.1, v, 10),
        lambda v: Budget(v, 1e-9),
        lambda v: Budget(1.0, v),
    ],
)
def test_events_and_budgets_reject_bad_parameters(make, bad):
    with pytest.raises(ConfigError):
        make(bad)


@pytest.mark.parametrize("delta", [1.0, 1.5])
def test_budget_delta_must_be_below_one(delta):
    with pytest.raises(ConfigError, match="delta"):
        Budget(1.0, delta)


@pytest.mark.parametrize("bad", BAD_VALUES + [1.0])
def test_epsilon_spent_rejects_bad_delta(bad):
    with pytest.raises(ConfigError):
        epsilon_spent([PureDP(1.0)], bad)


def test_budget_round_trip_and_errors():
    b = Budget(1.5, 1e-9)
    assert Budget.from_dict(b.to_dict()) == b
    assert str(b) == "(epsilon=1.5, delta=1e-09)"
    with pytest.raises(ConfigError):
        Budget.from_dict({"epsilon": 1.0})
    with pytest.raises(ConfigError):
        Budget.from_dict({"epsilon": 1.0, "delta": 0, "rho": 1})


def test_events_round_trip_through_dicts():
    for e in [ZCDP(0.5), PureDP(1.0), ApproxDP(1.0, 1e-6), SubsampledGaussian(0.01, 1.1, 100)]:
        assert event_from_dict(event_to_dict(e)) == e


def test_non_events_are_refused():
    with pytest.raises(ConfigError, match="expected privacy events"):
        epsilon_spent([1.0], 1e-9)  # type: ignore[list-item]


# ------------------------------------------------------------------------------ routes


def test_single_pure_event_costs_exactly_its_epsilon_at_any_delta():
    for delta in (0.0, 1e-9, 1e-3):
        assert epsilon_spent_exact(PureDP(0.7), delta) <= Fraction(7, 10)
    for delta in (0.0, 1e-9):
        assert epsilon_spent_exact(PureDP(0.7), delta) == Fraction(7, 10)
        assert epsilon_spent(PureDP(0.7), delta) == math.nextafter(0.7, 1)  # 7/10 rounded up
    # with a generous delta the RDP route (eps^2/2-zCDP) beats eps itself, soundly
    assert epsilon_spent(PureDP(0.7), 1e-3) < 0.7


def test_many_small_pure_spends_compose_better_than_their_sum_when_delta_is_allowed():
    events = [PureDP(0.01)] * 1000
    assert epsilon_spent(events, 0.0) == 10.0  # basic composition: the only route at delta=0
    folded = epsilon_spent(events, 1e-6)
    assert folded < 2.0
    # and it is the RDP conversion of the folded curve
    a, r = rdp_curve(events)
    assert folded == pytest.approx(rdp_to_epsilon(a, r, 1e-6), rel=1e-9)


def test_mixed_route_folds_only_what_helps():
    big, small = PureDP(2.0), [PureDP(0.01)] * 400
    mixed = epsilon_spent([big, *small], 1e-6)
    assert mixed < epsilon_spent([big, *small], 0.0)  # better than basic composition
    assert mixed <= 2.0 + epsilon_spent(small, 1e-6) + 1e-12  # big one by basic composition
    a, r = rdp_curve([big, *small])
    assert mixed <= rdp_to_epsilon(a, r, 1e-6)  # at least as good as folding everything


def test_approx_pieces_use_delta_first():
    assert epsilon_spent([ApproxDP(1.0, 1e-6)], 1e-6) == 1.0
    assert epsilon_spent([ApproxDP(1.0, 1e-6)], 5e-7) == math.inf
    assert epsilon_spent([ApproxDP(1.0, 1e-6), PureDP(0.5)], 1e-6) == 1.5
    # no delta left for the RDP part: no finite epsilon
    assert epsilon_spent([ApproxDP(1.0, 1e-6), ZCDP(0.01)], 1e-6) == math.inf
    # some delta left: the zCDP part is converted at what remains
    rest = epsilon_spent([ApproxDP(1.0, 1e-6), ZCDP(0.01)], 2e-6)
    assert rest == pytest.approx(1.0 + epsilon_spent(ZCDP(0.01), 1e-6), abs=1e-12)


def test_zcdp_needs_delta():
    assert epsilon_spent(ZCDP(0.1), 0.0) == math.inf
    assert epsilon_spent(ZCDP(0.0), 0.0) == 0.0
    assert epsilon_spent([], 1e-9) == 0.0


def test_zcdp_composition_is_the_sum_of_rhos():
    assert epsilon_spent([ZCDP(0.01)] * 3, 1e-9) == epsilon_spent(ZCDP(0.03), 1e-9)


def test_conversion_matches_opacus_formula_on_the_same_grid():
    from opacus.accountants.analysis.rdp import get_privacy_spent

    orders = np.array(SG_ORDERS)
    rdp = 0.3 * orders + 0.05
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs, _ = get_privacy_spent(orders=orders, rdp=rdp, delta=1e-7)
    ours = rdp_to_epsilon(orders, rdp, 1e-7)
    assert theirs <= ours <= theirs * (1 + 1e-10)


def test_rdp_to_epsilon_validates():
    with pytest.raises(ConfigError):
        rdp_to_epsilon([1.0, 2.0], [0.1, 0.2], 1e-5)
    with pytest.raises(ConfigError):
        rdp_to_epsilon([2.0], [0.1, 0.2], 1e-5)
    assert rdp_to_epsilon([2.0, 3.0], [0.0, 0.0], 1e-5) == 0.0
    assert rdp_to_epsilon([2.0, 3.0], [0.1, 0.2], 0.0) == math.inf
    with pytest.raises(ConfigError):
        rdp_curve(ApproxDP(1.0, 1e-6))


def test_grids():
    assert set(map(float, SG_ORDERS)) <= set(map(float, DENSE_ORDERS))
    from opacus.accountants import RDPAccountant

    assert set(RDPAccountant.DEFAULT_ALPHAS) <= set(map(float, SG_ORDERS))


# ------------------------------------------------------------------------------ anchors


@pytest.mark.parametrize("scale", [0.3, 1.0, 5.0, 20.0, 100.0])
@pytest.mark.parametrize("delta", [1e-5, 1e-9])
def test_zcdp_conversion_against_opendp(scale, delta):
    import opendp.prelude as dp

    dp.enable_features("contrib")
    gauss = dp.m.make_gaussian(
        dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float), scale=scale
    )
    theirs_eps, theirs_delta = dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(gauss), delta).map(
        1.0
    )
    assert theirs_delta == delta
    ours = epsilon_spent(ZCDP(gauss.map(1.0)), delta)
    # OpenDP minimises the same conversion over continuous orders; ours uses a dense grid, so
    # it can only be a hair larger -- never meaningfully smaller (that would be unsound).
    assert ours <= theirs_eps * (1 + 1e-6)
    assert ours >= theirs_eps * (1 - 1e-12)


SG_CASES = [
    (0.01, 1.0, 1000, 1e-5),
    (0.001, 0.8, 10000, 1e-5),
    (0.1, 2.0, 100, 1e-5),
    (0.2, 0.5, 10, 1e-5),
    (0.05, 4.0, 50, 1e-6),
    (0.01, 5.0, 10, 1e-5),
]


@pytest.mark.filterwarnings("ignore:Optimal order:UserWarning")
@pytest.mark.parametrize(("q", "sigma", "steps", "delta"), SG_CASES)
def test_subsampled_gaussian_against_opacus_rdp_accountant(q, sigma, steps, delta):
    from opacus.accountants import PRVAccountant, RDPAccountant

    acc = RDPAccountant()
    acc.history = [(sigma, q, steps)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = acc.get_epsilon(delta)
    ours = epsilon_subsampled_gaussian(q, sigma, steps, delta)
    ours_rdp = epsilon_spent(SubsampledGaussian(q, sigma, steps), delta, use_prv=False)
    assert ours <= ours_rdp <= theirs * (1 + 1e-9)
    # on Opacus' own grid our curve and conversion reproduce Opacus (up to the upward pad)
    a, r = rdp_curve(SubsampledGaussian(q, sigma, steps), RDPAccountant.DEFAULT_ALPHAS)
    assert theirs <= rdp_to_epsilon(a, r, delta) <= theirs * (1 + 1e-9)
    # sound: never below PRV's *lower* bound on the true epsilon
    prv = PRVAccountant()
    prv.history = [(sigma, q, steps)]
    dprv = prv._get_dprv(eps_error=0.01, delta_error=delta / 1000)
    lower, _, upper = dprv.compute_epsilon(delta, delta / 1000, 0.01)
    assert ours >= lower
    assert ours == pytest.approx(min(ours_rdp, upper), rel=1e-9)


@pytest.mark.parametrize(("q", "sigma", "steps", "delta"), SG_CASES[:4])
def test_rdp_route_equals_opacus_when_its_optimum_is_on_opacus_grid(q, sigma, steps, delta):
    from opacus.accountants import RDPAccountant

    acc = RDPAccountant()
    acc.history = [(sigma, q, steps)]
    theirs = acc.get_epsilon(delta)
    ours_rdp = epsilon_spent(SubsampledGaussian(q, sigma, steps), delta, use_prv=False)
    assert ours_rdp == pytest.approx(theirs, rel=1e-9)


def test_subsampled_gaussian_is_opacus_rdp_when_prv_is_unavailable(monkeypatch):
    from opacus.accountants import PRVAccountant, RDPAccountant

    import privsynth.budget.analysis as acc_mod

    def broken(self, *args, **kwargs):
        raise RuntimeError("Cannot compute epsilon")

    monkeypatch.setattr(PRVAccountant, "get_epsilon", broken)
    acc_mod._prv_epsilon.cache_clear()
    q, sigma, steps, delta = 0.01, 1.0, 1000, 1e-5
    acc = RDPAccountant()
    acc.history = [(sigma, q, steps)]
    try:
        ours = epsilon_subsampled_gaussian(q, sigma, steps, delta)
    finally:
        acc_mod._prv_epsilon.cache_clear()
    assert ours == pytest.approx(acc.get_epsilon(delta), rel=1e-9)
    assert ours >= acc.get_epsilon(delta)


def test_rho_for_epsilon_is_the_largest_fitting_rho():
    rho = rho_for_epsilon(1.0, 1e-9)
    assert epsilon_spent(ZCDP(rho), 1e-9) <= 1.0
    assert epsilon_spent(ZCDP(rho * (1 + 1e-9)), 1e-9) > 1.0
    # the classic bound rho + 2 sqrt(rho log(1/delta)) is looser, so it gives a smaller rho
    classic = (math.sqrt(math.log(1e9) + 1.0) - math.sqrt(math.log(1e9))) ** 2
    assert rho > classic


def test_worked_example_in_docs_matches_the_code():
    rho = rho_for_epsilon(1.0, 1e-9)
    one, two, three = (epsilon_spent([ZCDP(rho)] * k, 1e-9) for k in (1, 2, 3))
    text = DOCS.read_text(encoding="utf-8")
    for value in (rho, two, three, 3.0 - three, two - one, three - two):
        assert f"{value:.4f}" in text, f"docs/ledger.md should quote {value:.4f}"
    assert re.search(r"1\.7784", text)


# ------------------------------------------------------------------------------ properties

SG_PAIRS = [(0.01, 1.0), (0.1, 2.0), (0.05, 0.8)]
events_st = st.one_of(
    st.builds(ZCDP, st.floats(0, 2, allow_subnormal=False)),
    st.builds(PureDP, st.floats(0, 2, allow_subnormal=False)),
    st.builds(
        ApproxDP, st.floats(0, 1, allow_subnormal=False), st.floats(0, 1e-7, allow_subnormal=False)
    ),
    st.builds(
        lambda pair, steps: SubsampledGaussian(pair[0], pair[1], steps),
        st.sampled_from(SG_PAIRS),
        st.integers(0, 2000),
    ),
)
deltas = st.sampled_from([0.0, 1e-9, 1e-6, 1e-3])
PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def eps(events, delta):
    # the property tests use the RDP routes only: they are exactly monotone on a fixed grid;
    # Opacus' PRV route is a numerical bound and is checked separately
    return epsilon_spent_exact(events, delta, use_prv=False)


@PROPS
@given(st.lists(events_st, min_size=1, max_size=6), deltas)
def test_composition_never_cheaper_than_any_part(events, delta):
    total = eps(events, delta)
    for i in range(len(events)):
        assert total >= eps([events[i]], delta)
        assert total >= eps(events[:i] + events[i + 1 :], delta)


@PROPS
@given(st.lists(events_st, max_size=6), events_st, deltas)
def test_adding_an_event_never_decreases_epsilon(events, extra, delta):
    assert eps([*events, extra], delta) >= eps(events, delta)


@PROPS
@given(st.lists(events_st, min_size=1, max_size=4), deltas, deltas)
def test_more_delta_never_costs_more_epsilon(events, d1, d2):
    lo, hi = sorted((d1, d2))
    assert eps(events, hi) <= eps(events, lo)


@PROPS
@given(
    st.floats(0, 3, allow_subnormal=False),
    st.floats(0, 3, allow_subnormal=False),
    st.floats(0, 1e-7, allow_subnormal=False),
    st.floats(0, 1e-7, allow_subnormal=False),
    st.sampled_from([1e-9, 1e-6]),
)
def test_monotone_in_each_parameter(a, b, d1, d2, delta):
    lo, hi = sorted((a, b))
    dlo, dhi = sorted((d1, d2))
    assert eps([ZCDP(lo)], delta) <= eps([ZCDP(hi)], delta)
    assert eps([PureDP(lo)], delta) <= eps([PureDP(hi)], delta)
    assert eps([ApproxDP(lo, dlo)], delta) <= eps([ApproxDP(hi, dlo)], delta)
    assert eps([ApproxDP(lo, dlo), ZCDP(0.01)], delta) <= eps(
        [ApproxDP(lo, dhi), ZCDP(0.01)], delta
    )


@PROPS
@given(st.integers(0, 5000), st.integers(0, 5000), st.sampled_from(SG_PAIRS))
def test_monotone_in_steps(s1, s2, pair):
    lo, hi = sorted((s1, s2))
    q, sigma = pair
    assert eps(SubsampledGaussian(q, sigma, lo), 1e-6) <= eps(
        SubsampledGaussian(q, sigma, hi), 1e-6
    )


def test_monotone_in_sample_rate_and_noise():
    rates = [0.001, 0.01, 0.05, 0.2, 1.0]
    by_rate = [eps(SubsampledGaussian(q, 1.0, 100), 1e-6) for q in rates]
    assert by_rate == sorted(by_rate)
    sigmas = [0.6, 0.8, 1.0, 2.0, 5.0]
    by_sigma = [eps(SubsampledGaussian(0.05, s, 100), 1e-6) for s in sigmas]
    assert by_sigma == sorted(by_sigma, reverse=True)


def test_prv_route_grows_with_steps():
    values = [epsilon_subsampled_gaussian(0.01, 1.0, steps, 1e-5) for steps in (100, 400, 1600)]
    assert values == sorted(values)


def test_the_old_accounting_module_forwards_every_name_and_warns():
    import importlib
    import sys

    from privsynth.budget import analysis, events

    sys.modules.pop("privsynth.budget.accounting", None)
    with pytest.warns(DeprecationWarning, match="privsynth.budget.events"):
        old = importlib.import_module("privsynth.budget.accounting")
    assert old.ZCDP is events.ZCDP and old.epsilon_spent is analysis.epsilon_spent
    with pytest.raises(AttributeError):
        old._check_param  # noqa: B018  (private names are not forwarded)
