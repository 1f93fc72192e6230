"""MST on top of the newest ``mbi`` (Private-PGM 2.x) under the shared harness.

mbi 2.x ships the estimation machinery only (no MST mechanism), so this file holds a thin
measurement layer following the MST paper (McKenna, Miklau & Sheldon 2021): the zCDP budget
``rho`` (passed by the runner, the same rho privsynth uses) is split in thirds over
(1) Gaussian 1-way marginals, (2) exponential-mechanism picks of the d-1 tree edges scored by
the L1 error of the 1-way model, (3) Gaussian 2-way marginals on the picked edges; then
``mbi.estimation.MirrorDescent`` fits the graphical model and ``synthetic_data(method=...)``
samples it. Simplification: no domain compression of rare values (the paper's step 2).
"""

from __future__ import annotations

import itertools
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from _driver import main, options  # noqa: E402


def fit(train, domain, args):
    import importlib.metadata

    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_enable_compilation_cache", False)
    import numpy as np
    from mbi import Dataset, Domain, LinearMeasurement
    from mbi.estimation import MirrorDescent

    if args.algo != "mst":
        raise SystemExit("mbi driver implements MST only")
    opts = options(args)
    rho = float(opts["rho"])
    iters = int(opts.get("iters", 1000))
    rng = np.random.default_rng(args.seed)
    dom = Domain.fromdict(domain)
    data = Dataset({c: train[c].to_numpy(dtype=np.int64) for c in domain}, dom)
    cols = list(domain)
    d = len(cols)

    def measure(cliques, rho_total):
        sigma = np.sqrt(len(cliques) / (2 * rho_total))
        out = []
        for cl in cliques:
            x = data.project(cl).datavector()
            y = x + rng.normal(0, sigma, size=x.shape)
            out.append(LinearMeasurement(y, cl, stddev=sigma))
        return out

    one_way = measure([(c,) for c in cols], rho / 3)
    est = MirrorDescent().estimate(dom, one_way, iters=iters)

    # Kruskal over exponential-mechanism picks, scored by the 1-way model's L1 error.
    eps_pick = np.sqrt(8 * (rho / 3) / (d - 1))
    score = {}
    for a, b in itertools.combinations(cols, 2):
        x = data.project((a, b)).datavector()
        xhat = np.asarray(est.project((a, b)).datavector())
        score[(a, b)] = np.abs(x - xhat).sum()
    parent = {c: c for c in cols}

    def root(c):
        while parent[c] != c:
            c = parent[c]
        return c

    edges = []
    for _ in range(d - 1):
        cand = [e for e in score if root(e[0]) != root(e[1])]
        q = np.array([score[e] for e in cand])
        logits = 0.5 * eps_pick * (q - q.max())
        p = np.exp(logits) / np.exp(logits).sum()
        e = cand[rng.choice(len(cand), p=p)]
        edges.append(e)
        parent[root(e[0])] = root(e[1])

    two_way = measure(edges, rho / 3)
    model = MirrorDescent().estimate(dom, one_way + two_way, iters=iters)
    args.extra.update(
        version=importlib.metadata.version("mbi"),
        rho=rho,
        edges=edges,
        method=opts.get("method", "sample"),
    )
    return model


def sample(model, n, args):
    ds = model.synthetic_data(n, method=options(args).get("method", "sample"))
    return ds.df if hasattr(ds, "df") else __import__("pandas").DataFrame(ds.to_dict())


if __name__ == "__main__":
    main("mbi", fit, sample)
