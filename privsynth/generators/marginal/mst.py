"""MST: Maximum-Spanning-Tree synthesis (McKenna, Miklau & Sheldon 2021, arXiv 2108.04978).

The mechanism, as in the paper, with its zCDP budget rho split over three steps (``split``;
the paper uses thirds, the default gives selection less, see DEFAULT_SPLIT):

1. measure every 1-way marginal with Gaussian noise (its share of rho split over the d
   columns in proportion to cells^(2/3), see :func:`allocate`; the paper splits evenly);
2. compress each column: values whose noisy count is below 3 sigma share one code
   (post-processing of step 1);
3. select d-1 pairs forming a tree: Kruskal's algorithm where each edge is picked by the
   exponential mechanism (its share split over d-1 picks), scored by how badly the 1-way
   model predicts that pair's 2-way marginal (L1 error; sensitivity 1);
4. measure the selected 2-way marginals with Gaussian noise (its share split over the d-1
   pairs by :func:`allocate`, on their compressed cells);
5. estimate a graphical model from all measurements (post-processing) and sample from it.

With a ``target`` (a column the synthetic data will be used to predict; public, named by the
user), the tree of step 3 spans the other columns and step 4 also measures the target's 2-way
marginal with every other column: a tree-augmented naive Bayes structure (Friedman, Geiger &
Goldszmidt 1997), so a model trained on the output sees each feature's relation to the target,
not only the one or two the tree gives it. The budget and its split are unchanged; the 2-way
share is spread over the 2d - 3 pairs instead of d - 1.

Only :meth:`privsynth.sources.table.EncodedTable.marginals` reads the encoded private
rows; every noisy step is a call into :mod:`privsynth.mechanisms`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from privsynth import mechanisms
from privsynth.budget.events import PrivacyEvent
from privsynth.errors import ConfigError
from privsynth.generators.base import FitPlan
from privsynth.generators.marginal.base import MarginalGenerator
from privsynth.generators.marginal.zeros import structural_zeros
from privsynth.generators.split import allocate
from privsynth.inference.estimate import Measurement, estimate
from privsynth.inference.model import GraphicalModel
from privsynth.schema import Schema
from privsynth.sources.table import EncodedTable, MappedTable

# A value is kept on its own when its noisy 1-way count reaches this many noise sds.
COMPRESS_SIGMAS = 3.0
# Shares of rho: 1-way measurements, tree selection, 2-way measurements. The paper uses thirds;
# selection is decided by large scores, so a small share suffices (OpenDP's MST also gives it
# little), and the rest buys less noise on the marginals (docs/generators.md compares).
DEFAULT_SPLIT = (0.5, 0.05, 0.45)


class Compression:
    """Per-column map from original codes to compressed codes (rare values share the last).

    Decoding a shared code draws one of its original values in proportion to the (clipped)
    noisy 1-way counts: post-processing of the step-1 measurement.
    """

    def __init__(
        self,
        kept: list[np.ndarray],
        rare: list[np.ndarray],
        rare_weights: list[np.ndarray],
        sizes: list[int],
    ) -> None:
        self.kept, self.rare, self.rare_weights, self.sizes = kept, rare, rare_weights, sizes
        self.forward: list[np.ndarray] = []
        for k, r, size in zip(kept, rare, sizes, strict=True):
            f = np.empty(size, dtype=np.int64)
            f[k] = np.arange(len(k))
            f[r] = len(k)
            self.forward.append(f)

    @classmethod
    def from_noisy(cls, noisy: list[np.ndarray], thresholds: list[float]) -> Compression:
        kept, rare, weights = [], [], []
        for y, threshold in zip(noisy, thresholds, strict=True):
            small = np.flatnonzero(y < threshold)
            if len(small) <= 1:  # merging one value changes nothing
                small = np.array([], dtype=np.int64)
            kept.append(np.setdiff1d(np.arange(len(y)), small))
            rare.append(small)
            w = np.clip(y[small], 0, None).astype(np.float64)
            weights.append(
                w / w.sum() if w.sum() > 0 else np.full(len(small), 1 / max(len(small), 1))
            )
        return cls(kept, rare, weights, [len(y) for y in noisy])

    def compressed_sizes(self) -> list[int]:
        return [len(k) + (1 if len(r) else 0) for k, r in zip(self.kept, self.rare, strict=True)]

    def compress_counts(self, j: int, y: np.ndarray) -> np.ndarray:
        """A 1-way vector on column ``j``'s compressed codes (rare cells summed)."""
        out = y[self.kept[j]].astype(np.float64)
        return np.append(out, y[self.rare[j]].sum()) if len(self.rare[j]) else out

    def sigmas(self, j: int, sigma: float) -> np.ndarray:
        """Noise sd of each cell of :meth:`compress_counts`: a sum of k noisy cells has sd
        sigma * sqrt(k)."""
        out = np.full(len(self.kept[j]), sigma)
        return np.append(out, sigma * np.sqrt(len(self.rare[j]))) if len(self.rare[j]) else out

    def decode(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = np.empty_like(codes)
        for j, (k, r, w) in enumerate(zip(self.kept, self.rare, self.rare_weights, strict=True)):
            c = codes[:, j]
            col = np.append(k, 0)[c]  # the shared rare code (len(k)) is redrawn below
            rare_rows = np.flatnonzero(c >= len(k))
            if len(rare_rows):
                col[rare_rows] = rng.choice(r, size=len(rare_rows), p=w)
            out[:, j] = col
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "sizes": self.sizes,
            "kept": [k.tolist() for k in self.kept],
            "rare": [r.tolist() for r in self.rare],
            "rare_weights": [w.tolist() for w in self.rare_weights],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Compression:
        def arr(xs: list[list[float]], t: type[np.generic]) -> list[np.ndarray]:
            return [np.asarray(x, dtype=t) for x in xs]

        return cls(
            arr(d["kept"], np.int64),
            arr(d["rare"], np.int64),
            arr(d["rare_weights"], np.float64),
            list(d["sizes"]),
        )


@dataclass(eq=False, repr=False, kw_only=True)
class MST(MarginalGenerator):
    """Differentially private synthetic data by the MST mechanism.

    Parameters
    ----------
    epsilon, delta
        The release's (epsilon, delta)-DP guarantee, converted to zCDP by the ledger's
        accountant. Choose delta without looking at the data (never 1/n).
    discovery_share
        Share of the zCDP budget (and of delta) spent learning undeclared domains and numeric
        encodings (if the schema has any).
    allow_data_dependent_domain
        Accept ``source: data`` domains (recorded as a DP caveat).
    device
        ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"`` for model estimation.
    iters
        Cap on belief-propagation calls during estimation.
    split
        Shares of rho for (1-way measurements, tree selection, 2-way measurements). The paper
        uses thirds; selection on real tables is decided by large scores, so a small share
        suffices and the rest buys less noise on the marginals.
    target
        A column to be predicted from the others (public: its name, not its values): its
        2-way marginal with every other column is measured too, and the tree spans the rest.
        A model trained on the output then sees each feature's relation to the target, not
        only the one or two the tree gives it (docs/generators.md). ``None``: MST as in the
        paper.

    Examples
    --------
    >>> from privsynth.datasets import load_adult
    >>> df, schema = load_adult()
    >>> mst = MST(epsilon=1.0, delta=1e-9).fit(df.head(3000), schema)   # doctest: +SKIP
    >>> mst.sample(5, seed=0).shape                                      # doctest: +SKIP
    (5, 15)
    """

    name: ClassVar[str] = "MST"

    split: tuple[float, float, float] = DEFAULT_SPLIT
    target: str | None = None

    def _check_params(self) -> None:
        super()._check_params()
        split = tuple(self.split)
        if len(split) != 3 or not all(s > 0 for s in split) or abs(sum(split) - 1) > 1e-9:
            raise ConfigError(f"split ({self.split!r}) must be three positive shares summing to 1")
        if self.target is not None and not (isinstance(self.target, str) and self.target):
            raise ConfigError(f"target ({self.target!r}) must be a column name or None")

    def _plan(self, schema: Schema) -> FitPlan:
        modelled = [c.name for c in schema.synthesised]
        if self.target is not None and self.target not in modelled:
            raise ConfigError(
                f"target ({self.target!r}) is not a synthesised column of the schema; "
                f"choose one of {modelled}"
            )
        return super()._plan(schema)

    def _fit_table(self, table: EncodedTable, rho: float, schema: Schema) -> list[PrivacyEvent]:
        names, sizes = list(table.shape), table.sizes
        d = len(names)
        # The tree spans every column but the target; the target is paired with all others.
        span = [j for j in range(d) if names[j] != self.target]
        star = [] if self.target is None else [(names.index(self.target), j) for j in span]
        picks = len(span) - 1
        # Shares of the steps that run (no selection with one column to span, no 2-way
        # measurement with one column), renormalised so that together they spend rho.
        runs = (True, picks > 0, picks > 0 or bool(star))
        split = [s if run else 0.0 for s, run in zip(self.split, runs, strict=True)]
        share_1, share_sel, share_2 = (s / sum(split) for s in split)
        rho_1 = rho * share_1
        charges: list[PrivacyEvent] = []

        # 1. 1-way marginals.
        noisy_1 = []
        rho_1s = allocate(rho_1, sizes)
        for j, true_1 in enumerate(table.marginals([(j,) for j in range(d)])):
            y, c = mechanisms.gaussian_counts(true_1, rho_1s[j])
            noisy_1.append(y)
            charges.append(c)
        sigma_1 = [mechanisms.gaussian_sd(r) for r in rho_1s]

        # 2. Compress rare values (post-processing).
        comp = Compression.from_noisy(noisy_1, [COMPRESS_SIGMAS * s for s in sigma_1])
        ccodes = MappedTable(table, comp.forward)
        csizes = comp.compressed_sizes()
        cdomain = dict(zip(names, csizes, strict=True))
        ones = [
            Measurement(
                (names[j],), comp.compress_counts(j, noisy_1[j]), comp.sigmas(j, sigma_1[j])
            )
            for j in range(d)
        ]

        # 3. Select a tree over the spanned columns.
        tree: list[tuple[int, int]] = []
        if picks:
            tree, sel_charges = _select_tree(ccodes, csizes, ones, rho * share_sel, span)
            charges += sel_charges
        # 4. Measure the tree's 2-way marginals (and the target's with every other column).
        pairs = [tuple(sorted(p)) for p in tree + star]
        two: list[Measurement] = []
        rho_2s = allocate(rho * share_2, [csizes[i] * csizes[j] for i, j in pairs]) if pairs else []
        for (i, j), rho_ij, true_2 in zip(pairs, rho_2s, ccodes.marginals(pairs), strict=True):
            y, c = mechanisms.gaussian_counts(true_2, rho_ij)
            sigma_2 = mechanisms.gaussian_sd(rho_ij)
            two.append(Measurement((names[i], names[j]), y.astype(np.float64), sigma_2))
            charges.append(c)

        # 5. Estimate (post-processing), with the cells the rules forbid held at zero.
        self.measurements_ = ones + two
        self.compression_ = comp
        self.model_ = estimate(
            self.measurements_,
            cdomain,
            iters=self.iters,
            device=self.device,
            init=_tree_init(ones, two[: len(tree)], cdomain),
            zeros=structural_zeros(schema, cdomain, comp.forward),
        )
        return charges

    def _sample_codes(
        self, n: int, rng: np.random.Generator, conditions: dict[str, list[int]]
    ) -> np.ndarray:
        names = list(self.model_.domain)
        cconds = {
            name: sorted({int(self.compression_.forward[names.index(name)][c]) for c in codes})
            for name, codes in conditions.items()
        }
        ccodes = self.model_.sample(n, rng, cconds)
        out = self.compression_.decode(ccodes, rng)
        for name, codes in conditions.items():
            # Only the shared rare code can decode to an unwanted value: redraw those rows
            # among the wanted rare values, by the same noisy-count weights.
            j = names.index(name)
            bad = ~np.isin(out[:, j], codes)
            if bad.any():
                rare, weights = self.compression_.rare[j], self.compression_.rare_weights[j]
                keep = np.isin(rare, codes)
                p = weights[keep]
                p = p / p.sum() if p.sum() > 0 else np.full(keep.sum(), 1 / keep.sum())
                out[bad, j] = rng.choice(rare[keep], size=int(bad.sum()), p=p)
        return out

    def _estimated_rows(self) -> int:
        return max(0, int(round(self.model_.total)))

    def _state(self) -> dict[str, Any]:
        return {
            "compression": self.compression_.to_dict(),
            "model": self.model_.to_dict(),
            "measurements": [m.to_dict() for m in self.measurements_],
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        self.compression_ = Compression.from_dict(state["compression"])
        self.model_ = GraphicalModel.from_dict(state["model"], device=self.device)
        self.measurements_ = [Measurement.from_dict(m) for m in state["measurements"]]


def _tree_init(
    ones: list[Measurement], two: list[Measurement], domain: dict[str, int]
) -> dict[tuple[str, ...], np.ndarray]:
    """Starting log-potentials of the tree factorisation p(x) = prod p_ij / prod p_i^(deg_i-1)
    from the clipped, normalised noisy 2-way marginals, exact when they are consistent, so
    the estimator starts near its optimum. Each p_i is the mean of the p_ij marginalised to
    i (dividing by the separately measured 1-way would blow up noise at degree > 2).
    Post-processing."""

    def normalise(y: np.ndarray) -> np.ndarray:
        p = np.clip(y, 0, None) + 0.5  # half a count keeps empty cells finite
        return p / p.sum()

    edge_p = {
        m.clique: normalise(m.values).reshape(domain[m.clique[0]], domain[m.clique[1]]) for m in two
    }
    init = {c: np.log(p).ravel() for c, p in edge_p.items()}
    for m in ones:
        (a,) = m.clique
        parts = [p.sum(axis=1 - c.index(a)) for c, p in edge_p.items() if a in c]
        if parts:
            init[m.clique] = -(len(parts) - 1) * np.log(np.mean(parts, axis=0))
        else:
            init[m.clique] = np.log(normalise(m.values))
    return init


def _select_tree(
    table: EncodedTable,
    sizes: list[int],
    ones: list[Measurement],
    rho: float,
    columns: list[int],
) -> tuple[list[tuple[int, int]], list[PrivacyEvent]]:
    """Kruskal's algorithm over ``columns`` with each edge chosen by the exponential mechanism.

    Score of pair (i, j): || M_ij(data) - M_ij(independent 1-way model) ||_1. The model part
    comes from noisy measurements; adding or removing a row moves M_ij by one count in one
    cell, so each score has sensitivity 1. The len(columns) - 1 picks share ``rho``.
    """
    probs = []
    for m in ones:
        p = np.clip(m.values, 0, None)
        probs.append(p / p.sum() if p.sum() > 0 else np.full(len(p), 1 / len(p)))
    total = max(1.0, float(np.mean([np.sum(m.values) for m in ones])))
    pairs = list(itertools.combinations(columns, 2))
    scores = np.array(
        [
            np.abs(true_2 - total * np.outer(probs[i], probs[j]).ravel()).sum()
            for (i, j), true_2 in zip(pairs, table.marginals(pairs), strict=True)
        ]
    )
    picks = len(columns) - 1
    component = list(range(len(sizes)))
    tree: list[tuple[int, int]] = []
    charges: list[PrivacyEvent] = []
    for _ in range(picks):
        open_idx = [k for k, (i, j) in enumerate(pairs) if component[i] != component[j]]
        pick, charge = mechanisms.select_max(scores[open_idx], sensitivity=1.0, rho=rho / picks)
        i, j = pairs[open_idx[pick]]
        old, new = component[j], component[i]
        component = [new if c == old else c for c in component]
        tree.append((i, j))
        charges.append(charge)
    return tree, charges
