"""The ``privsynth`` group, its command groups, and :func:`main`, which turns errors into one
line and an exit code.

Every error a user can cause is a :class:`~privsynth.errors.PrivsynthError`: it is printed as
one line, ``error: <message>``, and the process exits with the error's code (listed in
README.md, "Command line"). ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import logging
import sys

import click

from privsynth import __version__
from privsynth.cli.attacks import audit_cmd
from privsynth.cli.demo import demo_cmd
from privsynth.cli.keygen import keygen_cmd
from privsynth.cli.ledger import ledger_group
from privsynth.cli.release import release_cmd, sample_cmd
from privsynth.cli.report import report_cmd
from privsynth.cli.schema import schema_group
from privsynth.cli.verify import verify_cmd
from privsynth.errors import PrivsynthError

EXIT_INTERNAL = 70


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


for command in (
    schema_group,
    release_cmd,
    sample_cmd,
    demo_cmd,
    ledger_group,
    keygen_cmd,
    verify_cmd,
    report_cmd,
    audit_cmd,
):
    cli.add_command(command)


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
