"""``privsynth audit``: run the attack suite on a synthetic table and write ``attacks.json``.

Registered on the main command group with ``cli.add_command(audit_cmd)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from privsynth.io import atomic_write_text, read_table
from privsynth.schema import Schema


def split_names(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


@click.command("audit")
@click.option(
    "--train",
    "train_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The private rows the generator was fitted on.",
)
@click.option(
    "--holdout",
    "holdout_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Rows of the same population never used in fitting (omit to skip the attacks that "
    "need them).",
)
@click.option(
    "--synthetic",
    "synthetic_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The synthetic table.",
)
@click.option(
    "--schema",
    "schema_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The release schema.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for attacks.json (created if missing).",
)
@click.option("--sensitive", help="Comma-separated columns an attacker tries to infer.")
@click.option(
    "--quasi-identifiers",
    help="Comma-separated columns an attacker knows (default: all columns not sensitive).",
)
@click.option(
    "--policy",
    default="standard",
    show_default=True,
    help="Policy name (standard, strict) or a path to a TOML policy.",
)
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
    from privsynth.audit import run

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
