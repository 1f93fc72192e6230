"""Where a ledger's entries are stored: the interface both backends implement, and the choice.

A ledger lives in an SQLite file (:mod:`privsynth.budget.store`, the embedded default) or in a
PostgreSQL database that a team shares (:mod:`privsynth.budget.pgstore`, for a
``postgresql://`` URL).  A backend only stores rows and runs transactions; everything that
decides what may be spent -- the chain, its verification, the cap check -- is in
:mod:`privsynth.budget.chain` and :mod:`privsynth.budget.ledger`, once, for both.

What a backend guarantees: :meth:`LedgerStore.transaction` is a write transaction that no other
writer of the same ledger overlaps (its reads see every entry committed before it); an entry
appended in it is durable when the transaction returns; :meth:`LedgerStore.read` is a
consistent snapshot; opening writes nothing (a new ledger is made by its first write).
"""

from __future__ import annotations

import abc
import contextlib
import datetime as _dt
import json
import os
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from privsynth.budget.chain import (
    FIELDS,
    GENESIS_HASH,
    canonical_json,
    entry_hash,
    plain_copy,
    verify_entries,
)
from privsynth.budget.events import PrivacyEvent, event_from_dict, event_to_dict
from privsynth.errors import ConfigError, LedgerCorrupt, LedgerError

#: The ledger format, stored with every ledger (SQLite and PostgreSQL alike).
FORMAT = "privsynth-ledger/1"

#: ``scheme://``: a location that is a URL, not a file path.
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
POSTGRES_SCHEMES = ("postgresql", "postgres")

T = TypeVar("T")


class WriteConflict(LedgerError):
    """A write transaction lost a conflict with another writer and was rolled back (nothing of
    it was recorded), so it can run again; raised to the caller only once ``timeout`` ran out."""


class _Entry(dict):
    """A stored entry (a plain mapping of FIELDS) that also carries its parsed events."""

    __slots__ = ("parsed",)
    parsed: tuple[PrivacyEvent, ...] | None


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def is_url(location: str | os.PathLike) -> bool:
    """Whether ``location`` is a URL (``scheme://...``) rather than a file path.

    >>> is_url("postgresql://alice@db.example.org/ledger"), is_url("ledgers/adult.db")
    (True, False)
    """
    return isinstance(location, str) and _URL.match(location) is not None


def redact_url(url: str) -> str:
    """``url`` without its password (in the user part or a ``password=`` parameter).

    >>> redact_url("postgresql://alice:s3cret@db:5432/ledger?sslmode=require&password=x")
    'postgresql://alice@db:5432/ledger?sslmode=require'
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}@{host}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "password"], safe="/:")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def shown(location: str | os.PathLike) -> str:
    """How a ledger's location is named in messages: a URL without its password, or the path.

    >>> shown("postgresql://alice:s3cret@db/ledger"), shown("ledger.db")
    ('postgresql://alice@db/ledger', 'ledger.db')
    """
    return redact_url(str(location)) if is_url(location) else str(location)


class LedgerStore(abc.ABC):
    """The storage of one ledger: its rows, its stored head, its transactions.

    Subclasses implement :meth:`read`, :meth:`transaction`, :meth:`close`, :meth:`exists`, the
    row access (:meth:`_rows`, :meth:`_head_rows`, :meth:`_insert`) and :meth:`_integrity`; the
    entry logic here (parsing, hashing, verifying, appending) is shared.
    """

    #: How the ledger is named in messages: a file path, or a URL without its password.
    location: str
    #: The ledger's file, or (PostgreSQL) its URL without the password.
    path: Path | str
    #: A short name for the published report: the file's name, or the database's.
    name: str
    readonly: bool
    #: Seconds a write waits for other writers (and retries conflicts) before it gives up.
    timeout: float

    def __init__(self) -> None:
        self._cache: dict[tuple, tuple[dict, str]] = {}

    # -- what a backend provides --------------------------------------------------------------

    @abc.abstractmethod
    def read(self) -> contextlib.AbstractContextManager[None]:
        """A read transaction: one consistent snapshot for several reads."""

    @abc.abstractmethod
    def transaction(self, action: str) -> contextlib.AbstractContextManager[None]:
        """A write transaction that no other writer overlaps; ``action`` names it in errors.

        The first write to a new ledger creates it.  May raise :class:`WriteConflict`."""

    def write(self, action: str, body: Callable[[], T]) -> T:
        """Run ``body`` (its reads and appends) in one write transaction and return its result.

        A transaction that lost a conflict (:class:`WriteConflict`: rolled back, nothing
        recorded) runs again, after a short random pause, until ``timeout``; ``body`` must
        therefore decide everything from what it reads in the transaction.
        """
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                with self.transaction(action):
                    return body()
            except WriteConflict:
                if time.monotonic() > deadline:
                    raise
            time.sleep(random.uniform(0.001, 0.02))

    @abc.abstractmethod
    def close(self) -> None:
        """Close the connection; the store cannot be used afterwards."""

    @abc.abstractmethod
    def exists(self) -> bool:
        """Whether the ledger has been made (by its first write)."""

    @abc.abstractmethod
    def _rows(self) -> list[tuple]:
        """Every stored entry row (the columns of FIELDS, JSON fields as text), in seq order;
        ``[]`` for a ledger no write has made yet."""

    @abc.abstractmethod
    def _head_rows(self) -> dict[str, str]:
        """The stored ``head_seq`` and ``head_hash`` (``{}`` when nothing was written)."""

    @abc.abstractmethod
    def _insert(self, row: Sequence[Any], head: tuple[int, str]) -> None:
        """Store one entry row (FIELDS order) and move the stored head, inside a transaction."""

    @abc.abstractmethod
    def _integrity(self) -> None:
        """The backend's own integrity check; raises :class:`LedgerCorrupt`."""

    def __enter__(self) -> LedgerStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- entries ------------------------------------------------------------------------------

    def entries(self) -> list[dict]:
        """All entries in seq order (shared, cached dicts: do not modify)."""
        return self._entries_and_hashes()[0]

    def _entries_and_hashes(self) -> tuple[list[dict], list[str]]:
        """Entries and their recomputed hashes.  Parsing and hashing are memoised per stored
        row (the exact column values), so re-reading a long chain costs one SELECT; any
        change to a row is a different key and is parsed and hashed afresh."""
        entries, hashes = [], []
        for row in self._rows():
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
                    f"ledger {self.location}: entry seq {entry['seq']!r} has an unreadable "
                    f"{key} field: it was edited"
                ) from None
        with contextlib.suppress(ConfigError, TypeError, AttributeError):  # verify reports it
            entry.parsed = tuple(event_from_dict(d) for d in entry["events"])
        return entry

    def head_meta(self) -> tuple[int, str]:
        """The last entry's seq and hash as recorded with the last write."""
        rows = self._head_rows()
        try:
            return int(rows.get("head_seq", 0)), str(rows.get("head_hash", GENESIS_HASH))
        except ValueError:
            raise LedgerCorrupt(f"ledger {self.location}: the stored head is unreadable") from None

    def verified_entries(self) -> list[dict]:
        """All entries, after verifying the chain and that it ends at the stored head."""
        entries, hashes = self._entries_and_hashes()
        n, head = verify_entries(entries, source=f"ledger {self.location}", _hashes=hashes)
        seq, h = self.head_meta()
        if (n, head) != (seq, h):
            if n < seq:
                why = f"entries after seq {n} were deleted"
            elif n > seq:
                why = f"entries after seq {seq} were added outside privsynth"
            else:
                why = f"entry seq {n} was replaced, or the stored head was edited"
            raise LedgerCorrupt(
                f"ledger {self.location}: the chain ends at entry seq {n} ({head[:16]}...) but "
                f"the ledger recorded its last entry as seq {seq} ({h[:16]}...): {why}"
            )
        return entries

    def verify_full(self) -> tuple[int, str]:
        """The backend's integrity check, the chain and the stored head; ``(entries, head)``."""
        with self.read():
            self._integrity()
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
        self._insert([row[f] for f in FIELDS], (entry["seq"], entry["hash"]))
        return entry

    def datasets(self) -> list[str]:
        """Ids of the datasets with a cap in this ledger (read, not verified)."""
        with self.read():
            return sorted({e["dataset_id"] for e in self.entries() if e["kind"] == "cap"})


def open_store(
    location: str | os.PathLike, *, create: bool, readonly: bool, timeout: float
) -> LedgerStore:
    """The store of the ledger at ``location``: a ``postgresql://`` URL or an SQLite file.

    Raises
    ------
    LedgerError
        A URL of another kind, or a ledger that cannot be opened (see the backends).
    """
    if is_url(location):
        scheme = _URL.match(str(location)).group(1).lower()  # type: ignore[union-attr]
        if scheme not in POSTGRES_SCHEMES:
            raise LedgerError(
                f"ledger URL scheme {scheme!r} is not supported: use a file path (SQLite) or "
                "postgresql://user@host:port/database"
            )
        from privsynth.budget.pgstore import PostgresStore

        return PostgresStore(str(location), create=create, readonly=readonly, timeout=timeout)
    from privsynth.budget.store import Store

    return Store(location, create=create, readonly=readonly, timeout=timeout)


def ledger_exists(location: str | os.PathLike, *, timeout: float = 30.0) -> bool:
    """Whether a ledger is at ``location`` (a file, or a database holding its tables)."""
    if not is_url(location):
        return Path(location).expanduser().exists()
    with open_store(location, create=True, readonly=False, timeout=timeout) as store:
        return store.exists()  # opening writes nothing


def verify_ledger(location: str | os.PathLike, *, timeout: float = 30.0) -> tuple[int, str]:
    """Verify a ledger read-only (integrity, hash chain, stored head); ``(entries, head)``."""
    with open_store(location, create=False, readonly=True, timeout=timeout) as store:
        return store.verify_full()


def list_datasets(location: str | os.PathLike, *, timeout: float = 30.0) -> list[str]:
    """Dataset ids with a cap in the ledger at ``location`` (``[]`` if there is none yet)."""
    if not ledger_exists(location, timeout=timeout):
        return []
    with open_store(location, create=False, readonly=True, timeout=timeout) as store:
        return store.datasets()


def read_chain(location: str | os.PathLike, *, timeout: float = 30.0) -> list[dict]:
    """The whole chain of the ledger at ``location`` (every dataset), read-only and verified."""
    with open_store(location, create=False, readonly=True, timeout=timeout) as store:
        with store.read():
            entries = store.entries()
        verify_entries(entries, source=store.location)
    return plain_copy(entries)
