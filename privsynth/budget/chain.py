"""The ledger's hash chain: entry form, canonical JSON, hashing, verification, entry state.

Pure functions over entries, used on a ledger file (:mod:`privsynth.budget.store`) and on a
JSONL export (:mod:`privsynth.budget.export`) alike.

Entries (kinds ``cap``, ``reserve``, ``commit``, ``cancel``) are dictionaries with the fields
``seq, time, dataset_id, kind, purpose, events, reservation, metadata, prev_hash, hash``.
``hash`` is the SHA-256 (hex) of :func:`canonical_json` of the entry without ``hash``;
``prev_hash`` is the previous entry's hash (64 zeros for the first).  There is one chain per
file, shared by all datasets in it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from privsynth.budget.events import Budget, PrivacyEvent, event_from_dict
from privsynth.errors import ConfigError, LedgerCorrupt

GENESIS_HASH = "0" * 64
KINDS = ("cap", "reserve", "commit", "cancel")
FIELDS = (
    "seq",
    "time",
    "dataset_id",
    "kind",
    "purpose",
    "events",
    "reservation",
    "metadata",
    "prev_hash",
    "hash",
)


def canonical_json(obj: Any) -> str:
    """Canonical JSON of the ledger format: sorted keys, no whitespace, UTF-8 text
    (``ensure_ascii=False``), no NaN, numbers as Python's :func:`json.dumps` writes them.

    Every stored hash is over this text, so it must never change.  It is not RFC 8785 (the
    form :func:`privsynth.report.sign.canonical` signs): JCS writes ``1.0`` as ``1`` and
    ``1e-09`` as ``1e-9``, so hashing with it would break the chain of every existing ledger.
    """
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def entry_hash(entry: Mapping[str, Any]) -> str:
    """SHA-256 hex of the canonical JSON of ``entry`` without its ``hash`` field."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def verify_entries(
    entries: Iterable[Mapping[str, Any]],
    *,
    source: str = "ledger",
    _hashes: Sequence[str] | None = None,
) -> tuple[int, str]:
    """Check a whole chain; return ``(number of entries, head hash)``.

    Raises :class:`LedgerCorrupt` naming the first entry that fails: a gap or a wrong ``seq``
    (deleted, inserted or reordered entries), content that does not match its hash (edited),
    a ``prev_hash`` that does not link to the entry before (an earlier entry was rewritten
    together with its hash), or an entry that makes no sense (a commit of an unknown
    reservation, a spend on a dataset with no cap, an unreadable event...).
    """
    prev = GENESIS_HASH
    expected = 1
    capped: set[str] = set()
    reservations: dict[str, dict[str, Any]] = {}
    for entry in entries:
        seq = entry.get("seq") if isinstance(entry, Mapping) else None
        where = f"{source}: entry seq {expected}"
        if type(seq) is not int or seq != expected:
            if type(seq) is int and seq > expected:
                raise LedgerCorrupt(
                    f"{where} is missing (the next entry has seq {seq}): entries were deleted"
                )
            raise LedgerCorrupt(
                f"{where}: found an entry with seq {seq!r} in its place: entries were "
                "reordered or inserted"
            )
        if set(entry) != set(FIELDS):
            raise LedgerCorrupt(f"{where} has fields {sorted(entry)}, expected {sorted(FIELDS)}")
        try:
            # _hashes: recomputed hashes the caller memoised per stored row (same function).
            actual = entry_hash(entry) if _hashes is None else _hashes[expected - 1]
            if not actual:
                raise ValueError("not canonical JSON")
        except (TypeError, ValueError) as exc:
            raise LedgerCorrupt(f"{where} cannot be hashed ({exc}): it was edited") from None
        if actual != entry["hash"]:
            raise LedgerCorrupt(
                f"{where} was modified: its content does not match its hash "
                f"(stored {str(entry['hash'])[:16]}..., recomputed {actual[:16]}...)"
            )
        if entry["prev_hash"] != prev:
            raise LedgerCorrupt(
                f"{where} does not link to the entry before it (prev_hash mismatch): an earlier "
                "entry was rewritten, or entries were inserted, removed or reordered"
            )
        _check_semantics(entry, where, capped, reservations)
        prev = entry["hash"]
        expected += 1
    return expected - 1, prev


def _check_semantics(
    entry: Mapping[str, Any], where: str, capped: set[str], reservations: dict[str, dict]
) -> None:
    kind, ds, rid = entry["kind"], entry["dataset_id"], entry["reservation"]
    if kind not in KINDS:
        raise LedgerCorrupt(f"{where} has unknown kind {kind!r}")
    if not isinstance(ds, str) or not ds:
        raise LedgerCorrupt(f"{where} has no dataset id")
    if not isinstance(entry["metadata"], dict) or not isinstance(entry["events"], list):
        raise LedgerCorrupt(f"{where}: metadata must be an object and events a list")
    try:
        events = entry_events(entry)
    except (ConfigError, TypeError, AttributeError) as exc:
        raise LedgerCorrupt(f"{where} holds an unreadable privacy event: {exc}") from None
    if kind == "cap":
        try:
            cap = Budget.from_dict(entry["metadata"].get("cap"))
        except ConfigError as exc:
            raise LedgerCorrupt(f"{where} is a cap entry without a valid cap: {exc}") from None
        if cap.epsilon <= 0 or events or rid is not None:
            raise LedgerCorrupt(f"{where} is a malformed cap entry")
        capped.add(ds)
        return
    if not isinstance(rid, str) or not rid:
        raise LedgerCorrupt(f"{where} ({kind}) has no reservation id")
    if kind == "reserve":
        if ds not in capped:
            raise LedgerCorrupt(f"{where} spends on dataset {ds!r} before it has a cap")
        if rid in reservations:
            raise LedgerCorrupt(f"{where} reuses reservation id {rid}")
        if not events:
            raise LedgerCorrupt(f"{where} reserves no privacy events")
        reservations[rid] = {"dataset_id": ds, "state": "reserved"}
        return
    res = reservations.get(rid)
    if res is None or res["dataset_id"] != ds:
        raise LedgerCorrupt(f"{where} ({kind}) refers to unknown reservation {rid}")
    if events:
        raise LedgerCorrupt(f"{where} ({kind}) must not carry privacy events")
    if res["state"] != "reserved":
        raise LedgerCorrupt(f"{where} {kind}s reservation {rid}, which was already {res['state']}")
    res["state"] = "committed" if kind == "commit" else "cancelled"


def entry_events(entry: Mapping[str, Any]) -> list[PrivacyEvent]:
    """The typed privacy events of ``entry`` (parsed once by the store when it can be)."""
    parsed = getattr(entry, "parsed", None)
    if parsed is not None:
        return list(parsed)
    return [event_from_dict(d) for d in entry["events"]]


def plain_copy(obj: Any) -> Any:
    """A deep copy of ``obj`` in plain JSON types, through :func:`canonical_json`: what the
    ledger stores (entries handed to callers, who may modify them; validated metadata).
    Raises ``TypeError`` / ``ValueError`` for what it cannot store."""
    return json.loads(canonical_json(obj))


def current_cap(entries: Iterable[Mapping[str, Any]], dataset_id: str) -> Budget | None:
    """The latest cap of ``dataset_id`` in ``entries`` (``None`` if it has none)."""
    cap = None
    for e in entries:
        if e["kind"] == "cap" and e["dataset_id"] == dataset_id:
            cap = Budget.from_dict(e["metadata"]["cap"])
    return cap


def reservation_states(entries: Iterable[Mapping[str, Any]], dataset_id: str) -> dict[str, dict]:
    """reservation id -> {"entry": reserve entry, "state": reserved|committed|cancelled}."""
    out: dict[str, dict] = {}
    for e in entries:
        if e["dataset_id"] != dataset_id:
            continue
        if e["kind"] == "reserve":
            out[e["reservation"]] = {"entry": e, "state": "reserved"}
        elif e["kind"] == "commit":
            out[e["reservation"]]["state"] = "committed"
        elif e["kind"] == "cancel":
            out[e["reservation"]]["state"] = "cancelled"
    return out


def active_events(entries: Iterable[Mapping[str, Any]], dataset_id: str) -> list[PrivacyEvent]:
    """Events of every reservation of the dataset that was not cancelled (reserved or committed)."""
    events: list[PrivacyEvent] = []
    for r in reservation_states(entries, dataset_id).values():
        if r["state"] != "cancelled":
            events.extend(entry_events(r["entry"]))
    return events
