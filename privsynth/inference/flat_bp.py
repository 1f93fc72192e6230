"""Belief propagation batched by junction-tree level over one flat vector of cells: the
estimator's marginals in a few dozen tensor operations, however many cliques the model has.

The per-clique engine (:meth:`GraphicalModel.beliefs` and :meth:`GraphicalModel.project`)
makes a handful of tensor operations per junction-tree clique and per measurement. On a
small model each operation costs more to dispatch (on a GPU, to launch) than to run. Here all
cliques' cells sit in one vector, laid out level by level from the root. Each step of the two
passes handles a whole level at once: a gather (``index_select``) or a segment sum
(``index_add``) over index vectors computed once per model structure. A gather costs more
per cell than the per-clique engine's dense reductions, so :func:`estimate.estimate` takes
this path for small models only. On CUDA, ``index_add`` accumulates with atomic adds, whose
order varies: two estimates from the same measurements agree to rounding, not bit for bit.

Pure post-processing: it maps log-potentials to marginals and never sees data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from privsynth.inference import junction_tree as jt
from privsynth.inference.model import GraphicalModel


def cell_index(clique: jt.Clique, sub: Sequence[str], domain: Mapping[str, int]) -> np.ndarray:
    """For every cell of ``clique`` (row-major), the row-major index of its restriction to
    ``sub`` (a subset of ``clique``, domain order); all zeros for an empty ``sub``."""
    shape = tuple(domain[a] for a in clique)
    codes = np.indices(shape).reshape(len(shape), -1)
    if not sub:
        return np.zeros(codes.shape[1], dtype=np.int64)
    keep = tuple(codes[clique.index(a)] for a in sub)
    return np.ravel_multi_index(keep, tuple(domain[a] for a in sub)).astype(np.int64)


def segment_sum(x: torch.Tensor, segment: torch.Tensor, size: int) -> torch.Tensor:
    """out[s] = sum of x[k] over k with segment[k] = s."""
    return x.new_zeros(size).index_add(0, segment, x)


def segment_logsumexp(x: torch.Tensor, segment: torch.Tensor, size: int) -> torch.Tensor:
    """out[s] = log sum exp x[k] over k with segment[k] = s, for finite x and no empty segment.

    out[s] = m_s + log sum exp(x[k] - m_s) holds for any m_s; with m_s the segment's largest
    x[k], one term is exp(0) = 1, so the sum neither overflows nor underflows to 0. The
    identity holds for every m_s, so m_s is a constant to autograd and the gradient is exact.
    """
    with torch.no_grad():
        m = x.new_full((size,), -torch.inf).scatter_reduce(0, segment, x, "amax")
    shifted = torch.exp(x - m.index_select(0, segment))
    return segment_sum(shifted, segment, size).log() + m


class FlatBP:
    """``FlatBP(model, queries)(theta)``: the probabilities over each query clique,
    concatenated (each row-major in domain order), for log-potentials ``theta`` given as one
    flat vector in ``model.cliques`` order.

    With psi_C the sum of the log-potentials homed at junction-tree clique C, s_K(x) the
    separator cell of child K that a cell x of C restricts to, and u_K the message K sends up:

        upward, deepest level first:  b_C(x) = psi_C(x) + sum_K u_K(s_K(x)),
                                      u_C(s) = log sum_{x: s_C(x) = s} exp b_C(x);
        root R:                       beta_R = b_R - log sum exp b_R;
        downward, from the root:      beta_C(x) = b_C(x) - u_C(s) + log p_P(s),  s = s_C(x),
                                      log p_P(s) = log sum_{y in P: s_C(y) = s} exp beta_P(y).

    b_C - u_C is the clique's distribution given its separator, and p_P the parent's
    calibrated marginal on that separator, so beta_C is the clique's normalised log-marginal
    (the per-clique engine's downward pass is the same). The estimator clamps no evidence, so
    every b and u is finite and the subtraction never meets -inf - -inf (the per-clique
    engine, which clamps evidence when sampling, handles that case).
    """

    def __init__(self, model: GraphicalModel, queries: Sequence[jt.Clique]) -> None:
        tree, domain = model.tree, model.domain

        def cat(parts: list[np.ndarray]) -> torch.Tensor:
            flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
            return torch.as_tensor(flat, device=model.device)

        size = [jt.cells(c, domain) for c in tree.cliques]
        sep_size = [jt.cells(s, domain) for s in tree.separator]
        # Where each clique's cells (each separator's cells) start within its level's block.
        start, sep_start = [0] * len(size), [0] * len(size)
        self._cells, self._seps = [], []
        for level in tree.levels:
            at = sep_at = 0
            for i in level:
                start[i], sep_start[i] = at, sep_at
                at, sep_at = at + size[i], sep_at + sep_size[i]
            self._cells.append(at)
            self._seps.append(sep_at)
        level_start = np.cumsum([0, *self._cells])
        offset = [0] * len(size)  # in the whole flat vector
        for k, level in enumerate(tree.levels):
            for i in level:
                offset[i] = int(level_start[k]) + start[i]

        def cells_of(i: int, base: list[int]) -> np.ndarray:
            return base[i] + np.arange(size[i])

        # psi: each log-potential broadcast onto the cells of its home clique.
        theta_start = np.cumsum([0, *(jt.cells(c, domain) for c in model.cliques)])
        dst, src = [], []
        for k, c in enumerate(model.cliques):
            home = tree.home(c)
            dst.append(cells_of(home, offset))
            src.append(theta_start[k] + cell_index(tree.cliques[home], c, domain))
        self._psi_dst, self._psi_src, self._n = cat(dst), cat(src), int(level_start[-1])

        # Per level k: children's messages into the level's cells (up_dst from up_src of level
        # k + 1's separators), each cell's own separator cell (to_sep), and the parent's cells
        # gathered (from_parent, in level k - 1) with the separator cell each lands on.
        self._up_dst: list[torch.Tensor] = []
        self._up_src: list[torch.Tensor] = []
        self._to_sep: list[torch.Tensor] = []
        self._from_parent: list[torch.Tensor] = []
        self._parent_seg: list[torch.Tensor] = []
        for k, level in enumerate(tree.levels):
            up_dst, up_src, to_sep, from_parent, parent_seg = [], [], [], [], []
            for i in level:
                clique = tree.cliques[i]
                for child in tree.children(i):
                    up_dst.append(cells_of(i, start))
                    up_src.append(
                        sep_start[child] + cell_index(clique, tree.separator[child], domain)
                    )
                if k:
                    p = tree.parent[i]
                    to_sep.append(sep_start[i] + cell_index(clique, tree.separator[i], domain))
                    from_parent.append(cells_of(p, start))
                    parent_seg.append(
                        sep_start[i] + cell_index(tree.cliques[p], tree.separator[i], domain)
                    )
            for store, parts in zip(
                (self._up_dst, self._up_src, self._to_sep, self._from_parent, self._parent_seg),
                (up_dst, up_src, to_sep, from_parent, parent_seg),
                strict=True,
            ):
                store.append(cat(parts))

        # Queries: each summed down from the cells of its home clique.
        src, dst, at = [], [], 0
        for q in queries:
            home = tree.home(q)
            src.append(cells_of(home, offset))
            dst.append(at + cell_index(tree.cliques[home], q, domain))
            at += jt.cells(q, domain)
        self._query_src, self._query_dst, self._m = cat(src), cat(dst), at

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        psi = segment_sum(theta.index_select(0, self._psi_src), self._psi_dst, self._n)
        depth = len(self._cells)
        b: list[torch.Tensor] = list(psi.split(self._cells))
        up: list[torch.Tensor | None] = [None] * depth
        for k in reversed(range(depth)):
            if k + 1 < depth:
                child_up = up[k + 1]
                assert child_up is not None  # set when level k + 1 was done
                b[k] = b[k].index_add(0, self._up_dst[k], child_up.index_select(0, self._up_src[k]))
            if k:
                up[k] = segment_logsumexp(b[k], self._to_sep[k], self._seps[k])
        beliefs = [b[0] - torch.logsumexp(b[0], 0)]
        for k in range(1, depth):
            gathered = beliefs[k - 1].index_select(0, self._from_parent[k])
            log_p = segment_logsumexp(gathered, self._parent_seg[k], self._seps[k])
            up_k = up[k]
            assert up_k is not None  # the upward pass set it for every level k > 0
            beliefs.append(b[k] + (log_p - up_k).index_select(0, self._to_sep[k]))
        probs = torch.cat(beliefs).exp()
        return segment_sum(probs.index_select(0, self._query_src), self._query_dst, self._m)
