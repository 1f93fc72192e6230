"""One release, as named steps: check, validate, split, fit, sample, evaluate, sign, write.

Everything that can refuse a release -- the options, the output folder, the key, the policy,
the columns named for attacks, data-dependent domains, the schema check of every row (holdout
included), the budget -- runs before the ledger reservation, so a refused release writes
nothing and leaves the ledger unchanged. A crash after the reservation counts the budget as
spent, as it must; the folder is assembled aside and renamed into place (:mod:`.folder`).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privsynth.attacks.policy import load_policy
from privsynth.budget import Budget, Ledger, epsilon_spent, event_from_dict, list_datasets
from privsynth.budget.backend import shown
from privsynth.budget.chain import active_events
from privsynth.errors import ConfigError, PrivsynthError
from privsynth.generators.base import Generator
from privsynth.pipeline.config import MIN_SYNTHETIC_ROWS, ReleaseConfig
from privsynth.pipeline.evaluate import evaluate
from privsynth.pipeline.folder import assembled, check_out, signed_files, write_signed
from privsynth.pipeline.identity import data_fingerprint
from privsynth.pipeline.split import Split, split_frame, split_in_engine
from privsynth.pipeline.tables import stream_table, write_table
from privsynth.report.build import build_report, source_fingerprint
from privsynth.report.keys import fingerprint, load_private_key
from privsynth.report.pdf import NO_BROWSER, find_browser
from privsynth.report.regulator import RegulatorInputs
from privsynth.report.sign import sha256_file
from privsynth.report.verdicts import usefulness_thresholds
from privsynth.report.verify import validate_report
from privsynth.schema import LinkedSchema, Schema
from privsynth.sources.source import FrameSource, as_source, rules_unsupported
from privsynth.sources.sql import SqlSource


@dataclass
class ReleaseResult:
    """What a release wrote and spent."""

    out: Path
    files: dict[str, str]  # file name -> SHA-256 (every signed file)
    rows: int
    report_id: str
    verdict: dict[str, Any]
    privacy: dict[str, Any]
    ledger: dict[str, Any]
    #: Exact diagnostics for the custodian's screen only (e.g. values clipped by bounds
    #: learned with DP); never written into the release.
    custodian_notes: list[str] = field(default_factory=list)
    #: The report's three verdicts and overall word (:func:`privsynth.report.verdicts.decide`).
    decision: dict[str, Any] = field(default_factory=dict)


#: What a release reads: a table in memory, a table left in DuckDB or Spark, or linked tables
#: by name (with a :class:`~privsynth.schema.LinkedSchema`).
Data: TypeAlias = pd.DataFrame | SqlSource | Mapping[str, pd.DataFrame]


def release(
    data: Data,
    schema: Schema | LinkedSchema,
    *,
    ledger: Ledger | str | Path,
    key: Ed25519PrivateKey | str | Path,
    dataset_id: str | None = None,
    cap: Budget | None = None,
    **options: Any,
) -> ReleaseResult:
    """Release a DP synthetic table of ``data`` with a signed audit report in ``out``.

    Parameters
    ----------
    data, schema
        The private table and its reviewed schema. A DuckDB or Spark source
        (:mod:`privsynth.sources`) stays in its engine for validation, the holdout split and
        the fit (marginal generators only); see :func:`.split.split_in_engine` for the rows
        the audit reads. Linked tables: ``{"patients": p, "visits": v}`` with a
        :class:`~privsynth.schema.LinkedSchema`; the release writes one synthetic file per
        table (``synthetic.patients.csv``...), their keys consistent.
    ledger
        The budget ledger of this dataset (an open :class:`~privsynth.budget.Ledger`, its file,
        or a ``postgresql://`` URL); the whole charge is reserved before data is read.
    dataset_id, cap
        With a ledger file or URL: the dataset to charge (implied when the file holds exactly one)
        and, for a new dataset, its cap.
    key
        The Ed25519 signing key (object or key file, see ``privsynth keygen``).
    **options
        The fields of :class:`ReleaseConfig`: ``out`` (required), ``generator``, ``epsilon``,
        ``delta``, ``holdout_fraction``, ``policy``... and, for the report's HIPAA block,
        ``recipient``, ``signer_role``, ``valid_until``. Checked before anything is read.

    Raises
    ------
    ConfigError, SchemaError, DataError, BudgetExceeded
        Nothing is written and the ledger is unchanged.
    """
    config = ReleaseConfig.from_options(**options)
    if isinstance(ledger, Ledger):
        if dataset_id is not None or cap is not None:
            raise ConfigError("dataset_id= and cap= go with a ledger file, not an open Ledger")
        return run(config, data, schema, ledger=ledger, key=key)
    with Ledger.open(ledger, dataset_id=_dataset_of(ledger, dataset_id), cap=cap) as opened:
        return run(config, data, schema, ledger=opened, key=key)


def _dataset_of(path: str | Path, dataset_id: str | None) -> str:
    """The dataset a ledger file's (or URL's) release charges: ``dataset_id``, or its only one."""
    if dataset_id is not None:
        return dataset_id
    held = list_datasets(path)
    if len(held) == 1:
        return held[0]
    raise ConfigError(
        f"ledger {shown(path)} holds "
        + (f"datasets {held}" if held else "no dataset")
        + ": say which with dataset_id= (and cap=Budget(epsilon, delta) for a new one)"
    )


def run(
    config: ReleaseConfig,
    data: Data,
    schema: Schema | LinkedSchema,
    *,
    ledger: Ledger,
    key: Ed25519PrivateKey | str | Path,
) -> ReleaseResult:
    """The release ``config`` describes (see :func:`release`)."""
    started = datetime.now(UTC)
    linked = schema if isinstance(schema, LinkedSchema) else None
    if linked is not None:  # fitted as one table of persons (see privsynth.schema.linked)
        schema = linked.joined()
    assert isinstance(schema, Schema)
    signing_key, gen = _check(config, data, schema, key, linked)
    rng = np.random.default_rng(config.seed if config.seed is not None else secrets.randbits(128))
    joined: list[str] = []
    if linked is not None:
        assert isinstance(data, Mapping)
        data, joined = linked.join(data)
    assert not isinstance(data, Mapping)
    table = data if isinstance(data, pd.DataFrame) else config.source
    assert table is not None  # _check: an engine's table comes with its file
    ledger.bind_data(data_fingerprint(table), new_dataset=config.new_dataset)  # nothing spent
    split, clipping = _validate_and_split(config, data, schema, rng)

    spent_before = ledger.spent()
    gen.fit(split.fit, schema, ledger)  # reserves the whole charge before reading a row
    rows = config.rows if config.rows is not None else max(gen.n_rows_, MIN_SYNTHETIC_ROWS)
    with assembled(config.out) as folder:
        if linked is None and not gen.schema_.rules and not gen.schema_.unit_of_privacy.is_person:
            # Independent rows: streamed; the audit gets a uniform sample of them.
            keep = load_policy(config.policy).sample["synthetic_rows"]
            file, synthetic = stream_table(gen, rows, folder, config.fmt, rng, keep)
            files, rules, released = {"": file}, [], rows
        else:  # drawn whole: a person's rows, linked tables, a rule's redraws belong together
            synthetic = gen.sample(rows, seed=rng)
            rules = _rules_kept(gen, synthetic)
            tables = linked.split(synthetic) if linked is not None else {"": synthetic}
            files = {name: write_table(t, folder, name, config.fmt) for name, t in tables.items()}
            released = len(synthetic)
        evaluation = evaluate(
            gen, split, synthetic, config, seed=int(rng.integers(2**31)), synthetic_rows=released
        )
        spec = gen.privacy_spec()
        ledger_info = _ledger_record(gen, ledger, spec, spent_before, config.delta)
        data_file = files[linked.child if linked is not None else ""]
        gen.save(folder / gen.model_file)
        report = build_report(
            generator=config.generator,
            params=gen.get_params(),
            spec=spec,
            given_schema=schema,
            learned_schema=gen.schema_,
            caveats=list(gen.caveats_),
            fingerprint=source_fingerprint(config.source or data, signing_key),
            release={
                "rows_released": released,
                "format": config.fmt,
                "data_file": data_file,
                **(
                    {"tables": {n: {"file": files[n], "rows": len(t)} for n, t in tables.items()}}
                    if linked is not None
                    else {}
                ),
                "files": {p.name: sha256_file(p) for p in sorted(folder.iterdir())},
                "holdout_fraction": config.holdout_fraction,
                "split": split.note,
                "engine": _engine_name(data),
            },
            ledger=ledger_info,
            rules=rules,
            utility=evaluation["utility"],
            attacks=evaluation["attacks"],
            verdict=evaluation["verdict"],
            signer=fingerprint(signing_key.public_key()),
            started=started,
            regulator=_regulator_inputs(config, gen, ledger),
        )
        validate_report(report, name="the new report")
        write_signed(folder, report, signing_key, pdf=config.pdf)
    return ReleaseResult(
        config.out,
        signed_files(config.out),
        released,
        report["report_id"],
        report["verdict"],
        spec,
        ledger_info,
        joined + clipping + list(gen.custodian_notes_) + evaluation["withheld"],
        report["decision"],
    )


def _check(
    config: ReleaseConfig,
    data: Data,
    schema: Schema,
    key: Ed25519PrivateKey | str | Path,
    linked: LinkedSchema | None,
) -> tuple[Ed25519PrivateKey, Generator]:
    """Every check that needs no private row; returns the signing key and the generator."""
    if isinstance(data, Mapping) != (linked is not None):
        raise ConfigError(
            "linked tables come as {name: DataFrame} with a linked schema ('tables'); one "
            "table as a DataFrame (or engine source) with a one-table schema"
        )

    check_out(config.out, force=config.force)
    if config.pdf and find_browser() is None:
        raise ConfigError(NO_BROWSER)
    signing_key = key if isinstance(key, Ed25519PrivateKey) else load_private_key(key)
    usefulness_thresholds(load_policy(config.policy).thresholds)  # a bad policy fails here
    config.check_columns(schema)
    gen = config.make_generator()
    schema.release_caveats(allow_data_dependent_domain=config.allow_data_dependent_domain)
    if isinstance(data, SqlSource):
        if schema.rules:
            raise rules_unsupported(_engine_name(data))
        if config.source is None:
            raise ConfigError("a release from a DuckDB or Spark table needs its source file")
        if config.generator not in ("mst", "aim"):
            raise ConfigError(
                f"generator {config.generator!r} trains on rows in memory; a DuckDB or Spark "
                "table can be released with the marginal generators (mst, aim), or read it "
                "with --engine pandas"
            )
    return signing_key, gen


def _validate_and_split(
    config: ReleaseConfig,
    data: pd.DataFrame | SqlSource,
    schema: Schema,
    rng: np.random.Generator,
) -> tuple[Split, list[str]]:
    """Check every row against the schema, once and before anything is spent, then split
    the validated rows (the generator fits them without checking again).

    Returns the split and the custodian's notes on values clipped to declared bounds.
    """
    source = as_source(data).validate(schema, on_rule_violation=config.on_rule_violation)
    if isinstance(source, SqlSource):
        rows = load_policy(config.policy).sample["reference_rows"]
        return split_in_engine(source, config.holdout_fraction, rng, rows), []
    assert isinstance(source, FrameSource)  # as_source makes a FrameSource of a DataFrame
    n = len(source.frame)
    notes = [
        f"{name}: {k} value(s) ({k / n:.2%}) lie outside its declared bounds and were "
        "clipped to them"
        for name, k in source.clipped.items()
        if k
    ]
    notes += [
        f"{rule}: {k} row(s) break it and were left out of the fit (--drop-rule-violations)"
        for rule, k in source.dropped_by_rules.items()
    ]
    return split_frame(source, config.holdout_fraction, rng, schema.unit_of_privacy), notes


def _rules_kept(gen: Generator, synthetic: pd.DataFrame) -> list[dict[str, Any]]:
    """Count again, on the table to be released, the rows that break each rule (must be 0),
    next to what keeping it took at sampling; the report lists them.

    Raises
    ------
    PrivsynthError
        If a synthetic row breaks a rule: nothing is released (the fit's budget is spent).
    """
    if not gen.schema_.rules:
        return []
    counts = gen.schema_.rule_violations(synthetic)
    checks = [{**check, "violations": n} for check, n in zip(gen.rule_checks_, counts, strict=True)]
    broken = [f"{c['rule']}: {c['violations']} row(s)" for c in checks if c["violations"]]
    if broken:
        raise PrivsynthError(
            f"the synthetic table breaks the schema's rules ({'; '.join(broken)}); nothing was "
            "released. Please report this."
        )
    return checks


def _ledger_record(
    gen: Generator, ledger: Ledger, spec: dict[str, Any], spent_before: Any, delta: float
) -> dict[str, Any]:
    """The ledger section of the report: this release's reservations and the totals around
    them."""
    entry = gen.ledger_entry_
    return {
        "file": ledger.name,
        "dataset_id": ledger.dataset_id,
        "reservations": list(entry.get("reservations") or [entry["reservation"]]),
        "head": entry["head"],
        "cap": ledger.cap.to_dict(),
        "spent_before": spent_before.to_dict(),
        "this_release": {
            "epsilon": epsilon_spent([event_from_dict(c) for c in spec["charges"]], delta),
            "delta": delta,
        },
        "spent_after": ledger.spent().to_dict(),
        "remaining": ledger.remaining().to_dict(),
    }


def _regulator_inputs(config: ReleaseConfig, gen: Generator, ledger: Ledger) -> RegulatorInputs:
    """What the report's regulator blocks need beyond the report: the options a person
    stated, the unit of privacy with K as fitted, and the dataset's privacy events (the
    ledger's, for the dataset's privacy profile)."""
    unit = gen.schema_.unit_of_privacy
    if unit.is_person:
        unit = replace(unit, max_rows=gen.persons_["max_rows"])
    return RegulatorInputs(
        recipient=config.recipient,
        signer_role=config.signer_role,
        valid_until=config.valid_until if isinstance(config.valid_until, str) else None,
        unit=unit,
        dataset_events=tuple(active_events(ledger.entries(), ledger.dataset_id)),
    )


def _engine_name(data: object) -> str:
    if isinstance(data, pd.DataFrame):
        return "pandas"
    return type(data).__name__.removesuffix("Source").lower()
