"""The error hierarchy. Every error a user can cause is a :class:`PrivsynthError`.

Messages say which input, which column/row/value, and what to do. The CLI prints
``error: <message>`` on one line and exits with the class's ``exit_code``; exit code 2 is a
command-line usage error and 70 an internal error (a bug: please report it).
"""

from __future__ import annotations


class PrivsynthError(Exception):
    """Base class of every error privsynth raises on purpose."""

    exit_code = 1


class ConfigError(PrivsynthError, ValueError):
    """A parameter is invalid (e.g. a negative epsilon)."""

    exit_code = 3


class SchemaError(PrivsynthError, ValueError):
    """The schema is malformed, or does not fit the data, or is not safe to release with."""

    exit_code = 4


class DataError(PrivsynthError, ValueError):
    """The data cannot be read or does not satisfy the schema."""

    exit_code = 5


class BudgetExceeded(PrivsynthError):
    """A privacy spend was refused because it would take the total past the cap."""

    exit_code = 6


class LedgerError(PrivsynthError):
    """The ledger cannot be opened or written (missing, read-only, wrong dataset...)."""

    exit_code = 7


class LedgerCorrupt(LedgerError):
    """The ledger's hash chain does not verify: an entry was edited, removed or reordered."""

    exit_code = 8


class SignatureError(PrivsynthError):
    """A signature, key or signed report does not verify."""

    exit_code = 9


EXIT_CODES: dict[str, int] = {
    cls.__name__: cls.exit_code
    for cls in (
        PrivsynthError,
        ConfigError,
        SchemaError,
        DataError,
        BudgetExceeded,
        LedgerError,
        LedgerCorrupt,
        SignatureError,
    )
}
