"""A full signed release on a slice of Adult, checked the ways a recipient would check it:
``privsynth verify``, the Python and OpenSSL recipes in VERIFY.md, and the HTML report in a
real headless browser and as a PDF (skipped where Chromium or poppler is not installed,
except in CI: see ``tests/system/browser.py``)."""

import base64
import contextlib
import io
import json
import logging
import re
import shutil
import subprocess
import sys
from html import escape, unescape
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privsynth.budget import Budget, Ledger
from privsynth.datasets import load_adult
from privsynth.pipeline import release
from privsynth.report import ENVELOPE, PUBLIC_KEY, REPORT_HTML, REPORT_JSON, VERIFY_MD, words
from privsynth.report.keys import public_pem
from privsynth.report.pdf import headless_args
from privsynth.report.verify import verify_release
from tests.system import browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts"


@pytest.fixture(scope="module")
def rel(tmp_path_factory):
    root = tmp_path_factory.mktemp("rel")
    df, schema = load_adult()
    df = df.sample(3917, random_state=0)  # a size no label or threshold happens to equal
    key = Ed25519PrivateKey.generate()
    (root / "signer.pub.pem").write_bytes(public_pem(key.public_key()))
    # Everything the release prints or logs, at DEBUG, is kept to be searched for the key.
    console, records = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(records)
    root_logger = logging.getLogger()
    level = root_logger.level
    root_logger.addHandler(handler)
    root_logger.setLevel(logging.DEBUG)
    try:
        with (
            contextlib.redirect_stdout(console),
            contextlib.redirect_stderr(console),
            Ledger.open(root / "l.sqlite", dataset_id="adult", cap=Budget(3, 1e-6)) as ledger,
        ):
            res = release(
                df,
                schema,
                out=root / "release",
                ledger=ledger,
                key=key,
                epsilon=1.0,
                sensitive=["income"],
                quasi_identifiers=["age", "sex", "race"],
                target="income",
                groups=("sex", "race"),  # the bias section is laid out in the browser too
                seed=0,
            )
    finally:
        root_logger.removeHandler(handler)
        root_logger.setLevel(level)
    return {
        "root": root,
        "res": res,
        "pub": root / "signer.pub.pem",
        "rows": len(df),
        "key": key,
        "printed": (console.getvalue() + records.getvalue()).encode(),
    }


def test_the_private_key_appears_in_no_released_file_output_or_log(rel):
    raw = rel["key"].private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    pem = rel["key"].private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    forms = [raw, raw.hex().encode(), base64.b64encode(raw), pem.splitlines()[1]]
    for path in rel["res"].out.iterdir():
        data = path.read_bytes()
        assert not any(f in data for f in forms), path.name
    assert rel["printed"], "nothing was captured: the search below would prove nothing"
    assert not any(f in rel["printed"] for f in forms)


def test_release_folder_verifies_and_holds_every_file(rel):
    folder = rel["res"].out
    names = {p.name for p in folder.iterdir()}
    assert names == {
        "synthetic.csv",
        "model.json",
        REPORT_JSON,
        REPORT_HTML,
        PUBLIC_KEY,
        VERIFY_MD,
        ENVELOPE,
    }
    v = verify_release(folder, public_key=rel["pub"], ledger=rel["root"] / "l.sqlite")
    report = v.report
    assert report["attacks"]["attacks"] and report["utility"]["tvd"]["2way"]["mean"] < 0.2
    assert report["verdict"]["policy"] == "standard"
    # The private row counts (total, train, holdout) appear nowhere in the report. The plot
    # data (histogram bin counts of distances from synthetic rows) is left out: its many
    # counts can equal a row count by chance (seen once: a bin of 815 = the holdout size).
    doc = json.loads((folder / REPORT_JSON).read_text())
    doc["attacks"].pop("plots")
    text = json.dumps(doc)
    # release() splits with default_rng(seed).random(n) < fraction; redo it to get the sizes.
    held = int((np.random.default_rng(0).random(rel["rows"]) < 0.2).sum())
    # A count is a standalone number: not part of a longer number or of a word such as a hex
    # digest (seen once: the digest fragment "c815a" matched the holdout size 815).
    # The synthetic row count is the DP estimate of the training rows, whose noise is a few
    # rows here: it can equal the exact count by chance (seen once), which leaks nothing.
    private = {rel["rows"], rel["rows"] - held, held} - {report["release"]["rows_released"]}
    for n in private:
        assert not re.search(rf"(?<![\w.]){n}(?!\w|\.\d)", text), n


def _block(md: str, lang: str, heading: str) -> str:
    section = md[md.index(heading) :]
    return section.split(f"```{lang}\n", 1)[1].split("```", 1)[0]


@pytest.mark.skipif(
    not (shutil.which("openssl") and shutil.which("jq")), reason="needs openssl and jq"
)
def test_the_openssl_recipe_in_verify_md_works_and_catches_a_change(rel, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(rel["res"].out, folder)
    script = _block((folder / VERIFY_MD).read_text(), "sh", "## 3.")
    script = script.replace("KEY=SIGNER.pub.pem", f"KEY={rel['pub']}")
    ok = subprocess.run(["bash", "-c", script], cwd=folder, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "Signature Verified Successfully" in ok.stdout + ok.stderr
    assert ok.stdout.count("ok ") == len(list(folder.iterdir())) - 1
    with open(folder / "synthetic.csv", "ab") as fh:
        fh.write(b"x")
    bad = subprocess.run(["bash", "-c", script], cwd=folder, capture_output=True, text=True)
    assert bad.returncode != 0 and "CHANGED  synthetic.csv" in bad.stdout


def test_the_python_recipe_in_verify_md_works(rel, tmp_path):
    md = (rel["res"].out / VERIFY_MD).read_text()
    code = _block(md, "python", "## 2.")
    assert len(code.strip().splitlines()) <= 30
    (tmp_path / "verify.py").write_text(code)
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "verify.py"), str(rel["res"].out), str(rel["pub"])],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert rel["res"].report_id in proc.stdout


def test_html_report_renders_in_headless_chromium_without_console_errors(rel, tmp_path):
    html = rel["res"].out / REPORT_HTML
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "audit-report.png"
    proc = subprocess.run(
        [
            browser.chromium(),
            *headless_args(str(tmp_path / "profile")),
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1100,3000",
            f"--screenshot={shot}",
            html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.stat().st_size > 10_000  # a real page, not a blank one
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
    assert not console, console
    page = html.read_text()
    assert (
        "<script" not in page
        and "http://" not in page
        and "https://" not in page.replace("https://privsynth.dev", "")
    )
    assert page.count("data:image/png;base64,") >= 3  # marginals, ROC, DCR figures
    report = json.loads((rel["res"].out / REPORT_JSON).read_text())
    assert report["signer"] in page and report["report_id"] in page


def test_the_first_screen_carries_the_three_verdicts_and_the_overall_word(rel, tmp_path):
    report = json.loads((rel["res"].out / REPORT_JSON).read_text())
    decision = report["decision"]
    found = browser.layout(rel["res"].out / REPORT_HTML, tmp_path)
    height = found["viewport"][1]
    v = found["verdicts"]
    cards = [v[f"verdict-{name}"] for name in ("privacy", "usefulness", "implementation")]
    assert v["overall"] and all(cards), v
    # all on the first screen, the three side by side under the overall word
    assert all(box["bottom"] <= height for box in [v["overall"], *cards]), (height, v)
    assert len({round(c["top"]) for c in cards}) == 1 and cards[0]["top"] >= v["overall"]["bottom"]
    assert cards[0]["left"] < cards[1]["left"] < cards[2]["left"]
    # each says what audit.json says
    assert v["overall"]["text"].split()[0] == decision["overall"].upper()
    for name, card in zip(("privacy", "usefulness", "implementation"), cards, strict=True):
        assert card["text"].startswith(f"{name.capitalize()}: {decision[name]['status']}")
    assert ("All checks passed" in v["overall"]["text"]) == (decision["overall"] == "pass")
    # the privacy verdict translates epsilon into the attacker's best guess
    bound = decision["privacy"]["this_release"]["accuracy_max"]
    assert f"right at most {100 * bound:.3g}%" in cards[0]["text"]


@pytest.mark.parametrize("width", [1280, 760])
def test_no_text_overflows_its_box_and_no_text_is_cut_without_an_ellipsis(rel, tmp_path, width):
    found = browser.layout(rel["res"].out / REPORT_HTML, tmp_path, (width, 900))
    assert found["overflow"] == [], found["overflow"]
    assert found["cut"] == [], found["cut"]
    assert not found["page_wider_than_window"]


def test_the_layout_check_finds_an_overflow_and_a_bare_cut(rel, tmp_path):
    """The check above can fail: a copy of the page with a long word in a table cell and a
    clipped box without an ellipsis is caught on both counts."""
    page = (rel["res"].out / REPORT_HTML).read_text()
    bad = (
        '<table><tr><td id="wide">' + "x" * 400 + "</td></tr></table>"
        '<div id="clipped" style="width:60px;overflow:hidden;white-space:nowrap">'
        "Married-civ-spouse and more</div>"
        '<div id="ellipsised" style="width:60px;overflow:hidden;white-space:nowrap;'
        'text-overflow:ellipsis">Married-civ-spouse and more</div>'
    )
    (tmp_path / "bad.html").write_text(page.replace("</h1>", "</h1>" + bad, 1))
    found = browser.layout(tmp_path / "bad.html", tmp_path / "w")
    assert any("#wide" in x for x in found["overflow"]), found["overflow"]
    assert [x for x in found["cut"] if "clipped" in x] and not [
        x for x in found["cut"] if "ellipsised" in x
    ], found["cut"]


def test_every_attack_and_metric_shown_has_a_plain_name_in_the_glossary(rel):
    report = json.loads((rel["res"].out / REPORT_JSON).read_text())
    page = (rel["res"].out / REPORT_HTML).read_text()
    glossary = page.split("<h2>Glossary</h2>", 1)[1].split("<h2>", 1)[0]
    for r in report["attacks"]["attacks"]:
        for name in (r["name"], r["metric"]):
            assert words.known(name), name
            assert f"<code>{escape(name)}</code>" in glossary, name
            assert escape(words.plain(name)) in page
    assert "loose: the lower bound" in glossary  # "loose" / "tight" explained


def test_pdf_is_a4_with_the_verdicts_on_page_one_and_every_section(rel, tmp_path):
    from privsynth.report.pdf import print_pdf

    browser.chromium()  # skips (or, in CI, fails) without a browser
    pdf = tmp_path / "audit.pdf"
    print_pdf(rel["res"].out / REPORT_HTML, pdf)
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and len(data) > 20_000
    pages, size = browser.pdf_pages(pdf)
    assert pages >= 2 and "(A4)" in size, size
    decision = json.loads((rel["res"].out / REPORT_JSON).read_text())["decision"]
    first = browser.words(browser.pdf_text(pdf, first=1, last=1))
    assert decision["overall"].upper() in first
    for name in ("privacy", "usefulness", "implementation"):
        assert f"{name.capitalize()}: {decision[name]['status']}" in first, first[:2000]
    text = browser.words(browser.pdf_text(pdf))
    headings = re.findall(r"<h2>(.*?)</h2>", (rel["res"].out / REPORT_HTML).read_text())
    assert len(headings) >= 10
    for heading in headings:
        assert browser.words(unescape(heading)) in text, heading
