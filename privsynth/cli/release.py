"""``privsynth release`` (fit, charge the ledger, attack and sign) and ``privsynth sample``
(stream rows from a released marginal model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from privsynth.budget import Budget, Ledger
from privsynth.cli.options import (
    LEDGER,
    UNSAFE_DATA_DOMAIN,
    file_option,
    number_option,
    out_folder_option,
    policy_option,
    split_names,
)
from privsynth.errors import ConfigError
from privsynth.io import read_table, read_tables
from privsynth.report.keys import load_private_key
from privsynth.schema import LinkedSchema, load_schema


def read_source(path: Path, engine: str, spark_master: str) -> Any:
    """DATA for ``--engine``: a DataFrame (pandas), or a source whose rows stay in DuckDB or
    Spark."""
    if engine == "duckdb":
        from privsynth.sources.duckdb import DuckDBSource

        return DuckDBSource(path)
    if engine == "spark":
        from privsynth.sources.spark import read_spark

        return read_spark(str(path), master=spark_master)
    return read_table(path)


@click.command("release")
@click.argument("data", type=click.Path(path_type=Path))
@file_option("--schema", "schema_path", required=True, help="The reviewed schema.")
@click.option(
    "--generator",
    type=click.Choice(["mst", "aim", "dpvae", "dpctgan"], case_sensitive=False),
    default="mst",
    show_default=True,
)
@click.option("--epsilon", type=float, required=True, help="This release's epsilon.")
@number_option("--delta", 1e-9, "This release's delta (choose it without looking at the data).")
@click.option(
    "--ledger",
    "ledger_path",
    required=True,
    type=LEDGER,
    help="The budget ledger: a file, or postgresql://user@host:port/database.",
)
@click.option("--dataset-id", help="The dataset's id in the ledger (default: DATA's file stem).")
@click.option(
    "--cap-epsilon",
    type=float,
    help="Total epsilon cap, needed the first time a dataset enters the ledger.",
)
@number_option("--cap-delta", 1e-6, "Total delta of the cap (with --cap-epsilon).")
@file_option(
    "--key",
    required=True,
    help="Ed25519 private key that signs the report (make one with `privsynth keygen`).",
)
@out_folder_option("The release folder to create.")
@number_option(
    "--holdout-fraction",
    0.2,
    "Rows set aside (never fitted) for membership attacks; 0 skips those attacks.",
)
@policy_option("Attack thresholds: a policy name (standard, strict) or a TOML file.")
@click.option("--sensitive", help="Comma-separated sensitive columns (attribute inference).")
@click.option(
    "--quasi-identifiers", help="Comma-separated quasi-identifier columns (inference, linkage)."
)
@click.option(
    "--target",
    help="A column to predict: adds a train-synthetic-test-real score, and MST measures its "
    "2-way marginal with every other column.",
)
@click.option(
    "--groups",
    help="Comma-separated protected categorical columns (e.g. sex,race): the report shows "
    "each group's share and, with --target, its score, real against synthetic.",
)
@click.option(
    "--discovery-share",
    type=float,
    help="Share of the budget (zCDP rho, and delta) spent learning undeclared domains and "
    "numeric encodings with DP (default: 0.1).",
)
@click.option("--no-canary", is_flag=True, help="Skip the canary audit (a second, unreleased fit).")
@click.option(
    "--new-dataset",
    is_flag=True,
    help="DATA was charged under another --dataset-id of the ledger but is a different "
    "dataset: release it anyway (recorded in the ledger).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True
)
@click.option("--rows", type=int, help="Rows to synthesise (default: the DP row estimate).")
@click.option("--pdf", is_flag=True, help="Also print the HTML report to audit.pdf (Chromium).")
@click.option("--seed", type=int, help="Seed for the split and sampling (not privacy noise).")
@click.option("--force", is_flag=True, help="Replace an earlier release (or empty) --out folder.")
@UNSAFE_DATA_DOMAIN
@click.option(
    "--drop-rule-violations",
    is_flag=True,
    help="Leave real rows that break a rule of the schema out of the fit (a per-row filter by "
    "public rules: no privacy cost; you are told how many) instead of refusing the release.",
)
@click.option(
    "--engine",
    type=click.Choice(["pandas", "duckdb", "spark"]),
    default="pandas",
    show_default=True,
    help="Where the private table is read: in memory (pandas), or left in DuckDB or Spark, "
    "where it is validated, split and counted (mst, aim); the audit reads a uniform sample.",
)
@click.option(
    "--spark-master",
    default="local[*]",
    show_default=True,
    help="Spark master URL for --engine spark.",
)
@click.option("--recipient", help="Who is anticipated to receive the release (HIPAA block).")
@click.option("--signer-role", help="The role of whoever signs the determination, e.g. 'DPO'.")
@click.option("--valid-until", help="Last day the determination holds, as YYYY-MM-DD.")
def release_cmd(
    data: Path,
    schema_path: Path,
    generator: str,
    epsilon: float,
    delta: float,
    ledger_path: Path | str,
    dataset_id: str | None,
    cap_epsilon: float | None,
    cap_delta: float,
    key: Path,
    out: Path,
    holdout_fraction: float,
    policy: str,
    sensitive: str | None,
    quasi_identifiers: str | None,
    target: str | None,
    groups: str | None,
    discovery_share: float | None,
    no_canary: bool,
    new_dataset: bool,
    fmt: str,
    rows: int | None,
    pdf: bool,
    seed: int | None,
    force: bool,
    unsafe_data_domain: bool,
    drop_rule_violations: bool,
    engine: str,
    spark_master: str,
    recipient: str | None,
    signer_role: str | None,
    valid_until: str | None,
) -> None:
    """Fit a DP generator on DATA, charge the ledger, attack and sign: a release in --out.

    DATA is a CSV or Parquet file, or, with a schema of linked tables, a folder holding one
    file per table.
    """
    from privsynth.pipeline import ReleaseConfig, run  # imports torch: seconds

    schema = load_schema(schema_path)
    linked = isinstance(schema, LinkedSchema)

    config = ReleaseConfig(  # bad options fail before the data is read
        out=out,
        generator=generator,
        epsilon=epsilon,
        delta=delta,
        holdout_fraction=holdout_fraction,
        policy=policy,
        sensitive=tuple(split_names(sensitive) or ()),
        quasi_identifiers=tuple(split_names(quasi_identifiers) or ()),
        target=target,
        groups=tuple(split_names(groups) or ()),
        canary=not no_canary,
        new_dataset=new_dataset,
        rows=rows,
        fmt=fmt,
        pdf=pdf,
        seed=seed,
        force=force,
        allow_data_dependent_domain=unsafe_data_domain,
        on_rule_violation="drop" if drop_rule_violations else "error",
        generator_params=(
            {"discovery_share": discovery_share} if discovery_share is not None else {}
        ),
        source=None if linked else data,  # linked: the joined rows are fingerprinted
        recipient=recipient,
        signer_role=signer_role,
        valid_until=valid_until,
    )
    signing_key = load_private_key(key)  # a bad key fails before the data is read
    if isinstance(schema, LinkedSchema):
        if engine != "pandas":
            raise ConfigError("linked tables are read with --engine pandas (the default)")
        df = read_tables(data, schema.tables)
    else:
        if data.is_dir():
            raise ConfigError(
                f"DATA {data} is a directory; give a CSV or Parquet file (a folder of tables "
                "needs a schema of linked tables, with 'tables')"
            )
        df = read_source(data, engine, spark_master)
    cap = Budget(cap_epsilon, cap_delta) if cap_epsilon is not None else None
    dataset = dataset_id or data.name.split(".")[0]
    with Ledger.open(ledger_path, dataset_id=dataset, cap=cap) as ledger:
        result = run(config, df, schema, ledger=ledger, key=signing_key)
        remaining = ledger.remaining()
    for line in result.custodian_notes:
        click.echo(f"note (for you only, not released): {line}", err=True)
    v, d = result.verdict, result.decision
    status = "passed" if v["passed"] else "FAILED (" + ", ".join(v.get("failed_checks", [])) + ")"
    click.echo(
        f"released {result.rows} synthetic rows to {result.out} "
        f"({generator.upper()}, epsilon={epsilon:g}, delta={delta:g}); policy {v['policy']} "
        f"{status}; report {result.report_id[:19]}...; "
        f"ledger {dataset!r}: remaining epsilon {remaining.epsilon:.4g}"
    )
    click.echo(
        f"decision: {d['overall'].upper()} (privacy {d['privacy']['status']}, usefulness "
        f"{d['usefulness']['status']}, implementation {d['implementation']['status']})"
    )


@click.command("sample")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--rows", type=int, help="Rows to draw (default: the model's DP row estimate).")
@file_option("--out", required=True, help="Parquet file to write (atomically).")
@click.option(
    "--chunk-rows",
    type=int,
    default=1_000_000,
    show_default=True,
    help="Rows drawn and written at a time: memory is bounded by one chunk.",
)
@click.option("--seed", type=int, help="Seed for sampling (sampling costs no privacy).")
@click.option("--force", is_flag=True, help="Replace an existing --out file.")
def sample_cmd(
    model: Path, rows: int | None, out: Path, chunk_rows: int, seed: int | None, force: bool
) -> None:
    """Stream synthetic rows from a released marginal model (MODEL: a release's model.json)
    to Parquet, e.g. 100 million rows. Post-processing: no budget is spent."""
    from privsynth.generators.registry import GENERATORS  # imports torch

    if out.exists() and not force:
        raise ConfigError(f"{out} exists; choose a new path or pass --force")
    try:
        name = str(json.loads(model.read_text(encoding="utf-8"))["params"]["generator"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{model} is not a privsynth model file: {exc}") from exc
    # Any generator class; only the marginal ones (MST, AIM) can stream, checked next.
    cls = GENERATORS.get(name.lower())
    if cls is None or not hasattr(cls, "sample_to_parquet"):
        raise ConfigError(f"{model}: streaming needs a marginal model (MST, AIM), not {name!r}")
    n = cls.load(model, device="cpu").sample_to_parquet(out, rows, chunk_rows=chunk_rows, seed=seed)
    click.echo(f"wrote {n} synthetic rows to {out}")
