"""JSONL exports of a ledger: write the verified chain as one canonical entry per line, read
and verify an export on its own (the chain holds every hash it needs)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from privsynth.budget.backend import read_chain
from privsynth.budget.chain import canonical_json, verify_entries
from privsynth.errors import LedgerCorrupt, LedgerError
from privsynth.io import atomic_write_text


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSONL export (one entry per line)."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise LedgerError(f"cannot read ledger export {p}: {exc.strerror or exc}") from None
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LedgerCorrupt(f"{p}: line {n} is not JSON ({exc.msg})") from None
        out.append(obj)
    return out


def verify_jsonl(path: str | os.PathLike) -> tuple[int, str]:
    """Verify a JSONL export on its own; return ``(entries, head hash)``."""
    return verify_entries(read_jsonl(path), source=str(path))


def to_jsonl(entries: Iterable[Mapping[str, Any]]) -> str:
    """``entries`` as JSONL text: the canonical JSON of each entry, one per line."""
    return "".join(canonical_json(e) + "\n" for e in entries)


def write_jsonl(out: str | os.PathLike, entries: Iterable[Mapping[str, Any]]) -> None:
    """Write ``entries`` to ``out`` as JSONL, atomically; errors as :class:`LedgerError`."""
    target = Path(out).expanduser()
    if not target.parent.is_dir():
        raise LedgerError(f"cannot write {target}: directory {target.parent} does not exist")
    try:
        atomic_write_text(target, to_jsonl(entries))
    except OSError as exc:
        raise LedgerError(f"cannot write {target}: {exc.strerror or exc}") from None


def export_jsonl(path: str | os.PathLike, out: str | os.PathLike, *, timeout: float = 30.0) -> int:
    """Verify the ledger at ``path`` (a file or a database URL) and write its whole chain to
    ``out`` as JSONL (atomically)."""
    entries = read_chain(path, timeout=timeout)
    write_jsonl(out, entries)
    return len(entries)


def jsonl_text(path: str | os.PathLike, *, timeout: float = 30.0) -> str:
    """The verified chain of the ledger at ``path`` as JSONL text."""
    return to_jsonl(read_chain(path, timeout=timeout))
