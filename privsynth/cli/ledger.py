"""``privsynth ledger``: create, inspect, verify and export privacy-budget ledgers.

Errors are raised as :class:`~privsynth.errors.PrivsynthError` subclasses; the top-level
``privsynth`` command prints them as ``error: <message>`` and exits with their code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from privsynth.budget.analysis import epsilon_spent
from privsynth.budget.backend import is_url, ledger_exists, list_datasets, shown, verify_ledger
from privsynth.budget.events import Budget, event_from_dict, event_summary, format_param
from privsynth.budget.export import export_jsonl, jsonl_text, verify_jsonl
from privsynth.budget.ledger import Ledger
from privsynth.budget.store import SQLITE_MAGIC
from privsynth.cli.options import LEDGER, file_option
from privsynth.errors import ConfigError, LedgerError

_LEDGER = click.argument("ledger", type=LEDGER)


@click.group(name="ledger")
def ledger_group() -> None:
    """Create, inspect, verify and export privacy-budget ledgers.

    A ledger is one SQLite file, or a PostgreSQL database a team shares
    (postgresql://user@host:port/database, the password in PGPASSWORD or ~/.pgpass), that
    records, per dataset, a budget cap and every privacy spend, in a hash chain.  See
    docs/ledger.md.
    """


def _resolve_dataset(location: Path | str, dataset_id: str | None) -> str:
    path = shown(location)  # a URL without its password
    if not ledger_exists(location):
        raise LedgerError(f"no ledger at {path}; create one with `privsynth ledger init`")
    datasets = list_datasets(location)
    if dataset_id is not None:
        if dataset_id not in datasets:
            raise ConfigError(
                f"ledger {path} holds no dataset {dataset_id!r}; it holds: "
                f"{', '.join(datasets) or 'none'}"
            )
        return dataset_id
    if len(datasets) == 1:
        return datasets[0]
    if not datasets:
        raise LedgerError(
            f"ledger {path} holds no dataset yet; add one with `privsynth ledger init`"
        )
    raise ConfigError(
        f"ledger {path} holds {len(datasets)} datasets ({', '.join(datasets)}); choose one with "
        "--dataset-id"
    )


@ledger_group.command("init")
@_LEDGER
@click.option("--dataset-id", required=True, help="The dataset whose budget this is.")
@click.option("--cap-epsilon", type=float, required=True, help="Total epsilon allowed.")
@click.option("--cap-delta", type=float, required=True, help="Total delta allowed (< 1).")
@click.option(
    "--force-cap",
    is_flag=True,
    help="Change the cap of a dataset that already has one (recorded, needs --reason).",
)
@click.option("--reason", help="Why the cap is changed (stored in the ledger).")
def init_cmd(
    ledger: Path | str,
    dataset_id: str,
    cap_epsilon: float,
    cap_delta: float,
    force_cap: bool,
    reason: str | None,
) -> None:
    """Create LEDGER (or add a dataset to it) with a budget cap."""
    cap = Budget(cap_epsilon, cap_delta)
    if force_cap and not (reason and reason.strip()):
        raise ConfigError("--force-cap needs --reason TEXT (the reason is recorded in the ledger)")
    if reason and not force_cap:
        raise ConfigError("--reason is only used with --force-cap")
    existing = list_datasets(ledger)
    if force_cap and dataset_id in existing:
        with Ledger.open(ledger, dataset_id=dataset_id) as led:
            old = led.cap
            led.set_cap(cap, reason=reason or "")
            if old == cap:
                click.echo(f"ledger {led.path}: dataset {dataset_id!r} already has cap {cap}")
            else:
                click.echo(
                    f"ledger {led.path}: cap of dataset {dataset_id!r} changed from {old} to "
                    f"{cap} (recorded, reason: {reason})"
                )
        return
    with Ledger.open(ledger, dataset_id=dataset_id, cap=cap) as led:
        led.register()
        verb = "already has" if dataset_id in existing else "created with"
        click.echo(f"ledger {led.path}: dataset {dataset_id!r} {verb} cap {cap}")


@ledger_group.command("show")
@_LEDGER
@click.option("--dataset-id", help="Needed when the ledger holds several datasets.")
@click.option(
    "--last",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="How many of the dataset's latest entries to list.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def show_cmd(ledger: Path | str, dataset_id: str | None, last: int, as_json: bool) -> None:
    """Show a dataset's cap, what is spent and what remains, and its latest entries."""
    ds = _resolve_dataset(ledger, dataset_id)
    with Ledger.open(ledger, dataset_id=ds, readonly=True) as led:
        summary = led.summary(last=last)
    if as_json:
        click.echo(json.dumps(summary, indent=2, ensure_ascii=False))
        return
    _render(summary)


def _render(s: dict) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=sys.stdout, highlight=False, width=None if sys.stdout.isatty() else 150)
    cap, spent, rem, rel = s["cap"], s["spent"], s["remaining"], s["releases"]
    top = Table(title=f"Privacy budget of dataset {s['dataset_id']!r}", show_header=False)
    top.add_column(style="bold")
    top.add_column()
    rows = [
        ("ledger", s["ledger"]),
        ("cap", f"epsilon = {format_param(cap['epsilon'])}, delta = {format_param(cap['delta'])}"),
        (
            "spent",
            f"epsilon = {format_param(spent['epsilon'])} at delta = {format_param(spent['delta'])} "
            "(all counted releases composed; rounded up)",
        ),
        ("remaining", f"epsilon = {format_param(rem['epsilon'])} (cap minus spent; rounded down)"),
        (
            "releases",
            f"{rel['active']} counted: {rel['committed']} committed, {rel['pending']} reserved "
            f"but not committed (counted as spent); {rel['cancelled']} cancelled (refunded)",
        ),
        ("entries", f"{s['entries']} for this dataset"),
        ("head", s["head"]),
    ]
    for k, v in rows:
        top.add_row(Text(k), Text(v))
    console.print(top)
    if not s["last_entries"]:
        return
    table = Table(title=f"Last {len(s['last_entries'])} entries")
    numeric = ("seq", "epsilon alone", "spent after")
    for col in ("seq", "time (UTC)", "kind", "purpose", "charge", *numeric[1:], "reservation"):
        table.add_column(
            col,
            justify="right" if col in numeric else "left",
            no_wrap=col not in ("purpose", "charge"),
        )
    for e, after in zip(s["last_entries"], s["spent_after"], strict=True):
        alone = ""
        if e["kind"] == "reserve":
            events = [event_from_dict(d) for d in e["events"]]
            charge = ", ".join(map(event_summary, events))
            alone = format_param(epsilon_spent(events, cap["delta"]))
        elif e["kind"] == "cap":
            charge = f"cap {Budget.from_dict(e['metadata']['cap'])}"
            if e["metadata"].get("reason"):
                charge += f" -- {e['metadata']['reason']}"
        elif e["kind"] == "cancel":
            charge = f"refund: {e['metadata'].get('reason', '')}"
        else:
            charge = "released"
        table.add_row(
            *(
                Text(str(x))
                for x in (
                    e["seq"],
                    e["time"][:19].replace("T", " "),
                    e["kind"],
                    e["purpose"],
                    charge,
                    alone,
                    "inf" if after is None else format_param(after),
                    (e["reservation"] or "")[:8],
                )
            )
        )
    console.print(table)
    console.print(
        Text(
            "'epsilon alone' is what one release would cost on its own; 'spent after' is the "
            "composed total of everything counted at that point (both at the cap's delta). "
            "Releases compose, so 'spent' is not the sum of the 'epsilon alone' column."
        )
    )


def _is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return True  # let verify_ledger report the problem


@ledger_group.command("verify")
@_LEDGER
def verify_cmd(ledger: Path | str) -> None:
    """Verify the hash chain of LEDGER (a ledger file or database, or a JSONL export).

    Prints "ok: N entries, head HASH", or fails naming the first bad entry.  Keep the head
    hash somewhere else (the audit report carries it): the chain alone cannot show that its
    newest entries were removed together with the stored head.
    """
    path = None if is_url(ledger) else Path(ledger).expanduser()
    if path is not None and path.is_file() and path.stat().st_size > 0 and not _is_sqlite(path):
        n, head = verify_jsonl(path)
    else:
        n, head = verify_ledger(path or ledger)
    click.echo(f"ok: {n} entries, head {head}")


@ledger_group.command("export")
@_LEDGER
@file_option("-o", "--output", help="Write JSONL here (atomically); default: standard output.")
def export_cmd(ledger: Path | str, output: Path | None) -> None:
    """Export the whole (verified) chain of LEDGER as JSON Lines, one entry per line."""
    if output is None:
        click.echo(jsonl_text(ledger), nl=False)
        return
    n = export_jsonl(ledger, output)
    click.echo(f"wrote {n} entries to {output}", err=True)
