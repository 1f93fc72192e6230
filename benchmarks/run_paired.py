"""Paired comparison of MST / AIM settings on Adult: every variant sees the same noise draws.

A setting of the estimator or of the mechanism's loop (``round_iters``, a module constant such
as AIM's ``IPF_STEP``) moves 2-way TVD by a few thousandths, less than the spread between two
fits with fresh DP noise. Here each seed fixes one numpy stream that replaces OpenDP's noise
(Gaussian counts of the same scale, Gumbel noise of the same scale for the selections; the
charges are still computed by OpenDP), so the variants differ only by their settings until
their choices diverge. **Not a privacy mechanism**: numpy noise is for this comparison only,
never for a release.

    .venv/bin/python benchmarks/run_paired.py --algo aim --seeds 0 1 2 \\
        --variant '{}' --variant '{"@IPF_STEP": 0}' --variant '{"round_iters": 400}'

A variant is a JSON object of constructor arguments; a key starting with ``@`` sets that
constant of the generator's module for the fit (``@package.module:NAME``: of another module,
e.g. ``@privsynth.inference.estimate:FLAT_MAX_CELLS``). Same split and metrics as
``run_marginal.py`` (80/20, seed 0; 2-way TVD of one sample of the training size; TSTR
AUC), plus the model's own 2-way TVD against the training data (no sampling noise; AIM
only: MST's model lives on compressed codes). Reads ``../shared/data/adult/``.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import time

import numpy as np
import pandas as pd
import torch
from adult_split import adult
from metrics import marginal_sets, mean_tvd, tstr_auc

import privsynth.mechanisms as mechanisms
from privsynth.schema import Schema

GENERATORS = {
    "mst": ("privsynth.generators.marginal.mst", "MST"),
    "aim": ("privsynth.generators.marginal.aim", "AIM"),
}


class SeededNoise:
    """Stand-ins for ``gaussian_counts`` and ``select_max`` drawing from one numpy stream."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)
        self._counts, self._select = mechanisms.gaussian_counts, mechanisms.select_max

    def gaussian_counts(self, counts, rho):
        _, charge = self._counts(counts, rho)
        x = np.asarray(counts, dtype=np.float64)
        return x + self.rng.normal(0.0, np.sqrt(1 / (2 * rho)), x.shape), charge

    def select_max(self, scores, *, sensitivity, rho):
        _, charge = self._select(scores, sensitivity=sensitivity, rho=rho)
        x = np.asarray(scores, dtype=np.float64)
        noise = self.rng.gumbel(0.0, sensitivity / np.sqrt(2 * rho), x.shape)
        return int(np.argmax(x + noise)), charge


def where(key: str, default) -> tuple:
    """(module, name) a variant's ``@`` key names: ``NAME`` in the generator's module ``default``,
    or ``package.module:NAME`` anywhere."""
    if ":" in key:
        path, name = key.split(":", 1)
        return importlib.import_module(path), name
    return default, key


def model_tvd(model, train: pd.DataFrame, domain: dict[str, int]) -> float | None:
    """Mean 2-way TVD between the fitted model's marginals and the training data's (None for
    a model on another domain, e.g. MST's compressed one)."""
    if model.domain != domain:
        return None
    cols = list(domain)
    pairs = list(itertools.combinations(cols, 2))
    codes = train[cols].to_numpy()
    out = []
    for est, (a, b) in zip(model.marginals(pairs), pairs, strict=True):
        i, j = cols.index(a), cols.index(b)
        true = np.bincount(codes[:, i] * domain[b] + codes[:, j], minlength=len(est))
        out.append(0.5 * np.abs(est / est.sum() - true / len(codes)).sum())
    return float(np.mean(out))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--algo", choices=sorted(GENERATORS), default="aim")
    p.add_argument("--epsilons", type=float, nargs="+", default=[1.0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variant", action="append", required=True, help="JSON settings")
    p.add_argument("--out", help="results JSON (default: print only)")
    args = p.parse_args()
    torch.set_num_threads(1)
    train, test, domain = adult()
    cols = {c: {"kind": "categorical", "categories": list(range(k))} for c, k in domain.items()}
    schema = Schema.from_dict({"version": 1, "columns": cols})
    sets = {"2way": marginal_sets(list(domain))["2way"]}
    module_name, cls_name = GENERATORS[args.algo]
    module = importlib.import_module(module_name)
    noise = SeededNoise()
    mechanisms.gaussian_counts, mechanisms.select_max = noise.gaussian_counts, noise.select_max
    rows = []
    for eps, seed, text in itertools.product(args.epsilons, args.seeds, args.variant):
        variant = json.loads(text)
        consts = {where(k[1:], module): v for k, v in variant.items() if k.startswith("@")}
        saved = {k: getattr(*k) for k in consts}
        for k, v in consts.items():
            setattr(*k, v)
        noise.rng = np.random.default_rng(1000 + seed)
        params = {k: v for k, v in variant.items() if not k.startswith("@")}
        t0 = time.perf_counter()
        gen = getattr(module, cls_name)(epsilon=eps, device="cpu", **params).fit(train, schema)
        fit_s = time.perf_counter() - t0
        for k, v in saved.items():
            setattr(*k, v)
        syn = gen.sample(len(train), seed=0)
        row = {
            "epsilon": eps,
            "seed": seed,
            "variant": variant,
            "fit_s": fit_s,
            "measurements": len(gen.measurements_),
            "model_tvd2": model_tvd(gen.model_, train, domain),
            "tvd2": mean_tvd(syn, train, domain, sets)["2way"],
            "auc": tstr_auc(syn, test, domain, seed=0),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "w") as fh:
                json.dump({"args": vars(args), "runs": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
