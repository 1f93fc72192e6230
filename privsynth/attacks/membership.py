"""Membership inference: was this record in the training data?

Members are training rows, non-members holdout rows never used in fitting; both are uniform
random samples of ``n_targets`` rows each (a count we choose, not the private row count).

* ``membership_distance``: a record close to some synthetic record is called a member
  (score = minus the distance to the closest synthetic record).
* ``membership_density_ratio``: DOMIAS (van Breugel et al. 2023): a record where the synthetic
  data is denser than the population is called a member. Densities are k-nearest-neighbour
  estimates in the shared distance, against the synthetic rows and against the holdout rows
  as the reference sample (a holdout target's own row is left out of its reference).

* ``membership_person`` (person-level releases): was this *person* in the training data? A
  person is called a member when their rows lie close to synthetic rows (score = minus the
  mean, over the person's rows, of the distance to the closest synthetic row). Targets are
  persons, drawn from the persons of train and holdout.

All report AUC with DeLong's interval and the TPR at 0.1%, 1% and 10% FPR with
Clopper-Pearson intervals (Carlini et al. 2022), and an aggregate ROC curve for plotting.
"""

from __future__ import annotations

import numpy as np

from privsynth.attacks.base import AttackResult
from privsynth.attacks.stats import auc_delong, roc_curve_points, tpr_at_fpr

FPRS = (0.001, 0.01, 0.1)
#: Neighbours in the k-NN density estimates of the density-ratio attack.
DENSITY_K = 5
#: Added to distances before taking logs, so exact copies (distance 0) stay finite.
LOG_FLOOR = 1e-3

DISTANCE_THREAT = (
    "An attacker holding a person's full record and the synthetic data guesses that the "
    "person was in the training data when some synthetic record is close to theirs."
)
PERSON_THREAT = (
    "An attacker holding all of a person's records and the synthetic data guesses that the "
    "person was in the training data when their records lie close to synthetic records."
)
DENSITY_THREAT = (
    "An attacker holding a person's full record, the synthetic data and a reference sample "
    "of the population guesses membership where the synthetic data is denser than the "
    "population (DOMIAS)."
)


def score_membership(
    name: str, threat_model: str, members: np.ndarray, non_members: np.ndarray, details: dict
) -> tuple[AttackResult, list[dict]]:
    """AUC, TPR at low FPR and ROC points of membership scores (higher = member)."""
    auc, ci = auc_delong(members, non_members)
    result = AttackResult(
        name=name,
        threat_model=threat_model,
        metric="auc",
        value=auc,
        ci=ci,
        baseline=0.5,
        details={
            **details,
            "n_targets": {"members": len(members), "non_members": len(non_members)},
            "tpr_at_fpr": [tpr_at_fpr(members, non_members, f) for f in FPRS],
        },
    )
    return result, roc_curve_points(members, non_members)


def distance_attack(
    members: np.ndarray, non_members: np.ndarray
) -> tuple[AttackResult, list[dict]]:
    """Distance-to-closest-synthetic-record attack.

    ``members`` and ``non_members`` hold each target's ascending distances to its nearest
    synthetic records (column 0 is used).
    """
    return score_membership(
        "membership_distance",
        DISTANCE_THREAT,
        -members[:, 0],
        -non_members[:, 0],
        {"score": "minus the distance to the closest synthetic record"},
    )


def log_density_ratio(to_synthetic: np.ndarray, to_reference: np.ndarray) -> np.ndarray:
    """DOMIAS score from each target's distances to its k nearest synthetic and reference
    records: log p_synthetic(x) - log p_reference(x) up to a constant.

    log p(x) ~ -dim * log r_k(x) + const; the mean log distance to the k neighbours is a
    smoothed k-NN estimate, and the dimension scales both terms alike (AUC is rank-based),
    so it is left out.
    """
    return np.log(to_reference + LOG_FLOOR).mean(1) - np.log(to_synthetic + LOG_FLOOR).mean(1)


def density_ratio_attack(
    members: tuple[np.ndarray, np.ndarray], non_members: tuple[np.ndarray, np.ndarray]
) -> tuple[AttackResult, list[dict]]:
    """DOMIAS-style attack. Each argument is ``(distances to the k nearest synthetic rows,
    distances to the k nearest reference rows)`` of the targets; a holdout target's own row
    must be left out of its reference neighbours."""
    return score_membership(
        "membership_density_ratio",
        DENSITY_THREAT,
        log_density_ratio(*members),
        log_density_ratio(*non_members),
        {
            "score": "log k-NN density ratio, synthetic over reference (holdout) sample",
            "k": members[0].shape[1],
        },
    )


def person_scores(distances: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """Each person's membership score: minus the mean over their rows of the distance to the
    closest synthetic row (``owner[i]`` is row i's person, numbered 0..n_persons-1).

    Why the mean: a member's rows were all fitted on, so each row's distance is pulled down a
    little; averaging over the person's rows adds that evidence up where a per-row attack
    sees one row at a time.
    """
    counts = np.bincount(owner)
    return -np.bincount(owner, weights=distances) / np.maximum(counts, 1)


def person_attack(
    members: tuple[np.ndarray, np.ndarray], non_members: tuple[np.ndarray, np.ndarray]
) -> tuple[AttackResult, list[dict]]:
    """Membership of persons. Each argument is ``(distance of each row to the closest synthetic
    row, the row's person 0..n-1)`` for the member or non-member target persons."""
    return score_membership(
        "membership_person",
        PERSON_THREAT,
        person_scores(*members),
        person_scores(*non_members),
        {"score": "minus the mean distance of a person's rows to the closest synthetic row"},
    )
