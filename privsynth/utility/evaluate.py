"""Utility (fidelity) of a synthetic table against the real one: :func:`evaluate`.

**Not differentially private.** Every number here is computed on the private table without
noise. The results are evidence for the data custodian and for the audit report, not DP
outputs: they hold aggregates only (proportions and distances, never a row, never a count),
proportions in the plot data are rounded, and the real row count is not reported (not even
whether the real table was longer than ``max_rows``: that bit is a function of the private
count).

All metrics but the duplicate rate work on the schema's encoding (:class:`~privsynth.encoding.
Encoder`: categories, or numeric values on the public bins), after each table is validated
against the schema and, if it has more than ``max_rows`` rows, subsampled to ``max_rows``
rows without replacement (seeded).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from privsynth.encoding import Encoder
from privsynth.errors import ConfigError, DataError
from privsynth.schema import Schema
from privsynth.utility import classifiers
from privsynth.utility import groups as by_group
from privsynth.utility.association import association
from privsynth.utility.distributions import MAX_PLOT_BINS, PLOT_DECIMALS, distribution
from privsynth.utility.marginals import (
    KL_PSEUDO_COUNT,
    column_sets,
    kl_1way,
    marginal_tvds,
    proportions,
    tvd,
)

MAX_TRIPLES = 100
#: Wide tables: 2-way TVD and associations on at most this many pairs, drawn with the seed
#: (500 columns have 124,750 pairs; Adult's 15 have 105, all kept).
MAX_PAIRS = 2000
WORST_PAIRS = 10

METHODS = {
    "tvd": "total variation distance 1/2 sum |p - q| of normalised marginals on the schema's "
    f"categories and public bins; all 1-way sets, at most {MAX_PAIRS} 2-way and "
    f"{MAX_TRIPLES} 3-way sets (drawn with the seed when there are more)",
    "kl_1way": "KL(real || synthetic) in nats per column; synthetic counts get "
    f"{KL_PSEUDO_COUNT} added per cell (Krichevsky-Trofimov) so KL is finite",
    "correlation_difference": "mean and max over column pairs of |a_real - a_synthetic|; a is "
    "Pearson on bin indices for two numeric columns, otherwise Cramér's V",
    "c2st": "classifier telling real from synthetic: equal-size seeded samples of both, "
    "trained on one half and scored (ROC AUC, pMSE = mean (p - 1/2)^2) on the other",
    "duplicate_rate": "share of synthetic rows (all of them, on their values) that repeat an "
    "earlier synthetic row",
    "tstr": "train on synthetic, test on the holdout (else on real): ROC AUC for a binary "
    "target, macro F1 otherwise; train on real, test on the holdout as reference",
    "baselines": "independent_columns: the mean 2-way TVD and association difference of a "
    "table of as many rows as the synthetic one, each column drawn on its own from the real "
    "1-way shares (seeded): what a generator that keeps every column's shares and no "
    "relationship between columns gets",
    "plots": f"1-way proportions per column on the schema's categories or bins, rounded to "
    f"{PLOT_DECIMALS} places, columns of more than {MAX_PLOT_BINS} codes merged (runs of "
    f"adjacent bins, or the rarer categories pooled); the {WORST_PAIRS} column pairs of "
    "largest 2-way TVD",
}


@dataclass(frozen=True)
class UtilityReport:
    """Result of :func:`evaluate`; :meth:`to_dict` is its JSON form (keys: the fields below
    plus ``methods``, one line per metric on how it is computed)."""

    tvd: dict[str, dict]
    kl_1way: dict[str, float | None]
    correlation_difference: dict[str, float | int | None]
    c2st: dict[str, float | str] | None
    duplicate_rate: float
    tstr: dict[str, object] | None
    baselines: dict[str, dict[str, float | None]]
    plots: dict[str, list[dict]]
    sampling: dict[str, object]
    notes: list[str]
    groups: dict[str, object] | None = None

    def to_dict(self) -> dict:
        """JSON-ready dict (plain lists, floats, ints, strings, booleans and nulls); ``groups``
        only when protected groups were named (a report without them reads as before)."""
        out = {**asdict(self), "methods": dict(METHODS)}
        if out["groups"] is None:
            del out["groups"]
        else:
            out["methods"]["groups"] = by_group.METHOD
        return out


#: A plotted bar shows the real table's share only when it holds at least this many real rows.
MIN_CELL = 10


def evaluate(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    target: str | None = None,
    holdout: pd.DataFrame | None = None,
    seed: int = 0,
    max_rows: int = 50_000,
    min_cell: int = MIN_CELL,
    groups: Sequence[str] = (),
    bias: Mapping[str, float] | None = None,
) -> UtilityReport:
    """Fidelity of ``synthetic`` to ``real`` (both on ``schema``); aggregates only, not DP.

    Parameters
    ----------
    real, synthetic
        The private table and the synthetic one, with the schema's columns.
    schema
        Every synthesised column needs a domain (categories or bounds).
    target
        A column to predict: adds train-synthetic-test-real (``tstr``). Binary when the column
        has exactly two codes (a nullable one has a third, "missing"); numeric targets are
        predicted as their schema bin.
    holdout
        Real rows not used to fit the generator: the test set of ``tstr`` (instead of
        ``real``) and of a train-real-test-holdout reference.
    seed
        Seeds the subsamples, the 3-way sets, the C2ST split and the classifiers.
    max_rows
        Tables longer than this are subsampled to it; the C2ST uses ``max_rows // 4`` rows of
        each table at most.
    min_cell
        Small-cell suppression of the plot data: a bar holding fewer real rows shows no real
        share (``None``); the same rule for the protected groups.
    groups
        Protected columns (categorical): adds ``groups``, each category's real and synthetic
        share and, with a target, its TSTR and train-real scores
        (:mod:`privsynth.utility.groups`).
    bias
        The policy's ``[bias]`` thresholds that flag a group (default:
        :data:`privsynth.utility.groups.DEFAULT_THRESHOLDS`).

    Returns
    -------
    UtilityReport
        ``to_dict()`` gives ``tvd`` (``1way``/``2way``/``3way``: ``mean``, ``max``,
        ``n_marginals``), ``kl_1way`` (``mean``, ``max``), ``correlation_difference``
        (``mean``, ``max``, ``n_pairs``), ``c2st`` (``auc``, ``auc_null_se``, ``pmse``,
        ``pmse_max``, ``model``), ``duplicate_rate``, ``tstr`` (``target``, ``task``, ``metric``,
        ``test_on``, ``synthetic``, ``real``), ``plots`` (``marginals``: per-column 1-way
        proportions with labels; ``worst_pairs``: the 10 2-way marginals of largest TVD),
        ``sampling``, ``notes``, ``methods`` and, with ``groups``, ``groups``
        (:func:`privsynth.utility.groups.summarise`).

    Raises
    ------
    ConfigError
        A bad ``target``, ``seed``, ``max_rows`` or protected column.
    SchemaError, DataError
        A table does not fit the schema, or is empty.
    """
    tables = {"real": real, "synthetic": synthetic, "holdout": holdout}
    _check_args(schema, target, seed, max_rows, tables)
    if isinstance(min_cell, bool) or not isinstance(min_cell, int) or min_cell < 0:
        raise ConfigError(f"min_cell ({min_cell!r}) must be a whole number >= 0")
    by_group.check_groups(schema, list(groups))
    enc = Encoder(schema)
    sizes = list(enc.shape.values())
    valid = {name: schema.validate(df)[0] for name, df in tables.items() if df is not None}
    codes = _encode(enc, valid, max_rows, np.random.default_rng(seed))
    r, s = codes["real"], codes["synthetic"]
    notes: list[str] = []
    pairs = column_sets(range(len(sizes)), 2, max_sets=MAX_PAIRS, seed=seed)
    p_real = [proportions(r, c, sizes) for c in pairs]
    p_syn = [proportions(s, c, sizes) for c in pairs]
    tvd2 = np.array([tvd(p, q) for p, q in zip(p_real, p_syn, strict=True)])
    cells = by_group.cells(enc, codes, list(groups))
    tstr, scores = (
        _tstr(enc, codes, target, seed, notes, [c.test_mask for c in cells])
        if target is not None
        else (None, None)
    )
    one = [(c,) for c in range(len(sizes))]
    triples = column_sets(range(len(sizes)), 3, max_sets=MAX_TRIPLES, seed=seed)
    return UtilityReport(
        tvd={
            "1way": _summary(marginal_tvds(r, s, sizes, one), "n_marginals"),
            "2way": _summary(tvd2, "n_marginals"),
            "3way": _summary(marginal_tvds(r, s, sizes, triples), "n_marginals"),
        },
        kl_1way=_summary(kl_1way(r, s, sizes)),
        correlation_difference=_summary(
            _association_differences(enc, pairs, p_real, p_syn), "n_pairs"
        ),
        c2st=_c2st(enc, r, s, max_rows, seed, notes),
        duplicate_rate=float(valid["synthetic"].duplicated().mean()),
        tstr=tstr,
        baselines={"independent_columns": _independent(enc, r, len(s), pairs, p_real, seed)},
        plots={
            "marginals": [
                distribution(
                    codec,
                    proportions(r, [j], sizes),
                    proportions(s, [j], sizes),
                    real_rows=len(r),
                    min_cell=min_cell,
                )
                for j, codec in enumerate(enc.codecs)
            ],
            "worst_pairs": [
                {"columns": [enc.names[j] for j in pairs[i]], "tvd": float(tvd2[i])}
                for i in np.argsort(-tvd2, kind="stable")[:WORST_PAIRS]
            ],
        },
        sampling={
            "max_rows": max_rows,
            "seed": seed,
            "rows_used": "min(n, max_rows) rows of each table, drawn without replacement with "
            "the seed (duplicate_rate: all synthetic rows); the C2ST uses "
            "min(n_real, n_synthetic, max_rows // 4) rows of each",
        },
        notes=notes,
        groups=by_group.summarise(
            cells,
            scores,
            min_cell=min_cell,
            thresholds=bias or by_group.DEFAULT_THRESHOLDS,
            score={k: tstr[k] for k in ("target", "metric", "test_on")} if tstr else None,
        )
        if groups
        else None,
    )


def _check_args(
    schema: Schema,
    target: str | None,
    seed: int,
    max_rows: int,
    tables: dict[str, pd.DataFrame | None],
) -> None:
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 8:
        raise ConfigError(
            f"max_rows ({max_rows!r}) must be an integer >= 8 (the C2ST draws max_rows // 4 "
            "rows of each table)"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed ({seed!r}) must be a non-negative integer")
    for name, df in tables.items():
        if df is not None and len(df) == 0:
            raise DataError(f"the {name} table has no rows; utility needs rows on both sides")
    if target is None:
        return
    names = [c.name for c in schema.synthesised]
    if target not in names:
        raise ConfigError(
            f"target column {target!r} is not a synthesised column of the schema; "
            f"pick one of {names} or pass target=None"
        )
    for name, df in tables.items():
        if df is not None and target not in df.columns:
            raise ConfigError(f"target column {target!r} is missing from the {name} table")


def _encode(
    enc: Encoder, valid: dict[str, pd.DataFrame], max_rows: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Codes of each validated table, subsampled to ``max_rows`` rows when longer."""
    return {name: _subsample(enc.encode(df), max_rows, rng) for name, df in valid.items()}


def _subsample(codes: np.ndarray, max_rows: int, rng: np.random.Generator) -> np.ndarray:
    if len(codes) <= max_rows:
        return codes
    return codes[np.sort(rng.choice(len(codes), size=max_rows, replace=False))]


def _summary(values: np.ndarray, count_key: str | None = None) -> dict[str, float | int | None]:
    """Mean and max (None for no values), and the number of values under ``count_key``."""
    out: dict[str, float | int | None] = {"mean": None, "max": None}
    if len(values):
        out = {"mean": float(np.mean(values)), "max": float(np.max(values))}
    return out | ({count_key: len(values)} if count_key else {})


def _independent(
    enc: Encoder,
    real: np.ndarray,
    rows: int,
    pairs: list[tuple[int, ...]],
    p_real: list[np.ndarray],
    seed: int,
) -> dict[str, float | None]:
    """The independent-columns baseline: ``rows`` rows, each column drawn on its own from
    the real 1-way shares, and their mean 2-way TVD and association difference to the real
    table on the same pairs.

    Drawn rather than taken as the product of the shares, so that the baseline carries the
    sampling noise of a table as long as the synthetic one: a short synthetic table is not
    judged against a noiseless ideal."""
    sizes = [c.size for c in enc.codecs]
    rng = np.random.default_rng([seed, 1])  # a stream of its own: other draws are unchanged
    drawn = np.zeros((rows, len(sizes)), dtype=real.dtype)
    for j, size in enumerate(sizes):
        drawn[:, j] = rng.choice(size, size=rows, p=proportions(real, [j], sizes))
    p_drawn = [proportions(drawn, c, sizes) for c in pairs]
    tvds = [tvd(p, q) for p, q in zip(p_real, p_drawn, strict=True)]
    assoc = _association_differences(enc, pairs, p_real, p_drawn)
    return {
        "tvd_2way_mean": float(np.mean(tvds)) if tvds else None,
        "association_difference_mean": float(np.mean(assoc)) if len(assoc) else None,
    }


def _association_differences(
    enc: Encoder, pairs: list[tuple[int, ...]], p_real: list, p_syn: list
) -> np.ndarray:
    """|association(real) - association(synthetic)| for each column pair."""
    n_values = [None if c.labels is not None else c.n_values for c in enc.codecs]
    sizes = [c.size for c in enc.codecs]
    out = []
    for (i, j), p, q in zip(pairs, p_real, p_syn, strict=True):
        kinds = (n_values[i], n_values[j])
        a = association(p.reshape(sizes[i], sizes[j]), kinds)
        b = association(q.reshape(sizes[i], sizes[j]), kinds)
        out.append(abs(a - b))
    return np.array(out)


def _categorical_mask(enc: Encoder, columns: list[int]) -> np.ndarray:
    """Unordered categorical columns the classifier can split as categories."""
    return np.array(
        [
            enc.codecs[c].column.kind == "categorical"
            and enc.codecs[c].size <= classifiers.MAX_CATEGORIES
            for c in columns
        ],
        dtype=bool,
    )


def _c2st(
    enc: Encoder, real: np.ndarray, synthetic: np.ndarray, max_rows: int, seed: int, notes: list
) -> dict | None:
    n = min(len(real), len(synthetic), max_rows // 4)
    if n < 2:
        notes.append("c2st: too few rows for a held-out test (needs 2 of each table)")
        return None
    mask = _categorical_mask(enc, list(range(real.shape[1])))
    res = classifiers.c2st(real, synthetic, categorical=mask, n=n, seed=seed)
    return {
        "auc": res.auc,
        "auc_null_se": res.auc_null_se,
        "pmse": res.pmse,
        "pmse_max": 0.25,
        "model": classifiers.MODEL,
    }


def _tstr(
    enc: Encoder,
    codes: dict[str, np.ndarray],
    target: str,
    seed: int,
    notes: list,
    subsets: Sequence[np.ndarray] = (),
) -> tuple[dict[str, object], list[tuple[float | None, float | None]]]:
    """The TSTR result and, per boolean mask of ``subsets`` over the test rows, the two
    models' scores on those rows alone (the same two fits: a group's scores come from the
    models the overall score does)."""
    t = enc.names.index(target)
    feats = [j for j in range(len(enc.names)) if j != t]
    binary = enc.codecs[t].size == 2
    mask = _categorical_mask(enc, feats)
    test = codes.get("holdout", codes["real"])
    tests = [(test[:, feats], test[:, t])] + [(test[m][:, feats], test[m][:, t]) for m in subsets]

    def scores(train: np.ndarray) -> list[float | None]:
        return classifiers.fit_scores(
            train[:, feats], train[:, t], tests, categorical=mask, binary=binary, seed=seed
        )

    tstr = scores(codes["synthetic"])
    trtr = scores(codes["real"]) if "holdout" in codes else [None] * len(tests)
    if tstr[0] is None or ("holdout" in codes and trtr[0] is None):
        notes.append(
            f"tstr: a score is undefined (a training table, or for AUC the test table, "
            f"holds a single class of {target!r})"
        )
    result: dict[str, object] = {
        "target": target,
        "task": "binary" if binary else "multiclass",
        "metric": "roc_auc" if binary else "macro_f1",
        "test_on": "holdout" if "holdout" in codes else "real",
        "synthetic": tstr[0],
        "real": trtr[0],
    }
    return result, list(zip(tstr[1:], trtr[1:], strict=True))
