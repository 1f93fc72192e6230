"""The README's first command, end to end (in-process; `make demo` runs the same code)."""

import json
import subprocess
import sys

from privsynth.budget import Ledger


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
    release = json.loads((out / "release" / "release.json").read_text())
    assert set(release["files"]) == {"synthetic.csv", "model.json"}
    assert release["privacy"]["epsilon"] == 1.0
    with Ledger.open(out / "ledger.sqlite", dataset_id="adult", readonly=True) as ledger:
        ledger.verify()
        # One release at (1, 1e-9) composes to at most epsilon 1 at the cap's delta 1e-6.
        assert 0 < ledger.spent().epsilon <= 1.0
        assert ledger.head() == release["ledger"]["head"]
    # A second run recreates its own folder instead of failing.
    again = subprocess.run(
        [sys.executable, "-m", "privsynth.cli", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
