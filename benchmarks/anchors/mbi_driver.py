"""MST and AIM on top of the newest ``mbi`` (Private-PGM 2.x) under the shared harness.

mbi 2.x ships the estimation machinery only (no mechanisms), so this file holds thin
measurement layers; both take the zCDP budget ``rho`` from the runner (the same rho privsynth
uses), fit with ``mbi.estimation.MirrorDescent`` and sample with ``synthetic_data(method=...)``.

MST (McKenna, Miklau & Sheldon 2021): rho in thirds over (1) Gaussian 1-way marginals,
(2) exponential-mechanism picks of the d-1 tree edges scored by the L1 error of the 1-way
model, (3) Gaussian 2-way marginals on the picked edges. Simplification: no domain
compression of rare values (the paper's step 2).

AIM (McKenna et al. 2022), as in the paper's reference code: workload all pairs; candidates
their downward closure, weighted by overlap; T = 16 d rounds' worth of budget, 90 % of each
round to measuring, 10 % to selecting; 1-way marginals first; each round selects within the
model-size limit (80 MB scaled by the budget used), measures, re-estimates warm-started
(``iters`` mirror-descent steps, 1000 by default as in the reference), and halves sigma when
the model barely moved; the last round spends what is left.
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

    opts = options(args)
    rho = float(opts["rho"])
    iters = int(opts.get("iters", 1000))
    rng = np.random.default_rng(args.seed)
    dom = Domain.fromdict(domain)
    data = Dataset({c: train[c].to_numpy(dtype=np.int64) for c in domain}, dom)

    def measure(clique, sigma):
        x = data.project(clique).datavector()
        return LinearMeasurement(x + rng.normal(0, sigma, size=x.shape), clique, stddev=sigma)

    def select(scores, sensitivity, eps):
        logits = 0.5 * eps / sensitivity * (scores - scores.max())
        p = np.exp(logits) / np.exp(logits).sum()
        return rng.choice(len(scores), p=p)

    if args.algo == "mst":
        model, extra = _mst(list(domain), data, rho, iters, measure, select, MirrorDescent)
    else:
        model, extra = _aim(list(domain), dom, data, rho, iters, measure, select, MirrorDescent)
    args.extra.update(
        version=importlib.metadata.version("mbi"),
        rho=rho,
        method=opts.get("method", "sample"),
        iters=iters,
        **extra,
    )
    return model


def _mst(cols, data, rho, iters, measure, select, MirrorDescent):
    import numpy as np

    d = len(cols)
    sigma = np.sqrt(d / (2 * rho / 3))
    one_way = [measure((c,), sigma) for c in cols]
    est = MirrorDescent().estimate(data.domain, one_way, iters=iters)

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
        e = cand[select(np.array([score[e] for e in cand]), 1.0, eps_pick)]
        edges.append(e)
        parent[root(e[0])] = root(e[1])

    sigma = np.sqrt((d - 1) / (2 * rho / 3))
    two_way = [measure(e, sigma) for e in edges]
    model = MirrorDescent().estimate(data.domain, one_way + two_way, iters=iters)
    return model, {"edges": edges}


def _aim(cols, dom, data, rho, iters, measure, select, MirrorDescent):
    import numpy as np
    from mbi.junction_tree import hypothetical_model_size

    workload = list(itertools.combinations(cols, 2))
    weights = {}
    for q in workload:
        for k in (1, 2):
            for r in itertools.combinations(q, k):
                weights[r] = sum(len(set(r) & set(w)) for w in workload)
    rounds = 16 * len(cols)
    sigma = np.sqrt(rounds / (2 * 0.9 * rho))
    eps = np.sqrt(8 * 0.1 * rho / rounds)
    used = len(cols) / (2 * sigma**2)
    measurements = [measure((c,), sigma) for c in cols]
    engine = MirrorDescent()
    model = engine.estimate(dom, measurements, iters=iters)
    n_rounds, last = 0, False
    while not last:
        n_rounds += 1
        if rho - used < 2 * (1 / (2 * sigma**2) + eps**2 / 8):
            remaining = rho - used
            sigma = np.sqrt(1 / (2 * 0.9 * remaining))
            eps = np.sqrt(8 * 0.1 * remaining)
            last = True
        used += 1 / (2 * sigma**2) + eps**2 / 8
        cap = 80.0 * used / rho
        cliques = [m.clique for m in measurements]
        small = [r for r in weights if hypothetical_model_size(dom, cliques + [r]) <= cap]
        scores = []
        for r in small:
            err = np.abs(
                data.project(r).datavector() - np.asarray(model.project(r).datavector())
            ).sum()
            scores.append(weights[r] * (err - np.sqrt(2 / np.pi) * sigma * dom.size(r)))
        pick = small[select(np.array(scores), max(weights[r] for r in small), eps)]
        before = np.asarray(model.project(pick).datavector())
        measurements.append(measure(pick, sigma))
        model = engine.estimate(dom, measurements, iters=iters, warm_start=model)
        after = np.asarray(model.project(pick).datavector())
        if np.abs(after - before).sum() <= np.sqrt(2 / np.pi) * sigma * dom.size(pick):
            sigma, eps = sigma / 2, eps * 2
        # Progress in the job's log, so a timed-out run still shows how far it got.
        print(
            f"round {n_rounds}: {pick}, budget used {used / rho:.3f}", file=sys.stderr, flush=True
        )
    return model, {"rounds": n_rounds, "cliques": [list(m.clique) for m in measurements]}


def sample(model, n, args):
    ds = model.synthetic_data(n, method=options(args).get("method", "sample"))
    return ds.df if hasattr(ds, "df") else __import__("pandas").DataFrame(ds.to_dict())


if __name__ == "__main__":
    main("mbi", fit, sample)
