"""One release: split off a holdout, reserve and fit, sample, evaluate, attack, sign, write.

Everything that can refuse a release -- the output folder, the key, the policy, the columns
named for attacks, data-dependent domains, the schema check of every row (holdout included),
the budget -- runs before the ledger reservation, so a refused release writes nothing and
leaves the ledger unchanged. The folder is assembled in a temporary sibling directory and
renamed into place at the end, so a failed or killed run leaves no half-written release
(a crash after the reservation counts the budget as spent, as it must).
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privsynth.attacks.suite import N_TARGETS
from privsynth.budget import Ledger, epsilon_spent, event_from_dict
from privsynth.errors import ConfigError, DataError
from privsynth.generators.registry import make_generator
from privsynth.io import atomic_write_bytes, atomic_write_text
from privsynth.marginals.sql import SqlSource
from privsynth.report import (
    ENVELOPE,
    PUBLIC_KEY,
    REPORT_HTML,
    REPORT_JSON,
    REPORT_PDF,
    VERIFY_MD,
)
from privsynth.report.audit import build_report, source_fingerprint
from privsynth.report.keys import fingerprint, load_private_key, public_pem
from privsynth.report.pdf import NO_BROWSER, find_browser, print_pdf
from privsynth.report.render_html import render_html
from privsynth.report.sign import (
    canonical,
    envelope_bytes,
    sha256_file,
    sign_envelope,
    statement,
)
from privsynth.report.verify import validate_report
from privsynth.report.verify_doc import verify_md
from privsynth.schema import Schema

FORMATS = ("csv", "parquet")
#: The attack suite compares each synthetic row with its two nearest training rows.
MIN_TRAIN_ROWS = 2
#: Rows per side (train, holdout) an engine release pulls into memory for the audit.
ENGINE_EVAL_ROWS = 50_000


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


def split_holdout(
    data: pd.DataFrame, fraction: float, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """A uniform random ``fraction`` of rows set aside, never used in fitting."""
    if not 0 <= fraction < 1:
        raise ConfigError(f"holdout fraction ({fraction!r}) must be in [0, 1), e.g. 0.2")
    if fraction == 0:
        return data, None
    is_holdout = rng.random(len(data)) < fraction
    return data[~is_holdout], data[is_holdout]


def _check_columns(schema: Schema, **named: Sequence[str] | str | None) -> None:
    for option, cols in named.items():
        for c in [cols] if isinstance(cols, str) else cols or ():
            if c not in schema.names:
                raise ConfigError(f"{option}: column {c!r} is not in the schema")
            if schema[c].kind == "identifier":
                raise ConfigError(f"{option}: column {c!r} is an identifier, never synthesised")


def release(
    data: pd.DataFrame | SqlSource,
    schema: Schema,
    *,
    out: str | Path,
    ledger: Ledger,
    key: Ed25519PrivateKey | str | Path,
    generator: str = "mst",
    epsilon: float = 1.0,
    delta: float = 1e-9,
    holdout_fraction: float = 0.2,
    policy: str = "standard",
    sensitive: Sequence[str] = (),
    quasi_identifiers: Sequence[str] = (),
    target: str | None = None,
    canary: bool = True,
    rows: int | None = None,
    fmt: str = "csv",
    pdf: bool = False,
    seed: int | None = None,
    force: bool = False,
    allow_data_dependent_domain: bool = False,
    generator_params: dict[str, Any] | None = None,
    source: Path | None = None,
) -> ReleaseResult:
    """Release a DP synthetic table of ``data`` with a signed audit report in ``out``.

    Parameters
    ----------
    data, schema
        The private table and its reviewed schema. A DuckDB or Spark source
        (:mod:`privsynth.marginals`) stays in its engine for validation, the holdout split
        and the fit (marginal generators only); see :func:`_split_in_engine` for the rows
        the audit reads.
    out
        The release folder to create (refused if it exists, unless ``force``).
    ledger
        The budget ledger of this dataset; the whole charge is reserved before data is read.
    key
        The Ed25519 signing key (object or key file, see ``privsynth keygen``).
    generator, epsilon, delta, generator_params
        The DP generator (``mst``, ``aim``...) and its budget.
    holdout_fraction
        Share of rows set aside (never fitted) for membership attacks; 0 skips them.
    policy
        Attack thresholds: a name in ``audits/policies`` or a TOML file.
    sensitive, quasi_identifiers, target
        Columns for attribute inference / linkability, and an optional prediction target
        for the train-synthetic-test-real score. MST also builds its model around the
        target (``MST(target=...)``: the target's 2-way marginal with every column) unless
        ``generator_params`` name another.
    canary
        Run the canary audit (a second fit, never released) for an empirical epsilon bound.
    rows, fmt, pdf, seed
        Rows to synthesise (default: the DP estimate), file format, print the HTML to PDF,
        seed for the split and sampling (default: fresh OS entropy).
    source
        The file ``data`` was read from, if any: its bytes are fingerprinted.

    Raises
    ------
    ConfigError, SchemaError, DataError, BudgetExceeded
        Nothing is written and the ledger is unchanged.
    """
    from privsynth.attacks.policy import load_policy

    started = datetime.now(UTC)
    out = Path(out)
    if fmt not in FORMATS:
        raise ConfigError(f"format {fmt!r} is not supported; use one of {FORMATS}")
    _check_out(out, force=force)
    if not out.parent.is_dir():
        raise ConfigError(f"the folder {out.parent} for the release does not exist")
    if pdf and find_browser() is None:
        raise ConfigError(NO_BROWSER)
    signing_key = key if isinstance(key, Ed25519PrivateKey) else load_private_key(key)
    load_policy(policy)  # refuse an unknown policy before anything is spent
    _check_columns(schema, sensitive=sensitive, quasi_identifiers=quasi_identifiers, target=target)
    gen_params = {
        **(generator_params or {}),
        "allow_data_dependent_domain": allow_data_dependent_domain,
    }
    if target is not None and generator.lower() == "mst":
        gen_params.setdefault("target", target)
    gen = make_generator(generator, epsilon, delta, **gen_params)
    schema.release_caveats(allow_data_dependent_domain=allow_data_dependent_domain)
    rng = np.random.default_rng(seed if seed is not None else secrets.randbits(128))
    declared_clipping: list[str] = []
    if isinstance(data, SqlSource):
        if source is None:
            raise ConfigError("a release from a DuckDB or Spark table needs its source file")
        fit_data, train, holdout, split_note = _split_in_engine(
            data, schema, holdout_fraction, rng, generator
        )
    else:
        _, checked = schema.validate(data)  # every row, before anything is spent
        declared_clipping = [
            f"{name}: {n} value(s) ({n / len(data):.2%}) lie outside its declared bounds and "
            "were clipped to them"
            for name, n in checked.clipped.items()
            if n
        ]
        train, holdout = split_holdout(data, holdout_fraction, rng)
        fit_data, split_note = train, "uniform random; the seed is not published"
    if len(train) < MIN_TRAIN_ROWS or (holdout is not None and len(holdout) == 0):
        has = f"has {len(data)} row(s)" if isinstance(data, pd.DataFrame) else "is too small"
        raise DataError(  # before anything is spent
            f"the data {has}: too few for {MIN_TRAIN_ROWS} training rows"
            + (f" and a {holdout_fraction:g} holdout" if holdout_fraction else "")
            + "; add rows"
            + (", or pass --holdout-fraction 0" if holdout_fraction else "")
        )

    spent_before = ledger.spent()
    gen.fit(fit_data, schema, ledger)
    synthetic = gen.sample(rows, seed=rng)
    learned: Schema = gen.schema_
    evaluation = _evaluate(
        gen,
        learned,
        train,
        holdout,
        synthetic,
        sensitive=sensitive,
        quasi_identifiers=quasi_identifiers,
        target=target,
        policy=policy,
        canary=canary,
        n_targets=_n_targets(gen.n_rows_, holdout_fraction),
        seed=int(rng.integers(2**31)),
        factory=lambda: make_generator(generator, epsilon, delta, **gen_params),
    )
    spec = gen.privacy_spec()
    ledger_info = {
        "file": ledger.path.name,
        "dataset_id": ledger.dataset_id,
        "reservations": _reservations(gen),
        "head": gen.ledger_entry_["head"],
        "cap": ledger.cap.to_dict(),
        "spent_before": spent_before.to_dict(),
        "this_release": {
            "epsilon": epsilon_spent([event_from_dict(c) for c in spec["charges"]], delta),
            "delta": delta,
        },
        "spent_after": ledger.spent().to_dict(),
        "remaining": ledger.remaining().to_dict(),
    }

    _remove_stale_partials(out)
    tmp = Path(
        tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".partial", dir=out.parent)
    )
    try:
        data_file = f"synthetic.{fmt}"
        if fmt == "csv":
            synthetic.to_csv(tmp / data_file, index=False)
        else:
            synthetic.to_parquet(tmp / data_file, index=False)
        gen.save(tmp / gen.model_file)
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir())}
        report = build_report(
            generator=generator.lower(),
            params=gen._params(),
            spec=spec,
            given_schema=schema,
            learned_schema=learned,
            caveats=list(gen.caveats_),
            fingerprint=source_fingerprint(source if source else data, signing_key),
            release={
                "rows_released": len(synthetic),
                "format": fmt,
                "data_file": data_file,
                "files": files,
                "holdout_fraction": holdout_fraction,
                "split": split_note,
                "engine": _engine_name(data),
            },
            ledger=ledger_info,
            utility=evaluation["utility"],
            attacks=evaluation["attacks"],
            verdict=evaluation["verdict"],
            signer=fingerprint(signing_key.public_key()),
            started=started,
        )
        validate_report(report, name="the new report")
        _write_signed(tmp, report, signing_key, pdf=pdf)
        if out.exists():  # --force: replace the old folder only now that the new one is whole
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)
        raise
    signed = {p.name: sha256_file(p) for p in sorted(out.iterdir()) if p.name != ENVELOPE}
    return ReleaseResult(
        out,
        signed,
        len(synthetic),
        report["report_id"],
        report["verdict"],
        spec,
        ledger_info,
        declared_clipping + list(getattr(gen, "custodian_notes_", [])),
    )


def _check_out(out: Path, *, force: bool) -> None:
    """``out`` must name a folder to create; ``force`` replaces only an earlier release (a
    folder holding the signed envelope, ``ENVELOPE``) or an empty folder, never other files."""
    if out.name in ("", ".", ".."):
        raise ConfigError(f"--out {out} must end in the name of a new folder, e.g. {out}/release")
    if not (out.exists() or out.is_symlink()):
        return
    if not force:
        raise ConfigError(f"output folder {out} exists; choose a new one or pass --force")
    if out.is_symlink() or not out.is_dir():
        raise ConfigError(f"--out {out} is not a folder; --force replaces only a release folder")
    if any(out.iterdir()) and not (out / ENVELOPE).is_file():
        raise ConfigError(
            f"--force replaces only a release folder (one with {ENVELOPE}) or an empty one; "
            f"{out} is neither: choose a new --out"
        )


def _engine_name(data: Any) -> str:
    if isinstance(data, pd.DataFrame):
        return "pandas"
    return type(data).__name__.removesuffix("Source").lower()


def _split_in_engine(
    data: SqlSource, schema: Schema, fraction: float, rng: np.random.Generator, generator: str
) -> tuple[SqlSource, pd.DataFrame, pd.DataFrame | None, str]:
    """The holdout split of a table that stays in its engine, and the rows the audit reads.

    Every row is validated in the engine (before anything is spent). The split is a keyed
    hash of each row's values (key drawn from ``rng``, not published), so the model is fitted
    on the train side inside the engine. Utility and attacks need rows in memory: they get a
    uniform random sample of at most :data:`ENGINE_EVAL_ROWS` rows of each side, drawn in the
    engine; attack targets come from these samples and are compared with the full synthetic
    set; the canary audit refits on the train sample.
    """
    if generator.lower() not in ("mst", "aim"):
        raise ConfigError(
            f"generator {generator!r} trains on rows in memory; a DuckDB or Spark table can be "
            "released with the marginal generators (mst, aim), or read it with --engine pandas"
        )
    if not 0 <= fraction < 1:
        raise ConfigError(f"holdout fraction ({fraction!r}) must be in [0, 1), e.g. 0.2")
    data.validate(schema)
    key, sample_seed = int(rng.integers(2**62)), int(rng.integers(2**31))
    train, holdout = (data, None) if fraction == 0 else data.split(fraction, key)
    train_rows = train.sample_rows(ENGINE_EVAL_ROWS, sample_seed)
    hold_rows = holdout.sample_rows(ENGINE_EVAL_ROWS, sample_seed) if holdout is not None else None
    note = (
        "keyed hash of each row's values in the engine (identical rows share a side); the key "
        f"is not published. Utility and attacks ran on uniform random samples of at most "
        f"{ENGINE_EVAL_ROWS} train and {ENGINE_EVAL_ROWS} holdout rows drawn in the engine, "
        "against the full synthetic set; the canary audit refitted on the train sample"
    )
    return train, train_rows, hold_rows, note


def _n_targets(n_train_dp: int, holdout_fraction: float) -> int:
    """Attack targets per side, from public quantities only: the generator's DP estimate of
    the training rows and the holdout fraction. Half the estimated holdout size (at most
    5,000), so the target count -- which the report shows -- does not depend on the exact
    private row count unless the DP estimate is off by a factor of two."""
    if holdout_fraction == 0:
        return N_TARGETS
    holdout = n_train_dp * holdout_fraction / (1 - holdout_fraction)
    return int(max(10, min(N_TARGETS, holdout // 2)))


def _remove_stale_partials(out: Path) -> None:
    """Remove what killed releases into ``out`` left behind (their process is gone)."""
    for p in out.parent.glob(f".{glob.escape(out.name)}.*.partial"):
        pid = p.name[len(out.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reservations(gen: Any) -> list[str]:
    entry = gen.ledger_entry_
    return list(entry.get("reservations") or [entry["reservation"]])


def _evaluate(
    gen: Any,
    learned: Schema,
    train: pd.DataFrame,
    holdout: pd.DataFrame | None,
    synthetic: pd.DataFrame,
    *,
    sensitive: Sequence[str],
    quasi_identifiers: Sequence[str],
    target: str | None,
    policy: str,
    canary: bool,
    n_targets: int,
    seed: int,
    factory: Any,
) -> dict[str, Any]:
    """Utility and the attack suite, on the rows as the model saw them (learned schema)."""
    from privsynth import audit
    from privsynth.utility import evaluate

    train_c = learned.validate(train)[0]  # values too rare to learn become "(other)"
    hold_c = learned.validate(holdout)[0] if holdout is not None else None
    learned = replace(learned, columns=learned.synthesised)  # as released: no identifiers
    utility = evaluate(train_c, synthetic, learned, target=target, holdout=hold_c, seed=seed)
    suite = audit.run(
        train_c,
        hold_c,
        synthetic,
        learned,
        sensitive=list(sensitive),
        quasi_identifiers=list(quasi_identifiers) or None,  # None: all but the sensitive
        policy=policy,
        canary={"factory": factory, "epsilon": gen.epsilon, "delta": gen.delta} if canary else None,
        n_targets=n_targets,
        seed=seed,
    )
    attacks = suite.to_dict()
    v = attacks["verdict"]
    failed = list(v["failed"])
    if v["canary_status"] == "VIOLATION":
        failed.append("canary audit: empirical epsilon above the claimed epsilon")
    if v["self_test_ok"] is False:  # the suite missed its planted leak or raised a false alarm
        failed.append("attack suite self-test")
    verdict = {
        "policy": v["policy"],
        "passed": bool(v["passed"]) and not failed,
        "failed_checks": failed,
        "canary_status": v["canary_status"],
        "self_test_ok": v["self_test_ok"],
    }
    return {"utility": utility.to_dict(), "attacks": attacks, "verdict": verdict}


def _write_signed(folder: Path, report: dict, key: Ed25519PrivateKey, *, pdf: bool) -> None:
    """Write the report files into ``folder`` and sign every file in it."""
    atomic_write_bytes(folder / REPORT_JSON, canonical(report))
    atomic_write_text(folder / REPORT_HTML, render_html(report))
    if pdf:
        print_pdf(folder / REPORT_HTML, folder / REPORT_PDF)
    atomic_write_bytes(folder / PUBLIC_KEY, public_pem(key.public_key()), mode=0o644)
    atomic_write_text(
        folder / VERIFY_MD, verify_md(report, data_file=report["release"]["data_file"])
    )
    subjects = {p.name: sha256_file(p) for p in sorted(folder.iterdir())}
    envelope = sign_envelope(statement(subjects, report), key)
    atomic_write_bytes(folder / ENVELOPE, envelope_bytes(envelope))
