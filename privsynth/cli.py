"""The ``privsynth`` command.

Every error a user can cause is a :class:`~privsynth.errors.PrivsynthError`: it is printed as
one line, ``error: <message>``, and the process exits with the error's code (see
``docs/cli.md``). ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path
from typing import Any

import click

from privsynth import __version__
from privsynth.cli_audit import audit_cmd, split_names
from privsynth.cli_ledger import ledger_group
from privsynth.cli_report import keygen_cmd, verify_cmd
from privsynth.errors import ConfigError, PrivsynthError
from privsynth.io import read_table
from privsynth.schema import Schema

EXIT_INTERNAL = 70

log = logging.getLogger("privsynth")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="privsynth")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logging.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Differentially private synthetic data with a budget ledger and signed audits."""
    ctx.obj = {"debug": debug}
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(message)s"
    )


# --------------------------------------------------------------------- schema
@cli.group("schema")
def schema_group() -> None:
    """Draft and check schemas."""


@schema_group.command("draft")
@click.argument("data", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the schema here (default: print it).",
)
@click.option(
    "--bins",
    type=int,
    help="Equal-width bins for numeric columns (default: none; the encoding is learned "
    "with DP at the fit).",
)
def schema_draft(data: Path, output: Path | None, bins: int | None) -> None:
    """Draft a schema from DATA. Every domain read from the data is marked "source": "data";
    review it before any release."""
    schema = Schema.draft(read_table(data), bins=bins)
    for col in schema.columns:
        if col.kind == "identifier":
            click.echo(f"note: {col.name}: {col.note}", err=True)
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
@click.argument("data", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("schema_path", metavar="SCHEMA", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--on-unknown",
    type=click.Choice(["error", "missing"]),
    default="error",
    show_default=True,
    help="What to do with values outside declared categories.",
)
@click.option(
    "--unsafe-data-domain",
    is_flag=True,
    help="Accept domains read from the data (recorded as a DP caveat).",
)
def schema_check(data: Path, schema_path: Path, on_unknown: str, unsafe_data_domain: bool) -> None:
    """Check DATA against SCHEMA and say whether it is ready for a release."""
    schema = Schema.load(schema_path)
    _, report = schema.validate(read_table(data), on_unknown=on_unknown)
    for line in report.lines():
        click.echo(f"note: {line}")
    for caveat in schema.release_caveats(allow_data_dependent_domain=unsafe_data_domain):
        click.echo(caveat)
    undeclared = schema.undeclared_columns()
    if undeclared:
        click.echo(
            "domains or numeric encodings to be learned with DP (charged to the fit's "
            f"--discovery-share): {', '.join(undeclared)}"
        )
    click.echo(f"ok: the data fits {schema_path} ({len(schema.synthesised)} columns to synthesise)")


# -------------------------------------------------------------------- release
def read_source(path: Path, engine: str, spark_master: str) -> Any:
    """DATA for ``--engine``: a DataFrame (pandas), or a source whose rows stay in DuckDB or
    Spark."""
    if engine == "duckdb":
        from privsynth.marginals.duckdb import DuckDBSource

        return DuckDBSource(path)
    if engine == "spark":
        from privsynth.marginals.spark import read_spark

        return read_spark(str(path), master=spark_master)
    return read_table(path)


@cli.command("release")
@click.argument("data", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--schema",
    "schema_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The reviewed schema.",
)
@click.option(
    "--generator",
    type=click.Choice(["mst", "aim", "dpvae", "dpctgan"], case_sensitive=False),
    default="mst",
    show_default=True,
)
@click.option("--epsilon", type=float, required=True, help="This release's epsilon.")
@click.option(
    "--delta",
    type=float,
    default=1e-9,
    show_default=True,
    help="This release's delta (choose it without looking at the data).",
)
@click.option(
    "--ledger",
    "ledger_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The budget ledger file.",
)
@click.option("--dataset-id", help="The dataset's id in the ledger (default: DATA's file stem).")
@click.option(
    "--cap-epsilon",
    type=float,
    help="Total epsilon cap, needed the first time a dataset enters the ledger.",
)
@click.option(
    "--cap-delta",
    type=float,
    default=1e-6,
    show_default=True,
    help="Total delta of the cap (with --cap-epsilon).",
)
@click.option(
    "--key",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Ed25519 private key that signs the report (make one with `privsynth keygen`).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The release folder to create.",
)
@click.option(
    "--holdout-fraction",
    type=float,
    default=0.2,
    show_default=True,
    help="Rows set aside (never fitted) for membership attacks; 0 skips those attacks.",
)
@click.option(
    "--policy",
    default="standard",
    show_default=True,
    help="Attack thresholds: a policy name in audits/policies or a TOML file.",
)
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
    "--discovery-share",
    type=float,
    help="Share of the budget (zCDP rho, and delta) spent learning undeclared domains and "
    "numeric encodings with DP (default: 0.1).",
)
@click.option("--no-canary", is_flag=True, help="Skip the canary audit (a second, unreleased fit).")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True
)
@click.option("--rows", type=int, help="Rows to synthesise (default: the DP row estimate).")
@click.option("--pdf", is_flag=True, help="Also print the HTML report to audit.pdf (Chromium).")
@click.option("--seed", type=int, help="Seed for the split and sampling (not privacy noise).")
@click.option("--force", is_flag=True, help="Replace an earlier release (or empty) --out folder.")
@click.option(
    "--unsafe-data-domain",
    is_flag=True,
    help="Accept domains read from the data (recorded as a DP caveat).",
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
def release_cmd(
    data: Path,
    schema_path: Path,
    generator: str,
    epsilon: float,
    delta: float,
    ledger_path: Path,
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
    discovery_share: float | None,
    no_canary: bool,
    fmt: str,
    rows: int | None,
    pdf: bool,
    seed: int | None,
    force: bool,
    unsafe_data_domain: bool,
    engine: str,
    spark_master: str,
) -> None:
    """Fit a DP generator on DATA, charge the ledger, attack and sign: a release in --out."""
    from privsynth.budget import Budget, Ledger
    from privsynth.release import release
    from privsynth.report.keys import load_private_key

    signing_key = load_private_key(key)  # a bad key fails before the data is read
    schema = Schema.load(schema_path)
    df = read_source(data, engine, spark_master)
    cap = Budget(cap_epsilon, cap_delta) if cap_epsilon is not None else None
    dataset = dataset_id or data.name.split(".")[0]
    with Ledger.open(ledger_path, dataset_id=dataset, cap=cap) as ledger:
        result = release(
            df,
            schema,
            out=out,
            ledger=ledger,
            key=signing_key,
            generator=generator,
            epsilon=epsilon,
            delta=delta,
            holdout_fraction=holdout_fraction,
            policy=policy,
            sensitive=split_names(sensitive) or [],
            quasi_identifiers=split_names(quasi_identifiers) or [],
            target=target,
            canary=not no_canary,
            rows=rows,
            fmt=fmt,
            pdf=pdf,
            seed=seed,
            force=force,
            allow_data_dependent_domain=unsafe_data_domain,
            generator_params=(
                {"discovery_share": discovery_share} if discovery_share is not None else None
            ),
            source=data,
        )
        remaining = ledger.remaining()
    for line in result.custodian_notes:
        click.echo(f"note (for you only, not released): {line}", err=True)
    v = result.verdict
    status = "passed" if v["passed"] else "FAILED (" + ", ".join(v.get("failed_checks", [])) + ")"
    click.echo(
        f"released {result.rows} synthetic rows to {result.out} "
        f"({generator.upper()}, epsilon={epsilon:g}, delta={delta:g}); policy {v['policy']} "
        f"{status}; report {result.report_id[:19]}...; "
        f"ledger {dataset!r}: remaining epsilon {remaining.epsilon:.4g}"
    )


# --------------------------------------------------------------------- sample
@cli.command("sample")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--rows", type=int, help="Rows to draw (default: the model's DP row estimate).")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Parquet file to write (atomically).",
)
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
    import json

    from privsynth.generators.registry import GENERATORS

    if out.exists() and not force:
        raise ConfigError(f"{out} exists; choose a new path or pass --force")
    try:
        name = str(json.loads(model.read_text(encoding="utf-8"))["params"]["generator"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{model} is not a privsynth model file: {exc}") from exc
    cls = GENERATORS.get(name.lower())
    if cls is None or not hasattr(cls, "sample_to_parquet"):
        raise ConfigError(f"{model}: streaming needs a marginal model (MST, AIM), not {name!r}")
    n = cls.load(model, device="cpu").sample_to_parquet(out, rows, chunk_rows=chunk_rows, seed=seed)
    click.echo(f"wrote {n} synthetic rows to {out}")


# ----------------------------------------------------------------------- demo
@cli.command("demo")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-out"),
    show_default=True,
    help="Folder for the demo's files (its ledger is recreated).",
)
def demo(out: Path) -> None:
    """Walk through privsynth on the bundled UCI Adult sample."""
    from privsynth.demo import MARKER, run_demo

    if out.exists():
        if not (out / MARKER).exists():
            raise ConfigError(
                f"--out {out} exists and is not a privsynth demo folder; choose another path"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).touch()
    run_demo(out)


cli.add_command(ledger_group)
cli.add_command(keygen_cmd)
cli.add_command(verify_cmd)
cli.add_command(audit_cmd)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, mapping errors to one line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        rc = cli.main(args=args, prog_name="privsynth", standalone_mode=False)
    except PrivsynthError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:  # usage errors too: one line, like every other error
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug: say so in one line unless debugging
        if debug:
            raise
        click.echo(
            f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the "
            "traceback, and please report it)",
            err=True,
        )
        sys.exit(EXIT_INTERNAL)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
