"""Build the audit report: what was released, the DP guarantee behind it, and the evidence.

The report is a plain JSON document (JSON Schema in ``privsynth/report/schema/``) built from
aggregates only: no row, no record-level score, and not the exact number of real rows (that
count is private; the report gives the DP estimate the generator released, or nothing).

Two fields need care because they are computed from the private table:

* The **source fingerprint** is an HMAC-SHA256 keyed by a secret derived from the signing key,
  not a plain SHA-256. A plain hash of the data is a deterministic function of every row:
  anyone holding all rows but one could test guesses of the last row against it. The keyed
  fingerprint lets the custodian (who holds the key) prove later which data was used, and
  tells nobody else anything.
* The **attack and utility numbers** are not covered by the DP guarantee (they are computed on
  the real rows without noise); the report says so in its limitations. They are aggregates;
  what of the attack results is not (run times, a few exact copies, small distance cells) is
  kept off the report by :func:`privsynth.report.shareable.shareable`.

The report leads with a **decision** (:func:`privsynth.report.verdicts.decide`): a privacy,
a usefulness and an implementation verdict, and one overall word.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import platform
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privsynth import __version__
from privsynth.report.regulator import RegulatorInputs, regulator_blocks
from privsynth.report.sign import report_id
from privsynth.report.verdicts import decide
from privsynth.schema import Column, Schema

#: Format 2 adds the ``regulator`` section (:mod:`privsynth.report.regulator`); a format-1
#: report (made before it) still verifies and renders as it did.
REPORT_FORMAT = "privsynth-audit/2"
DEPENDENCIES = (
    "opendp",
    "diffprivlib",
    "numpy",
    "pandas",
    "scikit-learn",
    "torch",
    "opacus",
    "cryptography",
)
_FINGERPRINT_CONTEXT = b"privsynth source-data fingerprint v1"


def plain(obj: Any) -> Any:
    """``obj`` as plain JSON values: numpy scalars to Python, tuples to lists, NaN/inf to None
    (canonical JSON has no NaN)."""
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [plain(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, Path):
        return obj.name
    raise TypeError(f"cannot put a {type(obj).__name__} into the report")


def source_fingerprint(data: pd.DataFrame | Path, key: Ed25519PrivateKey) -> dict:
    """Keyed fingerprint of the source data (see the module docstring for why it is keyed).

    ``data`` is the input file when the release read one (its bytes are fingerprinted), else
    the DataFrame, fingerprinted through its CSV serialisation.
    """
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    mac = hmac.new(hashlib.sha256(_FINGERPRINT_CONTEXT + raw).digest(), digestmod=hashlib.sha256)
    if isinstance(data, Path):
        with open(data, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                mac.update(block)
        method = "HMAC-SHA256 of the input file's bytes"
    else:
        mac.update(data.to_csv(index=False, lineterminator="\n").encode("utf-8"))
        method = f"HMAC-SHA256 of the DataFrame as CSV (pandas {pd.__version__})"
    return {
        "value": "hmac-sha256:" + mac.hexdigest(),
        "method": method + ", keyed by SHA-256(context || signer's private key)",
    }


def tool_versions() -> dict[str, Any]:
    """privsynth's version, Python's, the platform and the installed dependencies' versions."""
    deps: dict[str, str | None] = {}
    for name in DEPENDENCIES:
        try:
            deps[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            deps[name] = None
    return {
        "name": "privsynth",
        "version": __version__,
        "python": platform.python_version(),
        "platform": f"{sys.platform}-{platform.machine()}",
        "dependencies": deps,
    }


def learned_encoding_summary(col: Column) -> dict:
    """What a DP-learned numeric encoding lets the model represent (DP outputs, public):
    the point masses kept as codes of their own and the bin edges of the other values."""

    def show(v: float) -> float | int | str:
        if col.kind == "datetime":
            return pd.Timestamp(int(v)).isoformat()
        return int(v) if col.kind == "integer" else float(v)

    enc = col.learned
    assert enc is not None  # called only for columns whose encoding was learned
    return {
        "learned_with": "dp",
        "point_masses": [show(v) for v in enc.point_masses],
        "bin_edges": [show(v) for v in enc.edges],
    }


def schema_section(given: Schema, learned: Schema, caveats: list[str]) -> dict:
    """Schema hash and, per column, where its domain came from (public, DP-learned, data)."""
    learned_by_name = {c.name: c for c in learned.columns}
    columns = []
    for col in given.columns:
        if col.kind == "identifier":
            domain = "dropped (identifier, never synthesised)"
        elif not col.has_domain:
            domain = "dp"  # undeclared: learned under DP during the fit
        else:
            domain = col.source
        fitted = learned_by_name.get(col.name)
        entry = {"name": col.name, "kind": col.kind, "domain": domain, "nullable": col.nullable}
        if fitted is not None and fitted.categories is not None:
            entry["categories"] = len(fitted.categories)
        if fitted is not None and fitted.learned is not None:
            entry["encoding"] = learned_encoding_summary(fitted)
        columns.append(entry)
    return {
        "sha256": hashlib.sha256(given.to_json().encode("utf-8")).hexdigest(),
        "unit_of_privacy": given.unit_of_privacy.describe(),
        "columns": columns,
        "data_dependent_caveats": list(caveats),
    }


def dp_guarantee(spec: Mapping[str, Any], schema: Mapping[str, Any]) -> dict:
    """The DP statement, laid out along NIST SP 800-226's disclosure items."""
    dp_cols = [c["name"] for c in schema["columns"] if c["domain"] == "dp"]
    data_cols = [c["name"] for c in schema["columns"] if c["domain"] == "data"]
    preprocessing = [
        "domains: "
        + (
            f"learned under DP and charged ({', '.join(dp_cols)})"
            if dp_cols
            else "all declared public in the schema"
        ),
        "row count: not read; the released row count is a DP estimate or set by the custodian",
    ]
    if data_cols:
        preprocessing.append(
            f"CAVEAT: domains read from the data without DP ({', '.join(data_cols)}); the "
            "guarantee does not cover what those domains reveal"
        )
    hazards = [
        {
            "hazard": "floating-point noise (Mironov 2012)",
            "status": "mitigated",
            "how": "counts are noised with OpenDP's discrete samplers on integers",
        },
        {
            "hazard": "data-dependent domains, bounds or row counts",
            "status": "mitigated" if not data_cols else "CAVEAT",
            "how": "declared public, or learned under DP and charged to the ledger",
        },
        {
            "hazard": "delta derived from the private row count",
            "status": "mitigated",
            "how": "delta is a parameter fixed before the data is read",
        },
        {
            "hazard": "budget overspend across releases",
            "status": "mitigated",
            "how": "the whole charge is reserved in the hash-chained ledger before data is read",
        },
        {
            "hazard": "timing and memory side channels",
            "status": "outside the threat model",
            "how": (
                "run times and memory use depend on the data, but only the custodian's trusted "
                "machine sees them: the report states dates, not times, and no run time"
            ),
        },
    ]
    hazards += [dict(h) for h in spec.get("implementation_hazards", [])]
    eps, delta = spec["epsilon"], spec["delta"]
    return {
        "epsilon": eps,
        "delta": delta,
        "epsilon_spent": spec["epsilon_spent"],
        "definition": spec["definition"],
        "accountant": (
            "each charge is a typed privacy event; the ledger composes their Renyi-DP curves "
            "(zCDP rho gives rho*alpha, pure epsilon gives epsilon^2/2 zCDP, DP-SGD the "
            "subsampled-Gaussian RDP or PRV bound) and converts to (epsilon, delta) with the "
            "tightest known conversion"
        ),
        "neighbouring_relation": spec["neighbouring_relation"],
        "unit_of_privacy": spec["unit_of_privacy"],
        "trust_model": (
            "central: the custodian runs privsynth on the raw data in a trusted environment; "
            "only the synthetic table, the fitted model and this report leave it"
        ),
        "noise_sampler": spec["noise"],
        "data_dependent_preprocessing": preprocessing,
        "implementation_hazards": hazards,
        "charges": spec["charges"],
        "plain_language": (
            f"Whether or not any one person's row is in the data changes the probability of "
            f"any outcome of this release by at most a factor of e^{eps:g} "
            f"(about {math.exp(eps):.2f}x), except with probability at most {delta:g}."
        ),
    }


LIMITATIONS = (
    "The DP guarantee covers the synthetic table and the fitted model. The attack and utility "
    "numbers in this report are computed on the real rows without noise: they are evidence for "
    "the custodian, not DP outputs, and they are aggregates only.",
    "Empirical attacks give lower bounds on risk: a passed attack is evidence, not a guarantee.",
    "The guarantee is per row; a person with several rows is protected per row, not as a person.",
    "Timing and memory side channels of the fitting process are not protected: they are "
    "outside the threat model, which trusts the custodian's machine (the report states dates, "
    "not run times).",
)


def build_report(
    *,
    generator: str,
    params: Mapping[str, Any],
    spec: Mapping[str, Any],
    given_schema: Schema,
    learned_schema: Schema,
    caveats: list[str],
    fingerprint: Mapping[str, str],
    release: Mapping[str, Any],
    ledger: Mapping[str, Any],
    rules: Sequence[Mapping[str, Any]] = (),
    utility: Mapping[str, Any] | None,
    attacks: Mapping[str, Any] | None,
    verdict: Mapping[str, Any],
    signer: str,
    started: datetime,
    regulator: RegulatorInputs | None = None,
) -> dict:
    """Assemble the report (the in-toto predicate) and set its ``report_id``.

    ``rules`` holds, per rule of the schema, its description, the rows of the synthetic table
    that break it (0: the release checks) and its rejection rate at sampling
    (:func:`privsynth.generators.rules.keep_rules`). ``regulator`` holds what the regulator
    blocks need beyond the report (release options a person stated, the dataset's events);
    default: nothing stated, this release's profile only."""
    schema = schema_section(given_schema, learned_schema, caveats)
    if rules:
        schema["rules"] = [dict(r) for r in rules]
    report = plain(
        {
            "report_format": REPORT_FORMAT,
            "created": _day(datetime.now(UTC)),
            "started": _day(started),
            "tool": tool_versions(),
            "signer": signer,
            "source": dict(fingerprint),
            "schema": schema,
            "release": {"generator": generator, "parameters": dict(params), **release},
            "dp_guarantee": dp_guarantee(spec, schema),
            "ledger": dict(ledger),
            "utility": utility,
            "attacks": attacks,
            "verdict": dict(verdict),
            "limitations": list(LIMITATIONS),
        }
    )
    report["decision"] = plain(decide(report))
    report["regulator"] = plain(regulator_blocks(report, regulator or RegulatorInputs()))
    report["report_id"] = report_id(report)
    return report


def _day(when: datetime) -> str:
    """``when`` to the day (midnight UTC). Why not to the second: the time between the start
    and the end of a release is its run time, which depends on the private data (a timing
    side channel), and the report leaves the trusted environment."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT00:00:00Z")
