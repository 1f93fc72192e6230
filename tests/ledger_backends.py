"""The two ledger backends in tests: a throwaway PostgreSQL server, and raw SQL on either.

The fixtures in ``tests/conftest.py`` start one :class:`Server` (initdb + pg_ctl on 127.0.0.1)
per test session when PostgreSQL is installed (``initdb`` on PATH or under
``/usr/lib/postgresql/*/bin``) and make a fresh database per test.  PostgreSQL refuses to run
as root, so as root the server runs as the ``postgres`` user the Debian package creates.

:func:`execute` and :func:`row` reach past privsynth into a ledger's tables, as someone
tampering with it would: SQL written once (``{entries}``, ``{meta}``, ``?`` parameters) runs on
an SQLite file or a PostgreSQL database.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

from privsynth.budget.backend import is_url

#: A role that must give a password (scram-sha-256), for the authentication-failure tests;
#: every other local connection is trusted.
PASSWORD_ROLE = "needs_password"
PASSWORD = "correct horse battery staple"


def find_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl`` (the newest installed), or ``None``."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    return Path(versions[-1]).parent if versions else None


def _version(path: str) -> tuple[int, ...]:
    return tuple(int(p) for p in Path(path).parent.parent.name.split(".") if p.isdigit())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One PostgreSQL cluster in a temporary folder, listening on 127.0.0.1:``port``."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="privsynth-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self._user: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            owner = pwd.getpwnam("postgres")
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
            self._user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self._user, *args], check=True, capture_output=True, text=True)

    def start(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",  # a throwaway cluster: nothing to keep after a crash
        )
        (self.data / "pg_hba.conf").write_text(
            f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n"
            "host all all 127.0.0.1/32 trust\n"
            "local all all trust\n"
        )
        self.resume()
        self.sql(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'")

    def resume(self) -> None:
        """Start (again) the server; returns once it accepts connections."""
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "server.log"),
            "-w",
            "-o",
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.dir} -c fsync=off -c max_connections=100",
            "start",
        )

    def stop(self) -> None:
        """Stop the server at once (``immediate``: like a crash, for connection-loss tests)."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, params: tuple = (), database: str = "postgres") -> list[tuple]:
        """Run one statement as the superuser (autocommit); its rows, if it returns any."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

    def new_database(self, template: str | None = None, owner: str = "postgres") -> str:
        """A fresh database (empty, or a copy of the database at URL ``template``); its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        copy = f" TEMPLATE {template.rsplit('/', 1)[1]}" if template else ""
        self.sql(f"CREATE DATABASE {name}{copy} OWNER {owner}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop the database at ``url`` (each is a few MB on disk), ending its connections."""
        self.sql(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")


def _sql(location: str | os.PathLike, statement: str) -> str:
    if is_url(location):
        return statement.format(entries="privsynth_entries", meta="privsynth_meta").replace(
            "?", "%s"
        )
    return statement.format(entries="entries", meta="meta")


def execute(location: str | os.PathLike, *statements: tuple[str, tuple]) -> None:
    """Run ``(sql, params)`` statements in one transaction on the ledger's tables directly."""
    if is_url(location):
        import psycopg

        with psycopg.connect(str(location)) as conn:  # one transaction, committed on exit
            for sql, params in statements:
                conn.execute(_sql(location, sql), params)
        return
    con = sqlite3.connect(location, isolation_level=None)
    try:
        con.execute("BEGIN")
        for sql, params in statements:
            con.execute(_sql(location, sql), params)
        con.execute("COMMIT")
    finally:
        con.close()


def row(location: str | os.PathLike, seq: int) -> dict[str, Any]:
    """The stored row of entry ``seq``, as column -> value."""
    sql = _sql(location, "SELECT * FROM {entries} WHERE seq = ?")
    if is_url(location):
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(str(location), row_factory=dict_row) as conn:
            found = conn.execute(sql, (seq,)).fetchone()
            assert found is not None
            return dict(found)
    con = sqlite3.connect(location)
    con.row_factory = sqlite3.Row
    try:
        return dict(con.execute(sql, (seq,)).fetchone())
    finally:
        con.close()


def snapshot(location: str | os.PathLike) -> Any:
    """What is stored at ``location``, to compare before and after: an SQLite file's bytes, or
    a database's ledger rows; ``None`` while there is no ledger there."""
    if not is_url(location):
        path = Path(location)
        return path.read_bytes() if path.exists() else None
    import psycopg

    with psycopg.connect(str(location)) as conn:
        if conn.execute("SELECT to_regclass('privsynth_entries')").fetchone() == (None,):
            return None
        entries = conn.execute("SELECT * FROM privsynth_entries ORDER BY seq").fetchall()
        meta = conn.execute("SELECT * FROM privsynth_meta ORDER BY key").fetchall()
        return entries, meta
