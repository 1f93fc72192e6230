"""Linkability (GDPR / Article 29 WP criteria), as in anonymeter but calibrated.

The attacker holds two datasets about the same people, one with column group A and one with
group B, and uses the synthetic data to link them: a target's A-part and B-part are linked
when their ``k`` nearest synthetic records on A and on B (shared distance) overlap. The
success rate on training targets is compared with the rate on control targets from the
holdout, a set of the same size; no extrapolated correction.
"""

from __future__ import annotations

import numpy as np
import torch

from privsynth.attacks.base import AttackResult
from privsynth.attacks.distance import nearest
from privsynth.attacks.stats import versus_control

#: Nearest synthetic records looked up per column group (anonymeter's ``n_neighbors``).
N_NEIGHBOURS = 10

THREAT = (
    "An attacker holding two datasets about the same people, one with columns {a} and one "
    "with columns {b}, links each person's two parts through the synthetic data."
)


def _linked(
    rows: np.ndarray,
    synthetic: np.ndarray,
    groups: tuple[np.ndarray, np.ndarray],
    k: int,
    device: torch.device,
) -> np.ndarray:
    _, ia = nearest(rows[:, groups[0]], synthetic[:, groups[0]], k, device=device)
    _, ib = nearest(rows[:, groups[1]], synthetic[:, groups[1]], k, device=device)
    return (ia[:, :, None] == ib[:, None, :]).any(axis=(1, 2))


def linkability(
    targets: np.ndarray,
    controls: np.ndarray,
    synthetic: np.ndarray,
    groups: tuple[np.ndarray, np.ndarray],
    columns: tuple[list[str], list[str]],
    device: torch.device,
    k: int = N_NEIGHBOURS,
) -> AttackResult:
    """Linkage success on training targets minus on equal-size holdout controls.

    ``groups`` are the embedding feature indices of the two column groups (named in
    ``columns``).
    """
    k = min(k, len(synthetic))
    ok_t = _linked(targets, synthetic, groups, k, device)
    ok_c = _linked(controls, synthetic, groups, k, device)
    k1, n1, k2, n2 = int(ok_t.sum()), len(ok_t), int(ok_c.sum()), len(ok_c)
    value, ci, success = versus_control(k1, n1, k2, n2)
    return AttackResult(
        name="linkability",
        threat_model=THREAT.format(a=", ".join(columns[0]), b=", ".join(columns[1])),
        metric="success_rate_difference",
        value=value,
        ci=ci,
        baseline=0.0,
        details={
            "columns_a": columns[0],
            "columns_b": columns[1],
            "n_neighbours": k,
            **success,
            "n_targets": {"train": n1, "control": n2},
        },
    )
