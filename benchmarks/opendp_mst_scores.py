"""Which score OpenDP's MST selects its tree by (run with the OpenDP anchor's virtualenv).

The MST paper scores a candidate pair (a, b) by the L1 error of the 1-way model's (a, b)
marginal: the sum over *all* cells of |exact - model|. This script fits OpenDP 0.16's
``dp.mbi.MST`` on the benchmark's Adult training split, records the error tables OpenDP
scores and the pairs it picks, and compares those picks with Kruskal's tree under two scores
of the same error tables: the entrywise L1 (the paper's) and numpy's ``norm(x, 1)`` of a 2-D
array, the matrix 1-norm (largest column sum of |error|), which is what OpenDP computes. It
also shows the tree that norm would give if the columns came in reverse order (the transposed
tables' matrix 1-norm, i.e. the largest row sum).

Usage (from the repository root)::

    benchmarks/.venvs/opendp/bin/python benchmarks/opendp_mst_scores.py [--runs 2]

Each run is one OpenDP MST fit at the benchmark's rho for epsilon 1 (about a minute).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import pandas as pd
from adult_split import DATA, adult

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "anchors"))
RHO_EPS1 = 0.014973  # privsynth's rho for (epsilon 1, delta 1e-9), rounded to 5 figures


def kruskal(scores: dict[tuple[str, str], float], columns: list[str]) -> list[tuple[str, str]]:
    """Maximum spanning tree of the score graph (what noise-free selection would pick)."""
    parent = {c: c for c in columns}

    def root(c: str) -> str:
        while parent[c] != c:
            c = parent[c]
        return c

    tree = []
    for (a, b), _ in sorted(scores.items(), key=lambda kv: -kv[1]):
        if root(a) != root(b):
            parent[root(a)] = root(b)
            tree.append((a, b))
    return tree


def fit_and_record(train: pd.DataFrame, domain: dict) -> tuple[dict, list[tuple[str, str]]]:
    """One OpenDP MST fit; returns {pair: error table OpenDP scored} and its picks in order."""
    import opendp.extras.mbi._mst as mst
    import opendp.prelude as dp
    import polars as pl
    import scipy.cluster.hierarchy as sch
    from opendp_mbi import _patch_prior

    dp.enable_features("contrib")
    _patch_prior()
    errors: list[np.ndarray] = []
    queries: list[tuple[str, str]] = []
    picks: list[tuple[str, str]] = []
    norm, make_scores, merge = np.linalg.norm, mst._make_mst_scores, sch.DisjointSet.merge

    def recording_norm(x, *args, **kwargs):
        if np.ndim(x) == 2:
            errors.append(np.array(x))
        return norm(x, *args, **kwargs)

    def recording_scores(input_domain, input_metric, qs, model):
        queries.extend(qs)
        return make_scores(input_domain, input_metric, qs, model)

    def recording_merge(self, a, b):
        picks.append((a, b))
        return merge(self, a, b)

    np.linalg.norm, mst._make_mst_scores, sch.DisjointSet.merge = (
        recording_norm,
        recording_scores,
        recording_merge,
    )
    try:
        context = dp.Context.compositor(
            data=pl.from_pandas(train.astype("int64")).lazy(),
            privacy_unit=dp.unit_of(contributions=1),
            privacy_loss=dp.loss_of(rho=RHO_EPS1),
        )
        keys = {c: list(range(k)) for c, k in domain.items()}
        context.query(rho=RHO_EPS1).contingency_table(keys=keys, algorithm=dp.mbi.MST()).release()
    finally:
        np.linalg.norm, mst._make_mst_scores, sch.DisjointSet.merge = norm, make_scores, merge
    assert len(errors) == len(queries), (len(errors), len(queries))
    return dict(zip(queries, errors, strict=True)), picks


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=2)
    args = p.parse_args()
    if not os.path.exists(DATA):
        sys.exit(f"benchmark data not found: {DATA} (the shared datasets beside the repository)")
    train, _, domain = adult()
    columns = list(domain)
    for run in range(args.runs):
        errors, picks = fit_and_record(train, domain)
        entrywise = {q: float(np.abs(e).sum()) for q, e in errors.items()}
        matrix = {q: float(np.abs(e).sum(axis=0).max()) for q, e in errors.items()}
        trees = {
            "entrywise L1": kruskal(entrywise, columns),
            "matrix 1-norm": kruskal(matrix, columns),
        }
        reversed_matrix = {
            (b, a): float(np.abs(e).sum(axis=1).max()) for (a, b), e in errors.items()
        }
        reversed_tree = kruskal(reversed_matrix, columns[::-1])
        print(f"# run {run}: OpenDP's picks, in order, with both scores of each pair")
        for q in picks:
            pair = f"{q[0]:>15} - {q[1]:<15}"
            print(f"  {pair} entrywise {entrywise[q]:8.0f}  matrix {matrix[q]:7.0f}")
        for name, tree in trees.items():
            same = len(set(tree) & set(picks))
            print(
                f"  Kruskal on the {name}: {same} of {len(picks)} pairs as OpenDP's; "
                f"income's neighbours {[a for a, b in tree if b == 'income>50K']}"
            )
        print(f"  OpenDP's income neighbours {[a for a, b in picks if b == 'income>50K']}")
        print(
            "  Kruskal on the matrix 1-norm, columns reversed: income's neighbours "
            f"{[b for a, b in reversed_tree if a == 'income>50K']}"
        )


if __name__ == "__main__":
    main()
