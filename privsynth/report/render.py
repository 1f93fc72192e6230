"""Re-render an existing signed release: verify it, then print its signed report again.

``privsynth report RELEASE_DIR`` (and :func:`render_release`) reads nothing but the release
folder: it verifies the folder as ``privsynth verify`` does, then renders the HTML page (and,
when asked, the PDF) from the signed ``audit.json`` alone. No model is fitted, no data is read,
no ledger is opened, so no privacy budget is spent.

The output goes to a folder *outside* the release (by default its sibling
``<RELEASE_DIR>-rendered/``): ``verify`` refuses a release folder holding any file the
signature does not cover, so writing into it would break the release.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from privsynth.errors import ConfigError
from privsynth.io import atomic_output, atomic_write_text
from privsynth.report import REPORT_HTML, REPORT_PDF
from privsynth.report.pdf import print_pdf
from privsynth.report.render_html import PAPERS, render_html
from privsynth.report.verify import verify_release


@dataclass(frozen=True)
class Rendered:
    """What :func:`render_release` wrote."""

    report_id: str
    html: Path
    pdf: Path | None


def default_out(folder: Path) -> Path:
    """Where a release's re-render goes by default: the sibling ``<folder>-rendered``."""
    return folder.parent / f"{folder.name}-rendered"


def render_release(
    folder: str | Path,
    *,
    out: str | Path | None = None,
    pdf: bool = False,
    paper: str = "a4",
    public_key: str | Path | None = None,
) -> Rendered:
    """Verify the release in ``folder``, then render its signed report into ``out``.

    Parameters
    ----------
    folder
        A signed release folder.
    out
        The folder to write ``audit.html`` (and ``audit.pdf``) into, created if missing; any
        earlier re-render there is replaced, other files are left alone. Default:
        :func:`default_out`. It must not be the release folder or inside it.
    pdf
        Also print the page to PDF with headless Chromium.
    paper
        ``"a4"`` (default) or ``"letter"``: the paper size of the PDF (and of the page when
        printed from a browser).
    public_key
        The signer's public key from a trusted channel, as for ``privsynth verify``.

    Returns
    -------
    Rendered
        The report id and the paths written.

    Raises
    ------
    SignatureError
        If the release does not verify (changed, added or missing files, a bad signature, a
        report that does not match its schema): nothing is written.
    ConfigError
        If ``paper`` is unknown, ``out`` is inside the release or not a folder, or the PDF
        cannot be printed.
    """
    folder = Path(folder)
    if paper not in PAPERS:
        raise ConfigError(f"paper ({paper!r}) must be one of {', '.join(PAPERS)}")
    verified = verify_release(folder, public_key=public_key)
    target = default_out(folder) if out is None else Path(out)
    inside = folder.resolve()
    if target.resolve() == inside or inside in target.resolve().parents:
        raise ConfigError(
            f"--out {target} is inside the release {folder}: a file there would not be covered "
            "by the signature and `privsynth verify` would refuse the release; choose a folder "
            "outside it"
        )
    if target.exists() and not target.is_dir():
        raise ConfigError(f"--out {target} is not a folder")
    if not target.parent.is_dir():
        raise ConfigError(f"the folder {target.parent} for --out does not exist")
    target.mkdir(exist_ok=True)
    html = target / REPORT_HTML
    atomic_write_text(html, render_html(verified.report, paper=paper))
    if not pdf:
        return Rendered(verified.report_id, html, None)
    with atomic_output(target / REPORT_PDF) as tmp:
        print_pdf(html, tmp)
    return Rendered(verified.report_id, html, target / REPORT_PDF)
