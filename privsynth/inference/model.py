"""A graphical model over a finite domain: log-potentials on cliques, exact marginals by belief
propagation on a junction tree, and sampling.

Pure post-processing: the model is built from noisy measurements and never sees data.
Tensors are laid out with axes in domain order (see :func:`junction_tree.canonical`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import pairwise

import numpy as np
import torch

from privsynth.device import resolve_device
from privsynth.inference import junction_tree as jt
from privsynth.inference.junction_tree import Clique, JunctionTree


@contextmanager
def one_cpu_thread() -> Iterator[None]:
    """Run torch's CPU ops on one intra-op thread inside the block, then restore the setting.

    The estimator makes thousands of small tensor ops; extra OpenMP threads barely speed them
    up on an idle machine and, when the cores are busy with other work, their spin-waiting
    wrecks throughput: on shared cores a fit runs many times slower with two threads than
    with one.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class GraphicalModel:
    """Log-linear model ``log p(x) = sum_c theta_c(x_c) - log Z`` over measured cliques.

    Parameters
    ----------
    domain
        Attribute -> number of codes, in axis order.
    cliques
        The cliques that carry potentials (each in domain order).
    total
        Estimated number of rows (a DP estimate: post-processing of noisy counts).
    """

    def __init__(
        self,
        domain: Mapping[str, int],
        cliques: Sequence[Sequence[str]],
        total: float,
        *,
        device: str | torch.device = "auto",
        dtype: torch.dtype = torch.float64,
    ) -> None:
        self.domain = dict(domain)
        self.cliques: list[Clique] = list(
            dict.fromkeys(jt.canonical(c, self.domain) for c in cliques)
        )
        self.total = float(total)
        self.device = resolve_device(device)
        self.dtype = dtype
        self.tree: JunctionTree = jt.build(self.cliques, self.domain)
        self._home = [self.tree.home(c) for c in self.cliques]
        self.iterations_ = 0  # L-BFGS evaluations of the last estimate() (0 before one)
        self.theta: list[torch.Tensor] = [
            torch.zeros(self._shape(c), device=self.device, dtype=dtype) for c in self.cliques
        ]

    # ------------------------------------------------------------------ tensors
    # Every potential, message and belief carries one leading batch axis: size 1, or one
    # slice per value of a clamped attribute (see marginals()).
    def _shape(self, clique: Sequence[str]) -> tuple[int, ...]:
        return tuple(self.domain[a] for a in clique)

    def _expand(self, t: torch.Tensor, sub: Clique, sup: Clique) -> torch.Tensor:
        """View batched ``t`` over ``sub`` broadcastable over ``sup`` (both in domain order)."""
        shape = [t.shape[0]] + [self.domain[a] if a in sub else 1 for a in sup]
        return t if list(t.shape) == shape else t.reshape(shape)

    @staticmethod
    def _reduce_dims(sup: Clique, keep: Sequence[str]) -> list[int]:
        return [i + 1 for i, a in enumerate(sup) if a not in keep]

    @staticmethod
    def _lse(t: torch.Tensor, dims: list[int]) -> torch.Tensor:
        return torch.logsumexp(t, dim=dims) if dims else t

    @staticmethod
    def _normalise(t: torch.Tensor) -> torch.Tensor:
        z = torch.logsumexp(t.reshape(t.shape[0], -1), dim=1)
        return t - z.reshape([-1] + [1] * (t.dim() - 1))

    # ------------------------------------------------------------------ inference
    def _potentials(self, evidence: Mapping[str, torch.Tensor] | None = None) -> list[torch.Tensor]:
        """Junction-tree log-potentials; ``evidence`` maps an attribute to log-masks of shape
        (batch, codes)."""
        terms: list[list[torch.Tensor]] = [[] for _ in self.tree.cliques]
        for c, home, th in zip(self.cliques, self._home, self.theta, strict=True):
            terms[home].append(self._expand(th.unsqueeze(0), c, self.tree.cliques[home]))
        for attr, log_mask in (evidence or {}).items():
            home = self.tree.home((attr,))
            terms[home].append(self._expand(log_mask, (attr,), self.tree.cliques[home]))
        psi = []
        for clique, ts in zip(self.tree.cliques, terms, strict=True):
            # A sum that starts from a term covering the whole clique needs no zeros tensor;
            # a junction-tree clique that triangulation merged from smaller ones has no such
            # term and starts from zeros.
            ts.sort(key=lambda t: -t.numel())
            full = (max(t.shape[0] for t in ts) if ts else 1, *self._shape(clique))
            if not ts or ts[0].shape != full:
                ts.insert(0, torch.zeros(full, device=self.device, dtype=self.dtype))
            psi.append(sum(ts[1:], ts[0]))
        return psi

    def beliefs(self, evidence: Mapping[str, torch.Tensor] | None = None) -> list[torch.Tensor]:
        """Normalised log-marginals of every junction-tree clique (two-pass sum-product)."""
        t = self.tree
        psi = self._potentials(evidence)
        full: list[torch.Tensor] = list(psi)  # psi plus the messages from the clique's children
        up: dict[int, torch.Tensor] = {}  # message child -> parent, over the separator
        for i in reversed(t.order):
            for ch in t.children(i):
                full[i] = full[i] + self._expand(up[ch], t.separator[ch], t.cliques[i])
            if t.parent[i] >= 0:
                up[i] = self._lse(full[i], self._reduce_dims(t.cliques[i], t.separator[i]))
        root = t.order[0]
        log_z = torch.logsumexp(full[root].reshape(full[root].shape[0], -1), dim=1)
        beliefs = list(full)
        beliefs[root] = full[root] - log_z.reshape([-1] + [1] * len(t.cliques[root]))
        for i in t.order[1:]:  # breadth first: a parent's belief is ready before its children's
            p, sep = t.parent[i], t.separator[i]
            # log belief_i = (full_i - up_i) + log p_parent(separator): the clique's
            # distribution given its separator times the parent's calibrated marginal on it.
            # Where clamped evidence leaves the clique's side no mass at a separator value,
            # up_i, the parent's marginal and every cell of full_i are -inf there: the
            # -inf - -inf = nan becomes 0, which leaves those cells at -inf.
            log_sep = self._lse(beliefs[p], self._reduce_dims(t.cliques[p], sep))
            given = torch.nan_to_num(log_sep - up[i], nan=0.0, posinf=torch.inf, neginf=-torch.inf)
            beliefs[i] = full[i] + self._expand(given, sep, t.cliques[i])
        return beliefs

    def project(
        self, beliefs: Sequence[torch.Tensor], cliques: Sequence[Sequence[str]]
    ) -> list[torch.Tensor]:
        """Probabilities over each of ``cliques`` (domain order) from calibrated (unbatched)
        beliefs; ``KeyError`` for a clique that no junction-tree clique holds.

        Each junction-tree clique's belief is exponentiated once and summed down for every
        query it is home to: one pass per query instead of a log-sum-exp's several. Beliefs
        are normalised log-probabilities (at most 0), so the exponential cannot overflow.
        """
        probs: dict[int, torch.Tensor] = {}
        out = []
        for clique in cliques:
            c = jt.canonical(clique, self.domain)
            home = self.tree.home(c)
            if home not in probs:
                probs[home] = beliefs[home][0].exp()
            dims = [d - 1 for d in self._reduce_dims(self.tree.cliques[home], c)]
            out.append(probs[home].sum(dim=dims) if dims else probs[home])
        return out

    def _log_marginal(self, beliefs: Sequence[torch.Tensor], i: int, keep: Clique) -> torch.Tensor:
        """log p(keep) from the (unbatched) belief of junction-tree clique ``i``."""
        return self._lse(beliefs[i], self._reduce_dims(self.tree.cliques[i], keep))[0]

    def _pair(self, beliefs: Sequence[torch.Tensor], a: str, b: str) -> torch.Tensor:
        """p(a, b) for a pair that no junction-tree clique holds, from calibrated beliefs.

        Along the tree path C_1 .. C_m from a's home to b's home, with separators
        S_k = C_k & C_{k+1} and S_m = {b}, the calibrated tree gives
        p(C_1 u .. u C_m) = p(C_1) prod_{k>1} p(C_k | S_{k-1}). Summing out clique by clique
        while keeping ``a``:
            phi_1(a, S_1) = p(a, S_1),
            phi_k(a, S_k) = sum over the rest of S_{k-1} of
                            phi_{k-1}(a, S_{k-1}) p(S_{k-1} u S_k | S_{k-1}),
        and phi_m = p(a, b). (``a`` lies in every path clique up to the last one holding it,
        so it is never summed out.) Each step touches a table over S_{k-1} u S_k only: far
        cheaper than a calibration of the whole tree for each value of ``a``.
        """
        t = self.tree
        path = t.path(t.home((a,)), t.home((b,)))
        seps = [set(t.cliques[i]) & set(t.cliques[j]) for i, j in pairwise(path)] + [{b}]
        keep = jt.canonical({a} | seps[0], self.domain)
        phi = self._log_marginal(beliefs, path[0], keep).exp()
        for i, (prev, nxt) in zip(path[1:], pairwise(seps), strict=True):
            u = jt.canonical(prev | nxt, self.domain)
            s = jt.canonical(prev, self.domain)
            log_u = self._log_marginal(beliefs, i, u)
            log_s = self._expand(self._log_marginal(beliefs, i, s)[None], s, u)[0]
            cond = torch.nan_to_num((log_u - log_s).exp(), nan=0.0)  # 0/0: an empty cell
            out = jt.canonical({a} | nxt, self.domain)
            letter = {x: chr(ord("a") + k) for k, x in enumerate(dict.fromkeys((*keep, *u)))}
            spec = (
                "".join(map(letter.__getitem__, keep)) + "," + "".join(map(letter.__getitem__, u))
            )
            phi = torch.einsum(spec + "->" + "".join(map(letter.__getitem__, out)), phi, cond)
            keep = out
        return phi

    def marginal(self, clique: Sequence[str]) -> np.ndarray:
        """Estimated counts over ``clique`` (domain order), flat, scaled to ``total``."""
        return self.marginals([clique])[0]

    def marginals(self, cliques: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """Estimated counts (flat, scaled to ``total``) for many cliques at once.

        Cliques inside a junction-tree clique are read off one calibration, other pairs
        along the tree path between their attributes (:meth:`_pair`), anything else by
        variable elimination.
        """
        with torch.no_grad():
            beliefs = self.beliefs()
            out = []
            for clique in cliques:
                c = jt.canonical(clique, self.domain)
                try:
                    [p] = self.project(beliefs, [c])
                except KeyError:
                    p = self._pair(beliefs, *c) if len(c) == 2 else self._eliminate(c)
                out.append((p.reshape(-1) * self.total).cpu().numpy())
        return out

    def _eliminate(self, query: Clique) -> torch.Tensor:
        """Probabilities over ``query`` by variable elimination (log space), greedy order."""
        factors = list(zip(self.tree.cliques, self._potentials(), strict=True))
        hidden = [a for a in self.domain if a not in query]
        while hidden:
            scopes = [c for c, _ in factors]
            v = min(
                hidden,
                key=lambda v: jt.cells(set().union(*(c for c in scopes if v in c)), self.domain),
            )
            hidden.remove(v)
            touching = [(c, f) for c, f in factors if v in c]
            factors = [(c, f) for c, f in factors if v not in c]
            union = jt.canonical(set().union(*(c for c, _ in touching)), self.domain)
            prod = sum(self._expand(f, c, union) for c, f in touching)
            # v lies in some clique (the tree covers the domain), so the sum has a tensor term
            assert isinstance(prod, torch.Tensor)
            prod = prod.expand((1, *self._shape(union)))
            keep = tuple(a for a in union if a != v)
            factors.append((keep, torch.logsumexp(prod, dim=union.index(v) + 1)))
        joint = sum(self._expand(f, c, query) for c, f in factors)
        assert isinstance(joint, torch.Tensor)  # factors holds at least one tensor
        joint = joint.expand((1, *self._shape(query)))
        return self._normalise(joint)[0].exp()

    # ------------------------------------------------------------------- sampling
    def sample(
        self,
        n: int,
        rng: np.random.Generator,
        conditions: Mapping[str, Sequence[int]] | None = None,
    ) -> np.ndarray:
        """``n`` rows of codes drawn from the model (columns in domain order).

        Rows are drawn clique by clique along the junction tree, each clique's new attributes
        given its separator. Within each group of rows that share a separator value the draw
        is stratified (see :func:`_stratified_uniforms`): every row still gets a value from the
        model's conditional distribution, independently of its other columns, but the group's
        counts are within one of their expectations, so the table follows the model's
        marginals closely instead of with multinomial noise.

        ``conditions`` maps an attribute to the codes it may take: the evidence is clamped in
        the model (other codes get probability zero) before sampling.
        """
        evidence = {}
        for attr, allowed in (conditions or {}).items():
            mask = torch.full(
                (1, self.domain[attr]), -torch.inf, device=self.device, dtype=self.dtype
            )
            mask[0, list(allowed)] = 0.0
            evidence[attr] = mask
        with torch.no_grad():
            beliefs = [b[0].exp().cpu().numpy() for b in self.beliefs(evidence)]
        names = list(self.domain)
        out = np.zeros((n, len(names)), dtype=np.int64, order="F")  # contiguous columns
        t = self.tree
        for i in t.order:
            clique, sep = t.cliques[i], t.separator[i]
            new = [a for a in clique if a not in sep]
            # Axes: separator first, then the new attributes; rows = separator cells.
            perm = [clique.index(a) for a in (*sep, *new)]
            table = beliefs[i].transpose(perm).reshape(jt.cells(sep, self.domain), -1)
            if sep:
                s = np.ravel_multi_index(
                    tuple(out[:, names.index(a)] for a in sep), self._shape(sep)
                )
            else:
                s = np.zeros(n, dtype=np.int64)
            r = _sample_rows(table, s, _stratified_uniforms(s, rng))
            for a, col in zip(new, np.unravel_index(r, self._shape(new)), strict=True):
                out[:, names.index(a)] = col
        return out

    # ---------------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        return {
            "domain": self.domain,
            "total": self.total,
            "cliques": [list(c) for c in self.cliques],
            "log_potentials": [th.reshape(-1).cpu().tolist() for th in self.theta],
        }

    @classmethod
    def from_dict(cls, data: Mapping, *, device: str | torch.device = "auto") -> GraphicalModel:
        model = cls(data["domain"], data["cliques"], data["total"], device=device)
        model.theta = [
            torch.tensor(v, device=model.device, dtype=model.dtype).reshape(model._shape(c))
            for c, v in zip(model.cliques, data["log_potentials"], strict=True)
        ]
        return model


def _stratified_uniforms(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniform per row, stratified within each group: the rows of a group of size m are
    put in a random order and the k-th gets (k + U) / m, with one U ~ U(0, 1) per group.

    Each row's value is still U(0, 1) (its rank is uniform on 0..m-1 and U is uniform), and
    independent of anything else about the row (the order is a fresh random permutation), so
    feeding these to an inverse CDF draws every row from its conditional distribution; but
    the m values cover [0, 1) evenly, so the number of rows landing in a cell of probability
    p is floor(m p) or ceil(m p) -- systematic sampling. (Assigning the rounded counts in a
    fixed order instead would tie the new column to the row order, i.e. to columns drawn
    before: false links between columns.)
    """
    n = len(groups)
    # A random permutation, then a stable sort by group: each group's rows in a uniformly
    # random order (as a sort on random keys would give, without its ties or its cost).
    shuffled = rng.permutation(n)
    order = shuffled[np.argsort(groups[shuffled], kind="stable")]
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    sizes = np.diff(np.r_[starts, n])
    rank = np.arange(n) - np.repeat(starts, sizes)
    u = np.empty(n)
    u[order] = (rank + np.repeat(rng.random(len(starts)), sizes)) / np.repeat(sizes, sizes)
    return u


def _sample_rows(table: np.ndarray, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """For each ``rows[k]``, the column of ``table`` where ``u[k]`` falls in the CDF of row
    ``table[rows[k]]`` (rows with no mass: uniform). One sorted search, no n x k matrix."""
    table = np.clip(table, 0.0, None)
    mass = table.sum(axis=1, keepdims=True)
    probs = np.where(mass > 0, table / np.where(mass > 0, mass, 1.0), 1.0 / table.shape[1])
    # Row s's CDF lives in [s, s+1): a global sorted array answers every row's draw at once.
    cdf = np.cumsum(probs, axis=1)
    cdf[:, -1] = 1.0
    flat = (cdf + np.arange(table.shape[0])[:, None]).reshape(-1)
    idx = np.searchsorted(flat, rows + u, side="right")
    return np.minimum(idx - rows * table.shape[1], table.shape[1] - 1)
