"""Signing and offline verification of a release folder (no attack suite needed here)."""

import base64
import json
import re
import shutil
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privsynth.budget import Budget, Ledger
from privsynth.cli import main
from privsynth.errors import EXIT_CODES, ConfigError, SignatureError
from privsynth.generators.marginal.mst import MST
from privsynth.pipeline.folder import write_signed
from privsynth.report import ENVELOPE, PUBLIC_KEY, REPORT_HTML, REPORT_JSON, REPORT_PDF, VERIFY_MD
from privsynth.report.build import build_report, plain, source_fingerprint
from privsynth.report.keys import fingerprint, public_pem
from privsynth.report.render import render_release
from privsynth.report.sign import (
    canonical,
    envelope_bytes,
    pae,
    report_id,
    sha256_file,
    sign_envelope,
)
from privsynth.report.verify import validate_report, verify_release
from privsynth.schema import Schema
from tests.system import browser

SCHEMA = Schema.from_dict(
    {
        "version": 1,
        "columns": {
            "sex": {"kind": "categorical", "categories": ["F", "M"]},
            "age": {"kind": "integer", "lower": 18, "upper": 90, "bins": 12},
        },
    }
)


def _frame(n=800, seed=3):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"sex": rng.choice(["F", "M"], n), "age": rng.integers(20, 80, n)})


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """A signed release folder (report without attacks), its key and ledger."""
    root = tmp_path_factory.mktemp("signed")
    key = Ed25519PrivateKey.generate()
    df = _frame()
    with Ledger.open(root / "l.sqlite", dataset_id="d", cap=Budget(2, 1e-6)) as ledger:
        spent_before = ledger.spent()
        gen = MST(epsilon=1.0).fit(df, SCHEMA, ledger)
        led = {
            "file": "l.sqlite",
            "dataset_id": "d",
            "reservations": [gen.ledger_entry_["reservation"]],
            "head": gen.ledger_entry_["head"],
            "cap": ledger.cap.to_dict(),
            "spent_before": spent_before.to_dict(),
            "this_release": {"epsilon": 1.0, "delta": 1e-9},
            "spent_after": ledger.spent().to_dict(),
            "remaining": ledger.remaining().to_dict(),
        }
    folder = root / "rel"
    folder.mkdir()
    gen.sample(50, seed=0).to_csv(folder / "synthetic.csv", index=False)
    report = build_report(
        generator="mst",
        params=gen.get_params(),
        spec=gen.privacy_spec(),
        given_schema=SCHEMA,
        learned_schema=gen.schema_,
        caveats=[],
        fingerprint=source_fingerprint(df, key),
        release={
            "rows_released": 50,
            "format": "csv",
            "data_file": "synthetic.csv",
            "files": {},
            "holdout_fraction": 0.0,
            "split": "none",
        },
        ledger=led,
        utility=None,
        attacks=None,
        verdict={"policy": "standard", "passed": True, "failed_checks": []},
        signer=fingerprint(key.public_key()),
        started=datetime.now(UTC),
    )
    write_signed(folder, report, key, pdf=False)
    pub = root / "signer.pub.pem"
    pub.write_bytes(public_pem(key.public_key()))
    return {"folder": folder, "key": key, "pub": pub, "ledger": root / "l.sqlite", "df": df}


def _copy(signed, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(signed["folder"], dst)
    return dst


def test_round_trip_verifies_with_the_given_key_and_the_ledger(signed):
    v = verify_release(signed["folder"], public_key=signed["pub"], ledger=signed["ledger"])
    assert v.signer == fingerprint(signed["key"].public_key())
    files = {p.name for p in signed["folder"].iterdir()} - {ENVELOPE}
    assert set(v.subjects) == files
    assert {"synthetic.csv", REPORT_JSON, REPORT_HTML, PUBLIC_KEY, VERIFY_MD} <= files
    assert any(c.startswith("ledger:") for c in v.checks)


def test_report_is_canonical_json_with_its_own_id_and_valid_schema(signed):
    raw = (signed["folder"] / REPORT_JSON).read_bytes()
    report = json.loads(raw)
    assert canonical(report) == raw
    assert report["report_id"] == report_id(report)
    validate_report(report)
    broken = {**report, "signer": "someone"}
    with pytest.raises(SignatureError, match="signer"):
        validate_report(broken)


def test_envelope_signature_covers_the_dsse_pae(signed):
    env = json.loads((signed["folder"] / ENVELOPE).read_text())
    body = base64.b64decode(env["payload"])
    # PAE by hand, as in the DSSE spec: "DSSEv1" SP len(type) SP type SP len(body) SP body.
    t = env["payloadType"].encode()
    assert pae(env["payloadType"], body) == b"DSSEv1 " + str(len(t)).encode() + b" " + t + (
        b" " + str(len(body)).encode() + b" " + body
    )
    signed["key"].public_key().verify(
        base64.b64decode(env["signatures"][0]["sig"]), pae(env["payloadType"], body)
    )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_single_byte_change_is_rejected_naming_the_file(signed, tmp_path_factory, data):
    folder = _copy(signed, tmp_path_factory.mktemp("t"))
    names = sorted(p.name for p in folder.iterdir())
    name = data.draw(st.sampled_from(names))
    raw = bytearray((folder / name).read_bytes())
    offset = data.draw(st.integers(0, len(raw) - 1))
    raw[offset] = (raw[offset] + data.draw(st.integers(1, 255))) % 256
    (folder / name).write_bytes(bytes(raw))
    with pytest.raises(SignatureError) as exc:
        verify_release(folder, public_key=signed["pub"])
    msg = str(exc.value)
    # The message names the changed file (the public key: also fine to fail as "not a key").
    assert name in msg or (name == PUBLIC_KEY and "public key" in msg), msg


def test_a_wrong_key_and_a_substituted_folder_key_are_rejected(signed, tmp_path):
    other = Ed25519PrivateKey.generate()
    wrong = tmp_path / "wrong.pub.pem"
    wrong.write_bytes(public_pem(other.public_key()))
    with pytest.raises(SignatureError, match="does not verify"):
        verify_release(signed["folder"], public_key=wrong)
    folder = _copy(signed, tmp_path)
    (folder / PUBLIC_KEY).write_bytes(public_pem(other.public_key()))
    with pytest.raises(SignatureError):
        verify_release(folder)


def test_added_and_removed_files_are_rejected(signed, tmp_path):
    folder = _copy(signed, tmp_path)
    (folder / "extra.csv").write_text("a\n1\n")
    with pytest.raises(SignatureError, match="extra.csv.*not covered"):
        verify_release(folder, public_key=signed["pub"])
    (folder / "extra.csv").unlink()
    (folder / VERIFY_MD).unlink()
    with pytest.raises(SignatureError, match="VERIFY.md is missing"):
        verify_release(folder, public_key=signed["pub"])


def test_the_ledger_check_refuses_another_ledger(signed, tmp_path):
    with Ledger.open(tmp_path / "other.sqlite", dataset_id="d", cap=Budget(1, 1e-6)) as other:
        other.register()
    with pytest.raises(SignatureError, match="head hash"):
        verify_release(signed["folder"], ledger=tmp_path / "other.sqlite")


def test_source_fingerprint_is_keyed(signed):
    df, key = signed["df"], signed["key"]
    a = source_fingerprint(df, key)["value"]
    assert a == source_fingerprint(df.copy(), key)["value"]
    assert a != source_fingerprint(df, Ed25519PrivateKey.generate())["value"]
    assert a != source_fingerprint(df.iloc[1:], key)["value"]


def test_report_has_no_exact_row_count_and_no_row(signed):
    text = (signed["folder"] / REPORT_JSON).read_text()
    assert f'"{len(signed["df"])}"' not in text and f":{len(signed['df'])}," not in text
    assert plain({"a": np.float64("nan"), "b": np.int64(3)}) == {"a": None, "b": 3}


def test_cli_keygen_and_verify(signed, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["keygen", "--out", str(tmp_path / "key")])
    assert exc.value.code == 0 and "fingerprint: SHA256:" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["verify", str(signed["folder"]), "--public-key", str(signed["pub"])])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "verified" in out
    assert "decision: INCOMPLETE (privacy not checked, usefulness not judged" in out
    folder = _copy(signed, tmp_path)
    (folder / "synthetic.csv").write_text("sex,age\nF,30\n")
    with pytest.raises(SystemExit) as exc:
        main(["verify", str(folder)])
    err = capsys.readouterr().err
    assert exc.value.code == EXIT_CODES["SignatureError"]
    assert err.count("\n") == 1 and "synthetic.csv was changed" in err


def _resign(folder, edit):
    """An attacker's re-signed folder: ``edit`` the signed subject list, sign with a new key
    and put that key in the folder (verify without --public-key then trusts it)."""
    attacker = Ed25519PrivateKey.generate()
    (folder / PUBLIC_KEY).write_bytes(public_pem(attacker.public_key()))
    stmt = json.loads(base64.b64decode(json.loads((folder / ENVELOPE).read_bytes())["payload"]))
    stmt["subject"] = edit(
        [
            {"name": s["name"], "digest": {"sha256": sha256_file(folder / s["name"])}}
            for s in stmt["subject"]
        ]
    )
    (folder / ENVELOPE).write_bytes(envelope_bytes(sign_envelope(stmt, attacker)))


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "/etc/passwd", "sub/synthetic.csv", "..", ".", "", None, 7]
)
def test_subject_names_cannot_lead_verify_out_of_the_folder(signed, tmp_path, monkeypatch, name):
    folder = _copy(signed, tmp_path)
    outside = tmp_path / "etc" / "passwd"
    outside.parent.mkdir()
    outside.write_text("root:x:0:0\n")
    digest = sha256_file(outside)
    _resign(folder, lambda subs: [*subs, {"name": name, "digest": {"sha256": digest}}])
    hashed = []
    monkeypatch.setattr(
        "privsynth.report.verify.sha256_file", lambda p: hashed.append(p) or sha256_file(p)
    )
    with pytest.raises(SignatureError, match="not a plain file name"):
        verify_release(folder)
    assert hashed == []  # refused before any file was read


def test_a_symlink_in_the_folder_is_refused_even_with_a_matching_digest(signed, tmp_path):
    folder = _copy(signed, tmp_path)
    outside = tmp_path / "elsewhere.csv"
    shutil.move(folder / "synthetic.csv", outside)  # same bytes, so the same digest
    (folder / "synthetic.csv").symlink_to(outside)
    with pytest.raises(SignatureError, match="synthetic.csv is not a regular file"):
        verify_release(folder, public_key=signed["pub"])


def _digests(folder):
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir())}


def test_report_rerenders_byte_identically_without_touching_release_or_ledger(
    signed, tmp_path, capsys
):
    folder = _copy(signed, tmp_path)
    before, ledger_before = _digests(folder), signed["ledger"].read_bytes()
    pages = []
    for _ in range(2):
        with pytest.raises(SystemExit) as exc:
            main(["report", str(folder), "--public-key", str(signed["pub"])])
        assert exc.value.code == 0, capsys.readouterr().err
        pages.append((tmp_path / "copy-rendered" / REPORT_HTML).read_bytes())
    assert "wrote" in capsys.readouterr().out
    assert pages[0] == pages[1]
    assert b"@page{size:A4;" in pages[0]
    headings = re.findall(r"<h2>(.*?)</h2>", pages[0].decode())
    assert headings[0].startswith("Privacy budget: requested, spent")
    assert headings[-1].startswith("Appendix: every privacy charge")
    report = json.loads((folder / REPORT_JSON).read_bytes())
    assert report["report_id"].encode() in pages[0]
    assert _digests(folder) == before and signed["ledger"].read_bytes() == ledger_before
    verify_release(folder, public_key=signed["pub"], ledger=signed["ledger"])
    assert sorted(p.name for p in (tmp_path / "copy-rendered").iterdir()) == [REPORT_HTML]


def test_report_refuses_a_tampered_release_and_writes_nothing(signed, tmp_path, capsys):
    folder = _copy(signed, tmp_path)
    raw = (folder / REPORT_JSON).read_bytes()
    (folder / REPORT_JSON).write_bytes(raw.replace(b'"passed":true', b'"passed":false', 1))
    with pytest.raises(SystemExit) as exc:
        main(["report", str(folder), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exc.value.code == EXIT_CODES["SignatureError"]
    assert err.count("\n") == 1 and err.startswith("error: audit.json was changed"), err
    assert not (tmp_path / "out").exists()


def test_report_refuses_an_out_folder_inside_the_release(signed, tmp_path):
    folder = _copy(signed, tmp_path)
    for out in (folder, folder / "rendered"):
        with pytest.raises(ConfigError, match="inside the release"):
            render_release(folder, out=out)
    verify_release(folder, public_key=signed["pub"])


def test_report_paper_is_a_validated_choice(signed, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["report", str(signed["folder"]), "--paper", "a5", "--out", str(tmp_path / "o")])
    assert exc.value.code == 2 and "'a5' is not one of 'a4', 'letter'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="paper"):
        render_release(signed["folder"], out=tmp_path / "o", paper="A4")
    letter = render_release(signed["folder"], out=tmp_path / "o", paper="letter")
    assert "@page{size:letter;" in letter.html.read_text()


PAPER_POINTS = {"a4": (595.28, 841.89), "letter": (612.0, 792.0)}


@pytest.mark.parametrize("paper", sorted(PAPER_POINTS))
def test_report_pdf_is_printed_on_the_chosen_paper(signed, tmp_path, paper):
    browser.chromium()  # skips (or, in CI, fails) without a browser
    result = render_release(signed["folder"], out=tmp_path / "o", pdf=True, paper=paper)
    assert result.pdf == tmp_path / "o" / REPORT_PDF
    boxes = re.findall(
        rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", result.pdf.read_bytes()
    )
    assert boxes, "no MediaBox in the PDF"
    for w, h in boxes:
        assert (float(w), float(h)) == pytest.approx(PAPER_POINTS[paper], abs=2)


def test_a_release_signed_before_the_decision_existed_still_verifies_and_renders(signed, tmp_path):
    """Reports made before the decision, the baselines and day-precision dates verify as they
    are, and `privsynth report` derives their decision from what they hold."""
    old = json.loads((signed["folder"] / REPORT_JSON).read_bytes())
    del old["decision"]
    del old["regulator"]  # reports before the decision were format 1, without these blocks
    old["report_format"] = "privsynth-audit/1"
    old["created"] = old["started"] = "2026-11-30T14:03:59Z"
    for hazard in old["dp_guarantee"]["implementation_hazards"]:
        if hazard["hazard"].startswith("timing"):
            hazard["status"] = "not mitigated"  # as releases before this change said
    old.pop("report_id")
    old["report_id"] = report_id(old)
    folder = tmp_path / "old"
    folder.mkdir()
    shutil.copy(signed["folder"] / "synthetic.csv", folder)
    write_signed(folder, old, signed["key"], pdf=False)
    verify_release(folder, public_key=signed["pub"])
    page = render_release(folder, out=tmp_path / "o").html.read_text()
    assert 'id="verdict-privacy"' in page and "All checks passed" not in page
    # no attack suite ran, and the old timing hazard reads as open
    assert "Privacy: not checked" in page and "Not mitigated: timing" in page


def test_the_decision_is_signed_and_shapes_the_first_screen(signed):
    report = json.loads((signed["folder"] / REPORT_JSON).read_bytes())
    d = report["decision"]
    # this report has no attack suite and no utility: nothing judged, so nothing "passed"
    assert d["overall"] == "incomplete" and d["implementation"]["status"] == "pass"
    assert d["privacy"]["this_release"]["epsilon"] == report["dp_guarantee"]["epsilon_spent"]
    assert report["created"].endswith("T00:00:00Z")  # dates, not run times
    page = (signed["folder"] / REPORT_HTML).read_text()
    assert page.index('id="overall"') < page.index("<h2>")
    assert "INCOMPLETE" in page and "All checks passed" not in page
