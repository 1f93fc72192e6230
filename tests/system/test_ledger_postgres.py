"""A team ledger on a PostgreSQL server, end to end: releases through the CLI, and connections
lost while a reservation or a release is under way.

A lost connection fails the step that was running with one line naming the URL; what the
server recorded stands (a reservation it recorded stays spent, a transaction it did not
commit left nothing); the next step connects again.
"""

from __future__ import annotations

import json
import threading
import time

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privsynth.budget import Budget, Ledger, PureDP, verify_ledger
from privsynth.cli import main
from privsynth.errors import EXIT_CODES, LedgerError
from privsynth.pipeline import release
from privsynth.report.keys import keygen
from privsynth.report.verify import verify_release
from tests.ledger_backends import snapshot
from tests.unit.test_release import kinds, release_data

CAP = Budget(3.0, 1e-6)


def _database(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _privsynth_backends(pg_server, url: str, waiting: bool = False) -> list[int]:
    """The server processes of privsynth's connections to ``url``'s database (those waiting
    for a lock only, with ``waiting``)."""
    rows = pg_server.sql(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'privsynth' AND datname = %s"
        + (" AND wait_event_type = 'Lock'" if waiting else ""),
        (_database(url),),
    )
    return [pid for (pid,) in rows]


def test_cli_release_then_verify_show_and_export_a_postgres_ledger(pg_url, tmp_path, capsys):
    df, schema = release_data()
    df.to_csv(tmp_path / "people.csv", index=False)
    schema.save(tmp_path / "s.json")
    keygen(tmp_path / "k")
    release_args = [
        "release",
        str(tmp_path / "people.csv"),
        "--schema",
        str(tmp_path / "s.json"),
        "--epsilon",
        "1",
        "--ledger",
        pg_url,
        "--cap-epsilon",
        "3",
        "--key",
        str(tmp_path / "k"),
        "--no-canary",
        "--out",
        str(tmp_path / "rel"),
    ]
    with pytest.raises(SystemExit) as exc:
        main(release_args)
    out = capsys.readouterr()
    assert exc.value.code == 0, out.err
    assert "released" in out.out and "remaining epsilon" in out.out

    with pytest.raises(SystemExit) as exc:
        main(["ledger", "verify", pg_url])
    out = capsys.readouterr()
    assert exc.value.code == 0, out.err
    report = verify_release(tmp_path / "rel").report
    head = report["ledger"]["head"]
    assert out.out == f"ok: 3 entries, head {head}\n"
    assert report["ledger"]["file"] == _database(pg_url)

    # The release's entries are in that ledger's chain (the URL is not folded into a path).
    with pytest.raises(SystemExit) as exc:
        main(["verify", str(tmp_path / "rel"), "--ledger", pg_url])
    out = capsys.readouterr()
    assert exc.value.code == 0, out.err
    assert "ledger: chain verified; head and 1 reservation(s) found" in out.out

    with pytest.raises(SystemExit) as exc:
        main(["ledger", "show", pg_url, "--json"])
    shown = json.loads(capsys.readouterr().out)
    assert shown["dataset_id"] == "people" and shown["head"] == head
    assert shown["releases"] == {"active": 1, "committed": 1, "pending": 0, "cancelled": 0}

    with pytest.raises(SystemExit) as exc:
        main(["ledger", "export", pg_url, "-o", str(tmp_path / "ledger.jsonl")])
    assert exc.value.code == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["ledger", "verify", str(tmp_path / "ledger.jsonl")])
    assert capsys.readouterr().out == f"ok: 3 entries, head {head}\n"


def test_a_reservation_whose_connection_is_lost_records_nothing(pg_server, pg_url):
    with Ledger.open(pg_url, dataset_id="d", cap=Budget(3.0, 0.0)) as led:
        led.register()
        before = snapshot(pg_url)
        # Another writer holds the lock, so the reservation waits inside its transaction
        # until its connection is cut.
        blocker = psycopg.connect(pg_url, autocommit=True)
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE privsynth_entries IN EXCLUSIVE MODE")
        failure: list[BaseException] = []

        def reserve() -> None:
            try:
                led.reserve(PureDP(0.5), purpose="cut off")
            except BaseException as exc:
                failure.append(exc)

        worker = threading.Thread(target=reserve)
        worker.start()
        try:
            deadline = time.monotonic() + 20
            while not (waiting := _privsynth_backends(pg_server, pg_url, waiting=True)):
                assert time.monotonic() < deadline, "the reservation never waited for the lock"
                time.sleep(0.02)
            pg_server.sql("SELECT pg_terminate_backend(%s)", (waiting[0],))
            worker.join(20)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert not worker.is_alive()
        (exc,) = failure
        assert isinstance(exc, LedgerError) and "\n" not in str(exc)
        assert str(exc).startswith(
            f"lost the connection to the PostgreSQL server of ledger {pg_url} while reserving"
        )
        assert snapshot(pg_url) == before  # the transaction was not committed: nothing stays
        assert led.spent().epsilon == 0
        # The next step connects again.
        led.reserve(PureDP(0.5), purpose="after reconnecting").commit()
        assert led.spent().epsilon == 0.5
    assert verify_ledger(pg_url)[0] == 3


def test_a_release_whose_server_stops_fails_in_one_line_and_its_reservation_stays_spent(
    pg_server, pg_url, tmp_path, monkeypatch
):
    df, schema = release_data()
    reserved: list[str] = []
    real_reserve = Ledger.reserve

    def reserve_then_stop_the_server(self, *args, **kwargs):
        res = real_reserve(self, *args, **kwargs)  # recorded by the server: spent from here
        reserved.append(res.id)
        pg_server.stop()  # like a crash: the release's commit finds no server
        return res

    monkeypatch.setattr(Ledger, "reserve", reserve_then_stop_the_server)
    try:
        with pytest.raises(LedgerError) as exc:
            release(
                df,
                schema,
                ledger=pg_url,
                dataset_id="people",
                cap=CAP,
                key=Ed25519PrivateKey.generate(),
                out=tmp_path / "rel",
                epsilon=1.0,
                canary=False,
            )
    finally:
        pg_server.resume()
    monkeypatch.undo()
    msg = str(exc.value)
    assert "\n" not in msg and pg_url in msg
    assert msg.startswith("lost the connection to the PostgreSQL server of ledger")
    assert "while recording a commit" in msg
    assert not (tmp_path / "rel").exists()  # nothing released
    with Ledger.open(pg_url, dataset_id="people", readonly=True) as led:
        led.verify()
        assert kinds(led) == ["cap", "reserve"]
        assert [(r["id"], r["state"]) for r in led.reservations()] == [(reserved[0], "reserved")]
        assert led.spent().epsilon > 0.5  # a reservation the server recorded stays spent


def test_the_cli_names_a_ledger_url_in_one_line_without_its_password(pg_server, pg_url, capsys):
    unreachable = pg_server.url("ledger").replace(f":{pg_server.port}/", ":1/")
    empty = pg_url  # a database without ledger tables
    for url, start in [
        (unreachable, "error: cannot reach the PostgreSQL server of ledger"),
        (empty, "error: no ledger at"),
    ]:
        with_password = url.replace("postgres@", "postgres:hunter2@")
        with pytest.raises(SystemExit) as exc:
            main(["ledger", "show", with_password])
        err = capsys.readouterr().err
        assert exc.value.code == EXIT_CODES["LedgerError"]
        assert err.startswith(f"{start} {url}") and err.count("\n") == 1
        assert "hunter2" not in err
