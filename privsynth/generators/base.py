"""The one generator base: the fit flow every privsynth generator shares, the header of a saved
model, the sample checks and the DP statement.

Fit flow (:meth:`Generator.fit`). Privacy rule: *reserve before reading* -- a generator
computes its whole charge from its parameters and the schema, and the ledger reserves it
before any private value is read; from then on it counts as spent, even if the fit crashes.

1. check: refuse data-dependent domains unless opted in, and a person-level unit of privacy
   where the family cannot bound a person (schema only);
2. plan: every charge from parameters and schema (:meth:`Generator.plan`), checked against the
   ledger, so a fit it cannot afford is refused before the data is touched;
3. validate the data against the schema (the custodian sees errors; nothing is released);
4. reserve the planned charges in the ledger;
5. when a person owns many rows: measure the rows per person, bound every person to K rows,
   and calibrate every later step to a person of K rows (:mod:`privsynth.persons`);
   discover undeclared domains with DP, and encode;
6. measure: the family's mechanism (:meth:`Generator._mechanism`), every noisy step a call
   into :mod:`privsynth.mechanisms` (or, for DP-SGD, :mod:`privsynth.generators.dpsgd.train`);
7. check within: what the mechanisms charged must fit what was reserved, exactly;
8. commit the reservation(s).

The families -- :class:`~privsynth.generators.marginal.base.MarginalGenerator` and
:class:`~privsynth.generators.dpsgd.base.DPSGDGenerator` -- add only their plan, mechanism,
sampling and the body of the model file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import KW_ONLY, dataclass, fields, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from privsynth import __version__, mechanisms
from privsynth.budget import Ledger, Reservation
from privsynth.budget.analysis import epsilon_spent
from privsynth.budget.events import (
    ZCDP,
    PrivacyEvent,
    SubsampledGaussian,
    event_from_dict,
    event_to_dict,
)
from privsynth.device import resolve_device
from privsynth.discovery import clipped_shares, custodian_notes, discover_domains, plan_discovery
from privsynth.encoding import Encoder
from privsynth.errors import ConfigError, PrivsynthError
from privsynth.generators.gaps import from_gaps, gap_rules, gap_schema, to_gaps
from privsynth.generators.rules import Draw, keep_rules, learned_mappings
from privsynth.generators.split import Budgeting, check_budget_params, split_budget
from privsynth.persons import bound_persons
from privsynth.schema import DEFAULT_BINS, Column, Schema, UnitOfPrivacy
from privsynth.sources.source import FrameSource, TableSource, as_source
from privsynth.sources.table import EncodedTable

#: Version of the saved-model layout (both families).
FORMAT_VERSION = 1


@dataclass(frozen=True)
class FitPlan:
    """The charges of one fit, fixed from parameters and schema before the data is read.

    ``reserved`` is reserved before reading; ``checked`` is the whole fit's charge checked
    against the ledger first (``reserved`` plus, for DP-SGD, a stand-in for the charge
    reserved once a DP measurement fixes its parameters).
    """

    budgeting: Budgeting
    reserved: list[PrivacyEvent]
    checked: list[PrivacyEvent]


@dataclass(frozen=True)
class FitContext:
    """A fit in progress, as the family's mechanism sees it: the plan, the ledger with the
    reservation made before reading (both None without a ledger), and the schema the table
    was encoded under (domains learned)."""

    plan: FitPlan
    ledger: Ledger | None
    first: Reservation | None
    schema: Schema


@dataclass
class Mechanism:
    """What a family's mechanism returns to the fit flow."""

    #: The charge of every noisy step, in order.
    charges: list[PrivacyEvent]
    #: What the charges of the whole fit (discovery included) must fit within.
    planned: list[PrivacyEvent]
    #: The DP estimate of the row count (post-processing).
    n_rows: int
    #: A reservation made after a DP measurement fixed its charge (DP-SGD), with what its
    #: commit records; its charge is the last of ``charges``.
    later: tuple[Reservation, dict[str, Any]] | None = None


@dataclass(eq=False, repr=False)
class Generator(ABC):
    """A privsynth generator (scikit-learn style): ``__init__`` stores parameters, :meth:`fit`
    returns ``self``, learned state ends in ``_``.

    The parameters are dataclass fields, so each generator's ``__init__`` takes them as
    explicit keyword arguments (epsilon and delta may come first by position); a subclass
    declares its own and may change a default by declaring the field again.

    Subclasses give :meth:`_plan_rest` (their charges besides discovery), :meth:`_mechanism`
    (the noisy steps on the encoded table), :meth:`sample`, and the body of the model file
    (:meth:`_write`, :meth:`_read`, :meth:`_restore`).
    """

    name: ClassVar[str]
    #: File name :meth:`save` is given in a release folder.
    model_file: ClassVar[str]
    #: ``format`` of the saved model, and how its error messages name it.
    model_format: ClassVar[str]
    model_kind: ClassVar[str]
    #: What the fit's first reservation is for (after the generator's name).
    reservation_purpose: ClassVar[str] = "fit"
    #: The privacy definition and the noise samplers, as the DP statement gives them.
    definition: ClassVar[str]
    #: Whether the family can protect a person owning many rows (bounding each to K rows).
    supports_persons: ClassVar[bool] = False
    noise: ClassVar[str]
    #: Parameters not saved with the model: the device is chosen again at load, and the
    #: data-dependent opt-in is recorded in the caveats.
    unsaved: ClassVar[tuple[str, ...]] = ("allow_data_dependent_domain", "device")

    epsilon: float = 1.0
    delta: float = 1e-9
    _: KW_ONLY
    discovery_share: float = 0.1
    allow_data_dependent_domain: bool = False
    device: str = "auto"

    # ------------------------------------------------------------------ plan
    def _check_params(self) -> None:
        check_budget_params(self.epsilon, self.delta, self.discovery_share)
        resolve_device(self.device)

    def plan(self, schema: Schema) -> list[PrivacyEvent]:
        """Every charge :meth:`fit` will make on ``schema``, computed without data."""
        return self._plan(schema).checked

    def _plan(self, schema: Schema) -> FitPlan:
        self._check_params()
        if schema.unit_of_privacy.is_person and not self.supports_persons:
            raise ConfigError(
                f"{self.name} cannot yet protect a person who owns many rows "
                f"({schema.unit_of_privacy.describe()}); use mst or aim"
            )
        if schema.unit_of_privacy.is_person and schema.rules:
            raise ConfigError(
                "rules are not supported yet when a person owns many rows (redrawing a row "
                "would break the person's unit-level columns): remove 'rules' from the schema"
            )
        model = gap_schema(schema)  # the columns as the model holds them
        b = split_budget(self.epsilon, self.delta, model, self.discovery_share)
        discovery = plan_discovery(model, rho=b.discovery_rho, delta=b.discovery_delta)
        return self._plan_rest(b, [*b.persons_events(), *discovery])

    @abstractmethod
    def _plan_rest(self, budgeting: Budgeting, discovery: list[PrivacyEvent]) -> FitPlan:
        """The fit's plan, given the split budget and the charges of domain discovery."""

    # ------------------------------------------------------------------- fit
    def fit(
        self, data: pd.DataFrame | TableSource, schema: Schema, ledger: Ledger | None = None
    ) -> Self:
        """Fit on ``data`` under ``schema``, charging ``ledger`` (if given) before any DP step.

        ``data`` is a DataFrame, or (marginal generators) a
        :class:`~privsynth.sources.source.TableSource` whose rows stay in their engine
        (DuckDB, Spark): then only counts leave it.

        Raises
        ------
        SchemaError
            Data-dependent domains without the opt-in, or a schema that does not fit the data.
        BudgetExceeded
            The ledger cannot afford :meth:`plan` (raised before the data is read), or, at a
            later reservation (DP-SGD), another process spent the budget in between.
        DataError
            Values that break the schema.
        """
        caveats = schema.release_caveats(  # 1. check
            allow_data_dependent_domain=self.allow_data_dependent_domain
        )
        plan = self._plan(schema)  # 2. plan
        unit = schema.unit_of_privacy
        if unit.is_person and not isinstance(data, (pd.DataFrame, FrameSource)):
            raise ConfigError(
                "a person who owns many rows is bounded in memory for now: read the table "
                "with pandas (--engine pandas)"
            )
        if ledger is not None:
            ledger.check(plan.checked)  # refuses before the data is touched
        source = self._source(data).validate(schema)  # 3. validate
        first = (  # 4. reserve: from here on the charges count as spent
            ledger.reserve(
                plan.reserved,
                purpose=f"{self.name} {self.reservation_purpose}" + _per_person(unit),
                metadata=self._reservation_metadata(),
            )
            if ledger is not None
            else None
        )
        spent: list[PrivacyEvent] = []
        model = gap_schema(schema)  # a compare rule's left column as its gap (public)
        learned = model
        b = plan.budgeting
        notes: list[str] = []
        k = 1
        if unit.is_person:  # 5. the people: K rows each at most
            assert isinstance(source, FrameSource)
            source, k, self.persons_, charges, notes = bound_persons(source, unit, b.persons_rho)
            spent += charges
        if model is not schema:
            assert isinstance(source, FrameSource)  # engines refuse rules
            source = to_gaps(source, schema)
        with mechanisms.unit_of_privacy(k):
            if model.undeclared_columns():  # 5. discover
                learned, found = discover_domains(
                    source, model, rho=b.discovery_rho, delta=b.discovery_delta
                )
                spent += found
            # 6. measure; encoding under the learned schema maps values too rare to learn to
            # "(other)".
            run = self._mechanism(source.encode(learned), FitContext(plan, ledger, first, learned))
        spent += run.charges
        self._check_within(spent, run.planned)  # 7. check within
        notes += custodian_notes(clipped_shares(source, model, learned))
        self.custodian_notes_ = notes
        self.n_rows_ = run.n_rows  # DP estimate (post-processing), public
        # The schema in the table's own terms (a gap's column as declared, the rules whole);
        # the encoder in the model's.
        self.schema_ = _in_table_terms(learned, schema)
        self.encoder_ = Encoder(learned)
        self.caveats_ = caveats
        self.charges_ = spent
        self.planned_ = run.planned
        if ledger is not None and first is not None:  # 8. commit
            # a later reservation holds one charge, the last
            done = {"charges": len(spent) - (run.later is not None)}
            first.commit(metadata={**done, **({"max_rows": k} if unit.is_person else {})})
            entry: dict[str, Any] = {"reservation": first.id}
            if run.later is not None:
                later, metadata = run.later
                later.commit(metadata=metadata)
                entry = {"reservation": later.id, "reservations": [first.id, later.id]}
            self.ledger_entry_ = {**entry, "head": ledger.head()}
        return self

    @staticmethod
    def _check_within(spent: list[PrivacyEvent], planned: list[PrivacyEvent]) -> None:
        """What the mechanisms charged must fit the reservation exactly (compared as exact
        rationals of the floats, no tolerance): the zCDP parts in total, the others one by one
        (a subsampled Gaussian: same sample rate and noise multiplier, no more steps).

        Raises
        ------
        PrivsynthError
            Any charge beyond the plan (an internal error: nothing is released).
        """

        def rho(events: list[PrivacyEvent]) -> Fraction:
            return sum((Fraction(e.rho) for e in events if isinstance(e, ZCDP)), Fraction(0))

        def fits(s: PrivacyEvent, p: PrivacyEvent) -> bool:
            if type(s) is not type(p):
                return False
            if not all(
                Fraction(getattr(s, f)) <= Fraction(getattr(p, f))
                for f in ("epsilon", "rho", "delta")
                if hasattr(p, f)
            ):
                return False
            if isinstance(p, SubsampledGaussian) and isinstance(s, SubsampledGaussian):
                same = (s.sample_rate, s.noise_multiplier) == (p.sample_rate, p.noise_multiplier)
                return same and s.steps <= p.steps
            return True

        others_spent = [e for e in spent if not isinstance(e, ZCDP)]
        others_planned = [e for e in planned if not isinstance(e, ZCDP)]
        ok = rho(spent) <= rho(planned) and len(others_spent) == len(others_planned)
        ok = ok and all(fits(s, p) for s, p in zip(others_spent, others_planned, strict=True))
        if not ok:
            raise PrivsynthError(
                f"internal accounting error: mechanisms charged {spent}, more than the planned "
                f"{planned}; nothing was released. Please report this."
            )

    def _source(self, data: object) -> TableSource:
        """The private table the fit reads."""
        return as_source(data)

    def _reservation_metadata(self) -> dict[str, Any] | None:
        return self.get_params()

    @abstractmethod
    def _mechanism(self, table: EncodedTable, fit: FitContext) -> Mechanism:
        """Run the family's noisy steps on the encoded table, within ``fit.plan``."""

    # ---------------------------------------------------------------- sample
    def _check_fitted(self) -> None:
        if not hasattr(self, "encoder_"):
            raise ConfigError(f"this {self.name} is not fitted yet; call fit(data, schema) first")

    def _rows(self, n: int | None) -> int:
        """``n`` checked (default: the DP estimate of the row count)."""
        self._check_fitted()
        if n is None:
            n = self.n_rows_
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ConfigError(f"n ({n!r}) must be a non-negative integer")
        return int(n)

    def sample(
        self, n: int | None = None, *, seed: int | np.random.Generator | None = None
    ) -> pd.DataFrame:
        """Draw ``n`` synthetic rows (default: the DP estimate of the row count) in the
        schema's value space, keeping the schema's rules. Post-processing: costs no privacy
        budget."""
        rows = self._rows(n)
        rng = np.random.default_rng(seed)
        return self._keep_rules(self._draw(rows, rng), self._draw, rng)

    @abstractmethod
    def _draw(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        """``n`` rows drawn from the fitted model, decoded (rules not yet applied)."""

    def _keep_rules(
        self, frame: pd.DataFrame, draw: Draw, rng: np.random.Generator
    ) -> pd.DataFrame:
        """``frame`` with the schema's rules kept (:mod:`privsynth.generators.rules`): derived
        columns set, breaking rows redrawn with ``draw`` and the rest repaired. What each rule
        took is kept in ``rule_checks_`` (of the last sample). Post-processing."""
        if not self.schema_.rules:
            self.rule_checks_: list[dict[str, Any]] = []
            return frame

        def table(rows: pd.DataFrame) -> pd.DataFrame:  # from the model's terms
            return from_gaps(rows, self.schema_, self.encoder_.schema)

        if not hasattr(self, "rule_mappings_"):  # a function of the model: computed once
            self.rule_mappings_ = learned_mappings(
                self.schema_, lambda n, rng: table(self._draw(n, rng))
            )
        frame, self.rule_checks_ = keep_rules(
            table(frame), self.schema_, lambda n, rng: table(draw(n, rng)), rng, self.rule_mappings_
        )
        return frame

    # ---------------------------------------------------------------- report
    def get_params(self) -> dict[str, Any]:
        """The parameters saved with the model and recorded in the ledger and report (JSON
        ready: tuples as lists)."""
        saved = [f.name for f in fields(self) if f.name not in self.unsaved]
        values = {k: getattr(self, k) for k in saved}
        return {
            "generator": self.name,
            **{k: list(v) if isinstance(v, tuple) else v for k, v in values.items()},
        }

    def privacy_spec(self) -> dict[str, Any]:
        """The DP statement of this fit: parameters, every planned and spent charge, caveats
        (and what the family adds: :meth:`_spec_extra`)."""
        self._check_fitted()
        k = self.persons_["max_rows"] if self.schema_.unit_of_privacy.is_person else None
        return {
            "generator": self.name,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "neighbouring_relation": (
                f"add/remove one person (all their rows, at most {k})"
                if k is not None
                else "add/remove one row"
            ),
            "unit_of_privacy": self.schema_.unit_of_privacy.describe(k),
            "definition": self.definition,
            "noise": self.noise,
            "planned_charges": [event_to_dict(e) for e in self.planned_],
            "charges": [event_to_dict(e) for e in self.charges_],
            "epsilon_spent": epsilon_spent(self.charges_, self.delta),
            "caveats": list(self.caveats_),
            **self._spec_extra(),
        }

    def _spec_extra(self) -> dict[str, Any]:
        return {}

    # ----------------------------------------------------------- persistence
    def save(self, path: str | Path) -> None:
        """Write the fitted model, no pickle: a header (format, versions, parameters, schema,
        charges) and the family's state (:meth:`_write`)."""
        self._check_fitted()
        doc = {
            "format": self.model_format,
            "format_version": FORMAT_VERSION,
            "privsynth_version": __version__,
            "params": self.get_params(),
            "schema": self.schema_.to_dict(),
            **(
                {"model_schema": self.encoder_.schema.to_dict()}
                if self.encoder_.schema != self.schema_
                else {}
            ),
            "caveats": self.caveats_,
            "planned_charges": [event_to_dict(e) for e in self.planned_],
            "charges": [event_to_dict(e) for e in self.charges_],
            **({"persons": self.persons_} if self.schema_.unit_of_privacy.is_person else {}),
            **self._header_extra(),
            "state": self._state(),
        }
        self._write(path, doc)

    @classmethod
    def load(cls, path: str | Path, *, device: str = "auto") -> Self:
        """Read a model written by :meth:`save`; refuses other formats and generators."""
        doc, payload = cls._read(path)
        if doc.get("format") != cls.model_format or doc.get("format_version") != FORMAT_VERSION:
            raise ConfigError(
                f"{path} is not a privsynth {cls.model_kind} of format version {FORMAT_VERSION} "
                f"(found {doc.get('format')!r} {doc.get('format_version')!r})"
            )
        params = dict(doc["params"])
        if params.pop("generator") != cls.name:
            raise ConfigError(f"{path} holds a {doc['params']['generator']} model, not {cls.name}")
        self = cls(**params, device=device)
        self.schema_ = Schema.from_dict(doc["schema"])
        self.encoder_ = Encoder(Schema.from_dict(doc.get("model_schema", doc["schema"])))
        self.caveats_ = list(doc["caveats"])
        self.planned_ = [event_from_dict(e) for e in doc["planned_charges"]]
        self.charges_ = [event_from_dict(e) for e in doc["charges"]]
        if self.schema_.unit_of_privacy.is_person:
            self.persons_ = dict(doc["persons"])
        self._restore(doc, payload, path, device)
        return self

    def _header_extra(self) -> dict[str, Any]:
        """What the family adds to the saved header, besides its state."""
        return {}

    @abstractmethod
    def _state(self) -> dict[str, Any]:
        """Fitted state for :meth:`save` (JSON-ready)."""

    @abstractmethod
    def _write(self, path: str | Path, doc: dict[str, Any]) -> None:
        """Write the model file: ``doc`` and whatever else the family keeps."""

    @classmethod
    @abstractmethod
    def _read(cls, path: str | Path) -> tuple[dict[str, Any], Any]:
        """The header written by :meth:`_write` and the rest of the file (family-specific);
        ConfigError if the file cannot be read."""

    @abstractmethod
    def _restore(self, doc: dict[str, Any], payload: Any, path: str | Path, device: str) -> None:
        """Restore the fitted state from what :meth:`_read` returned."""


def _in_table_terms(learned: Schema, schema: Schema) -> Schema:
    """``learned`` (the model's columns, domains learned) with each column modelled as a gap
    back as ``schema`` declares it, and ``schema``'s rules. A gap's column declared with
    bounds only gets equal-width public bins: what utility reads it in (the model learned the
    gap's encoding, not the column's)."""
    gaps = [_as_declared(schema, r.columns) for r in gap_rules(schema)]
    return replace(learned.with_columns(gaps), rules=schema.rules) if gaps else learned


def _as_declared(schema: Schema, pair: tuple[str, ...]) -> Column:
    col = replace(schema[pair[0]], note=f"modelled as its gap to {pair[1]!r} (a rule)")
    return col if col.has_domain else replace(col, bins=DEFAULT_BINS)


def _per_person(unit: UnitOfPrivacy) -> str:
    """What a reservation's purpose adds when the unit of privacy is a person."""
    return f", per {unit.describe()}" if unit.is_person else ""
