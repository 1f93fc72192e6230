"""Audit the installed dependency set for known vulnerabilities (``make audit-deps``).

Runs ``pip-audit`` on the environment ``make setup`` built (the project has no lock file: the
installed set *is* what CI tests). Exit status:

- 1 when a dependency has a known vulnerability with a fixed version that is not ignored, with
  a reason, in ``tools/pip-audit-ignore.txt`` (upgrade it, or ignore it with a reason);
- 0 otherwise, also when no vulnerability service could be reached or none of the installed
  versions is known to it: that is reported loudly as "NOT AUDITED", never as "no known
  vulnerabilities" (which is what pip-audit itself prints when it skipped every package).

Services are tried in order (PyPI's JSON API, then OSV) until one audits something.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

IGNORE_FILE = Path(__file__).with_name("pip-audit-ignore.txt")
SERVICES = ("pypi", "osv")
UNREACHABLE = ("ConnectionError", "NameResolutionError", "Max retries", "timed out", "SSLError")


def ignored() -> dict[str, str]:
    """Vulnerability id -> reason, from the ignore file; an entry without a reason is an error."""
    out: dict[str, str] = {}
    for n, line in enumerate(IGNORE_FILE.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        vid, _, reason = line.partition(" ")
        if not reason.strip():
            sys.exit(f"audit-deps: {IGNORE_FILE.name}:{n}: {vid} has no reason; add one")
        out[vid] = reason.strip()
    return out


def run(service: str, ignore: dict[str, str]) -> tuple[dict | None, str]:
    cmd = [sys.executable, "-m", "pip_audit", "-s", service, "-f", "json"]
    cmd += ["--progress-spinner", "off", "--timeout", "20"]
    for vid in ignore:
        cmd += ["--ignore-vuln", vid]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return None, "timed out after 300 s"
    try:
        return json.loads(proc.stdout), ""
    except json.JSONDecodeError:
        err = proc.stderr.strip().splitlines()
        why = next((ln for ln in reversed(err) if any(u in ln for u in UNREACHABLE)), None)
        return None, (why or (err[-1] if err else f"pip-audit exit {proc.returncode}"))[:200]


def main() -> int:
    try:
        import pip_audit  # noqa: F401
    except ImportError:
        print("audit-deps: pip-audit is not installed (pip install -e '.[dev]'); NOT AUDITED")
        return 0
    ignore = ignored()
    notes = []
    for service in SERVICES:
        report, why = run(service, ignore)
        if report is None:
            notes.append(f"{service}: unreachable ({why})")
            continue
        deps = report["dependencies"]
        audited = [d for d in deps if "skip_reason" not in d]
        if not audited:
            notes.append(f"{service}: knows none of the {len(deps)} installed versions")
            continue
        found = [(d["name"], d["version"], v) for d in audited for v in d.get("vulns", [])]
        fixable = [f for f in found if f[2].get("fix_versions")]
        print(
            f"audit-deps ({service}): {len(audited)} of {len(deps)} packages audited, "
            f"{len(found)} known vulnerabilities ({len(fixable)} with a fix), "
            f"{len(ignore)} ignored with a reason in {IGNORE_FILE.name}"
        )
        for name, version, v in found:
            fix = ", ".join(v.get("fix_versions") or []) or "none yet"
            print(f"  {name} {version}: {v['id']} (fixed in: {fix})")
        if skipped := len(deps) - len(audited):
            print(f"  {skipped} package(s) not audited (not known to {service})")
        if fixable:
            print(f"audit-deps: upgrade, or add the ids to {IGNORE_FILE.name} with a reason")
            return 1
        return 0
    print("audit-deps: dependencies NOT AUDITED: " + "; ".join(notes))
    print("audit-deps: no vulnerability service could be used from here; run it where one can")
    return 0


if __name__ == "__main__":
    sys.exit(main())
