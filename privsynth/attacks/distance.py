"""One mixed-type distance, and batched nearest neighbours in torch.

Each row is embedded so that the squared Euclidean distance between two embeddings is

* for a categorical/ordinal column: 1 when the values differ, 0 when equal (one-hot scaled by
  ``1/sqrt(2)``); a missing value is one more category;
* for a numeric/datetime column: ``((a - b) / (upper - lower))**2`` with the schema's public
  bounds (values clipped to them); a missing value is an indicator of weight 1 (its numeric
  part sits mid-range), so missing against present costs between 1 and 1.25.

The distance is the square root of the sum over columns. Nearest neighbours are found with a
chunked matrix product (``|q|^2 + |r|^2 - 2 q.r``) in float32 on CPU or CUDA; the returned
distances of the chosen neighbours are recomputed exactly in float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from privsynth.attacks.base import AttackResult
from privsynth.attacks.stats import wilson
from privsynth.encoding import Encoder, numeric_values
from privsynth.errors import ConfigError, DataError
from privsynth.schema import CATEGORICAL_KINDS, DEFAULT_BINS, Column, Schema, canonical_series

#: Working memory for one block of the distance matrix (float32 entries).
CHUNK_BYTES = 32 * 2**20


class MixedSpace:
    """The embedding of validated rows for the mixed-type distance.

    Domains come from the schema. A column the schema leaves undeclared (to be learned with
    DP) takes its categories from the values seen in ``frames``, and its bounds from the
    *synthetic* frame (released, hence public); this only shapes the distance, nothing of it
    is reported.

    Parameters
    ----------
    schema
        The schema (only synthesised columns are used).
    frames
        Validated frames whose values must all be embeddable; the first is the synthetic one.
    """

    def __init__(self, schema: Schema, frames: Sequence[pd.DataFrame]) -> None:
        self.columns = tuple(_resolve(c, frames) for c in schema.synthesised)
        self.encoder = Encoder(Schema(columns=self.columns))
        self.slices: dict[str, slice] = {}
        start = 0
        for col in self.columns:
            if col.kind in CATEGORICAL_KINDS:
                assert col.categories is not None  # _resolve gave every such column categories
                width = len(col.categories) + int(col.nullable)
            else:
                width = 1 + int(col.nullable)
            self.slices[col.name] = slice(start, start + width)
            start += width
        self.dim = start

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def features(self, columns: Sequence[str]) -> np.ndarray:
        """Indices of the embedding dimensions that belong to ``columns``."""
        unknown = [c for c in columns if c not in self.slices]
        if unknown:
            raise ConfigError(f"column(s) {unknown} are not synthesised columns of the schema")
        return np.concatenate([np.arange(self.dim)[self.slices[c]] for c in columns])

    def codes(self, df: pd.DataFrame) -> np.ndarray:
        """Integer codes per column (schema bins; missing is its own code)."""
        return self.encoder.encode(df)

    def embed(self, df: pd.DataFrame) -> np.ndarray:
        """The ``(n_rows, dim)`` float32 embedding of a validated frame."""
        out = np.zeros((len(df), self.dim), dtype=np.float32)
        for col in self.columns:
            sl = self.slices[col.name]
            s = df[col.name]
            isna = s.isna().to_numpy()
            if col.kind in CATEGORICAL_KINDS:
                assert col.categories is not None  # _resolve gave every such column categories
                idx = pd.Index(col.categories).get_indexer(canonical_series(s))
                if ((idx < 0) & ~isna).any() or (isna.any() and not col.nullable):
                    raise DataError(
                        f"column {col.name!r} holds a value (or a missing value) this distance "
                        "was not built for; build MixedSpace with every frame it will embed"
                    )
                idx = np.where(isna, len(col.categories), idx)
                out[np.arange(len(df)), sl.start + idx] = np.sqrt(0.5)
            else:
                lo, hi = col.bound_values()
                vals = numeric_values(col, s)
                scaled = np.clip((vals - lo) / (hi - lo), 0.0, 1.0)
                out[:, sl.start] = np.where(isna, 0.5, scaled)
                if col.nullable:
                    out[:, sl.start + 1] = isna
        return out


def _resolve(col: Column, frames: Sequence[pd.DataFrame]) -> Column:
    """The column with a usable domain (see :class:`MixedSpace`)."""
    nullable = col.nullable or any(f[col.name].isna().any() for f in frames)
    if col.kind in CATEGORICAL_KINDS:
        cats = list(col.categories or ())
        seen = set(cats)
        for f in frames:
            for v in pd.unique(canonical_series(f[col.name].dropna())):
                if v not in seen:
                    seen.add(v)
                    cats.append(v)
        if not cats:
            cats = ["(none)"]
        return replace(col, categories=tuple(cats), nullable=nullable, source="public")
    if col.lower is not None:
        return _binned(replace(col, nullable=nullable))
    vals = numeric_values(col, frames[0][col.name])
    vals = vals[np.isfinite(vals)]
    if not len(vals):
        raise DataError(
            f"column {col.name!r} has no bounds in the schema and no values in the synthetic "
            "data; declare 'lower' and 'upper' in the schema"
        )
    lo, hi = float(vals.min()), float(vals.max())
    hi = hi if hi > lo else lo + 1.0
    if col.kind == "datetime":
        lo_s, hi_s = pd.Timestamp(int(lo)).isoformat(), pd.Timestamp(int(hi)).isoformat()
        return _binned(replace(col, lower=lo_s, upper=hi_s, nullable=nullable, edges=None))
    return _binned(replace(col, lower=lo, upper=hi, nullable=nullable, edges=None))


def _binned(col: Column) -> Column:
    """Equal-width public bins where the schema leaves the encoding to be learned: the
    distance's codes only need some public binning, not the model's."""
    if not col.needs_learned_encoding:
        return col
    return replace(col, bins=DEFAULT_BINS, point_masses=None)


def _exact(queries: np.ndarray, reference: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Float64 distances from each query row to the reference rows ``idx[i]``."""
    out = np.empty(idx.shape, dtype=np.float64)
    step = max(1, 2**22 // max(1, idx.shape[1] * queries.shape[1]))
    for s in range(0, len(queries), step):
        diff = queries[s : s + step, None, :].astype(np.float64) - reference[idx[s : s + step]]
        out[s : s + step] = np.sqrt((diff * diff).sum(-1))
    return out


def _sorted(dist: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(dist, axis=1, kind="stable")
    return np.take_along_axis(dist, order, 1), np.take_along_axis(idx, order, 1)


def _smallest(d2: torch.Tensor, k: int) -> torch.Tensor:
    """Row-wise indices of the k smallest entries (``min`` is faster for k = 1)."""
    if k == 1:
        return d2.argmin(1, keepdim=True)
    return torch.topk(d2, k, dim=1, largest=False, sorted=False).indices


def nearest(
    queries: np.ndarray,
    reference: np.ndarray,
    k: int = 1,
    *,
    device: torch.device | None = None,
    exclude_self: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest reference rows of every query row, with their distances.

    Parameters
    ----------
    queries, reference
        Embeddings (``MixedSpace.embed``, possibly restricted to some columns' features).
    k
        Neighbours per query.
    exclude_self
        Queries are rows of ``reference`` itself: drop each query's own match (one neighbour
        at distance 0 is dropped, which is the row itself or an identical copy).

    Returns
    -------
    dist, idx
        ``(n_queries, k)`` float64 distances (ascending) and int64 reference indices.
    """
    device = device or torch.device("cpu")
    extra = int(exclude_self)
    kk = k + extra
    if kk > len(reference):
        raise ConfigError(f"k ({k}) exceeds the reference rows available ({len(reference)})")
    ref = torch.as_tensor(reference, dtype=torch.float32, device=device)
    ref_sq = (ref * ref).sum(1)
    chunk = max(1, CHUNK_BYTES // (4 * max(1, len(reference))))
    idx_out = np.empty((len(queries), kk), dtype=np.int64)
    for start in range(0, len(queries), chunk):
        q = torch.as_tensor(queries[start : start + chunk], dtype=torch.float32, device=device)
        d2 = torch.addmm(ref_sq[None, :], q, ref.T, alpha=-2.0)
        # |q|^2 is constant along a row, so it is left out of the ranking.
        idx_out[start : start + chunk] = _smallest(d2, kk).cpu().numpy()
    # Exact float64 distances of the chosen neighbours, then sorted.
    dist, idx_out = _sorted(_exact(queries, reference, idx_out), idx_out)
    return dist[:, extra:], idx_out[:, extra:]


# ------------------------------------------------------------------ diagnostics
DCR_PERCENTILES = (1, 5, 25, 50, 75, 95)
HIST_BINS = 40

DCR_THREAT = (
    "Diagnostic, not an attack: how close synthetic records sit to training records compared "
    "with holdout records (Stadler et al. 2022: distances alone can mislead)."
)


def distance_diagnostics(
    to_train: np.ndarray,
    to_holdout: np.ndarray | None,
    hashes: tuple[np.ndarray, np.ndarray, np.ndarray | None],
) -> tuple[list[AttackResult], dict, dict]:
    """Distance to closest record, NNDR and exact matches of every synthetic row.

    Parameters
    ----------
    to_train
        ``(n_queries, 2)`` distances of synthetic rows (all, or a uniform sample) to their two
        nearest training rows, over all the training rows given.
    to_holdout
        ``(n_queries,)`` distances of the same rows to the closest holdout row (all holdout
        set), or None.
    hashes
        Per-row hashes of the validated synthetic (all rows), training and holdout frames.

    Returns
    -------
    results, summary, histogram
        Diagnostic results (``passed`` is None), percentiles, and synthetic-row counts per
        distance bin over shared bin edges.
    """
    dcr_tr = to_train[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        nndr = np.where(to_train[:, 1] > 0, to_train[:, 0] / to_train[:, 1], 1.0)
    n_q, n_syn = len(to_train), len(hashes[0])
    n_tr, n_h = len(hashes[1]), len(hashes[2]) if hashes[2] is not None else 0
    match_tr = int(np.isin(hashes[0], hashes[1]).sum())

    def percentiles(d: np.ndarray) -> dict[str, float]:
        return {f"p{p}": float(np.percentile(d, p)) for p in DCR_PERCENTILES}

    summary: dict = {
        "dcr_train_percentiles": percentiles(dcr_tr),
        "dcr_holdout_percentiles": None,
        "nndr_percentiles": percentiles(nndr),
        "n_synthetic_queries": n_q,
        "reference_sets": "the audit's training and holdout rows (see settings)",
    }
    results = []
    if to_holdout is not None:
        summary["dcr_holdout_percentiles"] = percentiles(to_holdout)
        closer = int((dcr_tr < to_holdout).sum()) + 0.5 * int((dcr_tr == to_holdout).sum())
        # If synthetic rows do not depend on which rows were drawn into training, the closest
        # record in train U holdout is equally likely to be any of them.
        results.append(
            AttackResult(
                name="dcr_closer_to_train",
                threat_model=DCR_THREAT,
                metric="share_of_synthetic_rows_closer_to_train",
                value=closer / n_q,
                ci=wilson(round(closer), n_q),
                baseline=round(n_tr / (n_tr + n_h), 2),  # coarse: the sizes are private
                details={"ties": "count one half", "baseline": "train / (train + holdout)"},
            )
        )
    match_h = int(np.isin(hashes[0], hashes[2]).sum()) if hashes[2] is not None else None
    results.append(
        AttackResult(
            name="exact_match_rate",
            threat_model=DCR_THREAT,
            metric="share_of_synthetic_rows_identical_to_a_training_row",
            value=match_tr / n_syn,
            ci=wilson(match_tr, n_syn),
            baseline=match_h / n_syn if match_h is not None else float("nan"),
            details={
                "baseline": "share identical to a holdout row",
                "caveat": "exact matches miss perturbed copies; see the membership attacks",
            },
        )
    )
    hi = float(np.percentile(dcr_tr, 99))
    if to_holdout is not None:
        hi = max(hi, float(np.percentile(to_holdout, 99)))
    edges = np.linspace(0.0, hi if hi > 0 else 1.0, HIST_BINS + 1)

    def counts(d: np.ndarray) -> list[int]:
        return np.histogram(np.clip(d, 0, edges[-1]), edges)[0].tolist()

    hist = {
        "bin_edges": edges.tolist(),
        "train": counts(dcr_tr),
        "holdout": counts(to_holdout) if to_holdout is not None else None,
        "what": "synthetic rows per distance-to-closest-record bin; the last bin holds the rest",
    }
    return results, summary, hist
