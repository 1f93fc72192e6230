"""What the DP-SGD generators (:mod:`~privsynth.generators.dpsgd.dpvae`,
:mod:`~privsynth.generators.dpsgd.dpctgan`) add to the generator base: a measurement before
training, a second reservation for DP-SGD, and the model as one ``.safetensors`` file.

Privacy flow (the base's fit flow, reserve before reading, with DP-SGD's parameters fixed
only after a DP measurement):

1. refuse data-dependent domains unless opted in; plan the *fixed* charges (domain discovery,
   and the generator's pre-training measurement: the row count, or 1-way frequencies) and
   ``ledger.check`` them together with a stand-in for DP-SGD -- ZCDP(rho) with rho the rest of
   (epsilon, delta) -- before the data is read;
2. validate; reserve the fixed charges; learn undeclared domains; encode; measure (through
   :mod:`privsynth.mechanisms`);
3. post-processing of the noisy row count N^: q = min(1, batch_size / N^),
   steps = ceil(epochs / q), and the smallest sigma such that the fixed charges and
   SubsampledGaussian(q, sigma, steps) compose to at most (epsilon, delta) by the ledger's
   accountant (:mod:`.privacy`, which also says why choosing them after a DP measurement is
   sound);
4. reserve that SubsampledGaussian (a second reservation; if another process took the budget
   in between, BudgetExceeded says that the fixed charges were spent), train with Poisson
   sampling at rate q (:mod:`.train`, the only noise drawn outside
   :mod:`privsynth.mechanisms`), check that Opacus' own accountant puts the steps taken within
   the reservation, commit both.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from privsynth.budget import Ledger, Reservation
from privsynth.budget.analysis import epsilon_spent, rho_for_epsilon
from privsynth.budget.events import ZCDP, PrivacyEvent, SubsampledGaussian
from privsynth.device import resolve_device
from privsynth.errors import BudgetExceeded, ConfigError, PrivsynthError
from privsynth.generators.base import FitContext, FitPlan, Generator, Mechanism
from privsynth.generators.dpsgd.privacy import SGDPlan, opacus_epsilon, plan_sgd
from privsynth.generators.dpsgd.progress import OnStep, TrainingProgress
from privsynth.generators.dpsgd.train import CLIPPING, GRAD_SAMPLE_MODES, IMPLEMENTATION_HAZARD
from privsynth.generators.dpsgd.transform import OneHotBlocks
from privsynth.generators.split import Budgeting
from privsynth.sources.source import FrameSource, TableSource
from privsynth.sources.table import ArrayTable, EncodedTable


@dataclass(eq=False, repr=False, kw_only=True)
class DPSGDGenerator(Generator):
    """Shared flow of the DP-SGD generators.

    Subclasses define the networks (:meth:`_build`), the per-row loss and training
    (:meth:`_train`), how rows are drawn (:meth:`_logits`) and what is measured with
    :mod:`privsynth.mechanisms` before training (:meth:`_measure_plan`, :meth:`_measure`).
    """

    model_file = "model.safetensors"
    model_format = "privsynth-dpsgd-model"
    model_kind = "DP-SGD model"
    reservation_purpose = "fit: domains and row count"
    definition = (
        "approximate DP: DP-SGD (Poisson-subsampled Gaussian, RDP/PRV) composed with "
        "the counting mechanisms by the ledger accountant"
    )
    noise = (
        "OpenDP 0.16 samplers for counts and domains; Opacus (torch generator, "
        "secure_mode off) for DP-SGD gradients"
    )
    unsaved = (*Generator.unsaved, "verbose")

    epochs: float = 10
    batch_size: int = 2000
    lr: float = 2e-3
    max_grad_norm: float = 1.0
    measure_share: float = 0.02
    grad_sample_mode: str = "bookkeeping"
    verbose: bool = False

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        super()._check_params()
        positive = {
            "epochs": self.epochs,
            "lr": self.lr,
            "max_grad_norm": self.max_grad_norm,
        }
        for name, v in positive.items():
            if not (isinstance(v, (int, float)) and 0 < v < float("inf")):
                raise ConfigError(f"{name} ({v!r}) must be a finite number > 0")
        if isinstance(self.batch_size, bool) or int(self.batch_size) != self.batch_size:
            raise ConfigError(f"batch_size ({self.batch_size!r}) must be an integer >= 2")
        if self.batch_size < 2:
            raise ConfigError(f"batch_size ({self.batch_size!r}) must be an integer >= 2")
        if not 0 < self.measure_share < 1:
            raise ConfigError(f"measure_share ({self.measure_share!r}) must be in (0, 1)")
        if self.discovery_share + self.measure_share >= 1:
            raise ConfigError(
                f"discovery_share + measure_share ({self.discovery_share} + "
                f"{self.measure_share}) must leave budget for training (< 1)"
            )
        if self.grad_sample_mode not in GRAD_SAMPLE_MODES:
            raise ConfigError(
                f"grad_sample_mode ({self.grad_sample_mode!r}) must be one of {GRAD_SAMPLE_MODES}"
            )

    # -------------------------------------------------------------------- plan
    def _plan_rest(self, budgeting: Budgeting, discovery: list[PrivacyEvent]) -> FitPlan:
        """Reserve the charges fixed before data is read (domain discovery, the measurement);
        check them with, last, a stand-in for DP-SGD: ZCDP with the rest of (epsilon, delta).
        The DP-SGD charge that is reserved replaces the stand-in once the noisy row count
        fixes (q, sigma, steps)."""
        fixed = [*discovery, *self._measure_plan()]
        return FitPlan(budgeting, fixed, [*fixed, self._stand_in(fixed)])

    def _stand_in(self, fixed: list[PrivacyEvent]) -> ZCDP:
        rho = rho_for_epsilon(self.epsilon, self.delta, alongside=fixed)
        if rho <= 0:
            raise ConfigError(
                f"epsilon ({self.epsilon}) is used up by domain discovery and the row count; "
                "declare the domains or raise epsilon"
            )
        return ZCDP(rho)

    # --------------------------------------------------------------------- fit
    def _source(self, data: object) -> TableSource:
        if isinstance(data, FrameSource):
            return data
        if not isinstance(data, pd.DataFrame):
            raise ConfigError(
                f"{self.name} trains on rows in memory: give a pandas DataFrame, not a "
                f"{type(data).__name__}"
            )
        return FrameSource(data)

    def _reservation_metadata(self) -> dict[str, Any] | None:
        return None  # the DP-SGD reservation records the parameters

    def _mechanism(self, table: EncodedTable, fit: FitContext) -> Mechanism:
        if not isinstance(table, ArrayTable):  # a FrameSource encodes in memory
            raise PrivsynthError(f"{self.name} needs encoded rows in memory")
        codes = table.codes
        fixed = fit.plan.reserved
        self.blocks_ = blocks = OneHotBlocks(table.sizes)
        n_hat, charges = self._measure(codes, blocks)
        sgd = plan_sgd(
            n_hat,
            batch_size=int(self.batch_size),
            epochs=self.epochs,
            alongside=fixed,
            epsilon=self.epsilon,
            delta=self.delta,
        )
        second = self._reserve_sgd(fit.ledger, sgd, fit.first)
        self.device_ = resolve_device(self.device)
        self._build(blocks.width, self.device_)
        with TrainingProgress(self.verbose, sgd, fixed, self.delta, self.name) as progress:
            taken = self._train(blocks.transform(codes), sgd, progress)
        charges.append(SubsampledGaussian(sgd.sample_rate, sgd.noise_multiplier, taken))
        opacus_eps = self._check_opacus(sgd, taken)
        self.sgd_ = {**asdict(sgd), "steps_taken": taken, "opacus_epsilon": opacus_eps}
        later = (
            None
            if second is None
            else (second, {"steps_taken": taken, "opacus_epsilon": opacus_eps})
        )
        return Mechanism(charges, [*fixed, sgd.event], max(0, int(round(n_hat))), later)

    def _reserve_sgd(
        self, ledger: Ledger | None, plan: SGDPlan, first: Reservation | None
    ) -> Reservation | None:
        if ledger is None or first is None:
            return None
        try:
            return ledger.reserve(
                [plan.event], purpose=f"{self.name} fit: DP-SGD", metadata=self.get_params()
            )
        except BudgetExceeded as exc:
            raise BudgetExceeded(
                f"{exc} The charges for domains and the row count (reservation {first.id}) "
                "were already spent; the budget was taken by another spend after this fit "
                "checked it. Nothing was trained or released."
            ) from exc

    def _check_opacus(self, plan: SGDPlan, taken: int) -> float:
        """Opacus' accountants, on their own code path, must put the steps taken within the
        reserved event (the ledger's routes are the same computations padded up, so <= holds
        exactly when nothing went wrong)."""
        theirs = opacus_epsilon(plan, taken, self.delta)
        ours = epsilon_spent(plan.event, self.delta)
        if not theirs <= ours:
            raise PrivsynthError(
                f"internal accounting error: Opacus' accountant gives epsilon {theirs} for "
                f"{taken} DP-SGD steps, more than the reserved {ours}; nothing was released. "
                "Please report this."
            )
        return theirs

    # ---------------------------------------------------------- subclass hooks
    @abstractmethod
    def _measure_plan(self) -> list[PrivacyEvent]:
        """Charges of :meth:`_measure`, from the parameters alone (before the data is read)."""

    @abstractmethod
    def _measure(self, codes: np.ndarray, blocks: OneHotBlocks) -> tuple[float, list[PrivacyEvent]]:
        """DP measurements before training; return the DP row estimate and the charges."""

    @abstractmethod
    def _build(self, width: int, device: torch.device) -> None:
        """Create the networks for one-hot rows of ``width``."""

    @abstractmethod
    def _train(self, data: torch.Tensor, plan: SGDPlan, progress: OnStep) -> int:
        """Train on ``self.device_`` with :func:`~privsynth.generators.dpsgd.train.train_dp`;
        return the number of noised steps."""

    @abstractmethod
    def _logits(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        """Block logits of ``n`` synthetic rows (post-processing)."""

    @abstractmethod
    def _modules(self) -> dict[str, nn.Module]:
        """The trained networks by name (saved and loaded)."""

    @abstractmethod
    def _load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`_state` wrote."""

    # ----------------------------------------------------------------- sample
    def _draw(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        with torch.no_grad():
            logits = self._logits(n, rng)
        return self.encoder_.decode(self.blocks_.sample_codes(logits, rng), seed=rng)

    # ----------------------------------------------------------------- report
    def _spec_extra(self) -> dict[str, Any]:
        """The DP-SGD parameters, Opacus' epsilon for the steps taken, the noise hazard."""
        return {
            "implementation_hazards": [IMPLEMENTATION_HAZARD],
            "sample_rate": self.sgd_["sample_rate"],
            "noise_multiplier": self.sgd_["noise_multiplier"],
            "steps": self.sgd_["steps_taken"],
            "max_grad_norm": self.max_grad_norm,
            "clipping": CLIPPING[self.grad_sample_mode],
            "opacus_epsilon": self.sgd_["opacus_epsilon"],
        }

    # ------------------------------------------------------------ persistence
    def _header_extra(self) -> dict[str, Any]:
        return {"sgd": self.sgd_, "n_rows": self.n_rows_, "privacy_spec": self.privacy_spec()}

    def _write(self, path: str | Path, doc: dict[str, Any]) -> None:
        """One ``.safetensors`` file: the weights, and in its header ``doc``."""
        from safetensors.torch import save_file

        tensors = {
            f"{name}.{k}": v.detach().cpu().contiguous()
            for name, m in self._modules().items()
            for k, v in m.state_dict().items()
        }
        save_file(tensors, str(path), metadata={"privsynth": json.dumps(doc)})

    @classmethod
    def _read(cls, path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as fh:
                doc = json.loads((fh.metadata() or {}).get("privsynth", "{}"))
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        except (OSError, ValueError, SafetensorError) as exc:
            raise ConfigError(f"cannot read model file {path}: {exc}") from exc
        return doc, tensors

    def _restore(self, doc: dict[str, Any], payload: Any, path: str | Path, device: str) -> None:
        self.blocks_ = OneHotBlocks(list(self.encoder_.shape.values()))
        self.sgd_ = dict(doc["sgd"])
        self.n_rows_ = int(doc["n_rows"])
        self._load_state(doc["state"])
        self.device_ = dev = resolve_device(device)
        self._build(self.blocks_.width, dev)
        for name, m in self._modules().items():
            prefix = f"{name}."
            state = {k[len(prefix) :]: v for k, v in payload.items() if k.startswith(prefix)}
            try:
                m.load_state_dict(state)
            except RuntimeError as exc:  # e.g. a network written by another privsynth version
                raise ConfigError(
                    f"{path}: its {name} weights do not fit this privsynth's {self.name} network "
                    f"(written by privsynth {doc.get('privsynth_version')!r}); refit the model"
                ) from exc
            m.to(dev).eval()
