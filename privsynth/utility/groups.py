"""Bias per protected group: how each group of the columns the custodian names as protected
fares in the synthetic table (issue 23, item 7; EU AI Act art. 10(2)(f)).

For each category of each protected column (a *group*):

* its share of the real training rows and of the synthetic rows;
* with a target, the train-synthetic-test-real score on the group's real test rows next to
  the train-real-test-real score on the same rows (the two models of
  :func:`privsynth.utility.evaluate`'s TSTR, scored once more per group: no second TSTR);
* flags, against public thresholds (the policy's ``[bias]``): ``shrunk`` when the synthetic
  share is below ``max_share_drop_ratio`` times the real share, ``served_worse`` when the
  per-group TSTR score is more than ``max_score_drop`` below the per-group reference.

**Not differentially private**, like the rest of :mod:`privsynth.utility`: the real shares
and scores are aggregates of the real rows, so the small-cell rule of the report applies. A
group holding fewer than ``min_cell`` real rows in the training rows, or in the test rows,
shows no real share, no score and no flag (``None``; the report says "suppressed"); its
synthetic share, a fact about the public synthetic table, is always shown. Shares are rounded
to :data:`~privsynth.utility.distributions.PLOT_DECIMALS` places, as in the plots, so that no
exact count can be read back from them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from privsynth.encoding import Encoder
from privsynth.errors import ConfigError
from privsynth.schema import Schema
from privsynth.utility.distributions import MISSING_LABEL, PLOT_DECIMALS

#: The policy's ``[bias]`` defaults (``privsynth.attacks.policy.OPTIONAL`` states the same):
#: flag a group whose synthetic share is below half its real share, or whose TSTR score is
#: more than 0.1 below the real-data model's on its rows.
DEFAULT_THRESHOLDS = {"max_share_drop_ratio": 0.5, "max_score_drop": 0.1}

METHOD = (
    "per category (group) of each protected column: its share of the real training rows and "
    "of the synthetic rows (after subsampling to max_rows), rounded to "
    f"{PLOT_DECIMALS} places; with a target, the TSTR and train-real models scored on the "
    "group's test rows; a group of fewer than min_cell real training or test rows shows no "
    "real share, score or flag"
)


@dataclass(frozen=True)
class Cell:
    """One group before the small-cell rule: its exact counts stay in here, never reported."""

    column: str
    group: str
    real_rows: int
    test_rows: int
    real_share: float
    synthetic_share: float
    test_mask: np.ndarray


def check_groups(schema: Schema, groups: Sequence[str]) -> None:
    """Each protected column is a synthesised categorical column of ``schema``.

    Raises
    ------
    ConfigError
        Naming the column and the columns that may be named.
    """
    choices = [c.name for c in schema.synthesised if c.kind == "categorical"]
    for name in groups:
        if name not in choices:
            raise ConfigError(
                f"groups: column {name!r} is not a categorical column of the schema; "
                f"protected groups come from one of {choices}"
            )
    if len(set(groups)) != len(groups):
        raise ConfigError(f"groups: a column is named twice in {list(groups)}")


def cells(enc: Encoder, codes: Mapping[str, np.ndarray], columns: Sequence[str]) -> list[Cell]:
    """Every group of ``columns``, in column then category order, with its shares and the
    mask of its test rows (the holdout's rows when there is a holdout, else the real ones:
    the rows the TSTR is scored on)."""
    real, syn = codes["real"], codes["synthetic"]
    test = codes.get("holdout", real)
    out = []
    for name in columns:
        j = enc.names.index(name)
        codec = enc.codecs[j]
        labels = list(codec.labels or ()) + [MISSING_LABEL] * (codec.size - codec.n_values)
        for k, label in enumerate(labels):
            in_real = int((real[:, j] == k).sum())
            mask = test[:, j] == k
            out.append(
                Cell(
                    column=name,
                    group=label,
                    real_rows=in_real,
                    test_rows=int(mask.sum()),
                    real_share=in_real / len(real),
                    synthetic_share=float((syn[:, j] == k).mean()),
                    test_mask=mask,
                )
            )
    return out


def summarise(
    groups: Sequence[Cell],
    scores: Sequence[tuple[float | None, float | None]] | None,
    *,
    min_cell: int,
    thresholds: Mapping[str, float],
    score: Mapping[str, object] | None,
) -> dict[str, object]:
    """The report's ``utility.groups``: each group after the small-cell rule, with its flags.

    Parameters
    ----------
    groups
        From :func:`cells`.
    scores
        Per group, (TSTR, train-real) on the group's test rows; ``None`` without a target.
    min_cell
        The policy's ``[report] min_cell_rows``.
    thresholds
        The policy's ``[bias]``: ``max_share_drop_ratio`` and ``max_score_drop``.
    score
        The overall TSTR's ``target``, ``metric`` and ``test_on`` (``None`` without a target).

    Returns
    -------
    dict
        ``columns``, ``min_cell_rows``, ``thresholds``, ``score`` and ``groups`` (per group:
        ``column``, ``group``, ``real_share``, ``synthetic_share``, ``share_ratio``, ``tstr``,
        ``trtr``, ``suppressed``, ``flags``).

    Examples
    --------
    A large group the synthetic table shrinks, and a small one the small-cell rule hides:

    >>> mask = np.ones(1, dtype=bool)
    >>> big = Cell("race", "A", 600, 200, 0.6, 0.25, mask)
    >>> rare = Cell("race", "R", 5, 2, 0.005, 0.001, mask)
    >>> out = summarise([big, rare], None, min_cell=10, thresholds=DEFAULT_THRESHOLDS, score=None)
    >>> [(g["group"], g["real_share"], g["synthetic_share"], g["flags"]) for g in out["groups"]]
    [('A', 0.6, 0.25, ['shrunk']), ('R', None, 0.001, [])]
    """
    rows = [
        _row(g, None if scores is None else scores[i], min_cell, thresholds)
        for i, g in enumerate(groups)
    ]
    return {
        "columns": list(dict.fromkeys(g.column for g in groups)),
        "min_cell_rows": min_cell,
        "thresholds": {k: float(thresholds[k]) for k in DEFAULT_THRESHOLDS},
        "score": dict(score) if score is not None else None,
        "groups": rows,
    }


def _row(
    g: Cell,
    scores: tuple[float | None, float | None] | None,
    min_cell: int,
    thresholds: Mapping[str, float],
) -> dict[str, object]:
    """One group as the report holds it. A suppressed group carries no flag either: "shrunk"
    would bound its real share, which the small-cell rule withholds."""
    synthetic = round(g.synthetic_share, PLOT_DECIMALS)
    suppressed = g.real_rows < min_cell or g.test_rows < min_cell
    if suppressed:
        return {
            "column": g.column,
            "group": g.group,
            "real_share": None,
            "synthetic_share": synthetic,
            "share_ratio": None,
            "tstr": None,
            "trtr": None,
            "suppressed": True,
            "flags": [],
        }
    tstr, trtr = scores if scores is not None else (None, None)
    ratio = g.synthetic_share / g.real_share if g.real_share > 0 else None
    flags = []
    if ratio is not None and ratio < thresholds["max_share_drop_ratio"]:
        flags.append("shrunk")
    if tstr is not None and trtr is not None and tstr < trtr - thresholds["max_score_drop"]:
        flags.append("served_worse")
    return {
        "column": g.column,
        "group": g.group,
        "real_share": round(g.real_share, PLOT_DECIMALS),
        "synthetic_share": synthetic,
        "share_ratio": None if ratio is None else round(ratio, PLOT_DECIMALS),
        "tstr": tstr,
        "trtr": trtr,
        "suppressed": False,
        "flags": flags,
    }


def flagged(groups: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The groups of a report's ``utility.groups`` that carry a flag (none without it)."""
    if not groups:
        return []
    return [g for g in groups.get("groups") or [] if g.get("flags")]
