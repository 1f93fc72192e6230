"""What a dataset's budget looks like to a person: the summary dict and its text form.

Read-only views over verified entries; nothing here writes to a ledger.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from privsynth.budget.analysis import as_rational, epsilon_spent_exact, float_down, float_up
from privsynth.budget.chain import GENESIS_HASH, entry_events, plain_copy, reservation_states
from privsynth.budget.events import (
    Budget,
    PrivacyEvent,
    event_from_dict,
    event_summary,
    format_param,
)


def summarize(
    entries: Sequence[Mapping[str, Any]],
    *,
    path: Path | str,
    dataset_id: str,
    cap: Budget,
    spent: Fraction | float,
    last: int,
) -> dict:
    """The JSON-ready summary of ``dataset_id`` behind :meth:`Ledger.describe
    <privsynth.budget.ledger.Ledger.describe>`.

    Parameters
    ----------
    entries
        The verified entries of the whole file.
    path
        The ledger's file (or URL, without its password), named in the summary.
    dataset_id
        The dataset summarised.
    cap, spent
        The dataset's current cap and its composed spend (exact, or ``inf``) at the cap's delta.
    last
        How many of the dataset's last entries to include (with the spend after each).
    """
    states = reservation_states(entries, dataset_id)
    counts = {
        s: sum(r["state"] == s for r in states.values())
        for s in ("reserved", "committed", "cancelled")
    }
    rem = max(Fraction(0), as_rational(cap.epsilon) - spent) if spent != float("inf") else 0
    mine = [e for e in entries if e["dataset_id"] == dataset_id]
    shown = mine[-last:] if last > 0 else []
    return {
        "ledger": str(path),
        "dataset_id": dataset_id,
        "cap": cap.to_dict(),
        "spent": {"epsilon": float_up(spent), "delta": cap.delta},
        "remaining": {"epsilon": float_down(Fraction(rem)), "delta": cap.delta},
        "releases": {
            "active": counts["reserved"] + counts["committed"],
            "committed": counts["committed"],
            "pending": counts["reserved"],
            "cancelled": counts["cancelled"],
        },
        "entries": len(mine),
        "head": entries[-1]["hash"] if entries else GENESIS_HASH,
        "last_entries": plain_copy(shown),
        "spent_after": _running_totals(mine, {e["seq"] for e in shown}, cap),
    }


def _running_totals(
    mine: Sequence[Mapping[str, Any]], wanted: set[int], cap: Budget
) -> list[float | None]:
    """Composed epsilon (at the current cap's delta) right after each wanted entry."""
    active: dict[str, list[PrivacyEvent]] = {}
    out: list[float | None] = []
    delta_q = as_rational(cap.delta)
    for e in mine:
        if e["kind"] == "reserve":
            active[e["reservation"]] = entry_events(e)
        elif e["kind"] == "cancel":
            active.pop(e["reservation"], None)
        if e["seq"] in wanted:
            total = epsilon_spent_exact([x for evs in active.values() for x in evs], delta_q)
            out.append(None if total == float("inf") else float_up(total))
    return out


def describe_summary(s: Mapping[str, Any]) -> str:
    """The text form of a :func:`summarize` dict: cap, spent, remaining, releases, entries."""
    r = s["releases"]
    lines = [
        f"ledger {s['ledger']} -- dataset {s['dataset_id']!r}",
        f"  cap:       epsilon={format_param(s['cap']['epsilon'])}, "
        f"delta={format_param(s['cap']['delta'])}",
        f"  spent:     epsilon={format_param(s['spent']['epsilon'])} (all releases composed, at "
        "the cap's delta)",
        f"  remaining: epsilon={format_param(s['remaining']['epsilon'])}",
        f"  releases:  {r['active']} counted ({r['committed']} committed, {r['pending']} "
        f"reserved but not committed), {r['cancelled']} cancelled",
        f"  head:      {s['head']}",
    ]
    if s["last_entries"]:
        lines.append(f"  last {len(s['last_entries'])} entries:")
        lines.extend(f"    {describe_entry(e)}" for e in s["last_entries"])
    return "\n".join(lines)


def describe_entry(entry: Mapping[str, Any]) -> str:
    """One line for an entry: seq, time, kind, purpose, charge or cap."""
    kind = entry["kind"]
    if kind == "cap":
        cap = Budget.from_dict(entry["metadata"]["cap"])
        what = f"cap {cap}"
        if "reason" in entry["metadata"]:
            what += f" -- {entry['metadata']['reason']}"
    elif kind == "reserve":
        what = ", ".join(event_summary(event_from_dict(d)) for d in entry["events"])
    elif kind == "cancel":
        what = f"refund: {entry['metadata'].get('reason', '')}"
    else:
        what = "released"
    rid = f" (res {entry['reservation'][:8]})" if entry["reservation"] else ""
    return f"#{entry['seq']} {entry['time']} {kind:<7} {entry['purpose']}{rid}: {what}"
