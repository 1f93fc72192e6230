"""The human report: one self-contained HTML page (inline CSS, figures as data URIs, no
script), rendered from the signed JSON report only -- it shows nothing the JSON does not hold.

Layout, top to bottom: the decision (one overall word, then the privacy, usefulness and
implementation verdicts side by side, then who may read the report); the epsilon story (what
was requested, what this release spent, what the dataset has spent in all, and why the three
differ); the release at a glance; the DP guarantee in plain language next to its numbers; the
ledger; utility with real-vs-synthetic marginal plots; the attacks with ROC curves and the DCR
histogram; the canary audit and the suite's self-test; the schema; limitations; a glossary of
every metric and attack named on the page; versions; and an appendix listing every charge,
identical charges counted once.

Words for a reader who is not a statistician: attacks and metrics are shown by plain names
(:data:`ATTACK_NAMES`, :data:`METRIC_NAMES`) with the technical name in the glossary, and
numbers at 3 significant digits (audit.json holds them exact).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from html import escape
from typing import Any

from privsynth.errors import ConfigError
from privsynth.report import bias, plots, regulator, words
from privsynth.report.verdicts import decide

#: Paper sizes the page is printed on (``--paper``), as CSS ``@page`` sizes; A4 by default.
PAPERS: dict[str, str] = {"a4": "A4", "letter": "letter"}

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1000px;
margin:0 auto;padding:0 1.2rem 3rem;color:#1d2430;line-height:1.45}
h1{font-size:1.5rem;margin:1.2rem 0 .4rem}h2{font-size:1.15rem;margin-top:2rem;
border-bottom:1px solid #d5dbe3;padding-bottom:.2rem}h3{font-size:1rem;margin-bottom:.3rem}
.banner{padding:.9rem 1.1rem;border-radius:6px;font-size:1.05rem;margin:1rem 0}
.pass{background:#e3f4e6;border:1px solid #5aa36a}.fail{background:#fbe4e1;
border:1px solid #cf5c4c}.plain{background:#eef3fa;border-left:4px solid #1f5fa8;
padding:.7rem 1rem;margin:.6rem 0}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem;font-size:.86rem}
th,td{border-bottom:1px solid #e3e7ec;padding:.3rem .45rem;text-align:left;vertical-align:top}
th{background:#f4f6f9;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:.82rem;word-break:break-all}.muted{color:#5b6675;font-size:.85rem}
td,th,p,li,h1,h2,h3{overflow-wrap:break-word}td.long{word-break:break-all}
td.num{white-space:nowrap}
.grid{display:flex;flex-wrap:wrap;gap:.6rem}.grid img{width:calc(50% - .3rem);height:auto}
.ok{color:#2c7a3b;font-weight:600}.bad{color:#b3261e;font-weight:600}
.na{color:#5b6675}
.overall{display:flex;align-items:baseline;gap:.8rem;padding:.6rem 1rem;border-radius:6px;
margin:.6rem 0}.overall .word{font-size:1.5rem;font-weight:700;letter-spacing:.04em}
.incomplete{background:#fff4d6;border:1px solid #c99a2e}
.verdicts{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:.6rem;margin:.6rem 0}
.card{border-radius:6px;padding:.5rem .8rem;font-size:.86rem;break-inside:avoid}
.card h3{margin:.1rem 0 .3rem;font-size:1rem}.card p,.card ul{margin:.25rem 0}
.card ul{padding-left:1.1rem}.audience{font-size:.86rem;margin:.4rem 0 0}
@media print{h2{break-after:avoid}.decision{break-inside:avoid}}
"""


#: Plain names of the privacy events a charge can be (``privsynth.budget.events``).
CHARGE_NAMES = {
    "ZCDP": "zCDP mechanism (e.g. Gaussian noise)",
    "PureDP": "pure ε-DP mechanism (e.g. Laplace, exponential)",
    "ApproxDP": "(ε, δ)-DP mechanism",
    "ApproxZCDP": "approximate zCDP mechanism",
    "SubsampledGaussian": "subsampled Gaussian, DP-SGD",
}
_PARAM_NAMES = {"rho": "ρ", "epsilon": "ε", "delta": "δ"}


def sig3(x: float, *, rounding: str = ROUND_HALF_EVEN) -> str:
    """``x`` at 3 significant digits.

    Parameters
    ----------
    x
        The number.
    rounding
        A :mod:`decimal` rounding mode: ``ROUND_CEILING`` for a privacy spend (shown rounded
        up, never down), ``ROUND_FLOOR`` for what remains.

    Examples
    --------
    >>> sig3(0.79012), sig3(0.9999, rounding=ROUND_CEILING), sig3(4.6781e-05)
    ('0.79', '1', '4.68e-05')
    """
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    d = Decimal(repr(float(x)))
    return f"{float(d.quantize(Decimal(1).scaleb(d.adjusted() - 2), rounding=rounding)):.3g}"


def _fmt(v: Any) -> str:
    """A value in words: numbers at 3 significant digits, lists and mappings spelt out."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return sig3(v)
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
        return f"[{_fmt(v[0])}, {_fmt(v[1])}]"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    if isinstance(v, Mapping):
        return "; ".join(f"{k}: {_fmt(x)}" for k, x in v.items())
    return str(v)


class Raw(str):
    """Markup made here (not user text): inserted into a table cell unescaped."""


#: A word longer than this (a hash, a file name) may break anywhere, so that it cannot push
#: its table wider than the page.
LONG_WORD = 24


def _cell(v: Any, align: bool) -> str:
    if isinstance(v, Raw):
        return f"<td>{v}</td>"
    num = align and isinstance(v, (int, float)) and not isinstance(v, bool)
    text = _fmt(v)
    long = any(len(word) > LONG_WORD for word in text.split())
    cls = ' class="num"' if num else ' class="long"' if long else ""
    return f"<td{cls}>{escape(text)}</td>"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, align: bool = True) -> str:
    """An HTML table; numbers right-aligned unless ``align`` is false."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(v, align) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def kv(pairs: Mapping[str, Any]) -> str:
    return table(("item", "value"), pairs.items(), align=False)


def _verdict(v: bool | None) -> Raw:
    if v is None:
        return Raw('<span class="na">diagnostic</span>')
    return Raw('<span class="ok">pass</span>' if v else '<span class="bad">FAIL</span>')


def _pair(a: Any, b: Any) -> str:
    return f"{_fmt(a)} / {_fmt(b)}"


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{escape(alt)}">'


#: The overall word, and the sentence after it.
OVERALL = {
    "pass": ("PASS", "All checks passed: privacy, usefulness and implementation."),
    "fail": ("FAIL", "Do not sign as it is: {failed} failed (see below)."),
    "incomplete": ("INCOMPLETE", "Not every check ran: {missing} could not be judged."),
}
_CARD_CLASS = {
    "pass": "pass",
    "good": "pass",
    "acceptable": "pass",
    "fail": "fail",
    "poor": "fail",
}


def decision_of(report: Mapping[str, Any]) -> dict[str, Any]:
    """The report's decision: as signed, or derived for a report made before it existed."""
    return dict(report.get("decision") or decide(report))


def _pct(x: float) -> str:
    return f"{sig3(100 * x)}%"


def _card(name: str, status: str, body: str) -> str:
    cls = _CARD_CLASS.get(status, "incomplete")
    return (
        f'<div class="card {cls}" id="verdict-{name}"><h3>{name.capitalize()}: '
        f"{escape(status)}</h3>{body}</div>"
    )


def _attacker(bound: Mapping[str, Any]) -> str:
    """What an attacker can gain at most, in words (the bounds of
    :func:`privsynth.report.verdicts.membership_bounds`)."""
    at = {round(t["fpr"], 6): t["tpr"] for t in bound["tpr_max"]}
    line = (
        f"a guess whether one person's row was used is right at most "
        f"{_pct(bound['accuracy_max'])} of the time (a coin toss: 50%)"
    )
    if 0.01 in at:
        line += (
            f"; raising at most 1 false alarm in 100, it finds at most {_pct(at[0.01])} of "
            "the people used"
        )
    return line


def _privacy_card(p: Mapping[str, Any], report: Mapping[str, Any]) -> str:
    if p["status"] == "not checked":
        policy = "the attack suite did not run"
    elif p["failed"]:
        policy = f"policy {p['policy']}: failed {', '.join(p['failed'])}"
    else:
        policy = f"policy {p['policy']}: every attack check passed"
    mine, every = p["this_release"], p["all_releases"]
    eps = sig3(mine["epsilon"], rounding=ROUND_CEILING)
    total = sig3(every["epsilon"], rounding=ROUND_CEILING)
    body = (
        f"<p>{escape(policy)}.</p>"
        f"<p>Guaranteed (ε ≤ {eps}, δ = {mine['delta']:g}): {escape(_attacker(mine))}.</p>"
        f"<p>With every release of dataset {escape(repr(report['ledger']['dataset_id']))} "
        f"(ε ≤ {total}, δ = {every['delta']:g}): right at most "
        f"{_pct(every['accuracy_max'])}.</p>"
    )
    return _card("privacy", p["status"], body)


#: Each usefulness check in words: what it measures, how its value reads.
USEFULNESS_WORDS = {
    "prediction": ("prediction", "keeps {v} of a real-data model's skill", True),
    "relationships": (
        "relationships between columns",
        "its column-pair errors are {v} of those of independent columns",
        True,
    ),
    "realism": ("realism", "a classifier tells it from real rows with AUC {v}", False),
}


def _usefulness_card(u: Mapping[str, Any], report: Mapping[str, Any]) -> str:
    # Flagged protected groups are named here, on the first screen, without changing the
    # verdict (its thresholds do not judge groups).
    flags = bias.flagged_note(report)
    if not u["checks"]:
        return _card(
            "usefulness",
            u["status"],
            "<p>No usefulness check ran, or the policy states no usefulness thresholds.</p>"
            + flags,
        )
    items = []
    for c in u["checks"]:
        name, text, pct = USEFULNESS_WORDS[c["check"]]
        show = _pct if pct else sig3
        better = "≥" if c["check"] == "prediction" else "≤"
        items.append(
            f"<li>{escape(name)}: {escape(text.format(v=show(c['value'])))}, "
            f"<b>{escape(c['status'])}</b> (good {better} {show(c['good'])}, acceptable "
            f"{better} {show(c['acceptable'])})</li>"
        )
    return _card("usefulness", u["status"], f"<ul>{''.join(items)}</ul>{flags}")


def _implementation_card(i: Mapping[str, Any], report: Mapping[str, Any]) -> str:
    n = len(report["dp_guarantee"]["implementation_hazards"])
    if i["open_hazards"]:
        body = "<p>Not mitigated: " + escape("; ".join(i["open_hazards"])) + ".</p>"
    else:
        body = (
            f"<p>All {n} implementation hazards checked are mitigated or outside the threat "
            "model (NIST SP 800-226).</p>"
        )
    return _card("implementation", i["status"], body)


def audience(report: Mapping[str, Any]) -> str:
    """Who may read the report, and the small-cell rule that lets them."""
    policy = (report.get("attacks") or {}).get("policy", {})
    k = policy.get("thresholds", {}).get("report", {}).get("min_cell_rows")
    rule = f"fewer than {k:g} real rows" if k is not None else "few real rows"
    return (
        '<p class="audience"><b>Audience.</b> This report may be shared outside the trusted '
        "environment, e.g. with a regulator or the synthetic data's recipients. It holds no row "
        "of the real table: what it says about the real table is differentially private, or an "
        f"aggregate over many rows in which no category or bin of {rule} is shown "
        "(small-cell suppression, set by the policy). Diagnostics about single rows stayed on "
        "the custodian's screen.</p>"
    )


def decision(report: Mapping[str, Any]) -> str:
    """The first screen: the overall word, the three verdicts side by side, the audience.

    "All checks passed" appears only when privacy, usefulness and implementation all pass.
    """
    d = decision_of(report)
    names = ("privacy", "usefulness", "implementation")
    failed = [n for n in names if _CARD_CLASS.get(d[n]["status"]) == "fail"]
    missing = [n for n in names if d[n]["status"] in ("not checked", "not judged")]
    word, sentence = OVERALL[d["overall"]]
    sentence = sentence.format(failed=" and ".join(failed), missing=" and ".join(missing))
    overall = (
        f'<div class="overall {_CARD_CLASS.get(d["overall"], "incomplete")}" id="overall">'
        f'<span class="word">{word}</span><span>{escape(sentence)}</span></div>'
    )
    cards = (
        _privacy_card(d["privacy"], report)
        + _usefulness_card(d["usefulness"], report)
        + _implementation_card(d["implementation"], report)
    )
    return (
        f'<section class="decision">{overall}<div class="verdicts">{cards}</div>'
        f"{audience(report)}</section>"
    )


def overview(report: Mapping[str, Any]) -> str:
    rel, dp = report["release"], report["dp_guarantee"]
    return kv(
        {
            "generator": rel["generator"].upper(),
            "synthetic rows released": rel["rows_released"],
            "data file": rel["data_file"],
            **(
                {
                    "linked tables": "; ".join(
                        f"{name}: {t['file']} ({t['rows']} rows)"
                        for name, t in rel["tables"].items()
                    )
                }
                if rel.get("tables")
                else {}
            ),
            "privacy budget (epsilon, delta)": f"{dp['epsilon']:g}, {dp['delta']:g}",
            "report id": report["report_id"],
            "signed by (key fingerprint)": report["signer"],
            "date (UTC)": report["created"][:10],
            "source data fingerprint": report["source"]["value"],
        }
    )


def guarantee(report: Mapping[str, Any]) -> str:
    dp = report["dp_guarantee"]
    items = {
        k.replace("_", " "): dp[k]
        for k in (
            "epsilon",
            "delta",
            "epsilon_spent",
            "definition",
            "accountant",
            "neighbouring_relation",
            "unit_of_privacy",
            "trust_model",
            "noise_sampler",
        )
    }
    items["epsilon spent"] = "≤ " + sig3(dp["epsilon_spent"], rounding=ROUND_CEILING)
    items["data-dependent preprocessing"] = dp["data_dependent_preprocessing"]
    hazards = table(
        ("implementation hazard", "status", "how"),
        ((h["hazard"], h["status"], h["how"]) for h in dp["implementation_hazards"]),
    )
    return (
        f'<div class="plain">{escape(dp["plain_language"])}</div>'
        + kv(items)
        + "<h3>Implementation hazards checked (NIST SP 800-226)</h3>"
        + hazards
        + '<p class="muted">Every charge of this release: see the appendix.</p>'
    )


def epsilon_story(report: Mapping[str, Any]) -> str:
    """The three epsilons of a release in one place, and why they differ.

    Parameters
    ----------
    report
        The audit report; reads ``dp_guarantee`` (requested epsilon and delta, what the
        release's charges compose to) and ``ledger`` (the dataset's composed total, the cap).

    Returns
    -------
    str
        A table of the requested, spent and dataset-total epsilons, each with its delta
        (spends rounded up, what remains rounded down, at 3 significant digits), and the
        sentences that tie them together.
    """
    dp, led = report["dp_guarantee"], report["ledger"]
    cap, after = led["cap"], led["spent_after"]
    spent = sig3(dp["epsilon_spent"], rounding=ROUND_CEILING)
    total = sig3(after["epsilon"], rounding=ROUND_CEILING)
    rows = [
        ("requested for this release", f"{dp['epsilon']:g}", f"{dp['delta']:g}"),
        ("spent by this release (its charges composed)", f"≤ {spent}", f"{dp['delta']:g}"),
        (
            f"spent on dataset {led['dataset_id']!r}: every release so far, this one included",
            f"≤ {total} of the cap's {cap['epsilon']:g}",
            f"{cap['delta']:g}",
        ),
        (
            "remaining under the cap",
            f"≥ {sig3(led['remaining']['epsilon'], rounding=ROUND_FLOOR)}",
            f"{cap['delta']:g}",
        ),
    ]
    why = (
        f"This release was given ε = {dp['epsilon']:g} at δ = {dp['delta']:g}; its charges, "
        f"composed by the accountant, come to ε ≤ {spent} at that δ: a release never spends "
        "more than it was given. The ledger composes the charges of every release of this "
        f"dataset together and states the total at the cap's δ = {cap['delta']:g}. Since ε is "
        "always stated at some δ, and the same charges give a smaller ε at a larger δ, the "
        "dataset's total can differ from, even be smaller than, this release's own ε."
    )
    return (
        table(("privacy budget", "epsilon", "at delta"), rows)
        + f'<div class="plain">{escape(why)}</div>'
    )


def _charge_params(charge: Mapping[str, Any]) -> str:
    """A charge's parameters in words: spends (ρ, ε, δ) rounded up, at 3 significant
    digits; counts as they are."""
    parts = []
    for k, v in charge.items():
        if k == "type":
            continue
        name = _PARAM_NAMES.get(k, k.replace("_", " "))
        if isinstance(v, float):
            v = sig3(v, rounding=ROUND_CEILING if k in _PARAM_NAMES else ROUND_HALF_EVEN)
        parts.append(f"{name} {v}")
    return ", ".join(parts)


def charges_appendix(report: Mapping[str, Any]) -> str:
    """Every charge of the release, identical charges collapsed into one row with a count
    (most frequent first), e.g. "45 × zCDP mechanism, ρ 4.68e-05 each"."""
    grouped = Counter(json.dumps(c, sort_keys=True) for c in report["dp_guarantee"]["charges"])
    rows = (
        (f"{n} ×", CHARGE_NAMES.get(c["type"], c["type"]), _charge_params(c))
        for c, n in ((json.loads(k), n) for k, n in grouped.most_common())
    )
    return (
        '<p class="muted">The privacy events this release charged to the ledger, numbers at 3 '
        "significant digits (spends rounded up); audit.json holds the exact values.</p>"
        + table(("times", "charge", "parameters, each"), rows, align=False)
    )


def _up(budget: Mapping[str, Any]) -> str:
    """A spend at 3 significant digits, rounded up."""
    return "≤ " + sig3(budget["epsilon"], rounding=ROUND_CEILING)


def ledger(report: Mapping[str, Any]) -> str:
    led = report["ledger"]
    return kv(
        {
            "ledger file / dataset": f"{led['file']} / {led['dataset_id']}",
            "cap (epsilon, delta)": f"{led['cap']['epsilon']:g}, {led['cap']['delta']:g}",
            "epsilon spent before this release (at the cap's delta)": _up(led["spent_before"]),
            "this release (at its own delta)": _up(led["this_release"]),
            "epsilon spent after, all releases composed (at the cap's delta)": _up(
                led["spent_after"]
            ),
            "epsilon remaining": "≥ " + sig3(led["remaining"]["epsilon"], rounding=ROUND_FLOOR),
            "head hash after this release": led["head"],
            "reservations": led["reservations"],
        }
    )


def utility(report: Mapping[str, Any]) -> str:
    u = report.get("utility")
    if not u:
        return '<p class="muted">Utility was not evaluated.</p>'
    rows: list[tuple[str, Any]] = [
        (
            f"{way.replace('way', '-way')} marginal TVD (mean / max, {t['n_marginals']} marginals)",
            _pair(t["mean"], t["max"]),
        )
        for way, t in u["tvd"].items()
    ]
    rows.append(
        ("1-way KL divergence, nats (mean / max)", _pair(u["kl_1way"]["mean"], u["kl_1way"]["max"]))
    )
    cd = u["correlation_difference"]
    rows.append(("association difference (mean / max)", _pair(cd["mean"], cd["max"])))
    base = (u.get("baselines") or {}).get("independent_columns")
    if base:
        rows.append(
            (
                "independent-columns baseline: 2-way TVD / association difference (means)",
                _pair(base.get("tvd_2way_mean"), base.get("association_difference_mean")),
            )
        )
    if u.get("c2st"):
        rows.append(("C2ST AUC: telling real from synthetic (0.5: cannot)", u["c2st"]["auc"]))
        rows.append(("propensity pMSE (0: indistinguishable, 0.25: fully)", u["c2st"]["pmse"]))
    rows.append(("share of synthetic rows duplicating another", u["duplicate_rate"]))
    if t := u.get("tstr"):
        rows.append(
            (
                f"TSTR: train on synthetic, test on {t['test_on']} rows: "
                f"{METRICS_IN_WORDS.get(t['metric'], t['metric'])} for {t['target']}",
                t["synthetic"],
            )
        )
        if t.get("real") is not None:
            rows.append((f"train real, test on {t['test_on']} rows (reference)", t["real"]))
    notes = "".join(f'<p class="muted">{escape(n)}</p>' for n in u.get("notes", []))
    figs = "".join(
        _img(
            plots.marginal(m["column"], m["labels"], m["real"], m["synthetic"], m.get("kind")),
            m["column"],
        )
        for m in u["plots"]["marginals"]
    )
    worst = table(
        ("worst 2-way pairs", "TVD"),
        ((" × ".join(p["columns"]), p["tvd"]) for p in u["plots"]["worst_pairs"]),
    )
    grid = f'<div class="grid">{figs}</div>'
    metrics = table(("metric", "value"), rows, align=False)
    return metrics + notes + _small_cells(report) + grid + worst


#: TSTR's score names in words.
METRICS_IN_WORDS = {"roc_auc": "ROC AUC", "macro_f1": "macro F1"}


def _small_cells(report: Mapping[str, Any]) -> str:
    """The rule the plots follow so that the report can be shared."""
    policy = (report.get("attacks") or {}).get("policy", {})
    k = policy.get("thresholds", {}).get("report", {}).get("min_cell_rows")
    rule = f"at least {k:g} real rows" if k is not None else "enough real rows"
    return (
        '<p class="muted">Shares of rows per category or bin. A real bar is shown only for a '
        f"cell holding {rule} (small-cell suppression, set by the policy); the synthetic bars, "
        "from the public synthetic table, always are. Everything else this report says about "
        "the real table is an aggregate over all its rows or a DP quantity.</p>"
    )


def attacks(report: Mapping[str, Any]) -> str:
    """The attack results by plain name (technical names in the glossary), their threat
    models, plots, distance diagnostics, the canary audit and the self-test."""
    a = report.get("attacks")
    if not a:
        return '<p class="muted">The attack suite did not run.</p>'
    rows = [
        (
            words.plain(r["name"]),
            words.plain(r["metric"]),
            r["value"],
            r["ci"],
            r["baseline"],
            _verdict(r["passed"]),
        )
        for r in a["attacks"]
    ]
    threats = {words.plain(r["name"]): r["threat_model"] for r in a["attacks"]}
    out = [
        f'<div class="plain">{escape(a["note"])}</div>',
        _sampled(a.get("settings") or {}),
        table(("attack", "measured as", "value", "95% CI", "baseline", "verdict"), rows),
        '<p class="muted">A blank value was withheld: it would stand for fewer synthetic '
        "rows than the small-cell rule allows (the custodian saw it).</p>"
        if any(r["value"] is None for r in a["attacks"])
        else "",
        "<h3>Threat models</h3>",
        table(("attack", "what the attacker knows and tries"), threats.items(), align=False),
    ]
    out += [f'<p class="muted">skipped: {escape(_fmt(x))}</p>' for x in a.get("skipped", [])]
    out += _attack_plots(a.get("plots") or {})
    if a.get("diagnostics"):
        out.append("<h3>Distance diagnostics (never pass/fail on their own)</h3>")
        out.append(kv({DIAGNOSTICS.get(k, k): v for k, v in a["diagnostics"].items()}))
    out.append("<h3>Canary audit: empirical lower bound on epsilon</h3>")
    out.append(canary(a["canary"]) if a.get("canary") else '<p class="muted">Not run.</p>')
    if st := a.get("self_test"):
        out.append("<h3>Self-test: the suite against a planted leak and a null generator</h3>")
        out.append(self_test(st))
    return "".join(out)


def _sampled(settings: Mapping[str, Any]) -> str:
    """What the attacks saw, in a sentence: the audit works on fixed-size samples (the
    policy's ``[sample]``), so on a large table it sees a share of the synthetic rows."""
    attacked, released = settings.get("synthetic_rows_attacked"), settings.get("synthetic_rows")
    if attacked is None or released is None:  # a report made before the audit sampled
        return ""
    seen = (
        f"all {released:,} synthetic rows"
        if attacked >= released
        else f"a uniform sample of {attacked:,} of the {released:,} synthetic rows"
    )
    return (
        f"<p>The attacks ran on {seen}, at most {settings['reference_rows_at_most']:,} "
        "training rows and as many held-out rows (uniform samples, whole persons in a "
        f"person-level release) and {settings['n_targets_requested']:,} targets per side "
        "at most. An attacker holding the whole synthetic table may do better than an attack "
        "on a sample; the differential-privacy guarantee holds for the whole release.</p>"
    )


#: Distance diagnostics' keys in words.
DIAGNOSTICS = {
    "dcr_train_percentiles": "DCR to training rows, percentiles (p5: 5% of synthetic rows are "
    "closer)",
    "dcr_holdout_percentiles": "DCR to held-out rows, percentiles",
    "nndr_percentiles": "NNDR, percentiles",
    "n_synthetic_queries": "synthetic rows measured",
    "reference_sets": "real rows measured against",
}


def _attack_plots(plot: Mapping[str, Any]) -> list[str]:
    out = []
    if plot.get("roc"):
        curves = [
            (words.plain(name), [p["fpr"] for p in pts], [p["tpr"] for p in pts])
            for name, pts in plot["roc"].items()
        ]
        out.append(
            "<h3>Membership inference: ROC curves</h3>"
            + f'<div class="grid">{_img(plots.roc(curves), "ROC")}</div>'
        )
    if h := plot.get("dcr_histogram"):
        out.append(
            "<h3>Distance from each synthetic row to its closest real row</h3>"
            + '<div class="grid">'
            + _img(plots.dcr(h["bin_edges"], h["train"], h["holdout"]), "DCR histogram")
            + "</div>"
        )
    return out


#: The canary audit's outcomes in words ("loose" and "tight" explained where shown).
CANARY_STATUS = {
    "loose": "loose: the lower bound is well below the claimed ε, so this audit cannot say the "
    "claim is tight (close to the true privacy loss). This is the usual outcome for a sound "
    "generator: the claim bounds the worst case, and the audit sees one run. It is not a "
    "problem.",
    "consistent": "consistent: the lower bound comes close to the claimed ε, which is then "
    "nearly tight (about as private as claimed, not much more).",
    "VIOLATION": "VIOLATION: the lower bound is above the claimed ε: the implementation leaks "
    "more than it claims.",
}


def canary(c: Mapping[str, Any]) -> str:
    """The canary audit in a few plain rows, with its outcome explained."""
    rows = {
        "method": c["method"],
        "fake rows planted (canaries), each kept with probability 1/2": c["m"],
        "claimed ε": c["epsilon_claimed"],
        f"lower bound on ε found ({_pct(c['confidence'])} confidence)": c["epsilon_lower_bound"],
        "outcome": CANARY_STATUS.get(c["status"], c["status"]),
    }
    if "correct" in c and "guesses" in c:
        rows["the attacker's guesses: right / made"] = f"{c['correct']} / {c['guesses']}"
    return kv(rows)


def self_test(st: Mapping[str, Any]) -> str:
    """Whether the suite caught a planted leak and kept quiet on a generator that learns
    nothing, with each attack's value on both."""
    head = {
        "caught the planted leak": st["detected_leak"],
        "raised a false alarm on the null generator": st["false_alarm"],
    }
    for key, label in (("leaky_generator", "planted leak"), ("null_generator", "null generator")):
        if key in st:
            head[label] = st[key]
    return kv(head) + table(
        ("attack", "planted leaky generator", "null generator"),
        (
            (words.plain(name), st["leaky"][name]["value"], st["null"].get(name, {}).get("value"))
            for name in st.get("leaky", {})
        ),
    )


def glossary(report: Mapping[str, Any]) -> str:
    """Every attack and metric named on the page, by plain name, with its technical name
    (as in audit.json) and meaning; then the statistical terms."""
    a = report.get("attacks") or {}
    names = [r["name"] for r in a.get("attacks", [])] + [r["metric"] for r in a.get("attacks", [])]
    named = len(dict.fromkeys(names))  # the first rows: names as audit.json spells them
    rows = (
        (plain, Raw(f"<code>{escape(tech)}</code>") if i < named else tech, meaning)
        for i, (plain, tech, meaning) in enumerate(
            words.glossary(
                names,
                groups=bool(bias.section(report)),
                regulator=report.get("regulator") is not None,
            )
        )
    )
    return table(("plain name", "technical name", "meaning"), rows, align=False)


def schema(report: Mapping[str, Any]) -> str:
    s = report["schema"]
    cols = table(
        ("column", "kind", "domain", "nullable", "what the model can represent"),
        (
            (c["name"], c["kind"], c["domain"], c["nullable"], _encoding(c.get("encoding")))
            for c in s["columns"]
        ),
    )
    caveats = "".join(f'<p class="bad">{escape(c)}</p>' for c in s["data_dependent_caveats"])
    return (
        f'<p class="muted">schema SHA-256 <code>{s["sha256"]}</code></p>'
        + caveats
        + cols
        + rules(s)
    )


def rules(s: Mapping[str, Any]) -> str:
    """The schema's rules: synthetic rows breaking each (the release checks it is 0) and how
    often sampling redrew a row for it."""
    if not s.get("rules"):
        return ""
    return "<h3>Rules every synthetic row keeps</h3>" + table(
        ("rule", "meaning", "synthetic rows breaking it", "rejection rate", "rows repaired"),
        (
            (r["rule"], r["description"], r["violations"], r["rejection_rate"], r["rows_repaired"])
            for r in s["rules"]
        ),
    )


def _encoding(enc: Mapping[str, Any] | None) -> str:
    """A learned numeric encoding in words (its values are DP outputs)."""
    if not enc:
        return ""
    edges = [_value(v) for v in enc["bin_edges"]]
    masses = ", ".join(_value(v) for v in enc["point_masses"]) or "none"
    return (
        f"learned with DP: values held by many rows ({masses}) kept exactly; "
        f"{len(edges) - 1} bins from {edges[0]} to {edges[-1]}"
    )


_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(:[\d.]+)?$")


def _value(v: Any) -> str:
    """An encoding's value as a reader takes it in: a date as a date (with its time of day,
    to the minute, only when it has one), a number at 3 significant digits.

    Examples
    --------
    >>> _value("2020-03-07T00:00:00"), _value("2020-03-07T02:13:20.5"), _value(1500001)
    ('2020-03-07', '2020-03-07 02:13', '1500001')
    """
    if isinstance(v, str) and (m := _ISO.match(v)):
        day, hhmm, sec = m.groups()
        return day if hhmm == "00:00" and float((sec or ":0")[1:]) == 0 else f"{day} {hhmm}"
    return _fmt(v)


def render_html(report: Mapping[str, Any], *, paper: str = "a4") -> str:
    """The whole page for ``report``.

    Parameters
    ----------
    report
        A built, id-bearing audit report.
    paper
        ``"a4"`` or ``"letter"``: the paper size the page asks for when printed (CSS
        ``@page``, which headless Chromium's ``--print-to-pdf`` honours).

    Returns
    -------
    str
        The page. It is a function of ``report`` and ``paper`` only (no clock, no random
        ids), so rendering the same report twice gives the same bytes.

    Raises
    ------
    ConfigError
        If ``paper`` is not one of :data:`PAPERS`.
    """
    if paper not in PAPERS:
        raise ConfigError(f"paper ({paper!r}) must be one of {', '.join(PAPERS)}")
    page = f"@page{{size:{PAPERS[paper]};margin:14mm}}"
    tool = report["tool"]
    versions = {"privsynth": tool["version"], "python": tool["python"], **tool["dependencies"]}
    limits = "".join(f"<li>{escape(x)}</li>" for x in report["limitations"])
    title = f"privsynth audit report — {report['release']['generator'].upper()} release"
    sections = [
        ("Privacy budget: requested, spent, and the dataset's total", epsilon_story(report)),
        ("The release", overview(report)),
        ("The differential-privacy guarantee", guarantee(report)),
        ("Privacy budget ledger", ledger(report)),
        ("Utility: how close the synthetic table is to the real one", utility(report)),
        *bias.section(report),  # format 2 on; a format-1 page stays as it was
        ("Attacks: empirical privacy risk", attacks(report)),
        *regulator.section(report),  # format 2 on; a format-1 page stays as it was
        ("Schema", schema(report)),
        ("Limitations", f"<ul>{limits}</ul>"),
        ("Glossary", glossary(report)),
        ("Software", kv(versions)),
        ("Appendix: every privacy charge of this release", charges_appendix(report)),
    ]
    body = "".join(f"<h2>{escape(h)}</h2>{html}" for h, html in sections)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}{page}</style></head><body>"
        f"<h1>{escape(title)}</h1>{decision(report)}{body}"
        f'<p class="muted">Verify offline with <code>privsynth verify</code> or VERIFY.md; '
        f"report id <code>{escape(report['report_id'])}</code>.</p></body></html>\n"
    )
