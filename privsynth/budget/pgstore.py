"""A ledger in a PostgreSQL database, for a team that shares one budget (``postgresql://`` URLs).

The backend of :mod:`privsynth.budget.backend` for a server: the same entries, hash chain and
stored head as an SQLite file, in two tables of the database (``privsynth_entries`` and
``privsynth_meta``, in the first schema of the connection's ``search_path``).  The JSON fields
are stored as ``text``, never ``jsonb``: the hashes are over the exact canonical text, which
``jsonb`` would re-format.

A write is one ``SERIALIZABLE`` transaction that first takes an ``EXCLUSIVE`` lock on the
entries table (readers go on; the next writer waits up to ``timeout``), so each writer sees
every entry committed before it; a serialization failure or deadlock rolls the transaction
back and it is run again.  ``synchronous_commit`` is on for it, whatever the server's default:
an entry is on the server's disk when the write returns.  Reads are ``REPEATABLE READ READ
ONLY`` snapshots.  Opening writes nothing: the tables are made by the first write.

A lost connection fails the step that was running with a :class:`LedgerError` (what the server
committed stays: a reservation it recorded is spent); the next step connects again.  Messages
name the URL without its password (give it in ``PGPASSWORD`` or ``~/.pgpass``).

psycopg 3 is imported on first use: ``pip install 'privsynth[postgres]'``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from privsynth.budget.backend import FORMAT, LedgerStore, WriteConflict, redact_url
from privsynth.budget.chain import FIELDS
from privsynth.errors import LedgerCorrupt, LedgerError

ENTRIES = "privsynth_entries"
META = "privsynth_meta"

_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {META} (key text PRIMARY KEY, value text NOT NULL)",
    f"""CREATE TABLE IF NOT EXISTS {ENTRIES} (
        seq bigint PRIMARY KEY,
        time text NOT NULL,
        dataset_id text NOT NULL,
        kind text NOT NULL,
        purpose text NOT NULL,
        events text NOT NULL,
        reservation text,
        metadata text NOT NULL,
        prev_hash text NOT NULL,
        hash text NOT NULL
    )""",
)
#: The advisory lock that makes creating the tables one process's job (CREATE TABLE IF NOT
#: EXISTS alone can fail on a name clash in the catalog when two sessions run it at once).
_CREATE_LOCK = 0x70726976_6C656467  # "privledg"

#: SQLSTATEs: the transaction lost a conflict and was rolled back, so it can run again.
_CONFLICT = {"40001", "40P01"}
#: libpq's TCP keepalives, unless the URL sets them: a connection whose network drops
#: silently (no reset reaches us) is found dead in about a minute (30 s idle, then 3 probes
#: 10 s apart), not after the operating system's default of about two hours.
KEEPALIVES = {
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
}


def _password(url: str) -> str | None:
    parts = urlsplit(url)
    passwords = [unquote(parts.password)] if parts.password else []
    passwords += [v for k, v in parse_qsl(parts.query) if k == "password"]
    return passwords[0] if passwords else None


def _import_psycopg(location: str) -> Any:
    try:
        import psycopg
    except ImportError:
        raise LedgerError(
            f"ledger {location} is a PostgreSQL database, which needs psycopg 3: "
            "pip install 'privsynth[postgres]'"
        ) from None
    return psycopg


class PostgresStore(LedgerStore):
    """A ledger in a PostgreSQL database: connection, transactions, its rows."""

    def __init__(self, url: str, *, create: bool, readonly: bool, timeout: float) -> None:
        super().__init__()
        self.url = url
        self.location = redact_url(url)
        self.path = self.location
        self.name = unquote(urlsplit(url).path.lstrip("/")) or "postgresql"
        self.readonly = readonly
        self.timeout = float(timeout)
        self.closed = False
        self._secret = _password(url)
        self._pg = _import_psycopg(self.location)
        self.conn: Any = None
        self._connect()
        try:
            self._present = self._tables_present()
        except BaseException:
            self.close()
            raise
        if not self._present and (readonly or not create):
            self.close()
            raise LedgerError(
                f"no ledger at {self.location} (the database holds no privsynth ledger tables); "
                f"create one with `privsynth ledger init {self.location} --dataset-id ID "
                "--cap-epsilon E --cap-delta D` (or Ledger.open(..., cap=Budget(E, D)))"
            )

    # -- connecting ---------------------------------------------------------------------------

    def _one_line(self, exc: BaseException) -> str:
        """The error's text on one line, without the password should the server echo it."""
        text = " ".join(str(exc).split())
        return text.replace(self._secret, "***") if self._secret else text

    def _connect(self) -> None:
        where = self.location
        try:
            given = self._pg.conninfo.conninfo_to_dict(self.url)
            self.conn = self._pg.connect(
                self.url,
                autocommit=True,  # transactions are begun and ended explicitly
                connect_timeout=max(1, round(self.timeout)),
                application_name="privsynth",
                **{k: v for k, v in KEEPALIVES.items() if k not in given},
            )
        except self._pg.OperationalError as exc:
            why = self._one_line(exc)
            low = why.lower()
            if "password" in low or "authentication" in low or "pg_hba.conf" in low:
                raise LedgerError(
                    f"authentication failed for ledger {where} ({why}); check the user name and "
                    "give the password in PGPASSWORD or ~/.pgpass, not in a URL in a shared script"
                ) from None
            if "does not exist" in low and "database" in low:
                raise LedgerError(
                    f"the database of ledger {where} does not exist ({why}); create it (e.g. "
                    "`createdb NAME`) or check the URL"
                ) from None
            raise LedgerError(
                f"cannot reach the PostgreSQL server of ledger {where} ({why}); check that it "
                "is running and that the host and port in the URL are right"
            ) from None
        except self._pg.Error as exc:  # a malformed URL, an unknown option...
            raise LedgerError(f"cannot connect to ledger {where}: {self._one_line(exc)}") from None

    def _live(self) -> Any:
        """The connection, connecting again if the last one was lost."""
        if self.closed:
            raise LedgerError(f"ledger {self.location} is closed")
        if self.conn is None or self.conn.closed:
            self._connect()
        return self.conn

    def close(self) -> None:
        self.closed = True
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None

    # -- errors and transactions --------------------------------------------------------------

    @contextlib.contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Turn psycopg errors into :class:`LedgerError` with a message that says what to do."""
        pg = self._pg
        try:
            yield
        except pg.Error as exc:
            where, why = self.location, self._one_line(exc)
            state = getattr(exc, "sqlstate", None)
            err: LedgerError
            if state in _CONFLICT:
                err = WriteConflict(
                    f"ledger {where}: the transaction {action} kept conflicting with other "
                    f"writers for {self.timeout:g} s ({why}); nothing of it was recorded; retry"
                )
            elif state == "55P03":  # lock_not_available: lock_timeout ran out
                err = LedgerError(
                    f"ledger {where} is locked by another process (waited {self.timeout:g} s "
                    f"while {action}); retry when it has finished"
                )
            elif state == "42501":  # insufficient_privilege
                err = LedgerError(
                    f"ledger {where}: permission denied while {action} ({why}); ask the "
                    f"database's owner to grant this user SELECT (to read) and INSERT, UPDATE "
                    f"(to spend) on {ENTRIES} and {META}, or CREATE on the schema for a new "
                    "ledger"
                )
            elif state in ("42P01", "42703", "42804"):  # undefined table/column, wrong type
                err = LedgerError(
                    f"{where} holds tables named {ENTRIES}/{META} that are not a privsynth "
                    f"ledger ({why}); use another database or schema for the ledger"
                )
            elif state == "25006":  # read_only_sql_transaction: e.g. a standby server
                err = LedgerError(
                    f"ledger {where}: the server is read-only (a standby?) while {action}; "
                    "connect to the primary to record spends"
                )
            elif self.conn is None or self.conn.closed or self.conn.broken:
                self._drop()
                err = LedgerError(
                    f"lost the connection to the PostgreSQL server of ledger {where} while "
                    f"{action} ({why}); what the server recorded stands (a reservation it "
                    f"recorded stays spent): check with `privsynth ledger show {where}`"
                )
            else:
                err = LedgerError(f"ledger {where}: PostgreSQL error while {action}: {why}")
            raise err from None

    def _drop(self) -> None:
        """Forget a broken connection: the next step connects again."""
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None

    @contextlib.contextmanager
    def transaction(self, action: str) -> Iterator[None]:
        """A ``SERIALIZABLE`` write transaction holding the entries table's ``EXCLUSIVE`` lock
        (other writers wait up to ``timeout``); the first write makes the tables."""
        if self.readonly:
            raise LedgerError(f"ledger {self.location} was opened read-only; cannot record entries")
        with self.errors(action):
            conn = self._live()
            if not self._present:
                self._create(conn)
            conn.execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
        try:
            with self.errors(action):
                # Before any query, so the transaction's snapshot is taken once the lock is
                # held: it then sees every entry committed by the writer before it.
                conn.execute(f"SET LOCAL lock_timeout = {int(self.timeout * 1000)}")
                conn.execute("SET LOCAL synchronous_commit = on")
                conn.execute(f"LOCK TABLE {ENTRIES} IN EXCLUSIVE MODE")
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                if self.conn is not None and not self.conn.closed:
                    self.conn.execute("ROLLBACK")
            raise
        with self.errors(action):
            conn.execute("COMMIT")

    def _create(self, conn: Any) -> None:
        """Make the ledger's tables (once: racing first writers wait for each other)."""
        conn.execute("BEGIN")
        try:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CREATE_LOCK,))
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(
                f"INSERT INTO {META} (key, value) VALUES ('format', %s) "
                "ON CONFLICT (key) DO NOTHING",
                (FORMAT,),
            )
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                conn.execute("ROLLBACK")
            raise
        self._present = True

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        """A read-only snapshot for several SELECTs (inside a write transaction: that one)."""
        with self.errors("reading"):
            conn = self._live()
            if conn.info.transaction_status != self._pg.pq.TransactionStatus.IDLE:
                inside = True
            else:
                inside = False
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        if inside:
            yield
            return
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                if self.conn is not None and not self.conn.closed:
                    self.conn.execute("COMMIT")

    # -- rows ---------------------------------------------------------------------------------

    def _tables_present(self) -> bool:
        """Whether the ledger's tables are there (checking they hold a ledger of this format).

        Each query is its own transaction (the connection autocommits), after waiting for a
        creator that holds the creation lock: inside one snapshot, the catalog could show
        tables a creator committed after the snapshot was taken while their rows (the
        format) stayed invisible.
        """
        with self.errors("opening"):
            self.conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (_CREATE_LOCK,))
            found = self.conn.execute(
                "SELECT to_regclass(%s) IS NOT NULL, to_regclass(%s) IS NOT NULL", (ENTRIES, META)
            ).fetchone()
        if not any(found):
            return False
        if not all(found):
            raise LedgerError(
                f"{self.location} holds only one of the tables {ENTRIES} and {META}: it is not a "
                "whole privsynth ledger; use another database or schema"
            )
        self._check_format()
        return True

    def _check_format(self) -> None:
        with self.errors("opening"):
            row = self.conn.execute(f"SELECT value FROM {META} WHERE key = 'format'").fetchone()
        if row is None or row[0] != FORMAT:
            raise LedgerError(
                f"{self.location} has ledger format {row[0] if row else None!r}; this privsynth "
                f"reads {FORMAT!r}"
            )

    def exists(self) -> bool:
        return self._present

    def _rows(self) -> list[tuple]:
        if not self._present:
            return []
        with self.errors("reading entries"):
            rows = (
                self._live()
                .execute(f"SELECT {', '.join(FIELDS)} FROM {ENTRIES} ORDER BY seq")
                .fetchall()
            )
        return [tuple(r) for r in rows]

    def _head_rows(self) -> dict[str, str]:
        if not self._present:
            return {}
        with self.errors("reading"):
            rows = (
                self._live()
                .execute(f"SELECT key, value FROM {META} WHERE key IN ('head_seq', 'head_hash')")
                .fetchall()
            )
        return dict(rows)

    def _integrity(self) -> None:
        if not self._present:
            return
        try:
            self._check_format()
        except LedgerError as exc:
            raise LedgerCorrupt(str(exc)) from None

    def _insert(self, row: Sequence[Any], head: tuple[int, str]) -> None:
        kind = row[FIELDS.index("kind")]
        with self.errors(f"recording a {kind} entry"):
            conn = self._live()
            conn.execute(
                f"INSERT INTO {ENTRIES} ({', '.join(FIELDS)}) "
                f"VALUES ({', '.join(['%s'] * len(FIELDS))})",
                list(row),
            )
            conn.execute(
                f"INSERT INTO {META} (key, value) VALUES ('head_seq', %s), ('head_hash', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (str(head[0]), head[1]),
            )
