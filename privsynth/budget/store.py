"""The ledger file: one SQLite database, its locking, transactions and rows (the embedded
backend of :mod:`privsynth.budget.backend`).

Writes happen inside ``BEGIN IMMEDIATE`` transactions (one writer at a time; waiters poll with
jitter until the timeout), the file is in WAL mode with ``synchronous=FULL``, and a crash
leaves either a whole entry or none.  Every read re-verifies the chain
(:mod:`privsynth.budget.chain`) and that it ends at the head recorded with the last write.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from privsynth.budget.backend import FORMAT, LedgerStore
from privsynth.budget.backend import read_chain as read_chain  # where report.verify imports it
from privsynth.budget.chain import FIELDS
from privsynth.errors import LedgerCorrupt, LedgerError

#: The first bytes of every SQLite file: how a ledger is told apart from any other file.
SQLITE_MAGIC = b"SQLite format 3\x00"

T = TypeVar("T")

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


class Store(LedgerStore):
    """One SQLite ledger file: connection, locking, transactions, its rows."""

    path: Path

    def __init__(
        self, path: str | os.PathLike, *, create: bool, readonly: bool, timeout: float
    ) -> None:
        super().__init__()
        self.path = Path(path).expanduser().absolute()
        self.location = str(self.path)
        self.name = self.path.name
        self.readonly = readonly
        self.timeout = float(timeout)
        self.conn: sqlite3.Connection | None = None
        self.closed = False
        self._preflight(create)
        if not self.path.exists():
            return  # a new ledger: the file is made whole by the first write (:meth:`_create`)
        self._connect(create)

    # -- opening ------------------------------------------------------------------------------

    def _connect(self, create: bool) -> None:
        with self.errors("opening"):
            if self.readonly:
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

    def _create(self) -> None:
        """Make the ledger file whole before anyone can see it.

        The schema and WAL mode are written to a private file in the same directory, which is
        then hard-linked to the ledger's path: the link fails if another process got there
        first (then its file is used), so racing processes never meet a half-made file, and
        no two of them switch one file to WAL at once (a lock upgrade SQLite may refuse at
        once rather than wait for).
        """
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{random.getrandbits(32):08x}")
        try:
            with self.errors("creating the ledger"):
                conn = sqlite3.connect(str(tmp), isolation_level=None)
                try:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("BEGIN IMMEDIATE")
                    for statement in _SCHEMA:
                        conn.execute(statement)
                    conn.execute("INSERT INTO meta(key, value) VALUES ('format', ?)", (FORMAT,))
                    conn.execute("COMMIT")
                finally:
                    conn.close()
            with contextlib.suppress(FileExistsError):
                os.link(tmp, self.path)
        except OSError as exc:
            raise LedgerError(f"cannot create ledger {self.path}: {exc.strerror or exc}") from None
        finally:
            for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
        self._connect(create=False)

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
                head = fh.read(len(SQLITE_MAGIC))
        except OSError as exc:
            raise LedgerError(f"cannot read ledger {p}: {exc.strerror or exc}") from None
        if head and head != SQLITE_MAGIC:
            raise LedgerError(
                f"{p} is not a privsynth ledger (not an SQLite database); check the path"
            )

    def _init_schema(self, create: bool) -> None:
        assert self.conn is not None
        conn = self.conn
        with self.errors("opening"):
            tables = {
                r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if tables and not {"meta", "entries"} <= tables:
                raise LedgerError(f"{self.path} is an SQLite database but not a privsynth ledger")
            if not self.readonly:
                mode = self._when_free(
                    lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                )
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
        self.closed = True
        if self.conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self.conn.close()
            self.conn = None

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
        """A write transaction (``BEGIN IMMEDIATE``: one writer at a time, waits ``timeout``).

        The first write to a new ledger creates its file."""
        if self.readonly:
            raise LedgerError(f"ledger {self.path} was opened read-only; cannot record entries")
        self._ensure_open(create=True)
        assert self.conn is not None
        conn = self.conn
        with self.errors(action):
            self._when_free(lambda: conn.execute("BEGIN IMMEDIATE"))
        try:
            yield
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        with self.errors(action):
            conn.execute("COMMIT")

    def _ensure_open(self, *, create: bool) -> None:
        """Connect to a ledger that had no file when opened, once it has one (or make it)."""
        if self.closed:
            raise LedgerError(f"ledger {self.path} is closed")
        if self.conn is not None:
            return
        if self.path.exists():
            self._connect(create)
        elif create:
            self._create()

    def _when_free(self, step: Callable[[], T]) -> T:
        """Run ``step``, retrying every few milliseconds (with jitter) while the file is locked,
        until ``timeout``.

        SQLite's own busy handler backs off to 100 ms sleeps, which starves waiters behind a
        busy writer, and it is skipped outright where waiting could deadlock (two connections
        upgrading a lock at once); short jittered retries give every process a fair chance.
        """
        assert self.conn is not None
        deadline = time.monotonic() + self.timeout
        self.conn.execute("PRAGMA busy_timeout = 0")
        try:
            while True:
                try:
                    return step()
                except sqlite3.OperationalError as exc:
                    msg = str(exc).lower()
                    if ("locked" not in msg and "busy" not in msg) or time.monotonic() > deadline:
                        raise
                time.sleep(random.uniform(0.0005, 0.005))
        finally:
            self.conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        """A read transaction: a consistent snapshot for several SELECTs (of nothing, for a new
        ledger whose file no write has made yet)."""
        self._ensure_open(create=False)
        if self.conn is None or self.conn.in_transaction:
            yield
            return
        with self.errors("reading"):
            self.conn.execute("BEGIN")
        try:
            yield
        finally:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("COMMIT")

    # -- rows -------------------------------------------------------------------------------

    def exists(self) -> bool:
        return self.conn is not None or self.path.exists()

    def _rows(self) -> list[tuple]:
        if self.conn is None:  # no file yet
            return []
        with self.errors("reading entries"):
            return self.conn.execute(
                f"SELECT {', '.join(FIELDS)} FROM entries ORDER BY seq"
            ).fetchall()

    def _head_rows(self) -> dict[str, str]:
        if self.conn is None:  # no file yet
            return {}
        with self.errors("reading"):
            return dict(
                self.conn.execute(
                    "SELECT key, value FROM meta WHERE key IN ('head_seq', 'head_hash')"
                )
            )

    def _integrity(self) -> None:
        if self.conn is None:  # no file yet: nothing to check
            return
        with self.errors("checking SQLite integrity"):
            check = self.conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise LedgerCorrupt(f"ledger {self.path}: SQLite integrity check failed: {check}")

    def _insert(self, row: Sequence[Any], head: tuple[int, str]) -> None:
        assert self.conn is not None and self.conn.in_transaction
        with self.errors(f"recording a {row[FIELDS.index('kind')]} entry"):
            self.conn.execute(
                f"INSERT INTO entries ({', '.join(FIELDS)}) "
                f"VALUES ({', '.join('?' * len(FIELDS))})",
                list(row),
            )
            self.conn.executemany(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                [("head_seq", str(head[0])), ("head_hash", head[1])],
            )
