"""Regulator-ready blocks of the audit report (report format 2): what a registry, a data
protection officer or a HIPAA expert asks for, laid out in their terms.

:func:`regulator_blocks` builds the ``regulator`` section of ``audit.json``; :func:`section`
renders it in the HTML page. Five blocks:

* ``registry_record``: a record for the OpenDP DP Deployments Registry, with the field names of
  the registry's deployment template (``basic``, ``dp_variant``, ``privacy_loss``,
  ``deployment_model``, ``implementation``); what only the custodian knows (the data curator,
  the intended use) is ``null`` for them to fill.
* ``privacy_profile``: epsilon at delta = 1e-5 ... 1e-12 for this release's charges and, when
  the release had the ledger, for every release of the dataset composed, computed by the
  project's accountant (:func:`privsynth.budget.analysis.epsilon_spent`, rounded up).
* ``wp29``: the Article 29 Working Party's three criteria (Opinion 05/2014: singling out,
  linkability, inference), each with the suite's attacks that test it, their policy
  thresholds and results.
* ``hipaa_expert_determination``: method, results (pointers into this report), anticipated
  recipient, date, signer's role and validity (45 CFR 164.514(b)(1)).
* ``threat_model``: context, threat sources, attacks tested, and what the DP guarantee covers
  and does not, in the terms of ISO/IEC 27559:2022.

Nothing here is computed on real rows: the blocks restate what the report already carries
(DP quantities, the aggregate attack results), the release options a person gave, and, for
the dataset's profile, the privacy events of the ledger.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from html import escape
from typing import Any

from privsynth.budget.analysis import epsilon_spent
from privsynth.budget.events import PrivacyEvent, event_from_dict
from privsynth.errors import ConfigError
from privsynth.schema import UnitOfPrivacy

#: The deltas of the privacy profile.
PROFILE_DELTAS: tuple[float, ...] = tuple(10.0**-k for k in range(5, 13))
#: Longest free text a release option may hold (it is printed in the report).
MAX_TEXT = 200
#: What the page prints for a field a person was to fill and did not.
NOT_STATED = "not stated"


# ---------------------------------------------------------------------------------------------
# Release options a person states
# ---------------------------------------------------------------------------------------------


def check_text(name: str, value: Any) -> str | None:
    """A free-text release option, stripped; ``None`` stays ``None``.

    Raises
    ------
    ConfigError
        If ``value`` is not text, is blank, longer than :data:`MAX_TEXT` characters, or holds
        a control character (it is printed in a signed report, one line).
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{name} ({value!r}) must be text")
    text = value.strip()
    if not text or len(text) > MAX_TEXT or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ConfigError(
            f"{name} ({value!r}) must be one line of 1 to {MAX_TEXT} characters, e.g. "
            + ("'Acme Research Ltd'" if name == "recipient" else "'privacy officer'")
        )
    return text


def check_date(name: str, value: Any, *, after: date) -> str | None:
    """An ISO date option (``YYYY-MM-DD`` or a :class:`datetime.date`) as ``YYYY-MM-DD``.

    Raises
    ------
    ConfigError
        If ``value`` is not such a date, or falls before ``after`` (a validity that has
        already ended certifies nothing).
    """
    if value is None:
        return None
    day = _day(value)
    if day is None:
        raise ConfigError(f"{name} ({value!r}) must be a date as YYYY-MM-DD, e.g. 2027-12-31")
    if day < after:
        raise ConfigError(f"{name} ({day.isoformat()}) is before today ({after.isoformat()})")
    return day.isoformat()


def _day(value: Any) -> date | None:
    """``value`` as a calendar day: a date (not a datetime: a time of day would be dropped
    unseen), or text of exactly the form YYYY-MM-DD; else None."""
    if isinstance(value, datetime):
        return None
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or len(value) != 10:  # fromisoformat also takes 20271231
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class RegulatorInputs:
    """What the regulator blocks need beyond the report: the release options a person stated,
    the unit of privacy as a structure, and the dataset's privacy events from the ledger.

    Parameters
    ----------
    recipient, signer_role, valid_until
        As checked by :func:`check_text` and :func:`check_date`; ``None``: not stated.
    unit
        The schema's unit of privacy, with K (``max_rows``) as the fit used it.
    dataset_events
        Every privacy event of the dataset not cancelled, this release's included (the
        ledger's); ``None`` when not known, and the profile then covers this release only.
    """

    recipient: str | None = None
    signer_role: str | None = None
    valid_until: str | None = None
    unit: UnitOfPrivacy = field(default_factory=UnitOfPrivacy)
    dataset_events: tuple[PrivacyEvent, ...] | None = None


# ---------------------------------------------------------------------------------------------
# The blocks
# ---------------------------------------------------------------------------------------------


def privacy_profile(
    charges: Iterable[Mapping[str, Any]],
    dataset_events: Sequence[PrivacyEvent] | None = None,
    deltas: Sequence[float] = PROFILE_DELTAS,
) -> dict[str, Any]:
    """Epsilon at each delta of ``deltas``, for this release and for the dataset.

    Parameters
    ----------
    charges
        This release's privacy events as the report records them (``dp_guarantee.charges``).
    dataset_events
        The dataset's events (the ledger's), or ``None``.
    deltas
        The deltas, each the total delta of the composition.

    Returns
    -------
    dict
        ``points``: one ``{"delta", "this_release", "all_releases"}`` per delta, epsilons
        from :func:`~privsynth.budget.analysis.epsilon_spent` (an upper bound, rounded up;
        ``None`` where no finite bound exists at that delta, and ``all_releases`` ``None``
        throughout when the dataset's events are not known).
    """
    mine = [event_from_dict(dict(c)) for c in charges]
    points = [
        {
            "delta": d,
            "this_release": _finite(epsilon_spent(mine, d)),
            "all_releases": (
                None if dataset_events is None else _finite(epsilon_spent(dataset_events, d))
            ),
        }
        for d in deltas
    ]
    return {
        "accountant": "privsynth.budget.analysis.epsilon_spent (the ledger's accountant)",
        "rounding": "each epsilon is an upper bound, rounded up",
        "dataset_included": dataset_events is not None,
        "points": points,
    }


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def unit_record(unit: UnitOfPrivacy, described: str) -> dict[str, Any]:
    """The unit of privacy as a structure: a row, or a person (identifier column, at most K
    rows each)."""
    if not unit.is_person:
        return {"unit": "row", "column": None, "max_rows": 1, "description": described}
    return {
        "unit": "person",
        "column": unit.column,
        "max_rows": unit.max_rows,
        "description": described,
    }


def registry_record(report: Mapping[str, Any], unit: Mapping[str, Any]) -> dict[str, Any]:
    """A record for the OpenDP DP Deployments Registry, with its template's field names.

    Fields only the custodian knows are ``None`` (listed in ``to_fill``).
    """
    dp, tool, schema = report["dp_guarantee"], report["tool"], report["schema"]
    deps = tool["dependencies"]
    kinds = sorted({c["kind"] for c in schema["columns"] if c["kind"] != "identifier"})
    synthesised = sum(c["kind"] != "identifier" for c in schema["columns"])
    record: dict[str, Any] = {
        "template": "OpenDP DP Deployments Registry, deployment template (2025)",
        "basic": {
            "name": None,
            "data_curators": [{"data_curator_name": None, "data_curator_type": None}],
            "description": (
                f"Differentially private synthetic table made with privsynth "
                f"{tool['version']} ({report['release']['generator'].upper()})"
            ),
            "intended_use": None,
            "data_product_type": "Synthetic data",
            "data_product_region": None,
            "data_product_sector": None,
            "publication_date": report["created"][:10],
        },
        "data_source": {
            "description": (
                f"a private table of {synthesised} synthesised columns ({', '.join(kinds)}); "
                f"schema SHA-256 {schema['sha256']}; its row count is not disclosed"
            ),
            "fingerprint": report["source"]["value"],
        },
        "dp_variant": {
            "variant_name": "Approximate DP",
            "variant_name_details": dp["definition"],
        },
        "privacy_loss": {
            "privacy_unit": "User-level" if unit["unit"] == "person" else "Row-level",
            "privacy_unit_details": dp["neighbouring_relation"],
            "unit_of_privacy": dict(unit),
            "privacy_parameters": {"epsilon": dp["epsilon_spent"], "delta": dp["delta"]},
            "privacy_parameters_details": (
                f"the release was given epsilon {dp['epsilon']:g} at delta {dp['delta']:g}; "
                "epsilon is what its charges compose to (rounded up). Every release of the "
                "same data composes in the ledger: see the privacy profile."
            ),
            "privacy_accounting": dp["accountant"],
        },
        "deployment_model": {
            "model_name": "Central",
            "trust_assumptions": dp["trust_model"],
            "release_type": "One release",
            "release_type_details": (
                "one synthetic table and its fitted model; further releases of the same data "
                "are charged to the same ledger"
            ),
            "data_source_type": "Static",
            "access_type": "Non-interactive",
        },
        "implementation": {
            "tool": "privsynth",
            "tool_version": tool["version"],
            "generator": report["release"]["generator"],
            "mechanisms": dp["noise_sampler"],
            "libraries": {"opendp": deps.get("opendp"), "opacus": deps.get("opacus")},
            "composition": dp["accountant"],
            "post_processing": (
                "the synthetic rows are sampled from the fitted model, which saw only noisy "
                "measurements: post-processing, no further privacy cost"
            ),
        },
    }
    record["to_fill"] = [
        "basic.name",
        "basic.data_curators",
        "basic.intended_use",
        "basic.data_product_region",
        "basic.data_product_sector",
    ]
    return record


#: WP29's criteria, the question each asks, and the attack-name prefixes that test it.
WP29 = (
    (
        "singling out",
        "Can one person's record be isolated in the data?",
        ("singling_out_",),
    ),
    (
        "linkability",
        "Can records about the same person be linked, within or across data sets?",
        ("linkability",),
    ),
    (
        "inference",
        "Can a person's attribute be deduced, including whether they are in the data at all "
        "(membership)?",
        ("attribute_inference_", "membership_"),
    ),
)
#: Policy threshold sections of the attacks (``privsynth.attacks.policy``).
_SECTIONS = (
    ("membership_", "membership"),
    ("attribute_inference_", "attribute_inference"),
    ("singling_out_", "singling_out"),
    ("linkability", "linkability"),
)


def _threshold(name: str, thresholds: Mapping[str, Any]) -> str | None:
    """The policy's pass rule for attack ``name``, in words (None: a diagnostic)."""
    section = next((s for p, s in _SECTIONS if name.startswith(p)), None)
    t = thresholds.get(section) if section else None
    if not t:
        return None
    if section == "membership":
        return (
            f"fails if the 95% CI's lower bound of the AUC exceeds {t['max_auc_lower']:g}, or "
            f"that of the TPR at 1% FPR exceeds {t['max_tpr_lower_at_1pct_fpr']:g}"
        )
    return (
        f"fails if the 95% CI's lower bound of the advantage exceeds {t['max_advantage_lower']:g}"
    )


def wp29(report: Mapping[str, Any]) -> dict[str, Any]:
    """WP29's three criteria, each with the attacks that test it, their thresholds and
    results, and the DP bound that covers every attacker."""
    attacks = report.get("attacks") or {}
    thresholds = (attacks.get("policy") or {}).get("thresholds", {})
    bound = ((report.get("decision") or {}).get("privacy") or {}).get("this_release")
    criteria = []
    for criterion, question, prefixes in WP29:
        tested = [
            {
                "attack": r["name"],
                "metric": r["metric"],
                "value": r["value"],
                "ci": r["ci"],
                "baseline": r["baseline"],
                "threshold": _threshold(r["name"], thresholds),
                "passed": r["passed"],
            }
            for r in attacks.get("attacks", [])
            if r["name"].startswith(prefixes)
        ]
        judged = [t["passed"] for t in tested if t["passed"] is not None]
        status = "not tested" if not judged else "pass" if all(judged) else "fail"
        criteria.append(
            {"criterion": criterion, "question": question, "status": status, "attacks": tested}
        )
    return {
        "source": "Article 29 Working Party, Opinion 05/2014 on Anonymisation Techniques (WP216)",
        "policy": (attacks.get("policy") or {}).get("name"),
        "criteria": criteria,
        "dp_bound": None
        if bound is None
        else {
            "epsilon": bound["epsilon"],
            "delta": bound["delta"],
            "membership_accuracy_max": bound["accuracy_max"],
            "note": (
                "the DP guarantee bounds every attacker on all three criteria, not only the "
                "attacks run; the attacks are empirical evidence on this release"
            ),
        },
    }


#: Pointers from the HIPAA results to the report: (what, audit.json pointer, HTML section).
RESULTS = (
    ("the decision: privacy, usefulness, implementation", "/decision", "the first screen"),
    ("the DP guarantee and its hazards", "/dp_guarantee", "The differential-privacy guarantee"),
    ("the privacy profile", "/regulator/privacy_profile", "Privacy profile"),
    ("the empirical attacks", "/attacks", "Attacks: empirical privacy risk"),
    ("the WP29 criteria", "/regulator/wp29", "WP29 criteria"),
    ("the limitations", "/limitations", "Limitations"),
)


def hipaa(report: Mapping[str, Any], inputs: RegulatorInputs) -> dict[str, Any]:
    """The HIPAA expert-determination fields (45 CFR 164.514(b)(1))."""
    dp = report["dp_guarantee"]
    return {
        "standard": "HIPAA Privacy Rule, expert determination, 45 CFR 164.514(b)(1)",
        "method": (
            f"differential privacy ({dp['definition']}; epsilon {dp['epsilon']:g}, delta "
            f"{dp['delta']:g}, unit: {dp['unit_of_privacy']}), {_evidence(report)}"
        ),
        "results": [{"result": r, "audit_json": p, "html_section": h} for r, p, h in RESULTS],
        "anticipated_recipient": inputs.recipient,
        "date": report["created"][:10],
        "signer_role": inputs.signer_role,
        "signer_key": report["signer"],
        "valid_from": report["created"][:10],
        "valid_until": inputs.valid_until,
        "note": (
            "privsynth gathers the evidence and signs it with the custodian's key; the "
            "determination that the risk is very small is the qualified expert's, who signs it"
        ),
    }


def _evidence(report: Mapping[str, Any]) -> str:
    """The empirical side of the method, in words: which attacks ran, under which policy."""
    attacks = report.get("attacks") or {}
    ran = attacks.get("attacks") or []
    if not ran:
        return "with no empirical attack run on the release"
    policy = (attacks.get("policy") or {}).get("name", "its")
    return (
        f"with {len(ran)} empirical attacks and diagnostics on the released synthetic table "
        f"(singling out, linkability, attribute and membership inference) judged by the "
        f"{policy} policy"
    )


def threat_model(report: Mapping[str, Any], inputs: RegulatorInputs) -> dict[str, Any]:
    """The threat model in the terms of ISO/IEC 27559:2022 (context, threats, attacks)."""
    dp = report["dp_guarantee"]
    attacks = report.get("attacks") or {}
    return {
        "framework": "ISO/IEC 27559:2022, privacy enhancing data de-identification framework",
        "context": {
            "release_model": "public or semi-public release of synthetic data",
            "released": ["the synthetic table", "the fitted model", "this report"],
            "anticipated_recipient": inputs.recipient,
            "data_environment": dp["trust_model"],
        },
        "threat_sources": [
            "a deliberate attacker with background knowledge of some people (prosecutor, "
            "journalist), holding the whole release",
            "an acquaintance who recognises someone by chance",
            "a breach or onward disclosure by a recipient (the release is treated as public)",
        ],
        "attacks_tested": [
            {"attack": r["name"], "threat_model": r.get("threat_model")}
            for r in attacks.get("attacks", [])
        ],
        "dp_covers": [
            f"any attacker, whatever they know, learning about one {dp['unit_of_privacy']}: "
            f"bounded by epsilon {dp['epsilon']:g}, delta {dp['delta']:g} for this release",
            "membership, singling out, linkage and attribute inference about one unit of "
            "privacy, beyond what the population's statistics reveal",
        ],
        "dp_does_not_cover": [
            "what the data says about groups (population statistics are the release's purpose)",
            "several releases of the same data beyond the ledger's composed total",
            "a person owning more rows than the unit of privacy allows",
            "the attack and utility numbers of this report (aggregates, not DP outputs)",
            "timing and memory side channels, and insiders on the custodian's machine",
            *(
                f"domains read from the data: {c}"
                for c in report["schema"]["data_dependent_caveats"]
            ),
        ],
    }


def regulator_blocks(report: Mapping[str, Any], inputs: RegulatorInputs) -> dict[str, Any]:
    """The ``regulator`` section of a format-2 report.

    Parameters
    ----------
    report
        The report as built so far (``dp_guarantee``, ``attacks``, ``decision`` ...).
    inputs
        The release options a person stated, the unit of privacy, the dataset's events.

    Returns
    -------
    dict
        ``registry_record``, ``privacy_profile``, ``wp29``, ``hipaa_expert_determination``
        and ``threat_model``.
    """
    dp = report["dp_guarantee"]
    unit = unit_record(inputs.unit, dp["unit_of_privacy"])
    return {
        "registry_record": registry_record(report, unit),
        "privacy_profile": privacy_profile(dp["charges"], inputs.dataset_events),
        "wp29": wp29(report),
        "hipaa_expert_determination": hipaa(report, inputs),
        "threat_model": threat_model(report, inputs),
    }


# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------

#: The section's heading on the page.
HEADING = "For regulators: registry record, privacy profile, WP29, HIPAA, threat model"


def section(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The page's regulator section as ``[(heading, html)]``; ``[]`` for a format-1 report,
    whose page must stay byte for byte as it was."""
    reg = report.get("regulator")
    if reg is None:
        return []
    return [
        (
            HEADING,
            _registry_html(reg["registry_record"])
            + _profile_html(reg["privacy_profile"])
            + _wp29_html(reg["wp29"])
            + _hipaa_html(reg["hipaa_expert_determination"])
            + _threat_html(reg["threat_model"]),
        )
    ]


def _said(v: Any) -> Any:
    """A field a person was to fill: its value, or "not stated"."""
    return NOT_STATED if v is None else v


def _registry_html(rec: Mapping[str, Any]) -> str:
    from privsynth.report import render_html as rh  # render_html imports this module

    basic, loss = rec["basic"], rec["privacy_loss"]
    params = loss["privacy_parameters"]
    rows = {
        "name": _said(basic["name"]),
        "data curator": _said(basic["data_curators"][0]["data_curator_name"]),
        "intended use": _said(basic["intended_use"]),
        "data product type": basic["data_product_type"],
        "publication date": basic["publication_date"],
        "data source": rec["data_source"]["description"],
        "DP variant": f"{rec['dp_variant']['variant_name']}: "
        f"{rec['dp_variant']['variant_name_details']}",
        "privacy unit": f"{loss['privacy_unit']}: {loss['privacy_unit_details']}",
        "epsilon, delta": f"≤ {rh.sig3(params['epsilon'], rounding=rh.ROUND_CEILING)}, "
        f"{params['delta']:g}",
        "deployment model": f"{rec['deployment_model']['model_name']}, "
        f"{rec['deployment_model']['release_type'].lower()}, "
        f"{rec['deployment_model']['access_type'].lower()}",
        "implementation": f"{rec['implementation']['tool']} "
        f"{rec['implementation']['tool_version']} ({rec['implementation']['generator']}); "
        f"{rec['implementation']['mechanisms']}",
    }
    return (
        "<h3>DP Deployments Registry record</h3>"
        '<p class="muted">Fields of the OpenDP DP Deployments Registry\'s deployment '
        "template; audit.json holds the record with the registry's field names. Fields "
        f"marked “{NOT_STATED}” are the custodian's to fill.</p>" + rh.kv(rows)
    )


def _profile_html(profile: Mapping[str, Any]) -> str:
    from privsynth.report import plots
    from privsynth.report import render_html as rh

    points = profile["points"]
    both = profile["dataset_included"]

    def up(x: float | None) -> str:
        return "no finite bound" if x is None else "≤ " + rh.sig3(x, rounding=rh.ROUND_CEILING)

    rows = (
        (f"{p['delta']:g}", up(p["this_release"]), *((up(p["all_releases"]),) if both else ()))
        for p in points
    )
    head = (
        "delta",
        "epsilon, this release",
        *(("epsilon, every release of the dataset",) if both else ()),
    )
    curves = [("this release", [p["delta"] for p in points], [p["this_release"] for p in points])]
    if both:
        curves.append(
            ("every release", [p["delta"] for p in points], [p["all_releases"] for p in points])
        )
    return (
        "<h3>Privacy profile</h3>"
        '<p class="muted">The same release satisfies (ε, δ)-DP for every δ below, with the ε '
        "shown (the accountant's upper bound, rounded up): a smaller δ costs a larger ε.</p>"
        + rh.table(head, rows)
        + (
            '<p class="muted">No finite bound: some charges are (ε, δ) or approximate zCDP '
            "mechanisms whose own δs add up to that δ or more, so no ε holds at that δ.</p>"
            if any(None in (p["this_release"], p["all_releases"] if both else 0) for p in points)
            else ""
        )
        + f'<div class="grid">{rh._img(plots.privacy_profile(curves), "privacy profile")}</div>'
    )


def _wp29_html(w: Mapping[str, Any]) -> str:
    from privsynth.report import render_html as rh
    from privsynth.report import words

    rows = []
    for c in w["criteria"]:
        for a in c["attacks"] or [{"attack": None}]:
            rows.append(
                (
                    f"{c['criterion']}: {c['status']}",
                    "not tested" if a["attack"] is None else words.plain(a["attack"]),
                    a.get("value"),
                    a.get("ci"),
                    a.get("threshold") or "diagnostic",
                    rh._verdict(a.get("passed")) if a["attack"] is not None else "",
                )
            )
    bound = w["dp_bound"]
    note = (
        ""
        if bound is None
        else f'<div class="plain">Beyond these attacks, {escape(bound["note"])}: at ε ≤ '
        f"{rh.sig3(bound['epsilon'], rounding=rh.ROUND_CEILING)}, δ = {bound['delta']:g}, a "
        f"membership guess is right at most {rh._pct(bound['membership_accuracy_max'])} of "
        "the time.</div>"
    )
    return (
        "<h3>WP29 criteria (Opinion 05/2014)</h3>"
        + rh.table(("criterion", "attack", "value", "95% CI", "threshold", "verdict"), rows)
        + note
    )


def _hipaa_html(h: Mapping[str, Any]) -> str:
    from privsynth.report import render_html as rh

    results = "; ".join(f"{r['result']} ({r['html_section']})" for r in h["results"])
    validity = f"{h['valid_from']} to {_said(h['valid_until'])}"
    return (
        "<h3>HIPAA expert determination</h3>"
        + rh.kv(
            {
                "standard": h["standard"],
                "method": h["method"],
                "results": results,
                "anticipated recipient": _said(h["anticipated_recipient"]),
                "date": h["date"],
                "signer's role": _said(h["signer_role"]),
                "signer's key": h["signer_key"],
                "valid": validity,
            }
        )
        + f'<p class="muted">Note: {escape(h["note"])}.</p>'
    )


def _threat_html(t: Mapping[str, Any]) -> str:
    from privsynth.report import render_html as rh
    from privsynth.report import words

    ctx = t["context"]

    def items(xs: Iterable[str]) -> str:
        return "<ul>" + "".join(f"<li>{escape(x)}</li>" for x in xs) + "</ul>"

    tested = [words.plain(a["attack"]) for a in t["attacks_tested"]] or ["none ran"]
    return (
        "<h3>Threat model (ISO/IEC 27559)</h3>"
        + rh.kv(
            {
                "release model": ctx["release_model"],
                "released": ", ".join(ctx["released"]),
                "anticipated recipient": _said(ctx["anticipated_recipient"]),
                "data environment": ctx["data_environment"],
                "attacks tested": ", ".join(tested),
            }
        )
        + "<p><b>Threat sources</b></p>"
        + items(t["threat_sources"])
        + "<p><b>What the DP guarantee covers</b></p>"
        + items(t["dp_covers"])
        + "<p><b>What it does not cover</b></p>"
        + items(t["dp_does_not_cover"])
    )
