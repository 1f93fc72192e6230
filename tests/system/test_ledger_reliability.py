"""The ledger under stress: racing processes, SIGKILL mid-write, tampering, bad paths.

Each test is built so that it fails if the property it checks is broken: the race runs until
the budget is exhausted and checks the composed total and the entry count; the SIGKILL test
checks every reservation the child reported; the tamper tests check the exact entry named.
All but the file-path tests run on both backends: an SQLite file and a PostgreSQL database
(``ledger_at`` in tests/conftest.py); the tamper tests edit the rows with SQL on either.
"""

from __future__ import annotations

import importlib.util
import multiprocessing as mp
import os
import random
import shutil
import signal
import sqlite3
import stat
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

if mp.current_process().name != "MainProcess" and "privsynth" not in sys.modules:
    # In a spawned worker (which imports this module to find its target) load only
    # privsynth.budget, not the package __init__ with pandas/OpenDP/scikit-learn: that keeps
    # eight workers starting in about a second instead of twenty on two cores.  The ledger
    # does not depend on anything the package __init__ sets up.
    _spec = importlib.util.find_spec("privsynth")
    _pkg = types.ModuleType("privsynth")
    _pkg.__path__ = list(_spec.submodule_search_locations or [])
    sys.modules["privsynth"] = _pkg

import pytest  # noqa: E402

from privsynth.budget import (  # noqa: E402
    ZCDP,
    Budget,
    Ledger,
    PureDP,
    canonical_json,
    entry_hash,
    epsilon_spent_exact,
    event_from_dict,
    verify_ledger,
)
from privsynth.budget.analysis import as_rational  # noqa: E402
from privsynth.errors import BudgetExceeded, LedgerCorrupt, LedgerError  # noqa: E402
from tests.ledger_backends import execute, row  # noqa: E402

SPAWN = mp.get_context("spawn")
RACE_CAP = Budget(1.0, 1e-6)
RACE_CHARGES = (PureDP(0.01), ZCDP(1e-4))
WORKERS = 8


# ------------------------------------------------------------------------------ race


def _race_worker(path: str, worker: int, barrier, results) -> None:
    with Ledger.open(path, dataset_id="race", timeout=120) as led:
        barrier.wait(120)
        charges = RACE_CHARGES if worker % 2 else RACE_CHARGES[::-1]
        refused: set = set()
        ok = []
        i = 0
        think = random.Random(worker)
        while len(refused) < len(charges):
            time.sleep(think.uniform(0, 0.003))  # a little work between spends
            charge = charges[i % len(charges)]
            i += 1
            if charge in refused:
                continue
            try:
                res = led.reserve(charge, purpose=f"worker {worker} #{i}")
            except BudgetExceeded:
                refused.add(charge)  # the budget only shrinks, so it will not fit later
                continue
            ok.append(res.id)
        results.put((worker, ok))


def _workers(target, path, *, join_barrier: bool) -> tuple[dict, list[int | None]]:
    """Run ``target(path, worker, barrier, results)`` in WORKERS spawned processes; each
    puts ``(worker, value)`` once. ``join_barrier``: this process also waits at the barrier
    (the workers pass it only once all are ready). Returns the values and exit codes."""
    barrier = SPAWN.Barrier(WORKERS + join_barrier)
    results = SPAWN.Queue()
    procs = [
        SPAWN.Process(target=target, args=(str(path), w, barrier, results)) for w in range(WORKERS)
    ]
    for p in procs:
        p.start()
    try:
        if join_barrier:
            barrier.wait(120)
        reported = dict(results.get(timeout=120) for _ in procs)
    finally:
        for p in procs:
            p.join(60)
            if p.is_alive():
                p.kill()
    return reported, [p.exitcode for p in procs]


def test_racing_processes_never_exceed_the_cap(ledger_at):
    path = ledger_at
    with Ledger.open(path, dataset_id="race", cap=RACE_CAP) as new:
        new.register()
    # all workers have opened the ledger before any spends: they start together
    reported, exits = _workers(_race_worker, path, join_barrier=True)
    assert exits == [0] * WORKERS
    ids = [rid for ok in reported.values() for rid in ok]
    assert sum(1 for ok in reported.values() if ok) >= 2, "no contention: one worker took it all"

    with Ledger.open(path, dataset_id="race") as led:
        led.verify()
        reserves = [e for e in led.entries() if e["kind"] == "reserve"]
        assert len(reserves) == len(ids)
        assert sorted(e["reservation"] for e in reserves) == sorted(ids)
        events = [event_from_dict(d) for e in reserves for d in e["events"]]
        total = epsilon_spent_exact(events, RACE_CAP.delta)
        assert total <= as_rational(RACE_CAP.epsilon)
        # the workers ran the budget dry: neither charge fits any more
        for charge in RACE_CHARGES:
            with pytest.raises(BudgetExceeded):
                led.check(charge)


def _first_writer(path: str, worker: int, barrier, results) -> None:
    try:
        barrier.wait(120)
        with Ledger.open(path, dataset_id="race", cap=RACE_CAP, timeout=120) as led:
            results.put((worker, led.reserve(PureDP(0.01), purpose=f"worker {worker}").id))
    except Exception as exc:  # reported, so the assertion shows what went wrong
        results.put((worker, f"{type(exc).__name__}: {exc}"))


def test_processes_creating_one_new_ledger_at_once_all_get_the_same_whole_file(ledger_at):
    # No file (no tables) before: each worker's first write would make it. The ledger must
    # appear whole (never half-made, never switched to WAL by two processes at once: SQLite
    # may refuse such a lock upgrade at once, without waiting; never two sessions creating
    # the tables at once in PostgreSQL), with one cap and every reservation.
    path = ledger_at
    reported, _ = _workers(_first_writer, path, join_barrier=False)
    with Ledger.open(path, dataset_id="race") as led:
        led.verify()
        kinds = [e["kind"] for e in led.entries()]
        ids = sorted(e["reservation"] for e in led.entries() if e["kind"] == "reserve")
    assert ids == sorted(reported.values()), reported  # an error message is never an id
    assert kinds == ["cap"] + ["reserve"] * WORKERS
    if isinstance(path, Path):
        assert [f.name for f in path.parent.iterdir() if f.name.startswith(".")] == []


# ------------------------------------------------------------------------------ SIGKILL


def _kill_worker(path: str, report: str, ready) -> None:
    with Ledger.open(path, dataset_id="kill", timeout=120) as led:
        ready.set()
        with open(report, "a", encoding="utf-8") as fh:
            i = 0
            while True:
                charge = PureDP(1e-4) if i % 2 else ZCDP(1e-7)
                res = led.reserve(charge, purpose=f"tiny {i}")
                fh.write(res.id + "\n")  # reported only after reserve() returned
                fh.flush()
                if i % 3 == 0:
                    res.commit({"i": i})
                i += 1


def _reported_ids(report: Path) -> list[str]:
    if not report.exists():
        return []
    text = report.read_text(encoding="utf-8")
    lines = text.split("\n")
    complete = lines[:-1]  # the last piece has no newline yet (or is empty)
    return [line for line in complete if len(line) == 32]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_mid_reserve_leaves_a_whole_verified_ledger(ledger_at, tmp_path):
    path = ledger_at
    with Ledger.open(path, dataset_id="kill", cap=Budget(1000.0, 1e-6)) as new:
        new.register()
    rng = random.Random(20240611)
    seen: set[str] = set()
    for trial in range(4):
        report = tmp_path / f"report-{trial}.txt"
        ready = SPAWN.Event()
        proc = SPAWN.Process(target=_kill_worker, args=(str(path), str(report), ready))
        proc.start()
        try:
            assert ready.wait(120), "worker did not start"
            time.sleep(rng.uniform(0.1, 0.6))
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.join(60)
        assert proc.exitcode == -signal.SIGKILL

        reported = _reported_ids(report)
        assert reported, "the child was killed before it reserved anything"
        with Ledger.open(path, dataset_id="kill", timeout=5) as led:
            led.verify()  # whole entries only, chain intact, head consistent
            entries = led.entries()
            reserve_ids = [e["reservation"] for e in entries if e["kind"] == "reserve"]
            assert len(reserve_ids) == len(set(reserve_ids))
            new = set(reserve_ids) - seen
            assert set(reported) <= new  # every reservation the child reported is there
            assert len(new) - len(reported) in (0, 1)  # at most the one it could not report
            seen |= new
            # no stale lock: the next writer gets in at once
            after = led.reserve(PureDP(1e-4), purpose=f"after kill {trial}")
            after.cancel("test")
            seen.add(after.id)  # the test's own reservation is not the child's
        if isinstance(path, Path):
            with sqlite3.connect(path) as con:
                assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert verify_ledger(path)[0] == len(entries) + 2


# ------------------------------------------------------------------------------ tampering


def _fill(path: Path | str) -> Path | str:
    """A closed ledger with 9 entries over two datasets: caps, reserves, a commit, a cancel."""
    with (
        Ledger.open(path, dataset_id="adult", cap=Budget(3.0, 1e-9)) as adult,
        Ledger.open(path, dataset_id="census", cap=Budget(1.0, 0.0)) as census,
    ):
        adult.register()
        census.register()
        a = adult.reserve(ZCDP(0.01), purpose="MST release 1", metadata={"rows": 1000})
        census.reserve(PureDP(0.25), purpose="census histogram").commit()
        a.commit({"sha256": "ab" * 32})
        adult.reserve(PureDP(0.5), purpose="age quantiles").cancel("job failed")
        adult.reserve(ZCDP(0.02), purpose="MST release 2")
    assert verify_ledger(path)[0] == N_ENTRIES
    return path


N_ENTRIES = 9


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path | str:
    return _fill(tmp_path_factory.mktemp("template") / "ledger.db")


@pytest.fixture(scope="module")
def pg_template(pg_server) -> str:
    return _fill(pg_server.new_database())


@pytest.fixture
def sqlite_copy(template, tmp_path) -> Path:
    dest = tmp_path / "ledger.db"
    shutil.copy(template, dest)
    return dest


@pytest.fixture(params=["sqlite", "postgresql"])
def copy(request) -> Iterator[Path | str]:
    """A copy of the template ledger: an SQLite file, or a PostgreSQL database."""
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_copy")
        return
    server = request.getfixturevalue("pg_server")
    url = server.new_database(template=request.getfixturevalue("pg_template"))
    yield url
    server.drop_database(url)


def _expect_corrupt(path: Path | str, match: str, *statements: tuple[str, tuple]) -> None:
    """Tamper while a ledger is open; verify() (and a fresh open, and reserve) must fail."""
    with Ledger.open(path, dataset_id="adult") as led:
        led.verify()
        execute(path, *statements)
        with pytest.raises(LedgerCorrupt, match=match):
            led.verify()
        with pytest.raises(LedgerCorrupt, match=match):
            led.reserve(PureDP(0.01), purpose="must be refused on a tampered ledger")
    with pytest.raises(LedgerCorrupt, match=match):
        verify_ledger(path)
    with pytest.raises(LedgerCorrupt, match=match):
        Ledger.open(path, dataset_id="adult")


@pytest.mark.parametrize("seq", range(1, N_ENTRIES + 1))
def test_editing_any_entry_is_caught_and_named(copy, seq):
    _expect_corrupt(
        copy,
        rf"entry seq {seq} was modified",
        ("UPDATE {entries} SET purpose = purpose || ' (edited)' WHERE seq = ?", (seq,)),
    )


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("time", "2020-01-01T00:00:00.000000Z"),
        ("dataset_id", "census"),
        ("kind", "cancel"),
        ("events", '[{"epsilon":1e-06,"type":"PureDP"}]'),
        ("reservation", "0" * 32),
        ("metadata", '{"rows":1}'),
        ("prev_hash", "f" * 64),
        ("hash", "e" * 64),
    ],
)
def test_editing_any_field_is_caught(copy, column, value):
    _expect_corrupt(
        copy,
        r"entry seq 3 was modified",
        (f"UPDATE {{entries}} SET {column} = ? WHERE seq = 3", (value,)),
    )


def test_unreadable_json_is_caught_and_named(copy):
    _expect_corrupt(
        copy,
        r"entry seq 3 has an unreadable events",
        ("UPDATE {entries} SET events = '[{{' WHERE seq = 3", ()),
    )


@pytest.mark.parametrize("seq", range(1, N_ENTRIES))
def test_deleting_any_entry_is_caught_and_named(copy, seq):
    _expect_corrupt(
        copy, rf"entry seq {seq} is missing", ("DELETE FROM {entries} WHERE seq = ?", (seq,))
    )


def test_deleting_the_last_entry_is_caught_by_the_stored_head(copy):
    _expect_corrupt(
        copy,
        rf"ends at entry seq {N_ENTRIES - 1}.*last entry as seq {N_ENTRIES}",
        ("DELETE FROM {entries} WHERE seq = ?", (N_ENTRIES,)),
    )


@pytest.mark.parametrize("seq", range(1, N_ENTRIES))
def test_reordering_entries_is_caught_and_named(copy, seq):
    _expect_corrupt(
        copy,
        rf"entry seq {seq} was modified",
        ("UPDATE {entries} SET seq = -1 WHERE seq = ?", (seq,)),
        ("UPDATE {entries} SET seq = ? WHERE seq = ?", (seq, seq + 1)),
        ("UPDATE {entries} SET seq = ? WHERE seq = -1", (seq + 1,)),
    )


def _forged(stored: dict, **changes) -> dict:
    """A row rewritten by someone who knows the hash rule (recomputes the hash)."""
    import json

    entry = {
        **stored,
        "events": json.loads(stored["events"]),
        "metadata": json.loads(stored["metadata"]),
    }
    entry.update(changes)
    entry["hash"] = entry_hash(entry)
    return {
        **entry,
        "events": canonical_json(entry["events"]),
        "metadata": canonical_json(entry["metadata"]),
    }


def _insert(stored: dict) -> tuple[str, tuple]:
    cols = ", ".join(stored)
    return (
        f"INSERT INTO {{entries}} ({cols}) VALUES ({', '.join('?' * len(stored))})",
        tuple(stored.values()),
    )


def test_rewriting_an_entry_with_a_recomputed_hash_breaks_the_next_link(copy):
    forged = _forged(row(copy, 3), events=[{"type": "ZCDP", "rho": 1e-9}])
    _expect_corrupt(
        copy,
        r"entry seq 4 does not link to the entry before it",
        (
            "UPDATE {entries} SET events = ?, hash = ? WHERE seq = 3",
            (forged["events"], forged["hash"]),
        ),
    )


def test_inserting_an_entry_in_the_middle_is_caught(copy):
    forged = _forged(row(copy, 4), seq=5, purpose="inserted refund")
    shift = [
        ("UPDATE {entries} SET seq = ? WHERE seq = ?", (-s, s)) for s in range(N_ENTRIES, 4, -1)
    ]
    back = [
        ("UPDATE {entries} SET seq = ? WHERE seq = ?", (s + 1, -s)) for s in range(N_ENTRIES, 4, -1)
    ]
    _expect_corrupt(copy, r"entry seq 5 does not link", *shift, *back, _insert(forged))


def test_appending_a_well_forged_entry_is_caught_by_the_stored_head(copy):
    last = row(copy, N_ENTRIES)
    forged = _forged(last, seq=N_ENTRIES + 1, prev_hash=last["hash"], reservation="1" * 32)
    _expect_corrupt(copy, rf"ends at entry seq {N_ENTRIES + 1}.*outside privsynth", _insert(forged))


# ------------------------------------------------------------------------------ bad paths


def test_missing_directory_is_a_clear_error(tmp_path):
    target = tmp_path / "no-such-dir" / "ledger.db"
    with pytest.raises(LedgerError) as exc:
        Ledger.open(target, dataset_id="d", cap=Budget(1.0, 0.0))
    assert str(target.parent) in str(exc.value)
    assert "does not exist" in str(exc.value)
    assert not target.parent.exists()


def test_missing_file_is_a_clear_error_when_not_creating(tmp_path):
    target = tmp_path / "ledger.db"
    for kwargs in ({"create": False}, {"readonly": True}):
        with pytest.raises(LedgerError, match="no ledger at .*ledger.db.*privsynth ledger init"):
            Ledger.open(target, dataset_id="d", **kwargs)
    with pytest.raises(LedgerError, match="no ledger at"):
        verify_ledger(target)
    assert not target.exists()


def test_read_only_file_is_a_clear_error_and_still_readable(sqlite_copy):
    copy = sqlite_copy
    os.chmod(copy, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    try:
        with pytest.raises(LedgerError) as exc:
            Ledger.open(copy, dataset_id="adult")
        assert str(copy) in str(exc.value)
        assert "read-only" in str(exc.value)
        assert "chmod" in str(exc.value)
        n, head = verify_ledger(copy)
        assert n == N_ENTRIES
        with Ledger.open(copy, dataset_id="adult", readonly=True) as ro:
            assert ro.head() == head
            assert ro.spent().epsilon > 0
    finally:
        os.chmod(copy, stat.S_IRUSR | stat.S_IWUSR)
