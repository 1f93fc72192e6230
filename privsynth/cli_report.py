"""``privsynth keygen`` and ``privsynth verify``: the signing key and offline verification."""

from __future__ import annotations

import os
from pathlib import Path

import click

from privsynth.report.keys import PASSPHRASE_ENV, fingerprint, keygen, load_public_key


@click.command("keygen")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Private key file to create (mode 0600); the public key goes to OUT.pub.pem.",
)
@click.option(
    "--passphrase",
    "ask",
    is_flag=True,
    help=f"Encrypt the private key with a passphrase (asked for, or read from {PASSPHRASE_ENV}).",
)
def keygen_cmd(out: Path, ask: bool) -> None:
    """Create an Ed25519 key pair for signing releases."""
    passphrase = None
    if ask:
        text = os.environ.get(PASSPHRASE_ENV) or click.prompt(
            "passphrase", hide_input=True, confirmation_prompt=True
        )
        passphrase = text.encode()
    priv, pub = keygen(out, passphrase=passphrase)
    click.echo(f"wrote {priv} (private, mode 0600; keep it secret) and {pub} (public)")
    click.echo(f"fingerprint: {fingerprint(load_public_key(pub))}")


@click.command("verify")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--public-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The signer's public key, from a channel you trust (default: the folder's own key, "
    "which proves integrity but not identity).",
)
@click.option(
    "--ledger",
    "ledger_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also check that the release's ledger entries are in this ledger's hash chain.",
)
def verify_cmd(folder: Path, public_key: Path | None, ledger_path: Path | None) -> None:
    """Verify a signed release FOLDER offline: signature, file digests, report, schema."""
    from privsynth.report.verify import verify_release

    result = verify_release(folder, public_key=public_key, ledger=ledger_path)
    for line in result.checks:
        click.echo(f"ok  {line}")
    v = result.report["verdict"]
    status = "passed" if v["passed"] else "FAILED: " + ", ".join(v.get("failed_checks", []))
    click.echo(f"verified {folder}: report {result.report_id} (policy {v['policy']} {status})")
