"""Parameter types, options and parsing that several ``privsynth`` commands share."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from privsynth.budget.backend import is_url

_F = TypeVar("_F", bound=Callable[..., Any])

#: A path that must not be a folder (it need not exist yet).
FILE = click.Path(dir_okay=False, path_type=Path)
#: A path that must not be a file (it need not exist yet).
FOLDER = click.Path(file_okay=False, path_type=Path)


class _LedgerLocation(click.ParamType):
    """A ledger: an SQLite file (``FILE``), or a database URL such as ``postgresql://...``
    (kept as text: a :class:`~pathlib.Path` would fold its ``//``)."""

    name = "ledger"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if is_url(value):
            return value
        return FILE.convert(value, param, ctx)


#: A ledger file, or a ``postgresql://user@host:port/database`` URL.
LEDGER = _LedgerLocation()

UNSAFE_DATA_DOMAIN = click.option(
    "--unsafe-data-domain",
    is_flag=True,
    help="Accept domains read from the data (recorded as a DP caveat).",
)


def file_option(*decls: str, help: str, required: bool = False) -> Callable[[_F], _F]:
    """An option naming a file (``FILE``)."""
    return click.option(*decls, required=required, type=FILE, help=help)


def out_folder_option(help: str) -> Callable[[_F], _F]:
    """The required ``--out`` folder a command writes into."""
    return click.option("--out", required=True, type=FOLDER, help=help)


def number_option(decl: str, default: float, help: str) -> Callable[[_F], _F]:
    """A number option whose default ``--help`` shows."""
    return click.option(decl, type=float, default=default, show_default=True, help=help)


def policy_option(help: str) -> Callable[[_F], _F]:
    """``--policy``: the attack thresholds, a shipped policy's name or a TOML file."""
    return click.option("--policy", default="standard", show_default=True, help=help)


def split_names(value: str | None) -> list[str] | None:
    """The names in a comma-separated option value (``None`` when the option was not given)."""
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]
