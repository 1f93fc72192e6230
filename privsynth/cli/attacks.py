"""``privsynth audit``: run the attack suite on a synthetic table and write ``attacks.json``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from privsynth.cli.options import FILE, file_option, out_folder_option, policy_option, split_names
from privsynth.io import atomic_write_text, read_table
from privsynth.schema import Schema


@click.command("audit")
@file_option(
    "--train",
    "train_path",
    required=True,
    help="The private rows the generator was fitted on.",
)
@click.option(
    "--holdout",
    "holdout_path",
    type=FILE,
    help="Rows of the same population never used in fitting (omit to skip the attacks that "
    "need them).",
)
@file_option("--synthetic", "synthetic_path", required=True, help="The synthetic table.")
@file_option("--schema", "schema_path", required=True, help="The release schema.")
@out_folder_option("Folder for attacks.json (created if missing).")
@click.option("--sensitive", help="Comma-separated columns an attacker tries to infer.")
@click.option(
    "--quasi-identifiers",
    help="Comma-separated columns an attacker knows (default: all columns not sensitive).",
)
@policy_option("Policy name (standard, strict) or a path to a TOML policy.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random choice.")
@click.option(
    "--device",
    default="auto",
    show_default=True,
    help="auto (CUDA when present), cpu or cuda.",
)
def audit_cmd(
    train_path: Path,
    holdout_path: Path | None,
    synthetic_path: Path,
    schema_path: Path,
    out: Path,
    sensitive: str | None,
    quasi_identifiers: str | None,
    policy: str,
    seed: int,
    device: str,
) -> None:
    """Attack a synthetic table and write the aggregate results to OUT/attacks.json."""
    from privsynth.attacks import run  # imports torch: seconds, so only when attacking

    schema = Schema.load(schema_path)
    result = run(
        read_table(train_path),
        read_table(holdout_path) if holdout_path is not None else None,
        read_table(synthetic_path),
        schema,
        sensitive=split_names(sensitive) or [],
        quasi_identifiers=split_names(quasi_identifiers),
        policy=policy,
        seed=seed,
        device=device,
    )
    out.mkdir(parents=True, exist_ok=True)
    target = out / "attacks.json"
    atomic_write_text(target, json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n")
    verdict = result.verdict()
    failed = ", ".join(verdict["failed"]) or "none"
    click.echo(
        f"wrote {target}: policy {verdict['policy']!r} "
        f"{'passed' if verdict['passed'] else 'FAILED'} (failed: {failed}); "
        "empirical attacks are evidence, not a guarantee"
    )
