"""``--pdf``: print the HTML report to PDF with a headless Chromium, the same engine the
browser test renders it with."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from privsynth.errors import ConfigError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
NO_BROWSER = (
    "--pdf needs a Chromium browser (e.g. `apt install chromium`); or open audit.html and "
    "print it to PDF yourself"
)


def find_browser() -> str | None:
    return next((p for b in BROWSERS if (p := shutil.which(b))), None)


def headless_args(user_dir: str) -> list[str]:
    # Offline: no background networking, sync or component updates (the release machine may
    # have no network, and the page loads nothing from outside).
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={user_dir}",
    ]


def print_pdf(html: Path, pdf: Path, *, timeout: float = 120) -> None:
    """Print the page ``html`` to ``pdf`` with headless Chromium.

    The paper size is the page's own CSS ``@page`` size (A4 unless the page was rendered with
    ``paper="letter"``): Chromium's ``--print-to-pdf`` has no paper option and honours it.

    Raises
    ------
    ConfigError
        If no Chromium is installed, or printing fails.
    """
    browser = find_browser()
    if browser is None:
        raise ConfigError(NO_BROWSER)
    with tempfile.TemporaryDirectory() as user_dir:
        cmd = [
            browser,
            *headless_args(user_dir),
            "--no-pdf-header-footer",
            f"--print-to-pdf={pdf}",
            html.resolve().as_uri(),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not pdf.is_file() or pdf.stat().st_size == 0:
        raise ConfigError(f"printing the report to PDF with {browser} failed: {proc.stderr[-300:]}")
