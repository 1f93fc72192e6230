"""The options of one release, frozen and checked before any data is read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from privsynth.errors import ConfigError
from privsynth.generators.base import Generator
from privsynth.generators.registry import GENERATORS, make_generator
from privsynth.report.regulator import check_date, check_text
from privsynth.schema import Schema
from privsynth.sources.source import ON_RULE_VIOLATION, OnRuleViolation
from privsynth.utility.groups import check_groups

FORMATS = ("csv", "parquet")


#: The fewest rows a release synthesises: the attack suite compares every record with its
#: nearest synthetic ones. A smaller DP row estimate is raised to it (a public floor on a DP
#: number: post-processing).
MIN_SYNTHETIC_ROWS = 20


@dataclass(frozen=True)
class ReleaseConfig:
    """Everything a release is asked to do, apart from the data, ledger and key.

    Construction checks what needs no schema (format, holdout fraction, generator name,
    output folder name); :meth:`check_columns` what needs the schema. Both run before any
    private row is read.

    Parameters
    ----------
    out
        The release folder to create (refused if it exists, unless ``force``).
    generator, epsilon, delta, generator_params
        The DP generator (``mst``, ``aim``, ``dpvae``, ``dpctgan``), its budget and its other
        parameters.
    holdout_fraction
        Share of rows set aside (never fitted) for membership attacks; 0 skips them.
    policy
        Attack thresholds: a shipped policy's name (``standard``, ``strict``) or a TOML file.
    sensitive, quasi_identifiers, target
        Columns for attribute inference / linkability, and an optional prediction target
        for the train-synthetic-test-real score. MST also builds its model around the
        target (``MST(target=...)``) unless ``generator_params`` name another.
    groups
        Protected categorical columns (e.g. ``("sex", "race")``): the report shows how each
        of their categories fares, its share and, with a target, its score, real against
        synthetic (:mod:`privsynth.utility.groups`).
    canary
        Run the canary audit (a second fit, never released) for an empirical epsilon bound.
    rows, fmt, pdf, seed
        Rows to synthesise (default: the DP estimate, at least :data:`MIN_SYNTHETIC_ROWS`),
        file format (``csv``, ``parquet``),
        print the HTML report to PDF, seed for the split and sampling (default: fresh OS
        entropy).
    force
        Replace an earlier release (or an empty folder) at ``out``.
    allow_data_dependent_domain
        Accept domains read from the data (stated in the report as a caveat).
    on_rule_violation
        What to do with real rows that break a rule of the schema: ``error`` (default: refuse
        the release before any privacy spend) or ``drop`` (leave them out of the fit: a
        per-row filter by public rules, DP-safe; the custodian is told how many).
    new_dataset
        The data was charged under another dataset id of the ledger, and it really is a
        different dataset: release it anyway (recorded in the ledger).
    source
        The file the data was read from, if any: its bytes are fingerprinted.
    recipient, signer_role, valid_until
        What only a person can state for the report's HIPAA expert-determination block: who
        is anticipated to receive the release, the role of whoever signs the determination,
        and the last day it holds (an ISO date, ``YYYY-MM-DD``, not before today). ``None``:
        the report says "not stated".
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
    groups: tuple[str, ...] = ()
    canary: bool = True
    rows: int | None = None
    fmt: str = "csv"
    pdf: bool = False
    seed: int | None = None
    force: bool = False
    allow_data_dependent_domain: bool = False
    on_rule_violation: OnRuleViolation = "error"
    new_dataset: bool = False
    generator_params: Mapping[str, Any] | None = None
    source: Path | None = None
    recipient: str | None = None
    signer_role: str | None = None
    valid_until: str | date | None = None

    def __post_init__(self) -> None:
        freeze = object.__setattr__  # the dataclass is frozen; normalise once, here
        freeze(self, "recipient", check_text("recipient", self.recipient))
        freeze(self, "signer_role", check_text("signer_role", self.signer_role))
        freeze(
            self,
            "valid_until",
            check_date("valid_until", self.valid_until, after=datetime.now(UTC).date()),
        )
        freeze(self, "out", Path(self.out))
        freeze(self, "generator", self.generator.lower())
        freeze(self, "sensitive", tuple(self.sensitive))
        freeze(self, "quasi_identifiers", tuple(self.quasi_identifiers))
        # One name given as a string is that name, not its letters.
        groups = (self.groups,) if isinstance(self.groups, str) else tuple(self.groups)
        freeze(self, "groups", groups)
        freeze(self, "generator_params", MappingProxyType(dict(self.generator_params or {})))
        if self.fmt not in FORMATS:
            raise ConfigError(f"format {self.fmt!r} is not supported; use one of {FORMATS}")
        if not 0 <= self.holdout_fraction < 1:
            raise ConfigError(
                f"holdout fraction ({self.holdout_fraction!r}) must be in [0, 1), e.g. 0.2"
            )
        if self.rows is not None and (
            isinstance(self.rows, bool)
            or not isinstance(self.rows, int)
            or self.rows < MIN_SYNTHETIC_ROWS
        ):
            raise ConfigError(
                f"rows ({self.rows!r}) must be a whole number >= {MIN_SYNTHETIC_ROWS}: the attack "
                "suite compares every record with its nearest synthetic ones"
            )
        if self.on_rule_violation not in ON_RULE_VIOLATION:
            raise ConfigError(
                f"on_rule_violation ({self.on_rule_violation!r}) must be one of {ON_RULE_VIOLATION}"
            )
        if self.generator not in GENERATORS:
            make_generator(self.generator, self.epsilon, self.delta)  # raises, naming the known
        if self.out.name in ("", ".", ".."):
            raise ConfigError(
                f"--out {self.out} must end in the name of a new folder, e.g. {self.out}/release"
            )

    @classmethod
    def from_options(cls, **options: Any) -> ReleaseConfig:
        """A config from keyword options, an unknown or missing one refused by name."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise ConfigError(
                f"unknown release option(s) {unknown}; the options are: {', '.join(names)}"
            )
        if "out" not in options:
            raise ConfigError("a release needs out=, the folder to create")
        return cls(**options)

    def check_columns(self, schema: Schema) -> None:
        """The columns named for attacks and the target exist and are synthesised; the
        protected groups' columns are categorical."""
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
        check_groups(schema, self.groups)

    def make_generator(self) -> Generator:
        """A fresh, unfitted generator as configured (the canary audit makes a second one).

        MST builds its model around the release's target unless the generator parameters
        name another.
        """
        params = {
            **(self.generator_params or {}),
            "allow_data_dependent_domain": self.allow_data_dependent_domain,
        }
        if self.target is not None and self.generator == "mst":
            params.setdefault("target", self.target)
        return make_generator(self.generator, self.epsilon, self.delta, **params)
