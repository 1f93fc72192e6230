"""``privsynth demo``: run the walkthrough (:mod:`privsynth.cli.walkthrough`) in its folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from privsynth.cli.options import FOLDER
from privsynth.errors import ConfigError


@click.command("demo")
@click.option(
    "--out",
    type=FOLDER,
    default=Path("demo-out"),
    show_default=True,
    help="Folder for the demo's files (its ledger is recreated).",
)
def demo_cmd(out: Path) -> None:
    """Walk through privsynth on the bundled UCI Adult sample."""
    # The walkthrough releases (it imports torch: seconds), so it loads only when run.
    from privsynth.cli.walkthrough import MARKER, run_demo

    if out.exists():
        if not (out / MARKER).exists():
            raise ConfigError(
                f"--out {out} exists and is not a privsynth demo folder; choose another path"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).touch()
    run_demo(out)
