"""The generator protocol, and the fit flow every marginal-based generator shares.

The flow (see DESIGN.md, "Reserve before reading"):

1. refuse data-dependent domains unless opted in (schema only);
2. plan the whole charge from parameters and schema, and check it against the ledger;
3. validate the data against the schema (the custodian sees errors; nothing is released);
4. reserve the charge in the ledger -- from here on it counts as spent;
5. learn undeclared domains with DP, encode, run the mechanism (subclass), check that what
   the mechanisms charged is within the reservation, commit.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import numpy as np
import pandas as pd

from privsynth.budget.accounting import (
    ZCDP,
    PrivacyEvent,
    SubsampledGaussian,
    epsilon_spent,
    event_from_dict,
    event_to_dict,
    rho_for_epsilon,
)
from privsynth.device import resolve_device
from privsynth.discovery import clipped_shares, custodian_notes, discover_domains, plan_discovery
from privsynth.encoding import Encoder
from privsynth.errors import ConfigError, PrivsynthError
from privsynth.inference.model import one_cpu_thread
from privsynth.schema import CATEGORICAL_KINDS, Schema
from privsynth.sources import EncodedTable, TableSource, as_source

log = logging.getLogger("privsynth.generators")

FORMAT_VERSION = 1
RHO_MARGIN = 1 - 1e-9


@runtime_checkable
class Generator(Protocol):
    """What every privsynth generator offers (scikit-learn style)."""

    epsilon: float
    delta: float

    def fit(self, data: pd.DataFrame | TableSource, schema: Schema, ledger: Any = None) -> Self: ...

    def sample(self, n: int | None = None, *, seed: int | None = None) -> pd.DataFrame: ...

    def privacy_spec(self) -> dict: ...


@dataclass(frozen=True)
class Budgeting:
    """How a generator's (epsilon, delta) is split: domain discovery, then zCDP for the rest."""

    discovery_rho: float
    discovery_delta: float
    rho: float


def split_budget(epsilon: float, delta: float, schema: Schema, discovery_share: float) -> Budgeting:
    """Give ``discovery_share`` of the zCDP budget (and of delta) to learning undeclared
    domains and numeric encodings, and the model the largest rho such that discovery +
    ZCDP(rho) composes to at most (epsilon, delta).

    Discovery is all zCDP (or approximate zCDP), so the shares add in rho. The composition
    is the ledger's accountant, so what is planned is what will be charged.
    """
    if not schema.undeclared_columns():
        disc_rho, disc_delta = 0.0, 0.0
    else:
        disc_rho = discovery_share * rho_for_epsilon(epsilon, delta)
        disc_delta = delta * discovery_share
    discovery = plan_discovery(schema, rho=disc_rho, delta=disc_delta)
    rho = rho_for_epsilon(epsilon, delta, alongside=discovery)
    if rho <= 0:
        raise ConfigError(
            f"epsilon ({epsilon}) is too small to learn the undeclared domains "
            f"({', '.join(schema.undeclared_columns())}) and fit a model; declare them or raise "
            "epsilon"
        )
    return Budgeting(disc_rho, disc_delta, rho)


def allocate(rho: float, cells: list[int]) -> list[float]:
    """Split ``rho`` over measurements of ``cells`` cells each, in proportion to cells^(2/3).

    A measurement given rho_m has noise sd 1/sqrt(2 rho_m) per cell, so its expected L1
    error is proportional to c_m / sqrt(rho_m). Minimising sum_m c_m rho_m^(-1/2) subject to
    sum_m rho_m = rho (Lagrange: c_m rho_m^(-3/2) equal for all m) gives rho_m ~ c_m^(2/3).
    Uses only public sizes (and the DP-selected structure): post-processing.
    """
    w = np.asarray(cells, dtype=np.float64) ** (2 / 3)
    return list(rho * w / w.sum())


def check_budget_params(epsilon: float, delta: float, discovery_share: float) -> None:
    """Refuse an invalid (epsilon, delta) or discovery share with a message naming it."""
    if not (isinstance(epsilon, (int, float)) and 0 < epsilon < float("inf")):
        raise ConfigError(f"epsilon ({epsilon!r}) must be a finite number > 0")
    if not (isinstance(delta, (int, float)) and 0 < delta < 1):
        raise ConfigError(
            f"delta ({delta!r}) must be in (0, 1); choose it without looking at the "
            "row count (e.g. 1e-9), never as 1/n of the private data"
        )
    if not 0 < discovery_share < 1:
        raise ConfigError(f"discovery_share ({discovery_share!r}) must be in (0, 1)")


class MarginalGenerator(ABC):
    """Shared fit/sample/save flow of the marginal-based generators (MST, AIM).

    Subclasses implement :meth:`_fit_table` (the mechanism, on encoded data, spending at most
    ``rho`` through :mod:`privsynth.mechanisms`) and :meth:`_sample_codes`.
    """

    name: ClassVar[str]
    #: File name :meth:`save` is given in a release folder.
    model_file: ClassVar[str] = "model.json"

    def __init__(
        self,
        epsilon: float = 1.0,
        delta: float = 1e-9,
        *,
        discovery_share: float = 0.1,
        allow_data_dependent_domain: bool = False,
        device: str = "auto",
        iters: int = 1000,
    ) -> None:
        self.epsilon = epsilon
        self.delta = delta
        self.discovery_share = discovery_share
        self.allow_data_dependent_domain = allow_data_dependent_domain
        self.device = device
        self.iters = iters

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        check_budget_params(self.epsilon, self.delta, self.discovery_share)
        if int(self.iters) != self.iters or self.iters < 1:
            raise ConfigError(f"iters ({self.iters!r}) must be a positive integer")
        resolve_device(self.device)

    def plan(self, schema: Schema) -> list[PrivacyEvent]:
        """Every charge :meth:`fit` will make on ``schema``, computed without data."""
        return self._budget(schema)[1]

    def _budget(self, schema: Schema) -> tuple[Budgeting, list[PrivacyEvent]]:
        self._check_params()
        b = split_budget(self.epsilon, self.delta, schema, self.discovery_share)
        discovery = plan_discovery(schema, rho=b.discovery_rho, delta=b.discovery_delta)
        return b, [*discovery, ZCDP(b.rho)]

    # --------------------------------------------------------------------- fit
    def fit(self, data: pd.DataFrame | TableSource, schema: Schema, ledger: Any = None) -> Self:
        """Fit on ``data`` under ``schema``, charging ``ledger`` (if given) before any DP step.

        ``data`` is a DataFrame, or a :class:`~privsynth.marginals.source.TableSource` whose
        rows stay in their engine (DuckDB, Spark): then only counts leave it.

        Raises
        ------
        SchemaError
            Data-dependent domains without the opt-in, or a schema that does not fit the data.
        BudgetExceeded
            The ledger cannot afford :meth:`plan` (raised before the data is read).
        DataError
            Values that break the schema.
        """
        caveats = schema.release_caveats(
            allow_data_dependent_domain=self.allow_data_dependent_domain
        )
        b, planned = self._budget(schema)
        if ledger is not None:
            ledger.check(planned)  # refuses before the data is touched
        source = as_source(data).validate(schema)
        reservation = (
            ledger.reserve(planned, purpose=f"{self.name} fit", metadata=self._params())
            if ledger is not None
            else None
        )
        spent: list[PrivacyEvent] = []
        learned = schema
        if schema.undeclared_columns():
            learned, spent = discover_domains(
                source, schema, rho=b.discovery_rho, delta=b.discovery_delta
            )
        # Encoding under the learned schema maps values too rare to learn to "(other)".
        table = source.encode(learned)
        # The mechanism gets a hair less than reserved, so float rounding in splitting rho
        # over many measurements can never take its exact total past the reservation.
        with one_cpu_thread():
            spent += self._fit_table(table, b.rho * RHO_MARGIN)
        self._check_within(spent, planned)
        self.custodian_notes_ = custodian_notes(clipped_shares(source, schema, learned))
        self.n_rows_ = self._estimated_rows()  # DP estimate (post-processing), public
        self.schema_ = learned
        self.encoder_ = Encoder(learned)
        self.caveats_ = caveats
        self.charges_ = spent
        self.planned_ = planned
        if reservation is not None:
            reservation.commit(metadata={"charges": len(spent)})
            self.ledger_entry_ = {"reservation": reservation.id, "head": ledger.head()}
        return self

    @staticmethod
    def _check_within(spent: list[PrivacyEvent], planned: list[PrivacyEvent]) -> None:
        """What the mechanisms charged must fit the reservation exactly (compared as exact
        rationals of the floats, no tolerance): the zCDP parts in total, the others one by one
        (a subsampled Gaussian: same sample rate and noise multiplier, no more steps).
        """

        def rho(events: list[PrivacyEvent]) -> Fraction:
            return sum((Fraction(e.rho) for e in events if isinstance(e, ZCDP)), Fraction(0))

        others_spent = [e for e in spent if not isinstance(e, ZCDP)]
        others_planned = [e for e in planned if not isinstance(e, ZCDP)]
        ok = rho(spent) <= rho(planned) and len(others_spent) == len(others_planned)
        ok = ok and all(
            type(s) is type(p)
            and all(
                Fraction(getattr(s, f)) <= Fraction(getattr(p, f))
                for f in ("epsilon", "rho", "delta")
                if hasattr(p, f)
            )
            and (
                not isinstance(p, SubsampledGaussian)
                or (
                    (s.sample_rate, s.noise_multiplier) == (p.sample_rate, p.noise_multiplier)
                    and s.steps <= p.steps
                )
            )
            for s, p in zip(others_spent, others_planned, strict=True)
        )
        if not ok:
            raise PrivsynthError(
                f"internal accounting error: mechanisms charged {spent}, more than the planned "
                f"{planned}; nothing was released. Please report this."
            )

    @abstractmethod
    def _fit_table(self, table: EncodedTable, rho: float) -> list[PrivacyEvent]:
        """Run the mechanism on the encoded table's marginals; return the charges of every
        noisy step."""

    @abstractmethod
    def _sample_codes(
        self, n: int, rng: np.random.Generator, conditions: dict[str, list[int]]
    ) -> np.ndarray:
        """``n`` rows of codes in the encoder's column order."""

    @abstractmethod
    def _estimated_rows(self) -> int:
        """The DP estimate of the number of rows (post-processing of noisy counts)."""

    # ------------------------------------------------------------------ sample
    def _check_fitted(self) -> None:
        if not hasattr(self, "encoder_"):
            raise ConfigError(f"this {self.name} is not fitted yet; call fit(data, schema) first")

    def sample(
        self,
        n: int | None = None,
        *,
        seed: int | np.random.Generator | None = None,
        conditions: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Draw ``n`` synthetic rows (default: the DP estimate of the row count).

        ``conditions`` maps a categorical column to a value (or list of values): rows are drawn
        from the model conditioned on it, e.g. ``{"income": ">50K"}`` to oversample a rare
        class. Sampling is post-processing: it costs no privacy budget.
        """
        self._check_fitted()
        if n is None:
            n = self._estimated_rows()
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ConfigError(f"n ({n!r}) must be a non-negative integer")
        rng = np.random.default_rng(seed)
        codes = self._sample_codes(int(n), rng, self._condition_codes(conditions or {}))
        return self.encoder_.decode(codes, seed=rng)

    def sample_to_parquet(
        self,
        path: str | Path,
        n: int | None = None,
        *,
        chunk_rows: int = 1_000_000,
        seed: int | np.random.Generator | None = None,
        conditions: dict[str, Any] | None = None,
    ) -> int:
        """Write ``n`` synthetic rows (default: the DP row estimate) to a Parquet file in
        chunks of ``chunk_rows``, so memory stays bounded by one chunk whatever ``n`` is.

        The file appears atomically (written next to ``path``, renamed at the end): a failed
        or killed run leaves no partial file. Each chunk is one row group. Returns ``n``.
        Rows are drawn as :meth:`sample` draws them (post-processing, no privacy cost); the
        same seed gives the same file for the same ``chunk_rows``.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        from privsynth.io import atomic_output

        self._check_fitted()
        n = self._estimated_rows() if n is None else n
        for name, v in (("n", n), ("chunk_rows", chunk_rows)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ConfigError(f"{name} ({v!r}) must be a non-negative integer")
        if chunk_rows < 1:
            raise ConfigError(f"chunk_rows ({chunk_rows!r}) must be >= 1")
        types = {"integer": pa.int64(), "continuous": pa.float64(), "datetime": pa.timestamp("us")}
        schema = pa.schema(
            [(c.name, types.get(c.kind, pa.string())) for c in self.schema_.synthesised]
        )
        rng = np.random.default_rng(seed)
        conds = self._condition_codes(conditions or {})
        with atomic_output(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
            for start in range(0, int(n), chunk_rows) if n else [0]:
                k = min(chunk_rows, int(n) - start)
                frame = self.encoder_.decode(self._sample_codes(k, rng, conds), seed=rng)
                writer.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False))
        return int(n)

    def _condition_codes(self, conditions: dict[str, Any]) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for name, wanted in conditions.items():
            col = self.schema_[name]
            if col.kind not in CATEGORICAL_KINDS:
                raise ConfigError(
                    f"conditions: column {name!r} is {col.kind}; condition on categorical columns"
                )
            values = wanted if isinstance(wanted, (list, tuple, set)) else [wanted]
            codes = []
            for v in values:
                if str(v) not in col.categories:
                    raise ConfigError(
                        f"conditions: {v!r} is not a category of {name!r} ({list(col.categories)})"
                    )
                codes.append(col.categories.index(str(v)))
            out[name] = codes
        return out

    # ------------------------------------------------------------------ report
    def _params(self) -> dict:
        return {
            "generator": self.name,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "discovery_share": self.discovery_share,
            "iters": self.iters,
        }

    def privacy_spec(self) -> dict:
        """The DP statement of this fit: parameters, every planned and spent charge, caveats."""
        self._check_fitted()
        return {
            "generator": self.name,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "neighbouring_relation": "add/remove one row",
            "unit_of_privacy": self.schema_.unit_of_privacy,
            "definition": "approximate DP via zCDP (mechanisms) composed by the ledger accountant",
            "noise": "OpenDP 0.16 samplers (discrete Gaussian, Laplace, report-noisy-max)",
            "planned_charges": [event_to_dict(e) for e in self.planned_],
            "charges": [event_to_dict(e) for e in self.charges_],
            "epsilon_spent": epsilon_spent(self.charges_, self.delta),
            "caveats": list(self.caveats_),
        }

    # ------------------------------------------------------------- persistence
    @abstractmethod
    def _state(self) -> dict:
        """Fitted state for :meth:`save` (JSON-ready)."""

    @abstractmethod
    def _load_state(self, state: dict) -> None:
        """Restore what :meth:`_state` wrote."""

    def save(self, path: str | Path) -> None:
        """Write the fitted model as reviewable JSON (no pickle): schema, noisy measurements,
        model structure and potentials, privacy spec, versions."""
        from privsynth import __version__
        from privsynth.io import atomic_write_text

        self._check_fitted()
        doc = {
            "format": "privsynth-model",
            "format_version": FORMAT_VERSION,
            "privsynth_version": __version__,
            "params": self._params(),
            "schema": self.schema_.to_dict(),
            "caveats": self.caveats_,
            "planned_charges": [event_to_dict(e) for e in self.planned_],
            "charges": [event_to_dict(e) for e in self.charges_],
            "state": self._state(),
        }
        atomic_write_text(path, json.dumps(doc, separators=(",", ":")))

    @classmethod
    def load(cls, path: str | Path, *, device: str = "auto") -> Self:
        """Read a model written by :meth:`save`; refuses other formats and generators."""
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read model file {path}: {exc}") from exc
        if doc.get("format") != "privsynth-model" or doc.get("format_version") != FORMAT_VERSION:
            raise ConfigError(
                f"{path} is not a privsynth model of format version {FORMAT_VERSION} "
                f"(found {doc.get('format')!r} {doc.get('format_version')!r})"
            )
        params = dict(doc["params"])
        if params.pop("generator") != cls.name:
            raise ConfigError(f"{path} holds a {doc['params']['generator']} model, not {cls.name}")
        self = cls(**params, device=device)
        self.schema_ = Schema.from_dict(doc["schema"])
        self.encoder_ = Encoder(self.schema_)
        self.caveats_ = list(doc["caveats"])
        self.planned_ = [event_from_dict(e) for e in doc["planned_charges"]]
        self.charges_ = [event_from_dict(e) for e in doc["charges"]]
        self._load_state(doc["state"])
        self.n_rows_ = self._estimated_rows()
        return self
