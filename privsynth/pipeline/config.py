"""The options of one release, frozen and checked before any data is read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from privsynth.errors import ConfigError
from privsynth.generators.base import Generator
from privsynth.generators.registry import GENERATORS, make_generator
from privsynth.schema import Schema

FORMATS = ("csv", "parquet")


@dataclass(frozen=True)
class ReleaseConfig:
    """Everything a release is asked to do, apart from the data, ledger and key.

    Built by :func:`privsynth.release`; each field is documented there. Construction checks
    what needs no schema (format, holdout fraction, generator name, output folder name);
    :meth:`check_columns` what needs the schema.
    """

    out: Path
    generator: str = "mst"
    epsilon: float = 1.0
    delta: float = 1e-9
    holdout_fraction: float = 0.2
    policy: str = "standard"
    sensitive: tuple[str, ...] = ()
    quasi_identifiers: tuple[str, ...] = ()
    target: str | None = None
    canary: bool = True
    rows: int | None = None
    fmt: str = "csv"
    pdf: bool = False
    seed: int | None = None
    force: bool = False
    allow_data_dependent_domain: bool = False
    generator_params: Mapping[str, Any] = field(default_factory=dict)
    source: Path | None = None

    def __post_init__(self) -> None:
        freeze = object.__setattr__  # the dataclass is frozen; normalise once, here
        freeze(self, "out", Path(self.out))
        freeze(self, "generator", self.generator.lower())
        freeze(self, "sensitive", tuple(self.sensitive))
        freeze(self, "quasi_identifiers", tuple(self.quasi_identifiers))
        freeze(self, "generator_params", MappingProxyType(dict(self.generator_params)))
        if self.fmt not in FORMATS:
            raise ConfigError(f"format {self.fmt!r} is not supported; use one of {FORMATS}")
        if not 0 <= self.holdout_fraction < 1:
            raise ConfigError(
                f"holdout fraction ({self.holdout_fraction!r}) must be in [0, 1), e.g. 0.2"
            )
        if self.generator not in GENERATORS:
            make_generator(self.generator, self.epsilon, self.delta)  # raises, naming the known
        if self.out.name in ("", ".", ".."):
            raise ConfigError(
                f"--out {self.out} must end in the name of a new folder, e.g. {self.out}/release"
            )

    def check_columns(self, schema: Schema) -> None:
        """The columns named for attacks and the target exist and are synthesised."""
        named: dict[str, Sequence[str]] = {
            "sensitive": self.sensitive,
            "quasi_identifiers": self.quasi_identifiers,
            "target": () if self.target is None else (self.target,),
        }
        for option, cols in named.items():
            for c in cols:
                if c not in schema.names:
                    raise ConfigError(f"{option}: column {c!r} is not in the schema")
                if schema[c].kind == "identifier":
                    raise ConfigError(f"{option}: column {c!r} is an identifier, never synthesised")

    def make_generator(self) -> Generator:
        """A fresh, unfitted generator as configured (the canary audit makes a second one).

        MST builds its model around the release's target unless the generator parameters
        name another.
        """
        params = {
            **self.generator_params,
            "allow_data_dependent_domain": self.allow_data_dependent_domain,
        }
        if self.target is not None and self.generator == "mst":
            params.setdefault("target", self.target)
        return make_generator(self.generator, self.epsilon, self.delta, **params)
