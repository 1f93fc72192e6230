"""The report's bias section: how each protected group fares in the synthetic table.

Rendered from the signed report's ``utility.groups`` alone
(:func:`privsynth.utility.groups.summarise`): per group, its real and synthetic shares and,
with a target, the scores of a model trained on synthetic rows and of one trained on real
rows, both tested on the group's real held-out rows; groups flagged against the policy's
``[bias]`` thresholds are named first, in words. A group the small-cell rule suppressed says
"suppressed" where a real share or score would be.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

# The module, not its names: render_html imports this module in turn.
from privsynth.report import render_html as page
from privsynth.utility.groups import flagged

#: Why small groups are at risk, in one sentence a non-statistician reads.
WHY_SMALL_GROUPS = (
    "Differential privacy adds noise of the same size to every count, so a small group loses "
    "the largest share of its signal: it is the one the synthetic data is most likely to "
    "shrink or to serve worse."
)
SUPPRESSED = "suppressed"
#: The flags in words.
FLAG_WORDS = {"shrunk": "shrunk", "served_worse": "served worse"}


def _groups(report: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return (report.get("utility") or {}).get("groups")


def _share(v: float | None) -> str:
    return SUPPRESSED if v is None else f"{page.sig3(100 * v)}%"


def _score(v: float | None, suppressed: bool) -> float | str | None:
    """A number the table right-aligns at 3 significant digits; words where there is none."""
    return SUPPRESSED if suppressed else v


def flag_lines(report: Mapping[str, Any]) -> list[str]:
    """One plain line per flagged group (none when no group was named or none is flagged),
    e.g. ``race = Other: shrunk (synthetic share 0.2% against 0.9% real)``."""
    g = _groups(report)
    lines = []
    for row in flagged(g):
        why = []
        if "shrunk" in row["flags"]:
            why.append(
                f"shrunk (synthetic share {_share(row['synthetic_share'])} against "
                f"{_share(row['real_share'])} real)"
            )
        if "served_worse" in row["flags"]:
            why.append(
                f"served worse (model trained on synthetic rows scores "
                f"{page.sig3(row['tstr'])} on its rows, trained on real rows "
                f"{page.sig3(row['trtr'])})"
            )
        lines.append(f"{row['column']} = {row['group']}: {'; '.join(why)}")
    return lines


def flagged_note(report: Mapping[str, Any]) -> str:
    """The flagged groups as a paragraph of the usefulness card (empty when none): the
    verdict does not count them, the reader should still see them on the first screen."""
    rows = flagged(_groups(report))
    if not rows:
        return ""
    named = "; ".join(
        f"{r['column']} = {r['group']} ({', '.join(FLAG_WORDS[f] for f in r['flags'])})"
        for r in rows
    )
    return f"<p>Protected groups flagged (see Bias): {escape(named)}.</p>"


def section(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The bias section as ``[(heading, html)]``; ``[]`` for a format-1 report without groups
    (made before they could be named), whose page must re-render as it was signed."""
    if report.get("regulator") is None and not _groups(report):
        return []
    return [("Bias: how each protected group fares", bias_section(report))]


def bias_section(report: Mapping[str, Any]) -> str:
    """The section "Bias: how each protected group fares": why small groups are at risk, the
    flagged groups in words, then one table row per group."""
    g = _groups(report)
    if not g:
        return (
            '<p class="muted">No protected groups were named (<code>release --groups</code>), '
            "so no group was examined.</p>"
        )
    lines = flag_lines(report)
    flags = (
        "<p><b>Flagged:</b></p><ul>" + "".join(f"<li>{escape(x)}</li>" for x in lines) + "</ul>"
        if lines
        else '<p class="ok">No protected group is flagged.</p>'
    )
    return (
        f'<div class="plain">{escape(WHY_SMALL_GROUPS)}</div>'
        + f"<p>Protected columns: {escape(', '.join(g['columns']))}.</p>"
        + flags
        + _table(g)
        + _rule(g)
    )


def _table(g: Mapping[str, Any]) -> str:
    score = g.get("score")
    headers = ["column", "group", "real share", "synthetic share", "synthetic / real"]
    if score:
        metric = page.METRICS_IN_WORDS.get(score["metric"], score["metric"])
        headers += [
            f"{metric} for {score['target']}, trained on synthetic",
            "trained on real",
        ]
    headers.append("flags")
    rows = []
    for r in g["groups"]:
        sup = r["suppressed"]
        row: list[Any] = [
            r["column"],
            r["group"],
            _share(r["real_share"]),
            _share(r["synthetic_share"]),
            SUPPRESSED if sup else r["share_ratio"],
        ]
        if score:
            row += [_score(r["tstr"], sup), _score(r["trtr"], sup)]
        row.append(", ".join(FLAG_WORDS.get(f, f) for f in r["flags"]) or ("—" if sup else "none"))
        rows.append(row)
    return page.table(headers, rows)


def _rule(g: Mapping[str, Any]) -> str:
    """The thresholds and the small-cell rule the table follows."""
    t, score = g["thresholds"], g.get("score")
    tested = f" Scores are tested on each group's real {score['test_on']} rows." if score else ""
    return (
        f'<p class="muted">A group is flagged <i>shrunk</i> when its synthetic share is below '
        f"{page.sig3(t['max_share_drop_ratio'])} × its real share, and <i>served worse</i> when "
        f"the model trained on synthetic rows scores more than {page.sig3(t['max_score_drop'])} "
        f"below the one trained on real rows (thresholds: the policy's [bias]).{tested} A group "
        f"of fewer than {g['min_cell_rows']} real training or test rows shows no real share, "
        "score or flag (suppressed: small-cell rule); its synthetic share, from the public "
        "synthetic table, is always shown.</p>"
    )
