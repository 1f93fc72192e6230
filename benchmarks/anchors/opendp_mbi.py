"""OpenDP's own MST / AIM (``opendp.extras.mbi``, i.e. ``dp.mbi``) under the shared harness.

Budget: the runner passes ``--option rho=...``, the zCDP rho that privsynth itself derives from
(epsilon, delta), so both spend the same rho. Every column gets its public key set, so no
budget goes to key discovery. ``--option method=sample|round`` picks OpenDP's synthesiser
(its default is "round"). ``--option score=entrywise`` makes its MST score pairs as the paper
does (see ``_patch_mst_score``), to measure what OpenDP's own scoring changes;
``--option columns=reversed`` hands OpenDP the columns in reverse order (the output is put
back in the domain's order), which that scoring is sensitive to.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from _driver import main, options  # noqa: E402


def _patch_prior() -> None:
    """Work around a float-rounding failure in OpenDP 0.16's budget split.

    MST splits its selection budget as ``prior(d / 13)`` per pick, and the adaptive
    compositor's upward-rounded sum of the 13 picks can exceed ``d`` by one ulp, failing with
    "insufficient budget for query". Stepping each share down by a relative 1e-9 instead of
    one ulp spends (negligibly) less budget, so the release stays within the same rho.
    """
    import importlib

    def prior(x: float) -> float:
        return float(x) * (1 - 1e-9)

    for mod in ("_mst", "_aim", "_utilities", "_table", "_sequential", "_fixed"):
        m = importlib.import_module(f"opendp.extras.mbi.{mod}")
        if hasattr(m, "prior"):
            m.prior = prior


def _patch_mst_score() -> None:
    """Score MST's candidate pairs with the paper's entrywise L1 error.

    OpenDP 0.16 scores a pair with ``np.linalg.norm(exact - synth, 1)`` on the 2-D tables
    (``opendp/extras/mbi/_mst``), which numpy evaluates as the matrix 1-norm: the largest
    column sum of absolute errors, not the sum over all cells. (Its AIM flattens the tables
    first.) The matrix norm favours pairs whose second column has few values. This makes
    numpy's ``norm(x, 1)`` of a 2-D array sum every cell's absolute value, in this driver's
    process only; every other ``norm`` call in OpenDP passes a vector or an ``axis``.
    """
    import numpy as np

    norm = np.linalg.norm

    def entrywise(x, ord=None, axis=None, keepdims=False):
        x = np.asarray(x)
        if ord == 1 and axis is None and x.ndim == 2:
            return np.abs(x).sum()
        return norm(x, ord=ord, axis=axis, keepdims=keepdims)

    np.linalg.norm = entrywise


def fit(train, domain, args):
    import importlib.metadata

    import opendp.prelude as dp
    import polars as pl

    dp.enable_features("contrib")
    _patch_prior()
    opts = options(args)
    for key, allowed in (("score", ("opendp", "entrywise")), ("columns", ("domain", "reversed"))):
        if opts.setdefault(key, allowed[0]) not in allowed:
            sys.exit(f"--option {key}={opts[key]}: use one of {', '.join(allowed)}")
    if opts["score"] == "entrywise":
        _patch_mst_score()
    rho = float(opts["rho"])
    if opts["columns"] == "reversed":
        train, domain = train[train.columns[::-1]], dict(reversed(domain.items()))
    degree = int(opts.get("degree", 2))
    algorithm = dp.mbi.MST() if args.algo == "mst" else dp.mbi.AIM(queries=degree)
    data = pl.from_pandas(train.astype("int64")).lazy()
    context = dp.Context.compositor(
        data=data,
        privacy_unit=dp.unit_of(contributions=1),
        privacy_loss=dp.loss_of(rho=rho),
    )
    keys = {c: list(range(k)) for c, k in domain.items()}
    table = context.query(rho=rho).contingency_table(keys=keys, algorithm=algorithm).release()
    args.extra.update(
        version=importlib.metadata.version("opendp"),
        rho=rho,
        method=opts.get("method", "sample"),
        aim_queries=degree if args.algo == "aim" else None,
        mst_score=opts["score"],
        column_order=opts["columns"],
    )
    return table


def sample(table, n, args):
    return table.synthesize(n, method=options(args).get("method", "sample")).to_pandas()


def after(table, n, args):
    """With ``--option also_round=1``, also write OpenDP's default ("round") synthesis
    beside the output (untimed), to document how it differs from "sample"."""
    if options(args).get("also_round"):
        table.synthesize(n, method="round").to_pandas().to_csv(args.out + ".round.csv", index=False)


if __name__ == "__main__":
    main("opendp", fit, sample, after=after)
