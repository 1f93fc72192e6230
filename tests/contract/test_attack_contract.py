"""The contract every attack of the suite keeps, checked once per attack.

The suite runs on 800 Adult training rows and 800 holdout rows against two synthetic tables: a
copy of the training rows (the worst release) and 800 rows of the same population never used
in training (a release that cannot leak). Each attack must return its documented result with
its fields in range, give the same answer for the same seed, and report a higher risk for the
copy than for the independent table. The canary audit (a dict, not an ``AttackResult``) is
held to the same contract with a copying and an independent generator.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd
import pytest

from privsynth.attacks import AttackResult, run

QIS = ["age", "sex", "race", "marital-status", "education"]
SETTINGS: dict[str, Any] = {
    "sensitive": ["income"],
    "quasi_identifiers": QIS,
    "self_test": False,
    "n_targets": 400,
    "device": "cpu",
}
#: Every attack the suite runs, with the range of its metric; diagnostics are never judged.
ATTACKS = {
    "dcr_closer_to_train": (0.0, 1.0),
    "exact_match_rate": (0.0, 1.0),
    "membership_distance": (0.0, 1.0),
    "membership_density_ratio": (0.0, 1.0),
    "attribute_inference_nn[income]": (-1.0, 1.0),
    "attribute_inference_model[income]": (-1.0, 1.0),
    "linkability": (-1.0, 1.0),
    "singling_out_univariate": (-1.0, 1.0),
    "singling_out_multivariate": (-1.0, 1.0),
}
DIAGNOSTICS = {"dcr_closer_to_train", "exact_match_rate"}
ROUNDING = 1e-12
CANARY_STATUS = {"VIOLATION", "consistent", "loose"}


class _Copier:
    """A 'generator' that releases its training rows."""

    delta = 0.0

    def fit(self, df: pd.DataFrame, schema: object) -> _Copier:
        self.df = df
        return self

    def sample(self, n: int, seed: int | None = None) -> pd.DataFrame:
        return self.df.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def _independent_generator(population: pd.DataFrame) -> type:
    class Independent(_Copier):
        """A 'generator' that ignores its training rows and draws from other people."""

        def sample(self, n: int, seed: int | None = None) -> pd.DataFrame:
            return population.sample(n=n, replace=True, random_state=seed).reset_index(drop=True)

    return Independent


@pytest.fixture(scope="module")
def runs(adult_rows):
    """Suite results by release: ``copy``, ``copy_again`` (same seed) and ``independent``."""
    df, schema = adult_rows
    train, holdout = df.iloc[:800].reset_index(drop=True), df.iloc[800:1600]
    population = df.iloc[1600:2400].reset_index(drop=True)
    canary = {"epsilon": 1.0, "m": 200}
    copier = {**canary, "factory": _Copier}
    independent = {**canary, "factory": _independent_generator(population)}
    return {
        name: run(train, holdout, syn, schema, canary=can, seed=3, **SETTINGS)
        for name, syn, can in (
            ("copy", train, copier),
            ("copy_again", train, copier),
            ("independent", population, independent),
        )
    }


def _attack(result, name: str) -> AttackResult:
    [found] = [a for a in result.attacks if a.name == name]
    return found


def test_the_suite_runs_exactly_the_attacks_in_the_contract(runs):
    """An attack added to the suite must be added here."""
    for result in runs.values():
        assert [a.name for a in result.attacks] == list(ATTACKS)
        assert result.skipped == []


@pytest.mark.parametrize("name", ATTACKS)
@pytest.mark.parametrize("release", ["copy", "independent"])
def test_each_attack_returns_its_documented_fields_in_range(runs, name, release):
    result = _attack(runs[release], name)
    low, high = ATTACKS[name]
    assert isinstance(result, AttackResult)
    assert result.threat_model.strip() and result.metric.strip()
    # The interval holds the estimate up to float rounding (a Wilson interval at 0 of n
    # successes computes its lower end as about 4e-19).
    assert low <= result.ci[0] <= result.value + ROUNDING
    assert result.value <= result.ci[1] + ROUNDING and result.ci[1] <= high
    assert low <= result.baseline <= high
    assert all(math.isfinite(x) for x in (result.value, *result.ci, result.baseline))
    if name in DIAGNOSTICS:
        assert result.passed is None
    else:
        assert isinstance(result.passed, bool)
    doc = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert doc["name"] == name and doc["value"] == result.value


@pytest.mark.parametrize("name", ATTACKS)
def test_each_attack_is_deterministic_for_a_seed(runs, name):
    assert _attack(runs["copy"], name) == _attack(runs["copy_again"], name)


@pytest.mark.parametrize("name", ATTACKS)
def test_each_attack_sees_more_risk_in_a_copy_than_in_an_independent_table(runs, name):
    copy, independent = _attack(runs["copy"], name), _attack(runs["independent"], name)
    # Not within noise: the copy's whole interval lies above the independent table's value.
    assert copy.ci[0] > independent.value, (copy, independent)
    if name not in DIAGNOSTICS:
        assert copy.passed is False and independent.passed is True


@pytest.mark.parametrize("release", ["copy", "independent"])
def test_the_canary_audit_returns_its_documented_fields_in_range(runs, release):
    canary = runs[release].canary
    assert canary["released"] is False and canary["m"] == 200
    assert 0 <= canary["correct"] <= canary["guesses"] <= canary["m"]
    assert canary["epsilon_lower_bound"] >= 0 and canary["epsilon_claimed"] == 1.0
    assert canary["status"] in CANARY_STATUS
    json.dumps(canary, allow_nan=False)


def test_the_canary_audit_is_deterministic_for_a_seed(runs):
    assert runs["copy"].canary == runs["copy_again"].canary


def test_the_canary_audit_sees_more_risk_in_a_copier_than_in_an_independent_generator(runs):
    copy, independent = runs["copy"].canary, runs["independent"].canary
    assert copy["epsilon_lower_bound"] > independent["epsilon_lower_bound"]
    assert copy["status"] == "VIOLATION" and independent["status"] != "VIOLATION"
    assert runs["copy"].verdict()["canary_status"] == "VIOLATION"
