"""``privsynth verify``: check a signed release folder offline."""

from __future__ import annotations

from pathlib import Path

import click

from privsynth.cli.options import FOLDER, LEDGER, file_option
from privsynth.report.verdicts import decide
from privsynth.report.verify import verify_release


@click.command("verify")
@click.argument("folder", type=FOLDER)
@file_option(
    "--public-key",
    help="The signer's public key, from a channel you trust (default: the folder's own key, "
    "which proves integrity but not identity).",
)
@click.option(
    "--ledger",
    "ledger_path",
    type=LEDGER,
    help="Also check that the release's ledger entries are in this ledger's hash chain (a "
    "ledger file or a postgresql:// URL).",
)
def verify_cmd(folder: Path, public_key: Path | None, ledger_path: Path | str | None) -> None:
    """Verify a signed release FOLDER offline: signature, file digests, report, schema."""
    result = verify_release(folder, public_key=public_key, ledger=ledger_path)
    for line in result.checks:
        click.echo(f"ok  {line}")
    v = result.report["verdict"]
    status = "passed" if v["passed"] else "FAILED: " + ", ".join(v.get("failed_checks", []))
    click.echo(f"verified {folder}: report {result.report_id} (policy {v['policy']} {status})")
    d = result.report.get("decision") or decide(result.report)  # derived for older reports
    click.echo(
        f"decision: {d['overall'].upper()} (privacy {d['privacy']['status']}, usefulness "
        f"{d['usefulness']['status']}, implementation {d['implementation']['status']})"
    )
