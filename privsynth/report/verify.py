"""Offline verification of a signed release folder.

Checks, in order, each failure naming what is wrong: the DSSE envelope's form, payload type
and Ed25519 signature (with a public key from a trusted channel, or the folder's own
``signer.pub.pem``, which then proves integrity but not identity); that every file in the
folder is a signed subject with a matching SHA-256 and that no subject is missing;
that ``audit.json`` is byte for byte the canonical signed report; the report id; the report's
JSON Schema; and, given the ledger, that the release's ledger entries are in its hash chain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from privsynth.budget.backend import is_url, read_chain, shown
from privsynth.errors import LedgerError, SignatureError
from privsynth.report import ENVELOPE, PUBLIC_KEY, REPORT_JSON, SCHEMA_FILE, SCHEMA_FILES
from privsynth.report.keys import fingerprint, load_public_key
from privsynth.report.sign import canonical, open_envelope, report_id, sha256_file


@dataclass
class Verified:
    """What :func:`verify_release` checked."""

    report_id: str
    signer: str
    key_source: str
    subjects: dict[str, str]
    checks: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict, repr=False)


def report_schema(file: str = SCHEMA_FILE) -> dict[str, Any]:
    """An audit report JSON Schema shipped as package data in ``privsynth/report/schema/``
    (by default the current format's)."""
    text = (resources.files("privsynth.report") / "schema" / file).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate_report(report: dict, *, name: str = "the report") -> None:
    """Raise :class:`SignatureError` if ``report`` does not match the JSON Schema of its
    ``report_format`` (every format this privsynth reads: :data:`SCHEMA_FILES`), or names
    a format it does not know."""
    fmt = report.get("report_format")
    if fmt not in SCHEMA_FILES:
        raise SignatureError(
            f"{name} has report format {fmt!r}, which this privsynth does not read (it reads "
            f"{', '.join(SCHEMA_FILES)}); a newer privsynth may"
        )
    validator = jsonschema.Draft202012Validator(report_schema(SCHEMA_FILES[fmt]))
    errors = sorted(validator.iter_errors(report), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        where = "/".join(map(str, e.absolute_path)) or "(top)"
        raise SignatureError(
            f"{name} does not match the audit report schema at {where}: {e.message}"
            + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")
        )


def _key(folder: Path, public_key: str | Path | None) -> tuple[Ed25519PublicKey, str]:
    if public_key is not None:
        return load_public_key(public_key), f"given ({Path(public_key).name})"
    if not (folder / PUBLIC_KEY).is_file():
        raise SignatureError(f"{folder} has no {PUBLIC_KEY}; pass the signer's key --public-key")
    return (
        load_public_key(folder / PUBLIC_KEY),
        f"the folder's own {PUBLIC_KEY} (proves integrity, not who signed: compare its "
        "fingerprint with one received from the signer)",
    )


def verify_release(
    folder: str | Path,
    *,
    public_key: str | Path | None = None,
    ledger: str | Path | None = None,
) -> Verified:
    """Verify a release folder; raise :class:`SignatureError` naming the first failure."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SignatureError(f"{folder} is not a release folder")
    env_path = folder / ENVELOPE
    if not env_path.is_file():
        raise SignatureError(f"{folder} has no {ENVELOPE}: it is not a signed release")
    key, key_source = _key(folder, public_key)
    stmt = open_envelope(env_path.read_bytes(), key, name=ENVELOPE)
    checks = [f"signature: Ed25519 by {fingerprint(key)}, key from {key_source}"]

    subjects: dict[str, str] = {}
    for s in stmt.get("subject", []):
        name, digest = s.get("name"), s.get("digest", {}).get("sha256")
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise SignatureError(f"{ENVELOPE}: subject name {name!r} is not a plain file name")
        subjects[name] = digest
    present = {p.name for p in folder.iterdir() if p.name != ENVELOPE}
    if extra := sorted(present - subjects.keys()):
        raise SignatureError(f"{', '.join(extra)} in {folder} is not covered by the signature")
    if missing := sorted(subjects.keys() - present):
        raise SignatureError(f"signed file {', '.join(missing)} is missing from {folder}")
    for name, digest in sorted(subjects.items()):
        path = folder / name
        if path.is_symlink() or not path.is_file():  # a link could point anywhere, later too
            raise SignatureError(f"{name} is not a regular file")
        if sha256_file(path) != digest:
            raise SignatureError(f"{name} was changed after signing (its SHA-256 differs)")
    checks.append(f"files: {len(subjects)} signed, all digests match, no unsigned file")

    report = stmt["predicate"]
    if (folder / REPORT_JSON).read_bytes() != canonical(report):
        raise SignatureError(f"{REPORT_JSON} differs from the signed report")
    if report.get("report_id") != report_id(report):
        raise SignatureError("the report id does not match the report's content")
    validate_report(report)
    checks.append(f"report: id {report['report_id'][:19]}..., valid against its JSON Schema")
    if report.get("signer") != fingerprint(key):
        raise SignatureError(
            f"the report names signer {report.get('signer')}, but it verifies with "
            f"{fingerprint(key)}"
        )
    if ledger is not None:
        checks.append(_check_ledger(report, ledger if is_url(ledger) else Path(ledger)))
    return Verified(report["report_id"], fingerprint(key), key_source, subjects, checks, report)


def _check_ledger(report: dict, path: str | Path) -> str:
    """The report's reservations and recorded head must be entries of the ledger's chain."""

    info = report["ledger"]
    try:
        entries = read_chain(path)
    except LedgerError as exc:
        raise SignatureError(f"ledger {shown(path)}: {exc}") from exc
    hashes = {e["hash"] for e in entries}
    if info["head"] not in hashes:
        raise SignatureError(
            f"ledger {shown(path)} has no entry with the report's head hash "
            f"{info['head'][:16]}...: the report does not belong to this ledger, or the ledger "
            "was rewritten"
        )
    for rid in info["reservations"]:
        kinds = {e["kind"] for e in entries if e.get("reservation") == rid}
        if not {"reserve", "commit"} <= kinds:
            raise SignatureError(
                f"ledger {shown(path)}: reservation {rid[:8]} of this release is not "
                "committed there"
            )
    return f"ledger: chain verified; head and {len(info['reservations'])} reservation(s) found"
