"""Headless Chromium and poppler for the report's browser tests.

``layout(html)`` opens a copy of a report page with a small script added (the page itself has
none) that measures, in the browser's own layout, every element holding text: whether it
overflows its box, whether it is clipped without an ellipsis, and where the three verdicts sit;
the script writes its findings into the page, and ``--dump-dom`` hands them back.

The tests skip without Chromium (or poppler) only outside CI: in CI (``CI`` or
``PRIVSYNTH_REQUIRE_BROWSER`` set, as ``.ci/run`` does) a missing browser fails them.
"""

from __future__ import annotations

import html as html_lib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from privsynth.report.pdf import find_browser, headless_args

#: Viewport of the "first screen": a laptop browser window.
FIRST_SCREEN = (1280, 800)

CHECK_JS = r"""
(function () {
  const describe = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
    (el.className ? "." + String(el.className).replace(/ /g, ".") : "") + ": " +
    el.textContent.trim().slice(0, 60);
  const body = document.body.getBoundingClientRect();
  const res = {overflow: [], cut: [], verdicts: {}, viewport: [innerWidth, innerHeight]};
  for (const el of document.body.querySelectorAll("*")) {
    if (["IMG", "STYLE", "SCRIPT", "BR"].includes(el.tagName)) continue;
    if (!el.textContent.trim()) continue;
    const cs = getComputedStyle(el);
    const rect = el.getBoundingClientRect();
    if (rect.right > body.right + 1 || rect.left < body.left - 1) {
      res.overflow.push(describe(el));
      continue;
    }
    if (el.clientWidth === 0 || el.scrollWidth <= el.clientWidth + 1) continue;
    if (["hidden", "clip"].includes(cs.overflowX)) {
      if (cs.textOverflow !== "ellipsis") res.cut.push(describe(el));
    } else if (cs.overflowX === "visible") {
      res.overflow.push(describe(el));
    }
  }
  res.page_wider_than_window =
    document.documentElement.scrollWidth > document.documentElement.clientWidth;
  for (const id of ["overall", "verdict-privacy", "verdict-usefulness", "verdict-implementation"]) {
    const el = document.getElementById(id);
    res.verdicts[id] = el && {
      text: el.innerText, top: el.getBoundingClientRect().top,
      bottom: el.getBoundingClientRect().bottom, left: el.getBoundingClientRect().left,
    };
  }
  const pre = document.createElement("pre");
  pre.id = "layout-check";
  pre.textContent = JSON.stringify(res);
  document.body.appendChild(pre);
})();
"""


def in_ci() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("PRIVSYNTH_REQUIRE_BROWSER"))


def require(tool: str | None, what: str) -> str:
    """``tool``'s path; skip the test without it, except in CI, where that fails it."""
    if tool is None:
        message = f"needs {what} (apt install chromium poppler-utils)"
        if in_ci():
            pytest.fail(f"{message}: CI must run the browser tests (.ci/run installs them)")
        pytest.skip(message)
    return tool


def chromium() -> str:
    return require(find_browser(), "Chromium")


def layout(html: Path, work: Path, size: tuple[int, int] = FIRST_SCREEN) -> dict:
    """The layout check's findings on ``html`` in a ``size`` window (see the module
    docstring); ``work`` holds the copy of the page and the browser profile."""
    work.mkdir(parents=True, exist_ok=True)
    page = html.read_text(encoding="utf-8")
    probe = work / "probe.html"
    probe.write_text(page.replace("</body>", f"<script>{CHECK_JS}</script></body>", 1), "utf-8")
    proc = subprocess.run(
        [
            chromium(),
            *headless_args(str(work / "profile")),
            "--hide-scrollbars",
            f"--window-size={size[0]},{size[1]}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.search(r'<pre id="layout-check">(.*?)</pre>', proc.stdout, re.S)
    assert found, "the layout check did not run: " + proc.stderr[-1000:]
    result: dict = json.loads(html_lib.unescape(found.group(1)))
    return result


def pdf_text(pdf: Path, *, first: int | None = None, last: int | None = None) -> str:
    """The text of ``pdf`` (pages ``first`` to ``last``) by poppler's pdftotext, in the order
    the page holds it (``-raw``: side-by-side boxes are not interleaved line by line)."""
    tool = require(shutil.which("pdftotext"), "pdftotext (poppler-utils)")
    pages = [*(["-f", str(first)] if first else []), *(["-l", str(last)] if last else [])]
    proc = subprocess.run(
        [tool, "-raw", *pages, str(pdf), "-"], capture_output=True, text=True, check=True
    )
    return proc.stdout


def pdf_pages(pdf: Path) -> tuple[int, str]:
    """The page count of ``pdf`` and its page size line, by poppler's pdfinfo."""
    tool = require(shutil.which("pdfinfo"), "pdfinfo (poppler-utils)")
    out = subprocess.run([tool, str(pdf)], capture_output=True, text=True, check=True).stdout
    info = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return int(info["Pages"]), info["Page size"].strip()


def words(text: str) -> str:
    """``text`` with every run of white space as one space (PDF text wraps anywhere)."""
    return " ".join(text.split())
