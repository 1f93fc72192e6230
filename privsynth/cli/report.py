"""``privsynth report``: re-render a signed release's report (HTML, PDF) without spending."""

from __future__ import annotations

from pathlib import Path

import click

from privsynth.cli.options import FOLDER, file_option
from privsynth.report.render import render_release
from privsynth.report.render_html import PAPERS


@click.command("report")
@click.argument("folder", type=FOLDER)
@click.option("--pdf", is_flag=True, help="Also print the report to PDF (needs Chromium).")
@click.option(
    "--paper",
    type=click.Choice(tuple(PAPERS), case_sensitive=False),
    default="a4",
    show_default=True,
    help="Paper size of the PDF.",
)
@click.option(
    "--out",
    type=FOLDER,
    default=None,
    help="Folder to write audit.html (and audit.pdf) into, outside the release "
    "[default: FOLDER-rendered next to it].",
)
@file_option(
    "--public-key",
    help="The signer's public key, from a channel you trust (default: the folder's own key, "
    "which proves integrity but not identity).",
)
def report_cmd(
    folder: Path, pdf: bool, paper: str, out: Path | None, public_key: Path | None
) -> None:
    """Verify the release FOLDER, then render its signed audit.json to HTML (and PDF).

    Nothing is fitted, no data is read and no ledger is touched. The release folder is not
    changed: the output goes to --out.
    """
    result = render_release(folder, out=out, pdf=pdf, paper=paper, public_key=public_key)
    click.echo(f"verified {folder}: report {result.report_id}")
    for path in (result.html, result.pdf):
        if path is not None:
            click.echo(f"wrote {path}")
