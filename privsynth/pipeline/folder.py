"""The release folder: refused before anything is spent, assembled aside, renamed into place.

A release is written into a temporary sibling folder and renamed over ``out`` only once whole
and signed, so a failed or killed run leaves no half-written release; what a killed run left
behind is removed by the next release into the same place.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privsynth.errors import ConfigError
from privsynth.io import atomic_write_bytes, atomic_write_text
from privsynth.report import ENVELOPE, PUBLIC_KEY, REPORT_HTML, REPORT_JSON, REPORT_PDF, VERIFY_MD
from privsynth.report.keys import public_pem
from privsynth.report.pdf import print_pdf
from privsynth.report.render_html import render_html
from privsynth.report.sign import canonical, envelope_bytes, sha256_file, sign_envelope, statement
from privsynth.report.verify_doc import verify_md


def check_out(out: Path, *, force: bool) -> None:
    """``out`` must name a folder to create in an existing folder; ``force`` replaces only an
    earlier release (a folder holding the signed envelope, ``ENVELOPE``) or an empty folder,
    never other files."""
    if out.exists() or out.is_symlink():
        if not force:
            raise ConfigError(f"output folder {out} exists; choose a new one or pass --force")
        if out.is_symlink() or not out.is_dir():
            raise ConfigError(
                f"--out {out} is not a folder; --force replaces only a release folder"
            )
        if any(out.iterdir()) and not (out / ENVELOPE).is_file():
            raise ConfigError(
                f"--force replaces only a release folder (one with {ENVELOPE}) or an empty "
                f"one; {out} is neither: choose a new --out"
            )
    if not out.parent.is_dir():
        raise ConfigError(f"the folder {out.parent} for the release does not exist")


@contextlib.contextmanager
def assembled(out: Path) -> Iterator[Path]:
    """A temporary sibling of ``out`` to write into; renamed to ``out`` when the block ends
    without error (replacing an earlier release only then), removed if it raises."""
    _remove_stale_partials(out)
    tmp = Path(
        tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".partial", dir=out.parent)
    )
    try:
        yield tmp
        if out.exists():  # --force: replace the old folder only now that the new one is whole
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)
        raise


def write_signed(folder: Path, report: dict, key: Ed25519PrivateKey, *, pdf: bool) -> None:
    """Write the report files into ``folder`` and sign every file in it."""
    atomic_write_bytes(folder / REPORT_JSON, canonical(report))
    atomic_write_text(folder / REPORT_HTML, render_html(report))
    if pdf:
        print_pdf(folder / REPORT_HTML, folder / REPORT_PDF)
    atomic_write_bytes(folder / PUBLIC_KEY, public_pem(key.public_key()), mode=0o644)
    atomic_write_text(
        folder / VERIFY_MD, verify_md(report, data_file=report["release"]["data_file"])
    )
    subjects = {p.name: sha256_file(p) for p in sorted(folder.iterdir())}
    envelope = sign_envelope(statement(subjects, report), key)
    atomic_write_bytes(folder / ENVELOPE, envelope_bytes(envelope))


def signed_files(out: Path) -> dict[str, str]:
    """File name -> SHA-256 of every signed file of the release in ``out``."""
    return {p.name: sha256_file(p) for p in sorted(out.iterdir()) if p.name != ENVELOPE}


def _remove_stale_partials(out: Path) -> None:
    """Remove what killed releases into ``out`` left behind (their process is gone)."""
    for p in out.parent.glob(f".{glob.escape(out.name)}.*.partial"):
        pid = p.name[len(out.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
