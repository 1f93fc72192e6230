"""The README's first command, end to end (in-process; `make demo` runs the same code)."""

import json
import subprocess
import sys

from privsynth.budget import Ledger
from privsynth.report.verify import verify_release


def test_demo_runs_end_to_end(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "privsynth.cli", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "demo done" in proc.stdout
    draft = json.loads((out / "schema.draft.json").read_text())
    assert draft["columns"]["age"]["source"] == "data"
    report = json.loads((out / "release" / "audit.json").read_text())
    assert report["dp_guarantee"]["epsilon"] == 1.0
    assert "native-country" in report["dp_guarantee"]["data_dependent_preprocessing"][0]
    assert report["attacks"]["canary"]["status"] in ("consistent", "loose")
    assert "a copy with one byte changed is refused" in proc.stdout
    verified = verify_release(out / "release", public_key=out / "demo-key.pub.pem")
    assert verified.report_id == report["report_id"]
    with Ledger.open(out / "ledger.sqlite", dataset_id="adult", readonly=True) as ledger:
        ledger.verify()
        # One release at (1, 1e-9) composes to at most epsilon 1 at the cap's delta 1e-6.
        assert 0 < ledger.spent().epsilon <= 1.0
        assert ledger.head() == report["ledger"]["head"]
