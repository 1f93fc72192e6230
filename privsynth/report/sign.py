"""Signing the audit: RFC 8785 canonical JSON, an in-toto Statement v1, a DSSE envelope.

The signature covers DSSE's pre-authentication encoding (PAE) of the payload::

    PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

where LEN is the decimal byte length and SP one space. The payload is the canonical JSON of
an in-toto Statement whose subjects are the released files (name + SHA-256) and whose
predicate is the audit report. Ed25519 (RFC 8032) is deterministic, so signing the same
statement with the same key gives the same envelope.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from privsynth.errors import SignatureError
from privsynth.report.keys import fingerprint

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://privsynth.dev/audit-report/v1"


def canonical(obj: Any) -> bytes:
    """RFC 8785 (JCS) canonical JSON bytes of ``obj``.

    Not the ledger's :func:`privsynth.budget.chain.canonical_json`: the two differ in how they
    write numbers (JCS: ``1``, ``1e-9``; the ledger: ``1.0``, ``1e-09``) and JCS refuses
    integers beyond 2**53, so each stays with the format whose existing hashes and signatures
    depend on it.
    """
    try:
        return rfc8785.dumps(obj)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise SignatureError(f"the report is not canonical-JSON serialisable: {exc}") from exc


def report_id(predicate: Mapping[str, Any]) -> str:
    """``sha256:`` + hex SHA-256 of the canonical predicate without its ``report_id`` field."""
    body = {k: v for k, v in predicate.items() if k != "report_id"}
    return "sha256:" + hashlib.sha256(canonical(body)).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def statement(subjects: Mapping[str, str], predicate: Mapping[str, Any]) -> dict:
    """An in-toto Statement v1 over ``subjects`` (file name -> SHA-256 hex)."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": n, "digest": {"sha256": d}} for n, d in sorted(subjects.items())],
        "predicateType": PREDICATE_TYPE,
        "predicate": dict(predicate),
    }


def sign_envelope(stmt: Mapping[str, Any], key: Ed25519PrivateKey) -> dict:
    """DSSE envelope of the canonical ``stmt``, signed with ``key``."""
    body = canonical(stmt)
    sig = key.sign(pae(PAYLOAD_TYPE, body))
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(body).decode("ascii"),
        "signatures": [
            {"keyid": fingerprint(key.public_key()), "sig": base64.b64encode(sig).decode("ascii")}
        ],
    }


def envelope_bytes(envelope: Mapping[str, Any]) -> bytes:
    """The envelope file's exact bytes: canonical JSON and a newline (so any edit shows)."""
    return canonical(envelope) + b"\n"


def _b64(text: Any) -> bytes:
    """Strict base64: the alphabet only, and the canonical encoding of what it decodes to."""
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError("non-canonical base64")
    return raw


def open_envelope(data: bytes, key: Ed25519PublicKey, *, name: str = "the envelope") -> dict:
    """Check a DSSE envelope's form, payload type and signature under ``key``; return the
    statement it carries.

    The envelope must be byte for byte as :func:`envelope_bytes` writes it, and the signature
    that verifies must carry ``key``'s fingerprint as its keyid: no byte of the file can change
    without being noticed. Raises :class:`SignatureError` naming what is wrong.
    """
    try:
        env = json.loads(data)
        payload_type = env["payloadType"]
        body = _b64(env["payload"])
        sigs = [(s["keyid"], _b64(s["sig"])) for s in env["signatures"]]
        if not sigs:
            raise ValueError("no signatures")
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise SignatureError(f"{name} is not a well-formed DSSE envelope ({exc})") from exc
    if envelope_bytes(env) != data:
        raise SignatureError(f"{name} was edited: it is not in its canonical signed form")
    if payload_type != PAYLOAD_TYPE:
        raise SignatureError(f"{name}: payload type {payload_type!r} is not {PAYLOAD_TYPE!r}")
    message = pae(payload_type, body)
    keyid = fingerprint(key)
    for sig_keyid, sig in sigs:
        try:
            key.verify(sig, message)
        except InvalidSignature:
            continue
        if sig_keyid != keyid:
            raise SignatureError(f"{name}: the signature's keyid is not {keyid}")
        break
    else:
        raise SignatureError(
            f"{name}: the signature does not verify with the public key {keyid} "
            "(the payload was changed, or it was signed by another key)"
        )
    try:
        stmt = json.loads(body)
    except ValueError as exc:
        raise SignatureError(f"{name}: the signed payload is not JSON") from exc
    if not isinstance(stmt, dict) or canonical(stmt) != body:
        raise SignatureError(f"{name}: the signed payload is not canonical JSON (RFC 8785)")
    if stmt.get("_type") != STATEMENT_TYPE or stmt.get("predicateType") != PREDICATE_TYPE:
        raise SignatureError(
            f"{name}: not an in-toto Statement v1 with predicate type {PREDICATE_TYPE}"
        )
    return stmt
