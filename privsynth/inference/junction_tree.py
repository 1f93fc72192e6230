"""Junction trees: the structure belief propagation runs on.

Pure post-processing: this module sees attribute names and domain sizes, never data.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import combinations

Clique = tuple[str, ...]


def canonical(clique: Collection[str], domain: Mapping[str, int]) -> Clique:
    """The clique with its attributes in domain order (the axis order of every tensor)."""
    order = {a: i for i, a in enumerate(domain)}
    missing = [a for a in clique if a not in order]
    if missing:
        raise KeyError(f"attributes {missing} are not in the domain")
    return tuple(sorted(set(clique), key=order.__getitem__))


def cells(clique: Iterable[str], domain: Mapping[str, int]) -> int:
    return math.prod(domain[a] for a in clique)


@dataclass(frozen=True)
class JunctionTree:
    """Maximal cliques of a triangulation and the tree joining them.

    ``order`` lists clique indices root first (breadth first); ``parent[i]`` is the parent of
    clique ``i`` (``-1`` for the root); ``separator[i]`` the attributes it shares with it.
    :func:`build` roots the tree at a centre, so it has as few levels as it can.
    """

    cliques: tuple[Clique, ...]
    parent: tuple[int, ...]
    order: tuple[int, ...]
    separator: tuple[Clique, ...]

    @cached_property
    def _children(self) -> tuple[tuple[int, ...], ...]:
        return tuple(
            tuple(j for j, p in enumerate(self.parent) if p == i) for i in range(len(self.cliques))
        )

    def children(self, i: int) -> tuple[int, ...]:
        return self._children[i]

    @cached_property
    def levels(self) -> tuple[tuple[int, ...], ...]:
        """Clique indices by depth: ``levels[0]`` holds the root, ``levels[k]`` the cliques k
        steps below it, each level in breadth-first order."""
        depth = [0] * len(self.cliques)
        for i in self.order[1:]:
            depth[i] = depth[self.parent[i]] + 1
        return tuple(tuple(i for i in self.order if depth[i] == k) for k in range(max(depth) + 1))

    def home(self, clique: Sequence[str]) -> int:
        """Index of the smallest junction-tree clique that contains ``clique``."""
        key = frozenset(clique)
        cache = self.__dict__.setdefault("_homes", {})
        if key not in cache:
            homes = [i for i, c in enumerate(self.cliques) if key <= set(c)]
            if not homes:
                raise KeyError(f"no junction-tree clique contains {tuple(clique)}")
            cache[key] = min(homes, key=lambda i: len(self.cliques[i]))
        return cache[key]

    def path(self, i: int, j: int) -> list[int]:
        """Clique indices on the tree path from ``i`` to ``j``, both included."""

        def to_root(k: int) -> list[int]:
            out = [k]
            while self.parent[out[-1]] >= 0:
                out.append(self.parent[out[-1]])
            return out

        up_i, up_j = to_root(i), to_root(j)
        on_j = set(up_j)
        meet = next(k for k in up_i if k in on_j)  # the lowest common ancestor
        return up_i[: up_i.index(meet) + 1] + up_j[: up_j.index(meet)][::-1]

    def size(self, domain: Mapping[str, int]) -> int:
        """Total cells over all cliques: the model's memory footprint in numbers."""
        return sum(cells(c, domain) for c in self.cliques)


def build(cliques: Sequence[Sequence[str]], domain: Mapping[str, int]) -> JunctionTree:
    """Triangulate the graph of ``cliques`` (every domain attribute is a node) greedily and
    join the maximal cliques into a tree.

    Elimination order: repeatedly eliminate the attribute whose elimination clique has the
    fewest cells (ties: fewest fill-in edges). The tree is a maximum spanning tree of the
    clique graph weighted by separator size, which has the running-intersection property.
    """
    adj: dict[str, set[str]] = {a: set() for a in domain}
    for c in cliques:
        for a, b in combinations(canonical(c, domain), 2):
            adj[a].add(b)
            adj[b].add(a)

    elim_cliques: list[frozenset[str]] = []
    remaining = dict(adj)
    while remaining:

        def cost(v: str) -> tuple[int, int]:
            nb = remaining[v]
            fill = sum(1 for a, b in combinations(nb, 2) if b not in remaining[a])
            return cells((v, *nb), domain), fill

        v = min(remaining, key=cost)
        nb = remaining.pop(v)
        elim_cliques.append(frozenset((v, *nb)))
        for a, b in combinations(nb, 2):
            remaining[a].add(b)
            remaining[b].add(a)
        for a in nb:
            remaining[a].discard(v)

    maximal = [c for c in elim_cliques if not any(c < o for o in elim_cliques)]
    maximal = list(dict.fromkeys(maximal))  # drop duplicates, keep order
    jt_cliques = tuple(canonical(c, domain) for c in maximal)

    # Kruskal on the clique graph, heaviest separators first; weight-0 edges join components.
    n = len(jt_cliques)
    edges = sorted(
        (
            (len(set(jt_cliques[i]) & set(jt_cliques[j])), i, j)
            for i, j in combinations(range(n), 2)
        ),
        key=lambda e: -e[0],
    )
    root_of = list(range(n))

    def find(i: int) -> int:
        while root_of[i] != i:
            root_of[i] = root_of[root_of[i]]
            i = root_of[i]
        return i

    nbrs: dict[int, list[int]] = {i: [] for i in range(n)}
    for _, i, j in edges:
        ri, rj = find(i), find(j)
        if ri != rj:
            root_of[ri] = rj
            nbrs[i].append(j)
            nbrs[j].append(i)

    def breadth_first(root: int) -> tuple[list[int], list[int], int]:
        """Visiting order, parents and depth of the tree walked from ``root``."""
        parent, depth, order = [-1] * n, [0] * n, [root]
        for i in order:  # `order` grows while we walk it
            for j in nbrs[i]:
                if j != root and parent[j] < 0:
                    parent[j], depth[j] = i, depth[i] + 1
                    order.append(j)
        return order, parent, max(depth)

    # Root at a centre (the clique whose farthest clique is nearest): the fewest tree levels,
    # and level-batched belief propagation (flat_bp.py) runs one round of tensor ops per level.
    order, parent, _ = min((breadth_first(r) for r in range(n)), key=lambda walk: walk[2])
    separator = tuple(
        canonical(set(jt_cliques[i]) & set(jt_cliques[p]), domain) if p >= 0 else ()
        for i, p in enumerate(parent)
    )
    return JunctionTree(jt_cliques, tuple(parent), tuple(order), separator)
