"""``privsynth schema``: draft a schema from a table, and check a table against one."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import click

from privsynth.cli.options import FILE, UNSAFE_DATA_DOMAIN, file_option
from privsynth.io import read_table, read_tables
from privsynth.schema import LinkedSchema, Schema, load_schema
from privsynth.schema.rules import label
from privsynth.schema.unit import repeated_identifiers


@click.group("schema")
def schema_group() -> None:
    """Draft and check schemas."""


@schema_group.command("draft")
@click.argument("data", type=FILE)
@file_option("-o", "--output", help="Write the schema here (default: print it).")
@click.option(
    "--bins",
    type=int,
    help="Equal-width bins for numeric columns (default: none; the encoding is learned "
    "with DP at the fit).",
)
def schema_draft(data: Path, output: Path | None, bins: int | None) -> None:
    """Draft a schema from DATA. Every domain read from the data is marked "source": "data";
    review it before any release."""
    table = read_table(data)
    schema = Schema.draft(table, bins=bins)
    ids = [col.name for col in schema.columns if col.kind == "identifier"]
    for col in schema.columns:
        if col.kind == "identifier":
            click.echo(f"note: {col.name}: {col.note}", err=True)
    for name, most in repeated_identifiers(table, ids).items():
        click.echo(
            f"note (for you only): {name} repeats, up to {most} rows per value: if a value is "
            f'one person, keep "unit_of_privacy" naming it and set "max_rows" to a public '
            "limit (the study's visit cap, the survey's rounds) or leave \"dp\"; if rows "
            'sharing a value are different people, set "rows_are_people": true',
            err=True,
        )
    n_data = len(schema.data_dependent_columns())
    click.echo(
        f"note: {n_data} domain(s) were read from the data (source: data); declare the public "
        "ones and delete the rest so they are learned with DP",
        err=True,
    )
    if output is None:
        click.echo(schema.to_json(), nl=False)
    else:
        schema.save(output)
        click.echo(f"wrote {output}", err=True)


@schema_group.command("check")
@click.argument("data", type=click.Path(path_type=Path))
@click.argument("schema_path", metavar="SCHEMA", type=FILE)
@click.option(
    "--on-unknown",
    type=click.Choice(["error", "missing"]),
    default="error",
    show_default=True,
    help="What to do with values outside declared categories.",
)
@UNSAFE_DATA_DOMAIN
def schema_check(
    data: Path, schema_path: Path, on_unknown: Literal["error", "missing"], unsafe_data_domain: bool
) -> None:
    """Check DATA against SCHEMA and say whether it is ready for a release.

    DATA is a CSV or Parquet file, or, with a schema of linked tables, a folder holding one
    file per table.
    """
    given = load_schema(schema_path)
    if isinstance(given, LinkedSchema):
        table, joined = given.join(read_tables(data, given.tables))
        for line in joined:
            click.echo(f"note (for you only): {line}")
        schema = given.joined()
    else:
        schema, table = given, read_table(data)
    clean, report = schema.validate(table, on_unknown=on_unknown)
    for line in report.lines():
        click.echo(f"note: {line}")
    unit = schema.unit_of_privacy
    click.echo(f"unit of privacy: {unit.describe()}")
    if unit.is_person and isinstance(unit.max_rows, int):
        sizes = table[unit.column].value_counts()
        click.echo(
            f"note (for you only): {int((sizes > unit.max_rows).sum())} of {len(sizes)} persons "
            f"own more than {unit.max_rows} rows (at most {int(sizes.max())}); a release keeps "
            f"{unit.max_rows} of their rows, drawn at random"
        )
    for caveat in schema.release_caveats(allow_data_dependent_domain=unsafe_data_domain):
        click.echo(caveat)
    broken = schema.rule_violations(clean)
    for i, (rule, n) in enumerate(zip(schema.rules, broken, strict=True)):
        state = f"{n} row(s) break it" if n else "no row breaks it"
        click.echo(f"{label(i, rule)} {rule.describe()}: {state} (for you only)")
    if any(broken):
        click.echo(
            "a release refuses data that breaks a rule: fix the rows or the rule, or pass "
            "--drop-rule-violations to leave those rows out of the fit"
        )
    undeclared = schema.undeclared_columns()
    if undeclared:
        click.echo(
            "domains or numeric encodings to be learned with DP (charged to the fit's "
            f"--discovery-share): {', '.join(undeclared)}"
        )
    click.echo(f"ok: the data fits {schema_path} ({len(schema.synthesised)} columns to synthesise)")
