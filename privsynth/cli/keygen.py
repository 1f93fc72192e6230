"""``privsynth keygen``: the Ed25519 key pair that signs releases."""

from __future__ import annotations

import os
from pathlib import Path

import click

from privsynth.cli.options import file_option
from privsynth.report.keys import PASSPHRASE_ENV, fingerprint, keygen, load_public_key


@click.command("keygen")
@file_option(
    "--out",
    required=True,
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
