"""The persistent privacy-budget ledger: one SQLite file, hash-chained entries, per-dataset caps.

Every spend of privacy budget on a dataset is a ``reserve`` entry holding the typed privacy
events (never a float that could not be re-derived).  Whether the spend fits under the
dataset's cap is decided inside one ``BEGIN IMMEDIATE`` transaction that re-reads and
re-verifies the whole chain and recomposes *all* stored events of the dataset with
:func:`~privsynth.budget.accounting.epsilon_spent_exact` -- so concurrent processes cannot
over-spend, and a crash either leaves a whole entry or none.

Entries (kinds ``cap``, ``reserve``, ``commit``, ``cancel``) are dictionaries with the fields
``seq, time, dataset_id, kind, purpose, events, reservation, metadata, prev_hash, hash``.
``hash`` is the SHA-256 (hex) of the canonical JSON (sorted keys, no whitespace, UTF-8) of the
entry without ``hash``; ``prev_hash`` is the previous entry's hash (64 zeros for the first).
There is one chain per file, shared by all datasets in it.

>>> import tempfile, pathlib
>>> from privsynth.budget import Budget, Ledger, PureDP
>>> path = pathlib.Path(tempfile.mkdtemp()) / "ledger.db"
>>> with Ledger.open(path, dataset_id="adult", cap=Budget(1.0, 1e-9)) as led:
...     r = led.reserve(PureDP(0.25), purpose="histogram of age")
...     r.commit()
...     print(led.remaining())
(epsilon=0.75, delta=1e-09)
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
import os
import random
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import quote

from privsynth.budget.accounting import (
    Budget,
    Charge,
    PrivacyEvent,
    _as_events,
    _float_down,
    _float_up,
    _fmt,
    as_rational,
    epsilon_spent_exact,
    event_from_dict,
    event_summary,
    event_to_dict,
)
from privsynth.errors import BudgetExceeded, ConfigError, LedgerCorrupt, LedgerError
from privsynth.io import atomic_write_text

logger = logging.getLogger("privsynth.ledger")
logger.addHandler(logging.NullHandler())  # silent in library mode unless logging is configured

GENESIS_HASH = "0" * 64
FORMAT = "privsynth-ledger/1"
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
_SQLITE_MAGIC = b"SQLite format 3\x00"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS entries (
        seq INTEGER PRIMARY KEY,
        time TEXT NOT NULL,
        dataset_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        purpose TEXT NOT NULL,
        events TEXT NOT NULL,
        reservation TEXT,
        metadata TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    )""",
)


# ---------------------------------------------------------------------------------------------
# Canonical form and chain verification (pure functions: also used on JSONL exports)
# ---------------------------------------------------------------------------------------------


def canonical_json(obj: Any) -> str:
    """Canonical JSON: sorted keys, no whitespace, UTF-8 text (``ensure_ascii=False``), no NaN."""
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
        events = _events_of(entry)
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


class _Entry(dict):
    """A stored entry (a plain mapping of FIELDS) that also carries its parsed events."""

    __slots__ = ("parsed",)


def _events_of(entry: Mapping[str, Any]) -> list[PrivacyEvent]:
    parsed = getattr(entry, "parsed", None)
    if parsed is not None:
        return list(parsed)
    return [event_from_dict(d) for d in entry["events"]]


def _plain(obj: Any) -> Any:
    """A deep, plain-dict copy of entries (for callers, who may modify it)."""
    return json.loads(canonical_json(obj))


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSONL export (one entry per line)."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise LedgerError(f"cannot read ledger export {p}: {exc.strerror or exc}") from None
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LedgerCorrupt(f"{p}: line {n} is not JSON ({exc.msg})") from None
        out.append(obj)
    return out


def verify_jsonl(path: str | os.PathLike) -> tuple[int, str]:
    """Verify a JSONL export on its own; return ``(entries, head hash)``."""
    return verify_entries(read_jsonl(path), source=str(path))


def verify_ledger(path: str | os.PathLike, *, timeout: float = 30.0) -> tuple[int, str]:
    """Verify a ledger file read-only (hash chain, stored head, SQLite integrity)."""
    with _Store(path, create=False, readonly=True, timeout=timeout) as store:
        return store.verify_full()


def list_datasets(path: str | os.PathLike, *, timeout: float = 30.0) -> list[str]:
    """Dataset ids with a cap in the ledger at ``path`` (``[]`` if there is no file)."""
    if not Path(path).expanduser().exists():
        return []
    with _Store(path, create=False, readonly=True, timeout=timeout) as store, store.read():
        entries = store.entries()
    return sorted({e["dataset_id"] for e in entries if e["kind"] == "cap"})


def read_chain(path: str | os.PathLike, *, timeout: float = 30.0) -> list[dict]:
    """The whole chain of the ledger at ``path`` (every dataset), read-only and verified."""
    with _Store(path, create=False, readonly=True, timeout=timeout) as store:
        with store.read():
            entries = store.entries()
        verify_entries(entries, source=str(store.path))
    return _plain(entries)


def export_jsonl(path: str | os.PathLike, out: str | os.PathLike, *, timeout: float = 30.0) -> int:
    """Verify the ledger at ``path`` and write its whole chain to ``out`` as JSONL (atomically)."""
    entries = read_chain(path, timeout=timeout)
    _atomic_write_text(Path(out), "".join(canonical_json(e) + "\n" for e in entries))
    return len(entries)


def jsonl_text(path: str | os.PathLike, *, timeout: float = 30.0) -> str:
    """The verified chain of the ledger at ``path`` as JSONL text."""
    return "".join(canonical_json(e) + "\n" for e in read_chain(path, timeout=timeout))


def _atomic_write_text(out: Path, text: str) -> None:
    """:func:`privsynth.io.atomic_write_text` with errors as :class:`LedgerError`."""
    out = out.expanduser()
    if not out.parent.is_dir():
        raise LedgerError(f"cannot write {out}: directory {out.parent} does not exist")
    try:
        atomic_write_text(out, text)
    except OSError as exc:
        raise LedgerError(f"cannot write {out}: {exc.strerror or exc}") from None


# ---------------------------------------------------------------------------------------------
# The SQLite file
# ---------------------------------------------------------------------------------------------


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class _Store:
    """One SQLite ledger file: connection, transactions, reading and appending entries."""

    def __init__(
        self, path: str | os.PathLike, *, create: bool, readonly: bool, timeout: float
    ) -> None:
        self.path = Path(path).expanduser().absolute()
        self.readonly = readonly
        self.timeout = float(timeout)
        self.conn: sqlite3.Connection | None = None
        self._cache: dict[tuple, tuple[dict, str]] = {}
        self._preflight(create)
        with self.errors("opening"):
            if readonly:
                uri = f"file:{quote(str(self.path))}?mode=ro"
                self.conn = sqlite3.connect(
                    uri, uri=True, timeout=self.timeout, isolation_level=None
                )
            else:
                self.conn = sqlite3.connect(
                    str(self.path), timeout=self.timeout, isolation_level=None
                )
            try:
                self._init_schema(create)
            except BaseException:
                self.close()
                raise

    # -- opening ------------------------------------------------------------------------------

    def _preflight(self, create: bool) -> None:
        p = self.path
        if not p.exists():
            if self.readonly or not create:
                raise LedgerError(
                    f"no ledger at {p}; create one with `privsynth ledger init {p} --dataset-id ID "
                    "--cap-epsilon E --cap-delta D` (or Ledger.open(..., cap=Budget(E, D)))"
                )
            if not p.parent.is_dir():
                raise LedgerError(
                    f"cannot create ledger {p}: directory {p.parent} does not exist; create it "
                    "first (ledgers are never created in a directory that is not there, so a "
                    "typo cannot silently start a fresh, empty budget)"
                )
            if not os.access(p.parent, os.W_OK | os.X_OK):
                raise LedgerError(f"cannot create ledger {p}: directory {p.parent} is not writable")
            return
        if p.is_dir():
            raise LedgerError(f"ledger path {p} is a directory, not a ledger file")
        if not self.readonly and (not os.access(p, os.W_OK) or not p.stat().st_mode & 0o222):
            # The mode bits are honoured even for root: a ledger marked read-only is frozen.
            raise LedgerError(
                f"ledger {p} is read-only; make it writable (e.g. `chmod u+w {p}`) to record "
                "spends, or read it with `privsynth ledger show/verify/export`"
            )
        try:
            with open(p, "rb") as fh:
                head = fh.read(len(_SQLITE_MAGIC))
        except OSError as exc:
            raise LedgerError(f"cannot read ledger {p}: {exc.strerror or exc}") from None
        if head and head != _SQLITE_MAGIC:
            raise LedgerError(
                f"{p} is not a privsynth ledger (not an SQLite database); check the path"
            )

    def _init_schema(self, create: bool) -> None:
        assert self.conn is not None
        with self.errors("opening"):
            tables = {
                r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if tables and not {"meta", "entries"} <= tables:
                raise LedgerError(f"{self.path} is an SQLite database but not a privsynth ledger")
            if not self.readonly:
                mode = self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise LedgerError(f"cannot switch ledger {self.path} to WAL mode (got {mode})")
                self.conn.execute("PRAGMA synchronous=FULL")
            if not tables:
                if self.readonly or not create:
                    raise LedgerError(f"{self.path} is an empty database, not a privsynth ledger")
                with self.transaction("creating the ledger"):
                    for statement in _SCHEMA:
                        self.conn.execute(statement)
                    self.conn.execute(
                        "INSERT OR IGNORE INTO meta(key, value) VALUES ('format', ?)", (FORMAT,)
                    )
            fmt = self.conn.execute("SELECT value FROM meta WHERE key='format'").fetchone()
            if fmt is None or fmt[0] != FORMAT:
                raise LedgerError(
                    f"{self.path} has ledger format {fmt[0] if fmt else None!r}; this privsynth "
                    f"reads {FORMAT!r}"
                )

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self.conn.close()
            self.conn = None

    def __enter__(self) -> _Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- errors and transactions --------------------------------------------------------------

    @contextlib.contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Turn SQLite errors into :class:`LedgerError` with a message that says what to do."""
        try:
            yield
        except sqlite3.Error as exc:
            msg = str(exc).lower()
            p = self.path
            if "locked" in msg or "busy" in msg:
                err = LedgerError(
                    f"ledger {p} is locked by another process (waited {self.timeout:g} s while "
                    f"{action}); retry when it has finished"
                )
            elif "readonly" in msg or "read-only" in msg:
                err = LedgerError(
                    f"ledger {p} is read-only ({exc}); make the file and its directory writable "
                    "to record spends"
                )
            elif "not a database" in msg or "encrypted" in msg:
                err = LedgerError(f"{p} is not a privsynth ledger (not an SQLite database)")
            elif "malformed" in msg or "corrupt" in msg:
                err = LedgerCorrupt(f"ledger {p}: the SQLite file is damaged ({exc})")
            elif "unable to open" in msg:
                err = LedgerError(
                    f"cannot open ledger {p} ({exc}); check the path and the permissions of the "
                    "file and its directory"
                )
            else:
                err = LedgerError(f"ledger {p}: SQLite error while {action}: {exc}")
            raise err from None

    @contextlib.contextmanager
    def transaction(self, action: str) -> Iterator[None]:
        """A write transaction (``BEGIN IMMEDIATE``: one writer at a time, waits ``timeout``)."""
        if self.readonly:
            raise LedgerError(f"ledger {self.path} was opened read-only; cannot record entries")
        assert self.conn is not None, "ledger is closed"
        with self.errors(action):
            self._begin_immediate()
        try:
            yield
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")
            raise
        with self.errors(action):
            self.conn.execute("COMMIT")

    def _begin_immediate(self) -> None:
        """Take the write lock, polling every few milliseconds (with jitter) until ``timeout``.

        SQLite's own busy handler backs off to 100 ms sleeps, which starves waiters behind a
        busy writer; short jittered polls give every waiting process a fair chance.
        """
        assert self.conn is not None
        deadline = time.monotonic() + self.timeout
        self.conn.execute("PRAGMA busy_timeout = 0")
        try:
            while True:
                try:
                    self.conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    msg = str(exc).lower()
                    if ("locked" not in msg and "busy" not in msg) or time.monotonic() > deadline:
                        raise
                time.sleep(random.uniform(0.0005, 0.005))
        finally:
            self.conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        """A read transaction: a consistent snapshot for several SELECTs."""
        if self.conn is None:
            raise LedgerError(f"ledger {self.path} is closed")
        if self.conn.in_transaction:
            yield
            return
        with self.errors("reading"):
            self.conn.execute("BEGIN")
        try:
            yield
        finally:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("COMMIT")

    # -- entries ------------------------------------------------------------------------------

    def entries(self) -> list[dict]:
        """All entries in seq order (shared, cached dicts: do not modify)."""
        return self._entries_and_hashes()[0]

    def _entries_and_hashes(self) -> tuple[list[dict], list[str]]:
        """Entries and their recomputed hashes.  Parsing and hashing are memoised per stored
        row (the exact column values), so re-reading a long chain costs one SELECT; any
        change to a row is a different key and is parsed and hashed afresh."""
        assert self.conn is not None
        with self.errors("reading entries"):
            rows = self.conn.execute(
                f"SELECT {', '.join(FIELDS)} FROM entries ORDER BY seq"
            ).fetchall()
        entries, hashes = [], []
        for row in rows:
            hit = self._cache.get(row)
            if hit is None:
                entry = self._entry(row)
                try:
                    h = entry_hash(entry)
                except (TypeError, ValueError):
                    h = ""
                hit = self._cache[row] = (entry, h)
            entries.append(hit[0])
            hashes.append(hit[1])
        return entries, hashes

    def _entry(self, row: Sequence[Any]) -> dict:
        entry = _Entry(zip(FIELDS, row, strict=True))
        entry.parsed = None
        for key in ("events", "metadata"):
            try:
                entry[key] = json.loads(entry[key])
            except (TypeError, json.JSONDecodeError):
                raise LedgerCorrupt(
                    f"ledger {self.path}: entry seq {entry['seq']!r} has an unreadable {key} "
                    "field: it was edited"
                ) from None
        with contextlib.suppress(ConfigError, TypeError, AttributeError):  # verify reports it
            entry.parsed = tuple(event_from_dict(d) for d in entry["events"])
        return entry

    def head_meta(self) -> tuple[int, str]:
        assert self.conn is not None
        with self.errors("reading"):
            rows = dict(
                self.conn.execute(
                    "SELECT key, value FROM meta WHERE key IN ('head_seq', 'head_hash')"
                )
            )
        try:
            return int(rows.get("head_seq", 0)), str(rows.get("head_hash", GENESIS_HASH))
        except ValueError:
            raise LedgerCorrupt(f"ledger {self.path}: the stored head is unreadable") from None

    def verified_entries(self) -> list[dict]:
        """All entries, after verifying the chain and that it ends at the stored head."""
        entries, hashes = self._entries_and_hashes()
        n, head = verify_entries(entries, source=f"ledger {self.path}", _hashes=hashes)
        if (n, head) != self.head_meta():
            seq, h = self.head_meta()
            if n < seq:
                why = f"entries after seq {n} were deleted"
            elif n > seq:
                why = f"entries after seq {seq} were added outside privsynth"
            else:
                why = f"entry seq {n} was replaced, or the stored head was edited"
            raise LedgerCorrupt(
                f"ledger {self.path}: the chain ends at entry seq {n} ({head[:16]}...) but the "
                f"ledger recorded its last entry as seq {seq} ({h[:16]}...): {why}"
            )
        return entries

    def verify_full(self) -> tuple[int, str]:
        assert self.conn is not None
        with self.read():
            with self.errors("checking SQLite integrity"):
                check = self.conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise LedgerCorrupt(f"ledger {self.path}: SQLite integrity check failed: {check}")
            entries = self.verified_entries()
        return len(entries), entries[-1]["hash"] if entries else GENESIS_HASH

    def append(
        self,
        last: Mapping[str, Any] | None,
        *,
        dataset_id: str,
        kind: str,
        purpose: str,
        events: Sequence[PrivacyEvent] = (),
        reservation: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> dict:
        """Append one entry after ``last`` (inside a write transaction) and move the head."""
        assert self.conn is not None and self.conn.in_transaction
        entry: dict[str, Any] = {
            "seq": (last["seq"] + 1) if last else 1,
            "time": _now(),
            "dataset_id": dataset_id,
            "kind": kind,
            "purpose": purpose,
            "events": [event_to_dict(e) for e in events],
            "reservation": reservation,
            "metadata": dict(metadata or {}),
            "prev_hash": last["hash"] if last else GENESIS_HASH,
        }
        entry["hash"] = entry_hash(entry)
        row = dict(entry)
        row["events"] = canonical_json(entry["events"])
        row["metadata"] = canonical_json(entry["metadata"])
        with self.errors(f"recording a {kind} entry"):
            self.conn.execute(
                f"INSERT INTO entries ({', '.join(FIELDS)}) "
                f"VALUES ({', '.join('?' * len(FIELDS))})",
                [row[f] for f in FIELDS],
            )
            self.conn.executemany(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                [("head_seq", str(entry["seq"])), ("head_hash", entry["hash"])],
            )
        return entry


# ---------------------------------------------------------------------------------------------
# Ledger
# ---------------------------------------------------------------------------------------------


def _check_cap(cap: Any) -> Budget:
    if not isinstance(cap, Budget):
        raise ConfigError(f"cap must be a privsynth Budget(epsilon, delta), got {cap!r}")
    if cap.epsilon <= 0:
        raise ConfigError(f"cap epsilon ({cap.epsilon!r}) must be > 0")
    return cap


def _check_text(name: str, value: Any, *, limit: int = 1000) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name} ({value!r}) must be a non-empty string")
    if len(value) > limit:
        raise ConfigError(f"{name} is {len(value)} characters long; at most {limit} allowed")
    return value


def _check_metadata(metadata: Mapping[str, Any] | None) -> dict:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise ConfigError(f"metadata must be a dict, got {type(metadata).__name__}")
    try:
        return json.loads(canonical_json(dict(metadata)))
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"metadata must be JSON-serialisable with string keys and finite numbers: {exc}"
        ) from None


def _current_cap(entries: Iterable[Mapping[str, Any]], dataset_id: str) -> Budget | None:
    cap = None
    for e in entries:
        if e["kind"] == "cap" and e["dataset_id"] == dataset_id:
            cap = Budget.from_dict(e["metadata"]["cap"])
    return cap


def _reservation_states(entries: Iterable[Mapping[str, Any]], dataset_id: str) -> dict[str, dict]:
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


def _active_events(entries: Iterable[Mapping[str, Any]], dataset_id: str) -> list[PrivacyEvent]:
    """Events of every reservation of the dataset that was not cancelled (reserved or committed)."""
    events: list[PrivacyEvent] = []
    for r in _reservation_states(entries, dataset_id).values():
        if r["state"] != "cancelled":
            events.extend(_events_of(r["entry"]))
    return events


class Reservation:
    """A reserved privacy spend.  It counts as spent from the moment it exists; ``commit()``
    records that the release happened, ``cancel(reason)`` refunds it (only if not committed)."""

    def __init__(
        self, ledger: Ledger, id: str, events: tuple[PrivacyEvent, ...], purpose: str, seq: int
    ) -> None:
        self._ledger = ledger
        self.id = id
        self.events = events
        self.purpose = purpose
        self.seq = seq

    def commit(self, metadata: Mapping[str, Any] | None = None) -> None:
        """Record that the release was made (e.g. with the digest of what was released)."""
        self._ledger._close_reservation(self, "commit", _check_metadata(metadata))

    def cancel(self, reason: str) -> None:
        """Refund the reservation; only allowed if it was not committed."""
        _check_text("reason", reason)
        self._ledger._close_reservation(self, "cancel", {"reason": reason})

    def __repr__(self) -> str:
        evs = ", ".join(event_summary(e) for e in self.events)
        return f"Reservation(id={self.id!r}, purpose={self.purpose!r}, events=[{evs}])"


class Ledger:
    """The privacy-budget ledger of one dataset inside a ledger file.

    Open with :meth:`open`; see the module docstring for the format.
    """

    def __init__(self, store: _Store, dataset_id: str, cap: Budget) -> None:
        self._store = store
        self.dataset_id = dataset_id
        self._cap = cap

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        *,
        dataset_id: str,
        cap: Budget | None = None,
        create: bool = True,
        readonly: bool = False,
        timeout: float = 30.0,
    ) -> Ledger:
        """Open (or create) the ledger at ``path`` for ``dataset_id``.

        * A new dataset needs ``cap``; it is recorded as the dataset's first entry.
        * An existing dataset keeps its cap: passing a *different* cap raises
          :class:`ConfigError` (change it with :meth:`set_cap`, which is recorded).
        * ``create=False``: never create the file or the dataset (nothing is written on open).
        * ``readonly=True``: read the file without writing (``describe``, ``verify``...).
        * Waits up to ``timeout`` seconds for another process's write to finish.

        The whole chain is verified on open; a tampered ledger raises :class:`LedgerCorrupt`.
        """
        _check_text("dataset_id", dataset_id, limit=200)
        if cap is not None:
            _check_cap(cap)
        store = _Store(path, create=create and not readonly, readonly=readonly, timeout=timeout)
        try:
            if readonly or not create:
                with store.read():
                    current = _current_cap(store.verified_entries(), dataset_id)
                if current is None:
                    raise LedgerError(
                        f"ledger {store.path} holds no dataset {dataset_id!r} (it holds "
                        f"{_datasets_of(store) or 'none'}); create it with `privsynth ledger "
                        f"init {store.path} --dataset-id {dataset_id} --cap-epsilon E "
                        "--cap-delta D`"
                    )
            else:
                with store.transaction("opening the dataset"):
                    entries = store.verified_entries()
                    current = _current_cap(entries, dataset_id)
                    if current is None:
                        if cap is None:
                            raise ConfigError(
                                f"dataset {dataset_id!r} has no budget cap in ledger "
                                f"{store.path}; pass cap=Budget(epsilon, delta) or run "
                                f"`privsynth ledger init {store.path} --dataset-id "
                                f"{dataset_id} --cap-epsilon E --cap-delta D`"
                            )
                        store.append(
                            entries[-1] if entries else None,
                            dataset_id=dataset_id,
                            kind="cap",
                            purpose="initial cap",
                            metadata={"cap": cap.to_dict()},
                        )
                        logger.info(
                            "ledger %s: dataset %r created with cap %s", store.path, dataset_id, cap
                        )
                        current = cap
            if cap is not None and cap != current:
                raise ConfigError(
                    f"dataset {dataset_id!r} in ledger {store.path} has cap {current}, not "
                    f"{cap}; to change a cap call ledger.set_cap(new_cap, reason=...) or run "
                    f"`privsynth ledger init {store.path} --dataset-id {dataset_id} "
                    f"--cap-epsilon {_fmt(cap.epsilon)} --cap-delta {_fmt(cap.delta)} "
                    "--force-cap --reason TEXT` (the change is recorded in the ledger)"
                )
        except BaseException:
            store.close()
            raise
        return cls(store, dataset_id, current)

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r}, dataset_id={self.dataset_id!r}, cap={self._cap})"

    @property
    def path(self) -> Path:
        return self._store.path

    @property
    def cap(self) -> Budget:
        """The dataset's current cap (re-read from the file)."""
        with self._store.read():
            cap = _current_cap(self._store.entries(), self.dataset_id)
        if cap is not None:
            self._cap = cap
        return self._cap

    # -- spending -----------------------------------------------------------------------------

    def reserve(
        self,
        events: Sequence[Charge] | Charge,
        *,
        purpose: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> Reservation:
        """Atomically check ``events`` against the cap and record them as spent.

        Call this *before* reading any private data.  Raises :class:`BudgetExceeded` (nothing
        recorded) when the composed total of everything not cancelled plus ``events`` would
        exceed the cap's epsilon at the cap's delta.
        """
        evs = _as_events(events)
        if not evs:
            raise ConfigError("reserve needs at least one privacy event")
        _check_text("purpose", purpose)
        meta = _check_metadata(metadata)
        with self._store.transaction("reserving budget"):
            entries = self._store.verified_entries()
            cap = self._cap_in(entries)
            active = _active_events(entries, self.dataset_id)
            self._check_fits(cap, active, evs)
            rid = uuid.uuid4().hex
            entry = self._store.append(
                entries[-1],
                dataset_id=self.dataset_id,
                kind="reserve",
                purpose=purpose,
                events=evs,
                reservation=rid,
                metadata=meta,
            )
        logger.info(
            "ledger %s: dataset %r reserved %s for %r (reservation %s, seq %d)",
            self.path,
            self.dataset_id,
            ", ".join(map(event_summary, evs)),
            purpose,
            rid,
            entry["seq"],
        )
        return Reservation(self, rid, tuple(evs), purpose, entry["seq"])

    def check(self, events: Sequence[Charge] | Charge) -> Budget:
        """Dry run of :meth:`reserve`: the composed total if ``events`` were added, or
        :class:`BudgetExceeded`.  Records nothing (another process may spend in between)."""
        evs = _as_events(events)
        with self._store.read():
            entries = self._store.verified_entries()
        cap = self._cap_in(entries)
        total = self._check_fits(cap, _active_events(entries, self.dataset_id), evs, log=False)
        return Budget(_float_up(total), cap.delta)

    def _cap_in(self, entries: list[dict]) -> Budget:
        cap = _current_cap(entries, self.dataset_id)
        if cap is None:  # only if the dataset's cap entry vanished, which verify would catch
            raise LedgerCorrupt(f"ledger {self.path}: dataset {self.dataset_id!r} has no cap")
        self._cap = cap
        return cap

    def _check_fits(
        self,
        cap: Budget,
        active: list[PrivacyEvent],
        request: list[PrivacyEvent],
        *,
        log: bool = True,
    ) -> Fraction:
        delta_q = as_rational(cap.delta)
        cap_q = as_rational(cap.epsilon)
        total = epsilon_spent_exact(active + request, delta_q)
        if total <= cap_q:
            return total  # type: ignore[return-value]
        spent = epsilon_spent_exact(active, delta_q)
        alone = epsilon_spent_exact(request, delta_q)
        remaining = max(Fraction(0), cap_q - spent) if spent != float("inf") else Fraction(0)
        why = ""
        if total == float("inf"):
            why = (
                " (no finite epsilon: the request needs a share of delta that the cap does not "
                "leave -- approximate-DP pieces use delta first, and zCDP/RDP pieces need "
                "delta > 0)"
            )
        msg = (
            f"privacy budget exceeded for dataset {self.dataset_id!r} in ledger {self.path}: "
            f"spent epsilon={_fmt(_float_up(spent))} (at delta={_fmt(cap.delta)}); the request "
            f"[{', '.join(map(event_summary, request))}] costs epsilon={_fmt(_float_up(alone))} "
            f"on its own and would bring the composed total to "
            f"epsilon={_fmt(_float_up(total))}{why}, above the cap {cap}; remaining: "
            f"epsilon={_fmt(_float_down(remaining))}, delta={_fmt(cap.delta)}. Nothing was "
            "recorded. Ask for less, or raise the cap with `privsynth ledger init "
            f"{self.path} --dataset-id {self.dataset_id} --cap-epsilon E --cap-delta D "
            "--force-cap --reason TEXT` (the change is recorded)."
        )
        if log:  # INFO like the other budget events: the exception carries it to the user
            logger.info("%s", msg)
        raise BudgetExceeded(msg)

    def _close_reservation(self, res: Reservation, kind: str, metadata: dict) -> None:
        with self._store.transaction(f"recording a {kind}"):
            entries = self._store.verified_entries()
            state = _reservation_states(entries, self.dataset_id).get(res.id)
            if state is None:
                raise LedgerError(
                    f"reservation {res.id} is not in ledger {self.path} for dataset "
                    f"{self.dataset_id!r}"
                )
            if state["state"] != "reserved":
                extra = (
                    " (a committed release cannot be refunded)"
                    if kind == "cancel" and state["state"] == "committed"
                    else ""
                )
                raise LedgerError(f"reservation {res.id} was already {state['state']}{extra}")
            entry = self._store.append(
                entries[-1],
                dataset_id=self.dataset_id,
                kind=kind,
                purpose=res.purpose,
                reservation=res.id,
                metadata=metadata,
            )
        logger.info(
            "ledger %s: dataset %r %s reservation %s (seq %d)%s",
            self.path,
            self.dataset_id,
            "committed" if kind == "commit" else "cancelled",
            res.id,
            entry["seq"],
            f": {metadata.get('reason')}" if kind == "cancel" else "",
        )

    def set_cap(self, new_cap: Budget, *, reason: str) -> None:
        """Change the dataset's cap; recorded as a ``cap`` entry with ``reason``.

        Refused (:class:`ConfigError`) if what is already spent has no finite epsilon at the
        new cap's delta.  A cap below what is spent is allowed: nothing more can be spent.
        """
        _check_cap(new_cap)
        _check_text("reason", reason)
        with self._store.transaction("changing the cap"):
            entries = self._store.verified_entries()
            old = self._cap_in(entries)
            if new_cap == old:
                logger.info("ledger %s: cap of %r is already %s", self.path, self.dataset_id, old)
                return
            spent = epsilon_spent_exact(
                _active_events(entries, self.dataset_id), as_rational(new_cap.delta)
            )
            if spent == float("inf"):
                raise ConfigError(
                    f"cannot set the cap of {self.dataset_id!r} to {new_cap}: what is already "
                    f"spent has no finite epsilon at delta={_fmt(new_cap.delta)}; choose a "
                    "larger delta"
                )
            self._store.append(
                entries[-1],
                dataset_id=self.dataset_id,
                kind="cap",
                purpose="cap change",
                metadata={"cap": new_cap.to_dict(), "previous": old.to_dict(), "reason": reason},
            )
            self._cap = new_cap
        logger.warning(
            "ledger %s: cap of dataset %r changed from %s to %s: %s",
            self.path,
            self.dataset_id,
            old,
            new_cap,
            reason,
        )

    # -- reading ------------------------------------------------------------------------------

    def _snapshot(self) -> list[dict]:
        with self._store.read():
            return self._store.verified_entries()

    def _spent_q(self, entries: list[dict]) -> tuple[Budget, Fraction | float]:
        cap = self._cap_in(entries)
        return cap, epsilon_spent_exact(
            _active_events(entries, self.dataset_id), as_rational(cap.delta)
        )

    def spent(self) -> Budget:
        """Composed epsilon (rounded up) of every reservation not cancelled, at the cap's delta."""
        cap, spent = self._spent_q(self._snapshot())
        if spent == float("inf"):
            raise LedgerError(f"what is spent on {self.dataset_id!r} has no finite epsilon")
        return Budget(_float_up(spent), cap.delta)

    def remaining(self) -> Budget:
        """Cap epsilon minus spent epsilon (rounded down, floored at 0), at the cap's delta."""
        cap, spent = self._spent_q(self._snapshot())
        rem = max(Fraction(0), as_rational(cap.epsilon) - spent) if spent != float("inf") else 0
        return Budget(_float_down(Fraction(rem)), cap.delta)

    def entries(self, *, all_datasets: bool = False) -> list[dict]:
        """The (verified) entries of this dataset, or of the whole file."""
        entries = self._snapshot()
        return _plain([e for e in entries if all_datasets or e["dataset_id"] == self.dataset_id])

    def reservations(self) -> list[dict]:
        """One dict per reservation of this dataset: id, seq, purpose, events, state."""
        return [
            {
                "id": rid,
                "seq": r["entry"]["seq"],
                "purpose": r["entry"]["purpose"],
                "events": _plain(r["entry"]["events"]),
                "state": r["state"],
            }
            for rid, r in _reservation_states(self._snapshot(), self.dataset_id).items()
        ]

    def head(self) -> str:
        """Hash of the last entry of the file (the value to anchor externally)."""
        entries = self._snapshot()
        return entries[-1]["hash"] if entries else GENESIS_HASH

    def verify(self) -> None:
        """Verify the whole file: SQLite integrity, the hash chain, the stored head.

        Raises :class:`LedgerCorrupt` naming the first bad entry.
        """
        self._store.verify_full()

    def export_jsonl(self, path: str | os.PathLike) -> int:
        """Write the whole (verified) chain of the file as JSONL, atomically; return the count."""
        entries = self._snapshot()
        _atomic_write_text(Path(path), "".join(canonical_json(e) + "\n" for e in entries))
        return len(entries)

    def summary(self, *, last: int = 10) -> dict:
        """The facts behind :meth:`describe`, as a JSON-ready dict."""
        entries = self._snapshot()
        cap, spent = self._spent_q(entries)
        states = _reservation_states(entries, self.dataset_id)
        counts = {
            s: sum(r["state"] == s for r in states.values())
            for s in ("reserved", "committed", "cancelled")
        }
        rem = max(Fraction(0), as_rational(cap.epsilon) - spent) if spent != float("inf") else 0
        mine = [e for e in entries if e["dataset_id"] == self.dataset_id]
        shown = mine[-last:] if last > 0 else []
        return {
            "ledger": str(self.path),
            "dataset_id": self.dataset_id,
            "cap": cap.to_dict(),
            "spent": {"epsilon": _float_up(spent), "delta": cap.delta},
            "remaining": {"epsilon": _float_down(Fraction(rem)), "delta": cap.delta},
            "releases": {
                "active": counts["reserved"] + counts["committed"],
                "committed": counts["committed"],
                "pending": counts["reserved"],
                "cancelled": counts["cancelled"],
            },
            "entries": len(mine),
            "head": entries[-1]["hash"] if entries else GENESIS_HASH,
            "last_entries": _plain(shown),
            "spent_after": self._running_totals(mine, {e["seq"] for e in shown}, cap),
        }

    def _running_totals(
        self, mine: list[dict], wanted: set[int], cap: Budget
    ) -> list[float | None]:
        """Composed epsilon (at the current cap's delta) right after each wanted entry."""
        active: dict[str, list[PrivacyEvent]] = {}
        out: list[float | None] = []
        delta_q = as_rational(cap.delta)
        for e in mine:
            if e["kind"] == "reserve":
                active[e["reservation"]] = _events_of(e)
            elif e["kind"] == "cancel":
                active.pop(e["reservation"], None)
            if e["seq"] in wanted:
                total = epsilon_spent_exact([x for evs in active.values() for x in evs], delta_q)
                out.append(None if total == float("inf") else _float_up(total))
        return out

    def describe(self, *, last: int = 5) -> str:
        """A human summary: dataset, cap, spent, remaining, releases, the last entries."""
        s = self.summary(last=last)
        r = s["releases"]
        lines = [
            f"ledger {s['ledger']} -- dataset {s['dataset_id']!r}",
            f"  cap:       epsilon={_fmt(s['cap']['epsilon'])}, delta={_fmt(s['cap']['delta'])}",
            f"  spent:     epsilon={_fmt(s['spent']['epsilon'])} (all releases composed, at the "
            "cap's delta)",
            f"  remaining: epsilon={_fmt(s['remaining']['epsilon'])}",
            f"  releases:  {r['active']} counted ({r['committed']} committed, {r['pending']} "
            f"reserved but not committed), {r['cancelled']} cancelled",
            f"  head:      {s['head']}",
        ]
        if s["last_entries"]:
            lines.append(f"  last {len(s['last_entries'])} entries:")
            lines.extend(f"    {describe_entry(e)}" for e in s["last_entries"])
        return "\n".join(lines)


def describe_entry(entry: Mapping[str, Any]) -> str:
    """One line for an entry: seq, time, kind, purpose, charge or cap."""
    kind = entry["kind"]
    if kind == "cap":
        cap = Budget.from_dict(entry["metadata"]["cap"])
        what = f"cap {cap}"
        if "reason" in entry["metadata"]:
            what += f" -- {entry['metadata']['reason']}"
    elif kind == "reserve":
        what = ", ".join(event_summary(event_from_dict(d)) for d in entry["events"])
    elif kind == "cancel":
        what = f"refund: {entry['metadata'].get('reason', '')}"
    else:
        what = "released"
    rid = f" (res {entry['reservation'][:8]})" if entry["reservation"] else ""
    return f"#{entry['seq']} {entry['time']} {kind:<7} {entry['purpose']}{rid}: {what}"


def _datasets_of(store: _Store) -> list[str]:
    with store.read():
        return sorted({e["dataset_id"] for e in store.entries() if e["kind"] == "cap"})
