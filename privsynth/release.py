"""One release: validate, reserve, fit, sample, and write the release folder atomically.

The folder is assembled in a temporary sibling directory and renamed into place at the end,
so a failed or killed run leaves no half-written release. A refused release (budget short,
schema invalid, data-dependent domains without opt-in, unknown categories) writes nothing and
leaves the ledger unchanged: those checks all run before the reservation.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from privsynth.budget import Ledger
from privsynth.errors import ConfigError
from privsynth.generators.aim import AIM
from privsynth.generators.base import MarginalGenerator
from privsynth.generators.mst import MST
from privsynth.io import atomic_write_text
from privsynth.schema import Schema

GENERATORS: dict[str, type[MarginalGenerator]] = {"mst": MST, "aim": AIM}
FORMATS = ("csv", "parquet")


@dataclass
class ReleaseResult:
    """What a release wrote and spent."""

    out: Path
    files: dict[str, str]  # file name -> SHA-256
    rows: int
    privacy: dict[str, Any]
    ledger: dict[str, Any] = field(default_factory=dict)


def make_generator(name: str, epsilon: float, delta: float, **params: Any) -> MarginalGenerator:
    try:
        cls = GENERATORS[name.lower()]
    except KeyError:
        raise ConfigError(
            f"unknown generator {name!r}; choose one of {', '.join(GENERATORS)}"
        ) from None
    return cls(epsilon=epsilon, delta=delta, **params)


def release(
    data: pd.DataFrame,
    schema: Schema,
    *,
    out: str | Path,
    ledger: Ledger,
    generator: str = "mst",
    epsilon: float = 1.0,
    delta: float = 1e-9,
    rows: int | None = None,
    fmt: str = "csv",
    seed: int | None = None,
    force: bool = False,
    allow_data_dependent_domain: bool = False,
    generator_params: dict[str, Any] | None = None,
) -> ReleaseResult:
    """Fit ``generator`` on ``data`` under ``schema``, charging ``ledger``, and write
    ``out/synthetic.<fmt>``, ``out/model.json`` (the fitted model, reviewable) and
    ``out/release.json`` (what was released and what it cost).

    Raises
    ------
    ConfigError
        ``out`` exists (and ``force`` is false), or a parameter is invalid.
    SchemaError, DataError, BudgetExceeded
        As :meth:`MarginalGenerator.fit`; nothing is written.
    """
    out = Path(out)
    if fmt not in FORMATS:
        raise ConfigError(f"format {fmt!r} is not supported; use one of {FORMATS}")
    if out.exists() and not force:
        raise ConfigError(f"output folder {out} exists; choose a new one or pass --force")
    if not out.parent.exists():
        raise ConfigError(f"the folder {out.parent} for the release does not exist")
    gen = make_generator(
        generator,
        epsilon,
        delta,
        allow_data_dependent_domain=allow_data_dependent_domain,
        **(generator_params or {}),
    )
    gen.fit(data, schema, ledger)
    synthetic = gen.sample(rows, seed=seed)

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        data_file = tmp / f"synthetic.{fmt}"
        if fmt == "csv":
            synthetic.to_csv(data_file, index=False)
        else:
            synthetic.to_parquet(data_file, index=False)
        gen.save(tmp / "model.json")
        files = {p.name: _sha256(p) for p in sorted(tmp.iterdir())}
        ledger_info = {
            "file": ledger.path.name,
            "dataset_id": ledger.dataset_id,
            **gen.ledger_entry_,
            "cap": ledger.cap.to_dict(),
            "remaining": ledger.remaining().to_dict(),
        }
        manifest = {
            "format": "privsynth-release/1",
            "generator": generator.lower(),
            "rows": len(synthetic),
            "schema_sha256": hashlib.sha256(schema.to_json().encode()).hexdigest(),
            "privacy": gen.privacy_spec(),
            "ledger": ledger_info,
            "files": files,
        }
        atomic_write_text(tmp / "release.json", json.dumps(manifest, indent=2) + "\n")
        if out.exists():  # --force: replace the old folder only now that the new one is whole
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)
        raise
    return ReleaseResult(out, files, len(synthetic), manifest["privacy"], ledger_info)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
