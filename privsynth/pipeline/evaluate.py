"""Utility and the attack suite on a fitted release, and the verdict the report states."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pandas as pd

from privsynth.attacks import run as run_attacks
from privsynth.attacks.policy import load_policy
from privsynth.generators.base import Generator
from privsynth.persons import person_fidelity
from privsynth.pipeline.config import ReleaseConfig
from privsynth.pipeline.split import Split, n_targets
from privsynth.report.shareable import shareable
from privsynth.schema import Schema
from privsynth.utility import evaluate as utility_of


def evaluate(
    gen: Generator,
    split: Split,
    synthetic: pd.DataFrame,
    config: ReleaseConfig,
    *,
    seed: int,
    synthetic_rows: int | None = None,
) -> dict[str, Any]:
    """Utility and attacks on the rows as the model saw them (its learned schema).

    Returns ``{"utility": ..., "attacks": ..., "verdict": ...}`` as the report holds them, and
    ``"withheld"``: lines for the custodian's screen only, on what of the attack results the
    report may not carry (:func:`privsynth.report.shareable.shareable`). The
    verdict fails on any failed attack check, a canary violation or a failed self-test of the
    suite (it missed its planted leak or raised a false alarm). The canary audit fits a second
    generator made as ``config`` says; it is never released. ``synthetic_rows``: the size of
    the release when ``synthetic`` is a uniform sample of it.
    """
    learned: Schema = gen.schema_
    unit = learned.unit_of_privacy
    # As the attacks see it: the synthesised columns, without identifiers (a person's
    # synthetic id is a row number, not a value to attack).
    released = learned.row_view()
    people = person_fidelity(split.train, synthetic, learned) if unit.is_person else None
    synthetic = synthetic[released.names]
    # The rows are already checked; this maps values too rare to learn to "(other)" (and
    # drops identifiers, which rows sampled from an engine still hold).
    train, holdout = (
        released.validate(rows[released.names])[0] if rows is not None else None
        for rows in (split.train, split.holdout)
    )
    assert train is not None
    policy = load_policy(config.policy)
    utility = utility_of(
        train,
        synthetic,
        released,
        target=config.target,
        holdout=holdout,
        seed=seed,
        min_cell=policy.min_cell_rows,
        groups=config.groups,
        bias=policy.bias,
    )
    suite = run_attacks(
        train,
        holdout,
        synthetic,
        released,
        sensitive=list(config.sensitive),
        quasi_identifiers=list(config.quasi_identifiers) or None,  # None: all but sensitive
        policy=policy,
        canary=_canary(gen, split, config) if config.canary else None,
        n_targets=n_targets(gen.n_rows_, config.holdout_fraction, policy.sample["targets"]),
        seed=seed,
        synthetic_rows=synthetic_rows,
        persons=(
            (split.train[unit.column], split.holdout[unit.column])
            if unit.is_person and split.holdout is not None
            else None
        ),
    )
    attacks, withheld = shareable(suite.to_dict(), policy.min_cell_rows)
    fidelity = utility.to_dict()
    if people is not None:
        fidelity["persons"] = people
    return {
        "utility": fidelity,
        "attacks": attacks,
        "verdict": _verdict(attacks),
        "withheld": withheld,
    }


def _canary(gen: Generator, split: Split, config: ReleaseConfig) -> dict[str, Any]:
    """The canary audit's settings: canaries are rows, or, in a person-level release, persons
    of K rows (the release's K, public) fitted under the same schema."""
    canary: dict[str, Any] = {
        "factory": config.make_generator,
        "epsilon": gen.epsilon,
        "delta": gen.delta,
    }
    unit = gen.schema_.unit_of_privacy
    if unit.is_person:
        schema = replace(
            gen.schema_, unit_of_privacy=replace(unit, max_rows=gen.persons_["max_rows"])
        )
        canary["schema"] = schema
        canary["train"] = schema.validate(split.train[schema.names])[0]
    return canary


def _verdict(attacks: dict[str, Any]) -> dict[str, Any]:
    v = attacks["verdict"]
    failed = list(v["failed"])
    if v["canary_status"] == "VIOLATION":
        failed.append("canary audit: empirical epsilon above the claimed epsilon")
    if v["self_test_ok"] is False:
        failed.append("attack suite self-test")
    return {
        "policy": v["policy"],
        "passed": bool(v["passed"]) and not failed,
        "failed_checks": failed,
        "canary_status": v["canary_status"],
        "self_test_ok": v["self_test_ok"],
    }
