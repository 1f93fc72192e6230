"""`privsynth ledger ...` through click's CliRunner on the `ledger` group, on a ledger file and
on a PostgreSQL database's URL (``ledger_at`` in tests/conftest.py)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from privsynth.budget import Budget, Ledger, PureDP
from privsynth.cli.ledger import ledger_group
from privsynth.errors import ConfigError, LedgerCorrupt, LedgerError
from tests.ledger_backends import execute, snapshot


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(ledger_group, [str(a) for a in args])

    return invoke


@pytest.fixture
def path(ledger_at):
    return ledger_at


def init(run, path, ds="adult", eps=1.0, delta=1e-9, *extra):
    return run("init", path, "--dataset-id", ds, "--cap-epsilon", eps, "--cap-delta", delta, *extra)


def test_group_is_named_ledger():
    assert ledger_group.name == "ledger"
    assert set(ledger_group.commands) == {"init", "show", "verify", "export"}


def test_init_creates_and_is_idempotent(run, path):
    result = init(run, path)
    assert result.exit_code == 0, result.output
    assert "created with cap (epsilon=1, delta=1e-09)" in result.output
    result = init(run, path)
    assert result.exit_code == 0
    assert "already has cap" in result.output
    with Ledger.open(path, dataset_id="adult") as led:
        assert led.cap == Budget(1.0, 1e-9)


def test_init_with_a_different_cap_needs_force_and_reason(run, path):
    init(run, path)
    result = init(run, path, "adult", 2.0)
    assert isinstance(result.exception, ConfigError)
    assert "--force-cap" in str(result.exception)
    result = init(run, path, "adult", 2.0, 1e-9, "--force-cap")
    assert isinstance(result.exception, ConfigError)
    assert "--reason" in str(result.exception)
    result = init(run, path, "adult", 2.0, 1e-9, "--force-cap", "--reason", "board decision 12")
    assert result.exit_code == 0, result.output
    assert "changed from (epsilon=1, delta=1e-09) to (epsilon=2, delta=1e-09)" in result.output
    with Ledger.open(path, dataset_id="adult") as led:
        assert led.cap == Budget(2.0, 1e-9)
        assert led.entries()[-1]["metadata"]["reason"] == "board decision 12"


@pytest.mark.parametrize(("eps", "delta"), [(-1, 1e-9), ("nan", 1e-9), (1, 1.0), (0, 0)])
def test_init_rejects_bad_caps(run, path, eps, delta):
    result = init(run, path, "adult", eps, delta)
    assert isinstance(result.exception, ConfigError)
    assert snapshot(path) is None


def test_init_in_a_missing_directory(run, tmp_path):
    result = init(run, tmp_path / "nope" / "ledger.db")
    assert isinstance(result.exception, LedgerError)
    assert "does not exist" in str(result.exception)


def test_show_table_and_json(run, path):
    init(run, path)
    with Ledger.open(path, dataset_id="adult") as led:
        led.reserve(PureDP(0.25), purpose="age histogram").commit()
        led.reserve(PureDP(0.25), purpose="income histogram")
    result = run("show", path)
    assert result.exit_code == 0, result.output
    for text in ("dataset 'adult'", "epsilon = 1", "epsilon = 0.5", "age histogram", "reserve"):
        assert text in result.output
    assert "2 counted: 1 committed, 1 reserved" in result.output
    result = run("show", path, "--json")
    summary = json.loads(result.output)
    assert summary["spent"] == {"epsilon": 0.5, "delta": 1e-9}
    assert summary["remaining"] == {"epsilon": 0.5, "delta": 1e-9}
    assert summary["releases"] == {"active": 2, "committed": 1, "pending": 1, "cancelled": 0}
    assert [e["kind"] for e in summary["last_entries"]] == ["cap", "reserve", "commit", "reserve"]


def test_show_needs_dataset_id_when_there_are_several(run, path):
    init(run, path)
    init(run, path, "census", 2.0, 0.0)
    result = run("show", path)
    assert isinstance(result.exception, ConfigError)
    assert "adult, census" in str(result.exception)
    result = run("show", path, "--dataset-id", "census", "--json")
    assert json.loads(result.output)["cap"] == {"epsilon": 2.0, "delta": 0.0}
    result = run("show", path, "--dataset-id", "unknown")
    assert isinstance(result.exception, ConfigError)
    assert "adult, census" in str(result.exception)


def test_show_missing_ledger(run, tmp_path):
    result = run("show", tmp_path / "missing.db")
    assert isinstance(result.exception, LedgerError)
    assert "no ledger at" in str(result.exception)


def test_verify_ok_and_corrupt(run, path):
    init(run, path)
    with Ledger.open(path, dataset_id="adult") as led:
        led.reserve(PureDP(0.25), purpose="a")
        head = led.head()
    result = run("verify", path)
    assert result.exit_code == 0
    assert result.output.strip() == f"ok: 2 entries, head {head}"
    execute(path, ("UPDATE {entries} SET purpose = 'b' WHERE seq = 2", ()))
    result = run("verify", path)
    assert isinstance(result.exception, LedgerCorrupt)
    assert "entry seq 2 was modified" in str(result.exception)


def test_export_to_stdout_and_file_and_verify_the_export(run, path, tmp_path):
    init(run, path)
    with Ledger.open(path, dataset_id="adult") as led:
        led.reserve(PureDP(0.25), purpose="a").commit()
        head = led.head()
    result = run("export", path)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3]
    out = tmp_path / "ledger.jsonl"
    result = run("export", path, "-o", out)
    assert result.exit_code == 0
    assert out.read_text(encoding="utf-8").splitlines() == lines
    result = run("verify", out)
    assert result.output.strip() == f"ok: 3 entries, head {head}"
    out.write_text("\n".join([lines[0], lines[2]]) + "\n", encoding="utf-8")
    result = run("verify", out)
    assert isinstance(result.exception, LedgerCorrupt)
    assert "entry seq 2 is missing" in str(result.exception)
