"""The ledger in PostgreSQL: what is particular to a server (the shared behaviour is tested on
both backends in test_ledger.py and tests/system/test_ledger_reliability.py).

Errors name the URL without its password and say what to do; an export is byte-identical to
SQLite's for the same entries; a write that loses a serialization conflict runs again.
"""

from __future__ import annotations

import contextlib
import itertools
import uuid
from urllib.parse import quote

import psycopg
import pytest

from privsynth.budget import ZCDP, Budget, Ledger, PureDP, list_datasets, verify_ledger
from privsynth.budget.backend import redact_url
from privsynth.errors import LedgerError
from tests.ledger_backends import PASSWORD, PASSWORD_ROLE, execute, snapshot

CAP = Budget(1.0, 1e-9)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


# ------------------------------------------------------------------------------ connecting


def test_an_unreachable_server_is_a_clear_error(pg_server):
    with socket_closed_port() as port:
        url = f"postgresql://postgres@127.0.0.1:{port}/ledger"
        with pytest.raises(LedgerError) as exc:
            Ledger.open(url, dataset_id="d", cap=CAP)
    msg = _one_line(exc)
    assert msg.startswith(f"cannot reach the PostgreSQL server of ledger {url} (")
    assert "is running" in msg


@contextlib.contextmanager
def socket_closed_port():
    """A local port nothing listens on (while the block runs)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        yield s.getsockname()[1]


def test_a_wrong_password_is_named_without_the_password(pg_server):
    url = pg_server.url(user=f"{PASSWORD_ROLE}:wrong-secret-42")
    with pytest.raises(LedgerError) as exc:
        Ledger.open(url, dataset_id="d", cap=CAP)
    msg = _one_line(exc)
    assert "authentication failed" in msg and "PGPASSWORD" in msg
    assert f"postgresql://{PASSWORD_ROLE}@127.0.0.1:{pg_server.port}/postgres" in msg
    assert "wrong-secret-42" not in msg


def test_the_password_comes_from_pgpassword(pg_server, monkeypatch):
    url = pg_server.new_database(owner=PASSWORD_ROLE).replace("postgres@", f"{PASSWORD_ROLE}@")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    with pytest.raises(LedgerError, match="authentication failed"):
        Ledger.open(url, dataset_id="d", cap=CAP)
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    with Ledger.open(url, dataset_id="d", cap=CAP) as led:
        led.reserve(PureDP(0.5), purpose="with the password from the environment")
    assert verify_ledger(url)[0] == 2


def test_a_missing_database_is_a_clear_error(pg_server):
    url = pg_server.url(f"no_such_db_{uuid.uuid4().hex[:8]}")
    with pytest.raises(LedgerError) as exc:
        Ledger.open(url, dataset_id="d", cap=CAP)
    assert "does not exist" in _one_line(exc) and "createdb" in str(exc.value)


def test_other_url_schemes_are_refused():
    with pytest.raises(LedgerError, match="scheme 'mysql' is not supported"):
        Ledger.open("mysql://me@db/ledger", dataset_id="d", cap=CAP)


def test_urls_are_shown_without_their_password():
    assert redact_url("postgresql://bob:pw@h/db") == "postgresql://bob@h/db"
    assert redact_url("postgres://h:5433/db?password=pw&sslmode=verify-full") == (
        "postgres://h:5433/db?sslmode=verify-full"
    )


# ------------------------------------------------------------------------------ contents


def test_an_empty_database_is_no_ledger_until_the_first_write(pg_url):
    with pytest.raises(LedgerError, match="no ledger at .*privsynth ledger init"):
        Ledger.open(pg_url, dataset_id="d", readonly=True)
    assert list_datasets(pg_url) == []
    assert snapshot(pg_url) is None  # looking wrote nothing


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        (["CREATE TABLE privsynth_entries (x int)"], "only one of the tables"),
        (
            [
                "CREATE TABLE privsynth_meta (key text PRIMARY KEY, value text)",
                "INSERT INTO privsynth_meta VALUES ('format', 'someone-else/3')",
                "CREATE TABLE privsynth_entries (x int)",
            ],
            "has ledger format 'someone-else/3'",
        ),
        (
            [
                "CREATE TABLE privsynth_meta (key text PRIMARY KEY, value text)",
                "INSERT INTO privsynth_meta VALUES ('format', 'privsynth-ledger/1')",
                "CREATE TABLE privsynth_entries (x int)",
            ],
            "not a privsynth ledger",
        ),
    ],
)
def test_tables_that_are_not_a_ledger_are_refused(pg_url, setup, match):
    execute(pg_url, *[(sql, ()) for sql in setup])
    with (
        pytest.raises(LedgerError, match=match) as exc,
        Ledger.open(pg_url, dataset_id="d", cap=CAP) as led,
    ):
        led.reserve(PureDP(0.1), purpose="x")
    assert pg_url in _one_line(exc)


def test_a_user_without_write_rights_reads_and_is_told_what_to_grant(pg_server, pg_url):
    with Ledger.open(pg_url, dataset_id="d", cap=CAP) as led:
        led.reserve(PureDP(0.25), purpose="by the owner")
    execute(pg_url, (f"GRANT SELECT ON privsynth_entries, privsynth_meta TO {PASSWORD_ROLE}", ()))
    reader = pg_url.replace("postgres@", f"{PASSWORD_ROLE}:{quote(PASSWORD)}@")
    with Ledger.open(reader, dataset_id="d") as led:
        assert led.spent().epsilon == 0.25
        before = snapshot(pg_url)
        with pytest.raises(LedgerError, match="permission denied.*grant") as exc:
            led.reserve(PureDP(0.25), purpose="by a reader")
    assert PASSWORD not in _one_line(exc) and quote(PASSWORD) not in str(exc.value)
    assert snapshot(pg_url) == before
    # What docs/ledger.md says a user who spends needs.
    execute(
        pg_url,
        (f"GRANT INSERT, UPDATE ON privsynth_entries, privsynth_meta TO {PASSWORD_ROLE}", ()),
    )
    with Ledger.open(reader, dataset_id="d") as led:
        led.reserve(PureDP(0.25), purpose="by a granted user")
        assert led.spent().epsilon == 0.5


def test_one_database_holds_a_ledger_per_schema(pg_url):
    execute(pg_url, ("CREATE SCHEMA team_a", ()), ("CREATE SCHEMA team_b", ()))
    urls = [f"{pg_url}?options=-csearch_path%3D{team}" for team in ("team_a", "team_b")]
    for url, spend in zip(urls, (0.25, 0.5), strict=True):
        with Ledger.open(url, dataset_id="d", cap=CAP) as led:
            led.reserve(PureDP(spend), purpose="per team")
    for url, spend in zip(urls, (0.25, 0.5), strict=True):
        with Ledger.open(url, dataset_id="d", readonly=True) as led:
            assert led.spent().epsilon == spend
    assert snapshot(pg_url) is None  # nothing in the default schema


# ------------------------------------------------------------------------------ export


def _build(location, monkeypatch) -> str:
    """The same operations, with the same clock and reservation ids, on a new ledger."""
    clock = (f"2026-01-01T00:00:{s:02d}.000000Z" for s in itertools.count())
    ids = (uuid.UUID(int=i) for i in itertools.count(1))
    monkeypatch.setattr("privsynth.budget.backend._now", lambda: next(clock))
    monkeypatch.setattr("privsynth.budget.ledger.uuid.uuid4", lambda: next(ids))
    with (
        Ledger.open(location, dataset_id="adult", cap=Budget(3.0, 1e-9)) as adult,
        Ledger.open(location, dataset_id="census", cap=Budget(1.0, 0.0)) as census,
    ):
        adult.reserve(ZCDP(0.01), purpose="MST release ü", metadata={"rows": 10, "f": 0.1})
        adult.reserve(ZCDP(0.01), purpose="release").commit({"sha256": "ab" * 32})
        census.reserve(PureDP(1 / 3), purpose="histogram").cancel("job failed")
        adult.set_cap(Budget(4.0, 1e-9), reason="approved")
        return adult.head()


def test_an_export_is_byte_identical_to_sqlites_for_the_same_entries(pg_url, tmp_path, monkeypatch):
    heads = [_build(tmp_path / "ledger.db", monkeypatch), _build(pg_url, monkeypatch)]
    assert heads[0] == heads[1]
    outs = [tmp_path / "sqlite.jsonl", tmp_path / "postgres.jsonl"]
    for location, out in zip([tmp_path / "ledger.db", pg_url], outs, strict=True):
        with Ledger.open(location, dataset_id="adult", readonly=True) as led:
            assert led.export_jsonl(out) == 8
    assert outs[0].read_bytes() == outs[1].read_bytes()


# ------------------------------------------------------------------------------ conflicts


def test_a_write_that_loses_a_serialization_conflict_runs_again(pg_url):
    with Ledger.open(pg_url, dataset_id="d", cap=CAP) as led:
        store = led._store
        real = store.transaction
        lost: list[str] = []

        @contextlib.contextmanager
        def conflicting(action):
            with real(action):
                yield
                if not lost:  # the first attempt loses, after writing the cap and reserve
                    lost.append(action)
                    with store.errors(action):
                        raise psycopg.errors.SerializationFailure("could not serialize access")

        store.transaction = conflicting
        res = led.reserve(PureDP(0.25), purpose="retried")
        assert lost == ["reserving budget"]
        entries = led.entries()
    assert [(e["kind"], e["reservation"]) for e in entries] == [("cap", None), ("reserve", res.id)]
    assert verify_ledger(pg_url)[0] == 2


def test_a_conflict_that_outlasts_the_timeout_is_reported(pg_url):
    with Ledger.open(pg_url, dataset_id="d", cap=CAP, timeout=0.2) as led:
        store = led._store
        real = store.transaction

        @contextlib.contextmanager
        def always_conflicting(action):
            with real(action):
                yield
                with store.errors(action):
                    raise psycopg.errors.SerializationFailure("could not serialize access")

        store.transaction = always_conflicting
        with pytest.raises(LedgerError, match="kept conflicting.*nothing of it was recorded"):
            led.reserve(PureDP(0.25), purpose="never")
    assert snapshot(pg_url)[0] == []  # the tables were made; no entry was recorded


def test_connections_use_tcp_keepalives_unless_the_url_sets_them(pg_url):
    # A network that drops without a reset must be noticed in about a minute, not hours.
    with Ledger.open(pg_url, dataset_id="d", cap=Budget(1.0, 0.0)) as led:
        used = led._store.conn.info.get_parameters()
    assert (used["keepalives"], used["keepalives_idle"]) == ("1", "30")
    sep = "&" if "?" in pg_url else "?"
    with Ledger.open(
        f"{pg_url}{sep}keepalives_idle=7", dataset_id="d", cap=Budget(1.0, 0.0)
    ) as led:
        assert led._store.conn.info.get_parameters()["keepalives_idle"] == "7"


def test_opening_waits_for_a_ledger_being_created_and_then_reads_it_whole(pg_url):
    # Another process is creating the ledger (its tables and format row, not yet committed).
    # Opening must wait for it and then see the tables and the format together: reading the
    # catalog and the rows in one snapshot once saw the tables without their format row.
    import threading

    from privsynth.budget.pgstore import _CREATE_LOCK, _SCHEMA, FORMAT, META

    with Ledger.open(pg_url, dataset_id="d", cap=Budget(1.0, 0.0)):
        pass  # makes nothing: the database is still empty
    creator = psycopg.connect(pg_url, autocommit=True)
    try:
        creator.execute("BEGIN")
        creator.execute("SELECT pg_advisory_xact_lock(%s)", (_CREATE_LOCK,))
        for statement in _SCHEMA:
            creator.execute(statement)
        creator.execute(f"INSERT INTO {META} (key, value) VALUES ('format', %s)", (FORMAT,))
        opened: list = []
        # list_datasets opens read-only: it needs the ledger's tables
        reader = threading.Thread(target=lambda: opened.append(list_datasets(pg_url)))
        reader.start()
        reader.join(1.0)
        assert reader.is_alive()  # waiting for the creator, not "no ledger" at once
        creator.execute("COMMIT")
    finally:
        creator.close()  # an uncommitted creation is rolled back, its lock released
    reader.join(30)
    assert opened == [[]]  # a whole, empty ledger
