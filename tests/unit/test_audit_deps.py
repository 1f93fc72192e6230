"""``make audit-deps`` (tools/audit_deps.py): fails on a fixable vulnerability unless ignored
with a reason, and says NOT AUDITED, without failing, when no service can audit anything."""

import importlib.util
from pathlib import Path

import pytest

TOOL = Path(__file__).parents[2] / "tools" / "audit_deps.py"


@pytest.fixture
def tool(monkeypatch):
    spec = importlib.util.spec_from_file_location("audit_deps", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _report(*vulns, skipped=0):
    deps = [{"name": "demo", "version": "1.0", "vulns": list(vulns)}]
    deps += [{"name": f"s{i}", "skip_reason": "not found"} for i in range(skipped)]
    return {"dependencies": deps, "fixes": []}


def test_a_fixable_vulnerability_fails(tool, monkeypatch, capsys):
    vuln = {"id": "GHSA-1", "fix_versions": ["1.1"]}
    monkeypatch.setattr(tool, "run", lambda service, ignore: (_report(vuln, skipped=2), ""))
    assert tool.main() == 1
    out = capsys.readouterr().out
    assert "demo 1.0: GHSA-1 (fixed in: 1.1)" in out and "2 package(s) not audited" in out


def test_no_fix_yet_is_reported_but_passes(tool, monkeypatch, capsys):
    vuln = {"id": "GHSA-2", "fix_versions": []}
    monkeypatch.setattr(tool, "run", lambda service, ignore: (_report(vuln), ""))
    assert tool.main() == 0
    assert "GHSA-2 (fixed in: none yet)" in capsys.readouterr().out


def test_unreachable_or_unknown_is_not_audited_and_passes(tool, monkeypatch, capsys):
    all_skipped = {"dependencies": [{"name": "a", "skip_reason": "not found"}], "fixes": []}
    answers = {"pypi": (all_skipped, ""), "osv": (None, "DNS")}
    monkeypatch.setattr(tool, "run", lambda service, ignore: answers[service])
    assert tool.main() == 0
    out = capsys.readouterr().out
    assert "NOT AUDITED" in out and "osv: unreachable (DNS)" in out
    assert "pypi: knows none of the 1 installed versions" in out


def test_ignore_entries_need_a_reason(tool, tmp_path, monkeypatch):
    f = tmp_path / "ignore.txt"
    f.write_text("# comment\nGHSA-3  dev-only tool, not shipped\n")
    monkeypatch.setattr(tool, "IGNORE_FILE", f)
    assert tool.ignored() == {"GHSA-3": "dev-only tool, not shipped"}
    f.write_text("GHSA-4\n")
    with pytest.raises(SystemExit, match="GHSA-4 has no reason"):
        tool.ignored()
