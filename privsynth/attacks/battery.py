"""One pass of every attack and distance diagnostic over a synthetic table, against prepared
training and holdout rows. The suite (:mod:`privsynth.attacks.suite`) runs it on the release
and, in its self-test, on planted leaky and null tables."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch

from privsynth.attacks import attribute, linkability, membership, singling_out
from privsynth.attacks.base import AttackResult
from privsynth.attacks.distance import MixedSpace, distance_diagnostics, nearest
from privsynth.attacks.policy import Policy
from privsynth.errors import DataError
from privsynth.schema import CATEGORICAL_KINDS, Schema

#: Synthetic rows (a uniform sample when there are more) whose distance to the closest
#: record is measured against the audit's training and holdout rows.
DCR_QUERIES = 10_000
#: Categorical quasi-identifiers with more codes are given to the model as ordinal codes.
MAX_MODEL_CATEGORIES = 250
#: Neighbours in the density-ratio attack's k-NN estimates.
DENSITY_K = membership.DENSITY_K


def at_most(requested: int, *sizes: int) -> int:
    """``requested``, or less when the data are smaller: the smallest size rounded *down* to
    two significant digits, so that a count we draw never reveals a private row count."""
    n = min(sizes)
    if n >= requested:
        return requested
    step = 10 ** max(0, len(str(n)) - 2)
    return max(1, n // step * step)


class Timer:
    """Wall-clock seconds per named step, summed over repeated calls."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    def __call__(self, name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        out = fn()
        self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - t0
        return out


def _exact_codes(
    frames: list[pd.DataFrame],
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Integer codes of the exact values (missing is a value) shared by ``frames``, and the
    number of distinct values per column."""
    lengths = np.cumsum([0, *(len(f) for f in frames)])
    joined = pd.concat([f.astype(object) for f in frames], ignore_index=True)
    codes = np.empty((len(joined), joined.shape[1]), dtype=np.int64)
    for j, name in enumerate(joined.columns):
        codes[:, j] = pd.factorize(joined[name], use_na_sentinel=False)[0]
    sizes = codes.max(0) + 1
    return tuple(codes[a:b] for a, b in zip(lengths, lengths[1:], strict=False)), sizes


def _dcr_queries(emb_syn: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The synthetic rows whose distances to the (full) reference sets are measured: all of
    them, or a uniform sample of ``DCR_QUERIES`` (the synthetic data is public)."""
    if len(emb_syn) <= DCR_QUERIES:
        return emb_syn
    return emb_syn[np.sort(rng.choice(len(emb_syn), DCR_QUERIES, replace=False))]


def dcr_diagnostics(
    emb_syn: np.ndarray,
    emb_train: np.ndarray,
    emb_holdout: np.ndarray | None,
    hashes: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    rng: np.random.Generator,
    device: torch.device,
) -> tuple[list[AttackResult], dict[str, Any], dict[str, Any]]:
    """Distance-to-closest-record diagnostics of (a sample of) the synthetic rows against the
    training rows and, when given, the holdout rows: results, summary, histogram."""
    queries = _dcr_queries(emb_syn, rng)
    to_tr, _ = nearest(queries, emb_train, 2, device=device)
    to_h = None if emb_holdout is None else nearest(queries, emb_holdout, 1, device=device)[0]
    return distance_diagnostics(to_tr, None if to_h is None else to_h[:, 0], hashes)


def row_hashes(df: pd.DataFrame) -> np.ndarray:
    """One hash per row of exact values: finds synthetic rows that copy a private row."""
    return pd.util.hash_pandas_object(df.astype(object), index=False).to_numpy()


@dataclass
class Battery:
    """The prepared inputs of one suite run (validated frames, embeddings, settings); each call
    of :meth:`attacks` attacks one synthetic table with them."""

    schema: Schema
    space: MixedSpace
    train: pd.DataFrame
    holdout: pd.DataFrame
    sensitive: list[str]
    quasi_identifiers: list[str]
    policy: Policy
    device: torch.device
    n_targets: int
    n_queries: int
    rng: np.random.Generator
    link_columns: tuple[list[str], list[str]] | None
    #: The person of each train and holdout row, in a person-level release.
    persons: tuple[np.ndarray, np.ndarray] | None = None

    def __post_init__(self) -> None:
        self.emb_train = self.space.embed(self.train)
        self.emb_holdout = self.space.embed(self.holdout)
        self.codes_train = self.space.codes(self.train)
        self.codes_holdout = self.space.codes(self.holdout)
        self.hashes = (row_hashes(self.train), row_hashes(self.holdout))

    def attacks(self, synthetic: pd.DataFrame, timer: Timer | None = None) -> dict[str, Any]:
        """Every attack and diagnostic on ``synthetic`` (validated): ``results`` (judged),
        ``roc`` points, distance ``summary`` and ``histogram``."""
        timer = timer or Timer()
        emb_syn = self.space.embed(synthetic)
        rng, dev = self.rng, self.device
        i_tr, i_h = self._pairs(self.n_targets)

        diag, summary, hist = timer(
            "distance_diagnostics",
            lambda: dcr_diagnostics(
                emb_syn,
                self.emb_train,
                self.emb_holdout,
                (row_hashes(synthetic), *self.hashes),
                rng,
                dev,
            ),
        )

        # Each target's distances to its nearest synthetic rows serve both membership attacks.
        def to_synthetic() -> tuple[np.ndarray, np.ndarray]:
            d_in, _ = nearest(self.emb_train[i_tr], emb_syn, DENSITY_K, device=dev)
            d_out, _ = nearest(self.emb_holdout[i_h], emb_syn, DENSITY_K, device=dev)
            return d_in, d_out

        members, non_members = timer("membership_distance", to_synthetic)
        results: list[AttackResult] = []
        roc: dict[str, list[dict]] = {}
        res, roc["membership_distance"] = timer(
            "membership_distance", lambda: membership.distance_attack(members, non_members)
        )
        results.append(res)

        def density() -> tuple:
            ref_in, _ = nearest(self.emb_train[i_tr], self.emb_holdout, DENSITY_K, device=dev)
            return membership.density_ratio_attack(
                (members, ref_in), (non_members, self._reference_of_holdout(i_h))
            )

        res, roc["membership_density_ratio"] = timer("membership_density_ratio", density)
        results.append(res)
        if self.persons is not None:
            res, roc["membership_person"] = timer(
                "membership_person", lambda: self._person_membership(emb_syn)
            )
            results.append(res)
        if self.sensitive:
            results += timer(
                "attribute_inference", lambda: self._inference(synthetic, emb_syn, i_tr, i_h)
            )
        if self.link_columns is not None:
            cols = self.link_columns
            groups = (self.space.features(cols[0]), self.space.features(cols[1]))
            results.append(
                timer(
                    "linkability",
                    lambda: linkability.linkability(
                        self.emb_train[i_tr], self.emb_holdout[i_h], emb_syn, groups, cols, dev
                    ),
                )
            )
        i_t, i_c = self._pairs(None)  # target and control sets of singling out
        # Univariate predicates test exact values; multivariate ones the schema's bins.
        exact = _exact_codes([synthetic, self.train.iloc[i_t], self.holdout.iloc[i_c]])
        binned = (self.space.codes(synthetic), self.codes_train[i_t], self.codes_holdout[i_c])
        sizes = np.array(list(self.space.encoder.shape.values()))
        for mode, ((syn, target, control), size) in (
            ("univariate", exact),
            ("multivariate", (binned, sizes)),
        ):
            results.append(
                timer(
                    f"singling_out_{mode}",
                    partial(
                        singling_out.singling_out,
                        syn,
                        target,
                        control,
                        size,
                        rng,
                        mode=mode,
                        n_queries=self.n_queries,
                    ),
                )
            )
        return {
            "results": diag + [self.policy.judge(r) for r in results],
            "roc": roc,
            "summary": summary,
            "histogram": hist,
        }

    def _pairs(self, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
        """As many training as holdout rows: all of the smaller side (``limit`` None), or at
        most ``limit`` (:func:`at_most`). With persons, one random row per person on each
        side: a person's rows are alike, the intervals assume independent targets, and
        whether a predicate singles out one record depends on how many rows each person has
        in the set."""
        if self.persons is None:
            pools = (np.arange(len(self.train)), np.arange(len(self.holdout)))
        else:
            pools = (
                self._one_row_per_person(self.persons[0]),
                self._one_row_per_person(self.persons[1]),
            )
        sizes = (len(pools[0]), len(pools[1]))
        n = min(sizes) if limit is None else at_most(limit, *sizes)
        return (
            self.rng.choice(pools[0], n, replace=False),
            self.rng.choice(pools[1], n, replace=False),
        )

    def _one_row_per_person(self, ids: np.ndarray) -> np.ndarray:
        order = self.rng.permutation(len(ids))
        return order[~pd.Series(ids[order]).duplicated().to_numpy()]

    def _reference_of_holdout(self, i_h: np.ndarray) -> np.ndarray:
        """Distances of holdout targets to their ``DENSITY_K`` nearest *other* holdout rows:
        without the row itself, and, with persons, without any row of the same person (their
        rows are alike, so they would make a non-member look dense in the population)."""
        if self.persons is None:
            return nearest(
                self.emb_holdout[i_h],
                self.emb_holdout,
                DENSITY_K,
                device=self.device,
                exclude_self=True,
            )[0]
        owner = pd.factorize(self.persons[1])[0]
        most = int(np.bincount(owner).max())  # a target's own rows are among the nearest most
        k = min(DENSITY_K + most, len(owner))
        dist, idx = nearest(self.emb_holdout[i_h], self.emb_holdout, k, device=self.device)
        other = owner[idx] != owner[i_h][:, None]
        if (other.sum(1) < DENSITY_K).any():
            raise DataError(
                f"the holdout needs more than {DENSITY_K} rows of other persons per target"
            )
        # The first DENSITY_K neighbours of other persons, in ascending order, row by row.
        rank = np.where(other, np.cumsum(other, axis=1), DENSITY_K + 1)
        return np.sort(np.where(rank <= DENSITY_K, dist, np.inf), axis=1)[:, :DENSITY_K]

    def _person_membership(self, emb_syn: np.ndarray) -> tuple[AttackResult, list[dict]]:
        """Membership of persons: as many member persons (from train) as non-member persons
        (from holdout), each with all their rows."""
        assert self.persons is not None
        owners = [pd.factorize(ids)[0] for ids in self.persons]
        n_p = at_most(self.n_targets, *(int(o.max(initial=-1)) + 1 for o in owners))
        sides = []
        for owner, emb in zip(owners, (self.emb_train, self.emb_holdout), strict=True):
            chosen = np.full(owner.max(initial=-1) + 1, -1)
            chosen[self.rng.choice(len(chosen), n_p, replace=False)] = np.arange(n_p)
            rows = np.flatnonzero(chosen[owner] >= 0)
            dist, _ = nearest(emb[rows], emb_syn, 1, device=self.device)
            sides.append((dist[:, 0], chosen[owner[rows]]))
        return membership.person_attack(sides[0], sides[1])

    def _inference(
        self, synthetic: pd.DataFrame, emb_syn: np.ndarray, i_tr: np.ndarray, i_h: np.ndarray
    ) -> list[AttackResult]:
        feats = self.space.features(self.quasi_identifiers)
        x_syn = emb_syn[:, feats]
        x_t = (self.emb_train[i_tr][:, feats], self.emb_holdout[i_h][:, feats])
        nn = [nearest(x, x_syn, 1, device=self.device)[1][:, 0] for x in x_t]
        q = [self.space.names.index(c) for c in self.quasi_identifiers]
        codes_syn = self.space.codes(synthetic)[:, q]
        codes_t = [self.codes_train[i_tr][:, q], self.codes_holdout[i_h][:, q]]
        categorical = np.array(
            [
                self.space.columns[j].kind in CATEGORICAL_KINDS
                and self.space.encoder.codecs[j].size <= MAX_MODEL_CATEGORIES
                for j in q
            ]
        )
        out = []
        for name in self.sensitive:
            col = self.space.columns[self.space.names.index(name)]
            truths = (self.train[name].iloc[i_tr], self.holdout[name].iloc[i_h])
            by_nn = tuple(synthetic[name].iloc[idx].reset_index(drop=True) for idx in nn)
            by_model = tuple(
                attribute.model_guesses(col, codes_syn, synthetic[name], codes_t, categorical)
            )
            for method, guesses in (("nn", by_nn), ("model", by_model)):
                out.append(
                    attribute.score_inference(
                        col, method, self.quasi_identifiers, guesses, truths, synthetic[name]
                    )
                )
        return out
