"""A progress bar for DP-SGD training (epoch, loss, epsilon so far)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from privsynth.budget.analysis import epsilon_spent
from privsynth.budget.events import PrivacyEvent, SubsampledGaussian
from privsynth.generators.dpsgd.privacy import SGDPlan

log = logging.getLogger("privsynth.generators")

#: Called after each DP-SGD step with the step number (from 1) and the batch's mean loss.
OnStep = Callable[[int, float], None]


class TrainingProgress:
    """A rich progress bar (epoch, loss, epsilon so far) when ``verbose``; else nothing.

    "Epsilon so far" is the ledger accountant's composition of the fixed charges and the
    DP-SGD steps taken; it is costly to compute, so it is updated ten times per fit.
    """

    def __init__(
        self,
        verbose: bool,
        plan: SGDPlan,
        fixed: list[PrivacyEvent],
        delta: float,
        name: str,
    ) -> None:
        self.verbose, self.plan, self.fixed, self.delta, self.name = (
            verbose,
            plan,
            fixed,
            delta,
            name,
        )
        self.every = max(1, plan.steps // 10)

    def __enter__(self) -> OnStep:
        if not self.verbose:
            return lambda step, loss: None
        from rich.progress import Progress

        self.bar = Progress(*Progress.get_default_columns(), "{task.fields[info]}")
        self.bar.start()
        self.task = self.bar.add_task(f"{self.name} DP-SGD", total=self.plan.steps, info="")
        return self.update

    def update(self, step: int, loss: float) -> None:
        if step % self.every and step != self.plan.steps:
            return
        p = self.plan
        eps = epsilon_spent(
            [*self.fixed, SubsampledGaussian(p.sample_rate, p.noise_multiplier, step)], self.delta
        )
        info = f"epoch {step * p.sample_rate:.1f} loss {loss:.3f} epsilon {eps:.3f}"
        self.bar.update(self.task, completed=step, info=info)
        log.info("%s step %d: %s", self.name, step, info)

    def __exit__(self, *exc: object) -> None:
        if self.verbose:
            self.bar.stop()
