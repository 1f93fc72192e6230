"""``VERIFY.md``: how to check a release with privsynth, with Python alone, with OpenSSL + jq."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from typing import Any

from privsynth.report import ENVELOPE, PUBLIC_KEY, REPORT_JSON


def verify_md(report: Mapping[str, Any], *, data_file: str) -> str:
    template = resources.files("privsynth.report").joinpath("VERIFY.md.in").read_text("utf-8")
    return template.format(
        report_id=report["report_id"],
        signer=report["signer"],
        envelope=ENVELOPE,
        report_json=REPORT_JSON,
        public_key=PUBLIC_KEY,
        data_file=data_file,
    )
