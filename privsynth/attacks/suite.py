"""The attack suite's front door, :func:`run`: every attack, the distance diagnostics, the
self-test and the canary audit, judged by a policy, as one aggregate-only
:class:`~privsynth.attacks.result.SuiteResult`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from privsynth.attacks import selftest
from privsynth.attacks.base import AttackResult
from privsynth.attacks.battery import (
    DENSITY_K,
    Battery,
    Timer,
    at_most,
    dcr_diagnostics,
    row_hashes,
)
from privsynth.attacks.canary import canary_audit
from privsynth.attacks.distance import MixedSpace
from privsynth.attacks.policy import Policy, load_policy
from privsynth.attacks.result import SuiteResult
from privsynth.device import resolve_device
from privsynth.errors import ConfigError, DataError
from privsynth.schema import Schema

#: Rows of train (and of holdout) the self-test draws; its synthetic sets have as many.
SELF_TEST_ROWS = 2000


def _validated(df: pd.DataFrame | None, schema: Schema, what: str) -> pd.DataFrame | None:
    if df is None:
        return None
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in schema.names if c not in df.columns]
    if missing:
        raise DataError(f"{what} lacks column(s) {missing} that the schema synthesises")
    if len(df) == 0:
        return None
    clean, _ = schema.validate(df[schema.names])
    return clean.reset_index(drop=True)


def _check_columns(schema: Schema, names: Sequence[str], what: str) -> list[str]:
    names = list(names)
    known = {c.name for c in schema.synthesised}
    bad = [n for n in names if n not in known]
    if bad:
        raise ConfigError(
            f"{what} {bad} are not synthesised columns of the schema; choose from {sorted(known)}"
        )
    return names


def _person_ids(
    persons: tuple[Sequence[Any], Sequence[Any]] | None,
    train: pd.DataFrame,
    holdout: pd.DataFrame | None,
) -> tuple[np.ndarray, np.ndarray] | None:
    if persons is None or holdout is None:
        return None
    if len(persons) != 2:
        raise ConfigError(
            "persons must be two sequences: the person of each train row, of each holdout row"
        )
    ids = tuple(np.asarray(p) for p in persons)
    for got, rows, what in zip(ids, (train, holdout), ("train", "holdout"), strict=True):
        if len(got) != len(rows):
            raise ConfigError(
                f"persons gives {len(got)} id(s) for the {len(rows)} {what} row(s); give one "
                "per row"
            )
    return ids[0], ids[1]


def _link_groups(
    schema: Schema,
    qis: list[str],
    qis_given: bool,
    link_columns: tuple[Sequence[str], Sequence[str]] | None,
) -> tuple[list[str], list[str]] | None:
    """The two column groups of the linkability attack: as given; else the halves of the
    declared quasi-identifiers; else the halves of all synthesised columns. None if a group
    would be empty."""
    if link_columns is not None:
        if len(link_columns) != 2:
            raise ConfigError("link_columns must be two lists of columns (group A, group B)")
        a = _check_columns(schema, link_columns[0], "link column(s)")
        b = _check_columns(schema, link_columns[1], "link column(s)")
        if not a or not b or set(a) & set(b):
            raise ConfigError("link_columns must be two non-empty, disjoint lists of columns")
        return a, b
    cols = qis if qis_given else schema.names
    if len(cols) < 2:
        return None
    half = (len(cols) + 1) // 2
    return cols[:half], cols[half:]


def run(
    train: pd.DataFrame,
    holdout: pd.DataFrame | None,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    sensitive: Sequence[str] = (),
    quasi_identifiers: Sequence[str] | None = None,
    link_columns: tuple[Sequence[str], Sequence[str]] | None = None,
    policy: str | Path | Policy = "standard",
    canary: dict[str, Any] | None = None,
    seed: int = 0,
    device: str = "auto",
    n_targets: int | None = None,
    n_queries: int | None = None,
    self_test: bool = True,
    persons: tuple[Sequence[Any], Sequence[Any]] | None = None,
    synthetic_rows: int | None = None,
) -> SuiteResult:
    """Attack ``synthetic`` and report aggregate evidence of privacy risk.

    Parameters
    ----------
    train
        The private rows the generator was fitted on (members).
    holdout
        Rows from the same population never used in fitting (non-members and control set).
        ``None`` or empty skips every attack that needs them (said in ``skipped``).
    synthetic
        The synthetic release.
    schema
        The release schema; its public bounds scale numeric distances.
    sensitive
        Columns an attacker tries to infer.
    quasi_identifiers
        Columns an attacker knows for attribute inference (default: every synthesised
        column not sensitive).
    link_columns
        The two column groups of the linkability attack (default: the two halves of the
        declared quasi-identifiers, or of all synthesised columns when none are declared).
    policy
        ``standard``, ``strict`` (``privsynth/attacks/policies/``) or a path to a TOML policy.
    canary
        ``dict(factory=..., epsilon=..., m=1000, delta=None)`` runs the one-run canary audit:
        ``factory()`` must return an unfitted generator (``fit(df, schema).sample(n,
        seed=...)``); the extra fit is never released. For a person-level release add
        ``train=`` (the training rows with the person's id) and ``schema=`` (the person-level
        schema, an integer ``max_rows``): the canaries are then persons of K rows.
    seed
        Seeds every random choice (numpy Generator).
    device
        ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    n_targets
        Training and holdout targets drawn for membership, inference and linkability
        (default: the policy's ``[sample] targets``).
    n_queries
        Predicates generated per singling-out mode (default: the policy's ``[sample]
        queries``).
    self_test
        Also run the suite on planted leaky and null generators.
    persons
        The person of each ``train`` and each ``holdout`` row, when one person may own many
        rows: adds ``membership_person`` (was this person in the training data?).
    synthetic_rows
        The size of the release when ``synthetic`` is a uniform sample of it (reported).

    Returns
    -------
    SuiteResult
        ``to_dict()`` is the JSON form; ``verdict()`` the policy summary.

    Raises
    ------
    ConfigError
        Unknown columns, policy or device, invalid counts or canary settings.
    DataError
        Frames that lack schema columns or break the schema.
    """
    t_start = time.perf_counter()
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"seed ({seed!r}) must be an integer")
    policy = policy if isinstance(policy, Policy) else load_policy(policy)
    sizes = policy.sample
    n_targets = sizes["targets"] if n_targets is None else n_targets
    n_queries = sizes["queries"] if n_queries is None else n_queries
    for value, what in ((n_targets, "n_targets"), (n_queries, "n_queries")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 10:
            raise ConfigError(f"{what} ({value!r}) must be an integer >= 10")
    dev = resolve_device(device)
    sub = schema.row_view()
    sensitive = _check_columns(sub, sensitive, "sensitive column(s)")
    quasi_identifiers_given = quasi_identifiers is not None
    if quasi_identifiers is None:
        quasi_identifiers = [n for n in sub.names if n not in sensitive]
    qis = _check_columns(sub, quasi_identifiers, "quasi-identifier(s)")
    if sensitive and not qis:
        raise ConfigError(
            "attribute inference needs at least one quasi-identifier: name the columns an "
            "attacker would know (or leave quasi_identifiers unset to use all the others)"
        )
    both = sorted(set(qis) & set(sensitive))
    if both:
        raise ConfigError(f"column(s) {both} are both sensitive and quasi-identifiers")
    links = _link_groups(sub, qis, quasi_identifiers_given, link_columns)
    if canary is not None and not (callable(canary.get("factory")) and "epsilon" in canary):
        raise ConfigError("canary must be a dict with a callable 'factory' and 'epsilon'")

    person_ids = _person_ids(persons, train, holdout)
    # Fixed-size uniform samples (whole persons, with persons) bound the suite's cost. They
    # come from their own stream, so a table small enough to be used whole gets the same
    # attacks as if nothing were sampled.
    draw = np.random.default_rng([seed, 1])
    n_synthetic = len(synthetic) if isinstance(synthetic, pd.DataFrame) else 0
    n_synthetic = n_synthetic if synthetic_rows is None else synthetic_rows
    synthetic = _bounded(synthetic, None, sizes["synthetic_rows"], draw)[0]
    train, ids_tr = _bounded(train, _side(person_ids, 0), sizes["reference_rows"], draw)
    holdout, ids_h = _bounded(holdout, _side(person_ids, 1), sizes["reference_rows"], draw)
    if person_ids is not None:
        person_ids = (ids_tr, ids_h)  # type: ignore[assignment]
    if canary is not None and "train" in canary:  # a person-level canary: whole persons
        column = canary["schema"].unit_of_privacy.column
        canary = {
            **canary,
            "train": _bounded(
                canary["train"],
                canary["train"][column].to_numpy(),
                sizes["reference_rows"],
                draw,
            )[0],
        }
    train_v = _validated(train, sub, "train")
    if train_v is None:
        raise DataError("train has no rows")
    syn_v = _validated(synthetic, sub, "synthetic")
    if syn_v is None:
        raise DataError("synthetic has no rows")
    hold_v = _validated(holdout, sub, "holdout")
    frames = [f for f in (syn_v, train_v, hold_v) if f is not None]
    space = MixedSpace(sub, frames)
    timer = Timer()
    rng = np.random.default_rng(seed)
    skipped: list[dict[str, str]] = []

    plots: dict[str, Any] = {"roc": {}, "dcr_histogram": None}
    st = None
    if hold_v is None:
        skipped.append(
            {
                "attack": "membership, attribute inference, singling out, linkability, "
                "self-test, DCR train-vs-holdout",
                "reason": "no holdout data: these attacks compare training rows with rows never "
                "used in fitting",
            }
        )

        attacks, summary, plots["dcr_histogram"] = timer(
            "distance_diagnostics",
            lambda: dcr_diagnostics(
                space.embed(syn_v),
                space.embed(train_v),
                None,
                (row_hashes(syn_v), row_hashes(train_v), None),
                rng,
                dev,
            ),
        )
    else:
        battery = Battery(
            sub,
            space,
            train_v,
            hold_v,
            sensitive,
            qis,
            policy,
            dev,
            n_targets,
            n_queries,
            rng,
            links,
            person_ids,
        )
        out = battery.attacks(syn_v, timer)
        attacks, summary = out["results"], out["summary"]
        plots["roc"], plots["dcr_histogram"] = out["roc"], out["histogram"]
        if not sensitive:
            skipped.append({"attack": "attribute inference", "reason": "no sensitive column"})
        if links is None:
            skipped.append({"attack": "linkability", "reason": "needs two column groups"})
        if self_test and len(train_v) // 2 > DENSITY_K:
            st = timer("self_test", lambda: _self_test(battery, sub, rng))
        if self_test and st is None:
            skipped.append(
                {
                    "attack": "self-test",
                    "reason": "it needs two disjoint samples of more than "
                    f"{DENSITY_K} training rows each (of different persons, with persons), "
                    f"and more than {DENSITY_K} holdout rows",
                }
            )
    canary_out = None
    if canary is not None:
        canary_out = timer(
            "canary",
            lambda: canary_audit(
                canary.get("train", train_v),
                canary.get("schema", sub),
                canary["factory"],
                epsilon=canary["epsilon"],
                m=canary.get("m", 1000),
                delta=canary.get("delta"),
                loose_ratio=policy.thresholds["canary"]["loose_ratio"],
                seed=seed,
                device=dev,
            ),
        )
    timer.times["total"] = time.perf_counter() - t_start
    settings = {
        "seed": seed,
        "device": dev.type,
        "sensitive": sensitive,
        "quasi_identifiers": qis,
        "link_columns": [list(g) for g in links] if links is not None else None,
        "n_targets_requested": n_targets,
        "n_queries_requested": n_queries,
        # Train and holdout sizes are private and not reported (not even rounded); the
        # policy's sample caps are public.
        "synthetic_rows": n_synthetic,
        "synthetic_rows_attacked": len(syn_v),
        "reference_rows_at_most": sizes["reference_rows"],
        "distance": "mixed: category mismatch 1, numeric (a-b)/range squared, missing a value",
    }
    return SuiteResult(
        attacks=attacks,
        diagnostics=summary,
        policy=policy,
        settings=settings,
        timing_s={k: round(v, 3) for k, v in timer.times.items()},
        plots=plots,
        skipped=skipped,
        canary=canary_out,
        self_test=st,
    )


def _self_test(run: Battery, schema: Schema, rng: np.random.Generator) -> dict[str, Any] | None:
    # Two disjoint training samples: the members the planted generators are attacked on, and
    # the rows the null generator is fitted on. A null fitted on the members themselves is
    # not null: each member shifts the marginals it is drawn from by 1/n per column, a pull
    # that adds up over the columns (membership AUC 0.89 at 200 binary columns, 25 members).
    persons = None
    if run.persons is None:
        n = at_most(SELF_TEST_ROWS, len(run.train) // 2, len(run.holdout))
        drawn = rng.choice(len(run.train), 2 * n, replace=False)
        members, others = drawn[:n], drawn[n:]
        held = rng.choice(len(run.holdout), n, replace=False)
    else:
        # Whole persons, and different ones in the two samples: a person's rows are alike
        # (the same unit columns), so a null fitted on a member's other rows would not be
        # null, and a member with only some of their rows would score unlike a non-member
        # with all of theirs.
        ids, held_ids = run.persons
        first = (rng.random(len(ids)) < 0.5)[pd.factorize(ids)[0]]
        members, others = (
            _whole_persons(np.flatnonzero(side), ids, rng) for side in (first, ~first)
        )
        held = _whole_persons(np.arange(len(held_ids)), held_ids, rng)
        persons = (ids[members], held_ids[held])
        if min(len(members), len(others), len(held) - 1) <= DENSITY_K:
            return None  # too few persons for two samples: skipped, said in the result
    small = Battery(
        schema,
        run.space,
        run.train.iloc[members].reset_index(drop=True),
        run.holdout.iloc[held].reset_index(drop=True),
        run.sensitive,
        run.quasi_identifiers,
        run.policy,
        run.device,
        min(run.n_targets, len(members), len(held)),
        run.n_queries,
        rng,
        run.link_columns,
        persons,
    )

    def attacks(synthetic: pd.DataFrame) -> list[AttackResult]:
        clean, _ = schema.validate(synthetic)
        return small.attacks(clean.reset_index(drop=True))["results"]

    null_source = run.train.iloc[others].reset_index(drop=True)
    return selftest.self_test(attacks, small.train, null_source, schema, rng)


def _whole_persons(
    rows: np.ndarray, ids: np.ndarray, rng: np.random.Generator, limit: int = SELF_TEST_ROWS
) -> np.ndarray:
    """All the rows (among ``rows``) of persons drawn in random order while they fit in
    ``limit`` rows (at least one person), in their original order."""
    owner = pd.factorize(ids[rows])[0]
    order = rng.permutation(owner.max(initial=-1) + 1)
    sizes = np.bincount(owner)[order]
    kept = order[: max(1, int(np.searchsorted(np.cumsum(sizes), limit, side="right")))]
    return rows[np.isin(owner, kept)]


def _side(person_ids: tuple[np.ndarray, np.ndarray] | None, i: int) -> np.ndarray | None:
    return None if person_ids is None else person_ids[i]


def _bounded(
    frame: pd.DataFrame | None, ids: np.ndarray | None, limit: int, rng: np.random.Generator
) -> tuple[Any, np.ndarray | None]:
    """``frame`` (and the person of each row) as it is when it has at most ``limit`` rows,
    else a uniform sample of ``limit`` rows, or, with persons, of whole persons while they
    fit in ``limit`` rows. Rows keep their order."""
    if frame is None or len(frame) <= limit:
        return frame, ids
    if ids is None:
        rows = np.sort(rng.choice(len(frame), limit, replace=False))
    else:
        rows = _whole_persons(np.arange(len(frame)), ids, rng, limit)
    kept = frame.iloc[rows].reset_index(drop=True)
    return kept, None if ids is None else ids[rows]
