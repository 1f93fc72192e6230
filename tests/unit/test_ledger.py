"""The persistent ledger: caps, reserve/commit/cancel, exact budget, the hash chain, errors.

Most tests run on both backends (``path`` is an SQLite file or a PostgreSQL database's URL,
see ``ledger_at`` in tests/conftest.py); the ones about files are SQLite's alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from fractions import Fraction

import pytest

from privsynth.budget import (
    GENESIS_HASH,
    ZCDP,
    ApproxDP,
    Budget,
    Ledger,
    PureDP,
    SubsampledGaussian,
    epsilon_spent,
    epsilon_spent_exact,
    list_datasets,
    rho_for_epsilon,
    verify_jsonl,
    verify_ledger,
)
from privsynth.budget.analysis import as_rational
from privsynth.errors import BudgetExceeded, ConfigError, LedgerCorrupt, LedgerError
from tests.ledger_backends import execute, snapshot

CAP = Budget(1.0, 1e-9)


@pytest.fixture
def path(ledger_at):
    return ledger_at


@pytest.fixture
def ledger(path):
    with Ledger.open(path, dataset_id="adult", cap=CAP) as led:
        led.register()
        yield led


# ------------------------------------------------------------------------------ caps and opening


def test_new_dataset_records_its_cap_as_the_first_entry(ledger):
    (entry,) = ledger.entries()
    assert entry["kind"] == "cap"
    assert entry["seq"] == 1
    assert entry["prev_hash"] == GENESIS_HASH
    assert Budget.from_dict(entry["metadata"]["cap"]) == CAP
    assert ledger.cap == CAP
    assert ledger.spent() == Budget(0.0, CAP.delta)
    assert ledger.remaining() == CAP


def test_reopening_with_the_same_or_no_cap_keeps_it(path, ledger):
    with Ledger.open(path, dataset_id="adult", cap=Budget(1.0, 1e-9)) as again:
        assert again.cap == CAP
    with Ledger.open(path, dataset_id="adult") as again:
        assert again.cap == CAP
    assert len(ledger.entries()) == 1


def test_reopening_with_a_different_cap_is_refused_and_says_how_to_change_it(path, ledger):
    with pytest.raises(ConfigError) as exc:
        Ledger.open(path, dataset_id="adult", cap=Budget(2.0, 1e-9))
    assert "set_cap" in str(exc.value)
    assert "--force-cap" in str(exc.value)


def test_new_dataset_without_cap_is_refused(path, ledger):
    with pytest.raises(ConfigError, match="no budget cap"):
        Ledger.open(path, dataset_id="census")


@pytest.mark.parametrize("cap", [Budget(0.0, 1e-9), (1.0, 1e-9), None])
def test_cap_must_be_a_positive_budget(tmp_path, cap):
    with pytest.raises(ConfigError):
        Ledger.open(tmp_path / "x.db", dataset_id="d", cap=cap)


@pytest.mark.parametrize("bad", ["", "   ", None, 3])
def test_dataset_id_must_be_text(tmp_path, bad):
    with pytest.raises(ConfigError, match="dataset_id"):
        Ledger.open(tmp_path / "x.db", dataset_id=bad, cap=CAP)


def test_create_false_never_creates(other_ledger_at, path, ledger):
    with pytest.raises(LedgerError, match="no ledger at"):
        Ledger.open(other_ledger_at, dataset_id="adult", create=False)
    assert snapshot(other_ledger_at) is None
    with pytest.raises(LedgerError, match="holds no dataset 'census'"):
        Ledger.open(path, dataset_id="census", cap=CAP, create=False)
    with Ledger.open(path, dataset_id="adult", create=False) as again:
        assert again.cap == CAP


def test_several_datasets_share_one_chain_with_separate_caps(path, ledger):
    with Ledger.open(path, dataset_id="census", cap=Budget(2.0, 0.0)) as census:
        census.reserve(PureDP(1.5), purpose="census histogram")
        ledger.reserve(PureDP(0.5), purpose="adult histogram")
        assert census.spent().epsilon == 1.5
        assert ledger.spent().epsilon == 0.5
        all_entries = ledger.entries(all_datasets=True)
        assert [e["seq"] for e in all_entries] == [1, 2, 3, 4]
        assert {e["dataset_id"] for e in ledger.entries()} == {"adult"}
    assert list_datasets(path) == ["adult", "census"]


# ------------------------------------------------------------------------------ spending


def test_eleven_spends_of_one_eleventh_are_accepted_and_the_twelfth_refused(path):
    with Ledger.open(path, dataset_id="d", cap=Budget(1.0, 0.0)) as led:
        for i in range(11):
            led.reserve(PureDP(1 / 11), purpose=f"query {i}")
        with pytest.raises(BudgetExceeded):
            led.reserve(PureDP(1 / 11), purpose="query 11")
        assert led.spent().epsilon == 1.0
        assert led.remaining().epsilon == 0.0
        assert sum(e["kind"] == "reserve" for e in led.entries()) == 11


def test_refusal_message_states_spent_requested_cap_and_remaining(ledger):
    ledger.reserve(PureDP(0.75), purpose="first")
    n = len(ledger.entries())
    with pytest.raises(BudgetExceeded) as exc:
        ledger.reserve(PureDP(0.5), purpose="second")
    msg = str(exc.value)
    assert "spent epsilon=0.75" in msg
    assert "PureDP(epsilon=0.5)" in msg
    assert "cap (epsilon=1, delta=1e-09)" in msg
    assert "remaining: epsilon=0.25" in msg
    assert len(ledger.entries()) == n  # nothing recorded


def test_refusal_explains_when_no_delta_is_left(path):
    with (
        Ledger.open(path, dataset_id="d", cap=Budget(5.0, 0.0)) as led,
        pytest.raises(BudgetExceeded, match="no finite epsilon"),
    ):
        led.reserve(ZCDP(0.001), purpose="gaussian needs delta")


def test_spend_is_recomputed_from_the_stored_events(path):
    cap = Budget(5.0, 1e-9)
    events = [ZCDP(0.01), PureDP(0.1), ApproxDP(0.05, 1e-10), ZCDP(0.02)]
    with Ledger.open(path, dataset_id="d", cap=cap) as led:
        for e in events:
            led.reserve(e, purpose="x")
        assert led.spent().epsilon == epsilon_spent(events, cap.delta)
        exact = epsilon_spent_exact(events, cap.delta)
        assert Fraction(led.remaining().epsilon) <= as_rational(5.0) - exact


def test_zcdp_releases_compose_below_the_sum(path):
    rho = rho_for_epsilon(1.0, 1e-9)
    with Ledger.open(path, dataset_id="d", cap=Budget(3.0, 1e-9)) as led:
        for i in range(3):
            led.reserve(ZCDP(rho), purpose=f"MST release {i + 1}").commit()
        spent = led.spent().epsilon
        assert 1.7 < spent < 1.8
        assert led.remaining().epsilon == pytest.approx(3 - spent, abs=1e-12)


def test_subsampled_gaussian_charge(path):
    sgd = SubsampledGaussian(0.01, 1.0, 100)
    with Ledger.open(path, dataset_id="d", cap=Budget(8.0, 1e-5)) as led:
        led.reserve(sgd, purpose="dp-sgd")
        assert led.spent().epsilon == epsilon_spent(sgd, 1e-5)


def test_reserve_validates_its_input(ledger):
    with pytest.raises(ConfigError):
        ledger.reserve([], purpose="nothing")
    with pytest.raises(ConfigError, match="purpose"):
        ledger.reserve(PureDP(0.1), purpose="")
    with pytest.raises(ConfigError, match="JSON"):
        ledger.reserve(PureDP(0.1), purpose="x", metadata={"bad": float("nan")})
    with pytest.raises(ConfigError, match="JSON"):
        ledger.reserve(PureDP(0.1), purpose="x", metadata={"bad": object()})
    with pytest.raises(ConfigError, match="expected privacy events"):
        ledger.reserve([0.1], purpose="x")  # type: ignore[list-item]
    assert len(ledger.entries()) == 1


def test_check_is_a_dry_run(ledger):
    total = ledger.check(PureDP(0.5))
    assert total.epsilon == 0.5
    assert len(ledger.entries()) == 1
    with pytest.raises(BudgetExceeded):
        ledger.check(PureDP(1.5))


# ------------------------------------------------------------------------------ commit / cancel


def test_reservation_counts_as_spent_until_cancelled_even_without_commit(path, ledger):
    res = ledger.reserve(PureDP(0.4), purpose="crashes before commit")
    assert res.purpose == "crashes before commit" and res.events == (PureDP(0.4),)
    with Ledger.open(path, dataset_id="adult") as other:  # e.g. after a restart
        assert other.spent().epsilon == 0.4


def test_cancel_refunds_and_commit_keeps(ledger):
    a = ledger.reserve(PureDP(0.4), purpose="a")
    b = ledger.reserve(PureDP(0.4), purpose="b")
    a.commit({"released": "synthetic.csv", "sha256": "00" * 32})
    b.cancel("generator failed before reading data")
    assert ledger.spent().epsilon == 0.4
    kinds = [e["kind"] for e in ledger.entries()]
    assert kinds == ["cap", "reserve", "reserve", "commit", "cancel"]
    commit = ledger.entries()[3]
    assert commit["reservation"] == a.id
    assert commit["metadata"]["released"] == "synthetic.csv"
    states = {r["id"]: r["state"] for r in ledger.reservations()}
    assert states == {a.id: "committed", b.id: "cancelled"}


def test_commit_and_cancel_state_rules(ledger):
    a = ledger.reserve(PureDP(0.1), purpose="a")
    a.commit()
    with pytest.raises(LedgerError, match="already committed.*cannot be refunded"):
        a.cancel("too late")
    with pytest.raises(LedgerError, match="already committed"):
        a.commit()
    b = ledger.reserve(PureDP(0.1), purpose="b")
    b.cancel("not needed")
    with pytest.raises(LedgerError, match="already cancelled"):
        b.commit()
    with pytest.raises(ConfigError):
        ledger.reserve(PureDP(0.1), purpose="c").cancel("")


# ------------------------------------------------------------------------------ set_cap


def test_set_cap_is_recorded_with_its_reason(ledger):
    ledger.reserve(PureDP(0.9), purpose="a")
    with pytest.raises(BudgetExceeded):
        ledger.reserve(PureDP(0.2), purpose="b")
    ledger.set_cap(Budget(2.0, 1e-9), reason="approved by the data owner")
    ledger.reserve(PureDP(0.2), purpose="b")
    cap_entry = [e for e in ledger.entries() if e["kind"] == "cap"][-1]
    assert cap_entry["metadata"] == {
        "cap": {"epsilon": 2.0, "delta": 1e-9},
        "previous": {"epsilon": 1.0, "delta": 1e-9},
        "reason": "approved by the data owner",
    }
    ledger.set_cap(Budget(0.5, 1e-9), reason="lowered")
    assert ledger.remaining().epsilon == 0.0  # below what is spent: nothing more can be spent
    with pytest.raises(BudgetExceeded):
        ledger.reserve(PureDP(0.01), purpose="c")
    with pytest.raises(ConfigError):
        ledger.set_cap(Budget(2.0, 1e-9), reason="")


def test_set_cap_refuses_a_delta_below_what_is_spent(ledger):
    ledger.reserve(ApproxDP(0.1, 1e-10), purpose="stability histogram")
    with pytest.raises(ConfigError, match="larger delta"):
        ledger.set_cap(Budget(1.0, 1e-11), reason="tighter")


# ------------------------------------------------------------------------------ chain


def test_hashes_are_sha256_of_canonical_json(ledger):
    ledger.reserve(PureDP(0.1), purpose="ünïcode purpose", metadata={"b": 1, "a": [1, 2]})
    entries = ledger.entries()
    prev = GENESIS_HASH
    for seq, e in enumerate(entries, 1):
        assert e["seq"] == seq
        assert set(e) == {
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
        }
        assert e["prev_hash"] == prev
        body = {k: v for k, v in e.items() if k != "hash"}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert e["hash"] == hashlib.sha256(text.encode("utf-8")).hexdigest()
        assert e["time"].endswith("Z")
        prev = e["hash"]
    assert ledger.head() == prev
    assert entries[1]["events"] == [{"type": "PureDP", "epsilon": 0.1}]


def test_entries_are_copies(ledger):
    entries = ledger.entries()
    entries[0]["purpose"] = "changed"
    assert ledger.entries()[0]["purpose"] == "initial cap"
    ledger.verify()


def test_verify_passes_and_export_round_trips(tmp_path, ledger):
    ledger.reserve(PureDP(0.1), purpose="a").commit()
    ledger.verify()
    out = tmp_path / "export.jsonl"
    assert ledger.export_jsonl(out) == 3
    assert verify_jsonl(out) == (3, ledger.head())
    assert verify_ledger(ledger.path) == (3, ledger.head())
    assert not list(tmp_path.glob(".export.jsonl.*"))  # no temp file left behind
    lines = out.read_text(encoding="utf-8").splitlines()
    doctored = json.loads(lines[1])
    doctored["events"][0]["epsilon"] = 0.01
    lines[1] = json.dumps(doctored)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(LedgerCorrupt, match="entry seq 2 was modified"):
        verify_jsonl(out)


def test_reserve_refuses_to_spend_on_a_tampered_ledger(path, ledger):
    ledger.reserve(PureDP(0.9), purpose="big")
    execute(
        path,
        ("UPDATE {entries} SET events = ? WHERE seq = 2", ('[{"epsilon":0.1,"type":"PureDP"}]',)),
    )
    with pytest.raises(LedgerCorrupt, match="entry seq 2"):
        ledger.reserve(PureDP(0.5), purpose="would fit if the edit were believed")


# ------------------------------------------------------------------------------ reading


def test_describe_tells_a_human_what_is_left(ledger):
    ledger.reserve(PureDP(0.25), purpose="age histogram").commit()
    ledger.reserve(PureDP(0.25), purpose="pending release")
    text = ledger.describe()
    assert "dataset 'adult'" in text
    assert "cap:       epsilon=1, delta=1e-09" in text
    assert "spent:     epsilon=0.5" in text
    assert "remaining: epsilon=0.5" in text
    assert "2 counted (1 committed, 1 reserved but not committed)" in text
    assert "age histogram" in text
    assert ledger.head() in text


def test_readonly_open_reads_but_never_writes(path, ledger):
    ledger.reserve(PureDP(0.25), purpose="a")
    with Ledger.open(path, dataset_id="adult", readonly=True) as ro:
        assert ro.spent().epsilon == 0.25
        with pytest.raises(LedgerError, match="read-only"):
            ro.reserve(PureDP(0.1), purpose="b")


def test_budget_events_are_logged_not_printed(ledger, caplog, capsys):
    with caplog.at_level(logging.INFO, logger="privsynth.ledger"):
        res = ledger.reserve(PureDP(0.5), purpose="logged")
        res.commit()
        with pytest.raises(BudgetExceeded):
            ledger.reserve(PureDP(0.9), purpose="too much")
    records = [
        (r.levelname, r.getMessage()) for r in caplog.records if r.name == "privsynth.ledger"
    ]
    assert any(lvl == "INFO" and "reserved PureDP(epsilon=0.5)" in m for lvl, m in records)
    assert any(lvl == "INFO" and "committed" in m for lvl, m in records)
    assert any(lvl == "INFO" and "budget exceeded" in m for lvl, m in records)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


# ------------------------------------------------------------------------------ bad files


def test_not_an_sqlite_file(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello, this is not a ledger\n")
    with pytest.raises(LedgerError, match=r"notes\.txt is not a privsynth ledger"):
        Ledger.open(p, dataset_id="d", cap=CAP)


def test_other_sqlite_database(tmp_path):
    p = tmp_path / "other.db"
    with sqlite3.connect(p) as con:
        con.execute("CREATE TABLE t (x)")
    with pytest.raises(LedgerError, match="SQLite database but not a privsynth ledger"):
        Ledger.open(p, dataset_id="d", cap=CAP)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(LedgerError, match="is a directory"):
        Ledger.open(tmp_path, dataset_id="d", cap=CAP)


def _hold_the_write_lock(path):
    """Another process's open write transaction on the ledger (closed by ``ROLLBACK``)."""
    if isinstance(path, str):
        import psycopg

        blocker = psycopg.connect(path, autocommit=True)
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE privsynth_entries IN EXCLUSIVE MODE")
        return blocker
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    return blocker


def test_locked_ledger(path, ledger):
    blocker = _hold_the_write_lock(path)
    try:
        # Reading does not wait for a writer (WAL); writing waits ``timeout``, then says why.
        with Ledger.open(path, dataset_id="adult", timeout=0.2) as waiting:
            assert waiting.spent().epsilon == 0
            with pytest.raises(LedgerError, match="locked by another process"):
                waiting.reserve(PureDP(0.1), purpose="while another process writes")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    ledger.reserve(PureDP(0.1), purpose="after the lock is gone")


def test_a_new_dataset_is_written_with_its_first_reservation_and_not_before(path, ledger):
    before = snapshot(path)
    with Ledger.open(path, dataset_id="census", cap=Budget(1.0, 0.0)) as census:
        assert snapshot(path) == before  # opening writes nothing
        assert census.cap == Budget(1.0, 0.0) and census.spent().epsilon == 0
        with pytest.raises(BudgetExceeded):
            census.reserve(PureDP(2.0), purpose="too much")
        assert snapshot(path) == before  # a refused spend leaves the file byte-identical
        census.reserve(PureDP(0.5), purpose="census histogram")
        assert [e["kind"] for e in census.entries()] == ["cap", "reserve"]


def test_a_new_ledger_file_is_made_by_its_first_write_and_not_before(path):
    with Ledger.open(path, dataset_id="d", cap=Budget(1.0, 0.0)) as new:
        new.verify()  # an empty chain verifies
        assert new.spent().epsilon == 0
        with pytest.raises(BudgetExceeded):
            new.reserve(PureDP(2.0), purpose="too much")
        assert snapshot(path) is None  # a refused spend on a new ledger leaves no file/tables
        new.reserve(PureDP(0.5), purpose="fits")
    if not isinstance(path, str):
        assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []
    with Ledger.open(path, dataset_id="d", readonly=True) as again:
        assert [e["kind"] for e in again.entries()] == ["cap", "reserve"]


def test_two_openers_of_a_new_dataset_with_different_caps_cannot_both_create_it(path):
    with (
        Ledger.open(path, dataset_id="d", cap=Budget(1.0, 0.0)) as first,
        Ledger.open(path, dataset_id="d", cap=Budget(9.0, 0.0)) as second,
    ):
        first.reserve(PureDP(0.5), purpose="first")
        with pytest.raises(ConfigError, match=r"was created .* with cap"):
            second.reserve(PureDP(0.5), purpose="second")
        assert [e["kind"] for e in first.entries()] == ["cap", "reserve"]
