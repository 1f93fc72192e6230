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
from privsynth.generators.split import RHO_MARGIN, Budgeting
from privsynth.inference.model import one_cpu_thread
from privsynth.io import atomic_output, atomic_write_text
from privsynth.schema import CATEGORICAL_KINDS
from privsynth.sources.table import EncodedTable


@dataclass(eq=False, repr=False, kw_only=True)
class MarginalGenerator(Generator):
    """Shared flow of the marginal-based generators (MST, AIM).

    Subclasses implement :meth:`_fit_table` (the mechanism, on encoded data, spending at most
    ``rho`` through :mod:`privsynth.mechanisms`), :meth:`_sample_codes`,
    :meth:`_estimated_rows` and their state (:meth:`_state`, :meth:`_load_state`).
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
        with one_cpu_thread():
            charges = self._fit_table(table, fit.plan.budgeting.rho * RHO_MARGIN)
        return Mechanism(charges, fit.plan.reserved, self._estimated_rows())

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
        rows = self._rows(n)
        rng = np.random.default_rng(seed)
        if self.schema_.unit_of_privacy.is_person:
            if conditions:
                raise ConfigError("conditions are not supported yet when a person owns many rows")
            return sample_persons(
                lambda k, c: self._sample_codes(k, rng, c),
                self.encoder_,
                self.schema_,
                self.persons_,
                rows,
                rng,
            )
        codes = self._sample_codes(rows, rng, self._condition_codes(conditions or {}))
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
