"""The signed audit report: build it, render it, sign it, verify it.

A release folder holds the synthetic table, the model, the report as canonical JSON and as
HTML, the signer's public key, ``VERIFY.md`` and the DSSE envelope whose in-toto Statement
lists every other file in the folder with its SHA-256.
"""

from __future__ import annotations

ENVELOPE = "audit.intoto.dsse.json"
REPORT_JSON = "audit.json"
REPORT_HTML = "audit.html"
REPORT_PDF = "audit.pdf"
PUBLIC_KEY = "signer.pub.pem"
VERIFY_MD = "VERIFY.md"
SCHEMA_FILE = "audit-report-v2.schema.json"
#: The JSON Schema of each report format ``privsynth verify`` reads (``report_format``).
SCHEMA_FILES = {
    "privsynth-audit/1": "audit-report-v1.schema.json",
    "privsynth-audit/2": SCHEMA_FILE,
}
