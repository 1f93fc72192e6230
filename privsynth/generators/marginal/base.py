"""What the marginal generators (MST, AIM) add to the generator base: one zCDP budget for the
mechanism, conditional and streamed sampling, and the model as reviewable JSON.

A marginal generator reads private data only through
:meth:`privsynth.sources.table.EncodedTable.marginals` (exact counts), and every noisy step
is a call into :mod:`privsynth.mechanisms`.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from privsynth.budget.events import ZCDP, PrivacyEvent
from privsynth.errors import ConfigError
from privsynth.generators.base import FitContext, FitPlan, Generator, Mechanism
from privsynth.generators.marginal.people import sample_persons
from privsynth.generators.rules import derived_columns
from privsynth.generators.split import RHO_MARGIN, Budgeting
from privsynth.inference.model import one_cpu_thread
from privsynth.io import atomic_output, atomic_write_text
from privsynth.schema import CATEGORICAL_KINDS, Schema
from privsynth.sources.table import ColumnsTable, EncodedTable


@dataclass(eq=False, repr=False, kw_only=True)
class MarginalGenerator(Generator):
    """Shared flow of the marginal-based generators (MST, AIM).

    Subclasses implement :meth:`_fit_table` (the mechanism, on encoded data, spending at most
    ``rho`` through :mod:`privsynth.mechanisms`), :meth:`_sample_codes`,
    :meth:`_estimated_rows` and their state (:meth:`_state`, :meth:`_load_state`).

    A column that a ``determines`` rule with a declared mapping fixes is not modelled (never
    measured: no budget goes to it); the table the mechanism sees leaves it out, and
    sampling derives it (:mod:`privsynth.generators.rules`).
    """

    model_file = "model.json"
    model_format = "privsynth-model"
    model_kind = "model"
    definition = "approximate DP via zCDP (mechanisms) composed by the ledger accountant"
    noise = "OpenDP 0.16 samplers (discrete Gaussian, Laplace, report-noisy-max)"

    supports_persons = True

    iters: int = 1000

    def _check_params(self) -> None:
        super()._check_params()
        if int(self.iters) != self.iters or self.iters < 1:
            raise ConfigError(f"iters ({self.iters!r}) must be a positive integer")

    def _plan_rest(self, budgeting: Budgeting, discovery: list[PrivacyEvent]) -> FitPlan:
        planned: list[PrivacyEvent] = [*discovery, ZCDP(budgeting.rho)]
        return FitPlan(budgeting, planned, planned)

    def _mechanism(self, table: EncodedTable, fit: FitContext) -> Mechanism:
        # The mechanism gets a hair less than reserved (RHO_MARGIN).
        names = list(table.shape)
        modelled = ColumnsTable(table, [names.index(c) for c in _modelled(fit.schema)])
        with one_cpu_thread():
            charges = self._fit_table(modelled, fit.plan.budgeting.rho * RHO_MARGIN, fit.schema)
        return Mechanism(charges, fit.plan.reserved, self._estimated_rows())

    @abstractmethod
    def _fit_table(self, table: EncodedTable, rho: float, schema: Schema) -> list[PrivacyEvent]:
        """Run the mechanism on the encoded table's marginals; return the charges of every
        noisy step. ``schema`` (public) gives the rules whose structural zeros the model
        keeps (:func:`~privsynth.generators.marginal.zeros.structural_zeros`)."""

    @abstractmethod
    def _sample_codes(
        self, n: int, rng: np.random.Generator, conditions: dict[str, list[int]]
    ) -> np.ndarray:
        """``n`` rows of codes of the modelled columns (:func:`_modelled`), in order."""

    @abstractmethod
    def _estimated_rows(self) -> int:
        """The DP estimate of the number of rows (post-processing of noisy counts)."""

    # ------------------------------------------------------------------ sample
    def sample(
        self,
        n: int | None = None,
        *,
        seed: int | np.random.Generator | None = None,
        conditions: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Draw ``n`` synthetic rows (default: the DP estimate of the row count), keeping the
        schema's rules.

        ``conditions`` maps a categorical column to a value (or list of values): rows are drawn
        from the model conditioned on it, e.g. ``{"income": ">50K"}`` to oversample a rare
        class. Sampling is post-processing: it costs no privacy budget.
        """
        rows = self._rows(n)
        rng = np.random.default_rng(seed)
        if self.schema_.unit_of_privacy.is_person:
            if conditions:
                raise ConfigError("conditions are not supported yet when a person owns many rows")
            return sample_persons(
                lambda k, c: self._codes(k, rng, c),
                self.encoder_,
                self.schema_,
                self.persons_,
                rows,
                rng,
            )
        conds = self._condition_codes(conditions or {})

        def draw(k: int, r: np.random.Generator) -> pd.DataFrame:
            return self.encoder_.decode(self._codes(k, r, conds), seed=r)

        return self._keep_rules(draw(rows, rng), draw, rng)

    def _draw(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        return self.encoder_.decode(self._codes(n, rng, {}), seed=rng)

    def _codes(
        self, n: int, rng: np.random.Generator, conditions: dict[str, list[int]]
    ) -> np.ndarray:
        """``n`` rows of codes of every encoded column. A column the model leaves out (derived
        by a rule) gets code 0, which :meth:`_keep_rules` overwrites with the derived value."""
        modelled = _modelled(self.schema_)
        codes = self._sample_codes(n, rng, conditions)
        if len(modelled) == len(self.encoder_.names):
            return codes
        out = np.zeros((n, len(self.encoder_.names)), dtype=np.int64)
        out[:, [self.encoder_.names.index(c) for c in modelled]] = codes
        return out

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

        self._check_fitted()
        if self.schema_.unit_of_privacy.is_person:
            raise ConfigError(
                "streaming writes independent rows; a model of persons samples whole persons "
                "with sample()"
            )
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

        def draw(k: int, r: np.random.Generator) -> pd.DataFrame:
            return self.encoder_.decode(self._codes(k, r, conds), seed=r)

        with atomic_output(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
            for start in range(0, int(n), chunk_rows) if n else [0]:
                k = min(chunk_rows, int(n) - start)
                frame = self._keep_rules(draw(k, rng), draw, rng)
                writer.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False))
        return int(n)

    def _condition_codes(self, conditions: dict[str, Any]) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for name, wanted in conditions.items():
            col = self.schema_[name]
            if name in derived_columns(self.schema_):
                raise ConfigError(
                    f"conditions: column {name!r} is derived from another by a rule; condition "
                    "on the column that determines it"
                )
            if col.kind not in CATEGORICAL_KINDS or col.categories is None:
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

    # ------------------------------------------------------------- persistence
    @abstractmethod
    def _load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`_state` wrote."""

    def _write(self, path: str | Path, doc: dict[str, Any]) -> None:
        """The model as reviewable JSON: schema, noisy measurements, model structure and
        potentials, charges, versions."""
        atomic_write_text(path, json.dumps(doc, separators=(",", ":")))

    @classmethod
    def _read(cls, path: str | Path) -> tuple[dict[str, Any], None]:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read model file {path}: {exc}") from exc
        return doc, None

    def _restore(self, doc: dict[str, Any], payload: Any, path: str | Path, device: str) -> None:
        self._load_state(doc["state"])
        self.n_rows_ = self._estimated_rows()


def _modelled(schema: Schema) -> list[str]:
    """The columns the marginal model holds: every synthesised column but those a rule
    derives (:func:`~privsynth.generators.rules.derived_columns`)."""
    derived = derived_columns(schema)
    return [c.name for c in schema.synthesised if c.name not in derived]
