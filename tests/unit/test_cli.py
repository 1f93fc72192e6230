import json

import pytest

from privsynth.cli import main
from privsynth.errors import EXIT_CODES


def run(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_version_and_help(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and "privsynth" in out
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "schema" in out and "ledger" in out and "demo" in out


def test_schema_draft_and_check(tmp_path, capsys, toy_frame):
    toy_frame.to_csv(tmp_path / "d.csv", index=False)
    code, _, err = run(
        capsys, "schema", "draft", str(tmp_path / "d.csv"), "-o", str(tmp_path / "s.json")
    )
    assert code == 0 and "patient_id" in err and "source: data" in err
    schema = json.loads((tmp_path / "s.json").read_text())
    assert schema["columns"]["patient_id"]["kind"] == "identifier"
    # A drafted schema is refused for release until reviewed ...
    code, _, err = run(capsys, "schema", "check", str(tmp_path / "d.csv"), str(tmp_path / "s.json"))
    assert code == EXIT_CODES["SchemaError"]
    assert err.startswith("error: the domain of column(s)") and err.count("\n") == 1
    # ... or accepted with the explicit opt-in, which prints the caveat.
    code, out, _ = run(
        capsys,
        "schema",
        "check",
        str(tmp_path / "d.csv"),
        str(tmp_path / "s.json"),
        "--unsafe-data-domain",
    )
    assert code == 0 and "DP caveat" in out and out.rstrip().splitlines()[-1].startswith("ok:")


def test_errors_are_one_line_with_documented_exit_codes(
    tmp_path, capsys, toy_frame, toy_schema_dict
):
    toy_frame.loc[3, "sex"] = "X"
    toy_frame.to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "s.json").write_text(json.dumps(toy_schema_dict))
    code, _, err = run(capsys, "schema", "check", str(tmp_path / "d.csv"), str(tmp_path / "s.json"))
    assert code == EXIT_CODES["DataError"]
    assert err.count("\n") == 1 and "column 'sex'" in err and "Traceback" not in err
    code, _, err = run(capsys, "schema", "draft", str(tmp_path / "missing.csv"))
    assert code == EXIT_CODES["DataError"] and "does not exist" in err
    code, _, err = run(
        capsys, "schema", "check", str(tmp_path / "d.csv"), str(tmp_path / "nope.json")
    )
    assert code == EXIT_CODES["SchemaError"]
    code, _, err = run(capsys, "schema", "frobnicate")
    assert code == 2 and "No such command" in err


def test_debug_shows_the_traceback(tmp_path):
    from privsynth.errors import DataError

    with pytest.raises(DataError):
        main(["--debug", "schema", "draft", str(tmp_path / "missing.csv")])


def test_demo_refuses_to_clobber_a_foreign_folder(tmp_path, capsys):
    (tmp_path / "precious.txt").write_text("keep me")
    code, _, err = run(capsys, "demo", "--out", str(tmp_path))
    assert code == EXIT_CODES["ConfigError"] and "not a privsynth demo folder" in err
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_demo_recreates_its_own_folder(tmp_path, capsys, monkeypatch):
    from privsynth.cli import walkthrough

    seen = []
    monkeypatch.setattr(walkthrough, "run_demo", lambda out: seen.append(sorted(out.iterdir())))
    out = tmp_path / "demo"
    assert run(capsys, "demo", "--out", str(out))[0] == 0
    (out / "old-release.txt").write_text("from the last run")
    assert run(capsys, "demo", "--out", str(out))[0] == 0
    assert [p.name for p in seen[1]] == [walkthrough.MARKER]  # the old files are gone
