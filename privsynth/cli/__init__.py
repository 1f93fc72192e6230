"""The ``privsynth`` command line: one module per command group, :func:`main` the entry point.

Every error a user can cause is printed as one line, ``error: <message>``, and the process
exits with the error's code (listed in README.md, "Command line").
"""

from privsynth.cli.root import cli, main

__all__ = ["cli", "main"]
