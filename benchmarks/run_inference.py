"""Time the graphical-model engine on a fixed model, to compare two versions of privsynth.

Builds a model over Adult's 14 columns from every 1-way marginal plus randomly ordered pairs
(numpy seed 0), adding a pair only while the junction tree stays within ``--cells`` cells, so
both versions see the same cliques and the same (non-private, noise sd 20) measurements. It
then times ``--calls`` belief-propagation calls of the estimator and every pair's marginal
from the fitted model on ``--device`` (``--threads`` torch threads), and prints wall and CPU
seconds and the process's peak RSS (on CUDA, the GPU's peak allocation too).
``--flat-max-cells`` picks the belief-propagation engine. Run it once per version, e.g.
``PYTHONPATH=<other checkout> python benchmarks/run_inference.py``, or once per device.
Reads ``../shared/data/adult/`` beside the repository. Not a privacy mechanism: a benchmark.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import time

import numpy as np
import pandas as pd
import torch

import privsynth
from privsynth.device import resolve_device
from privsynth.inference import estimate as estimate_module
from privsynth.inference import junction_tree as jt
from privsynth.inference.estimate import Measurement, estimate

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cells", type=float, default=1e6, help="junction-tree size cap (cells)")
    p.add_argument("--calls", type=int, default=100, help="belief-propagation calls to time")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, auto)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument(
        "--flat-max-cells",
        type=float,
        help="largest model on the level-batched engine (default: the estimator's "
        "FLAT_MAX_CELLS; 0 forces the per-clique engine, 1e9 the level-batched one)",
    )
    args = p.parse_args()
    if args.flat_max_cells is not None:
        estimate_module.FLAT_MAX_CELLS = args.flat_max_cells
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    adult = os.path.join(SHARED, "adult")
    if not os.path.exists(os.path.join(adult, "adult.csv")):
        raise SystemExit(f"no Adult data at {adult}: this benchmark needs ../shared/data")
    with open(os.path.join(adult, "adult-domain.json")) as fh:
        domain = json.load(fh)
    codes = pd.read_csv(os.path.join(adult, "adult.csv"))[list(domain)].to_numpy()
    names = list(domain)
    rng = np.random.default_rng(0)
    pairs = list(itertools.combinations(names, 2))
    rng.shuffle(pairs)
    cliques = [(a,) for a in names]
    for pair in pairs:
        if jt.build([*cliques, jt.canonical(pair, domain)], domain).size(domain) <= args.cells:
            cliques.append(jt.canonical(pair, domain))
    measurements = []
    for c in cliques:
        shape = tuple(domain[a] for a in c)
        flat = np.ravel_multi_index(tuple(codes[:, names.index(a)] for a in c), shape)
        y = np.bincount(flat, minlength=int(np.prod(shape))) + rng.normal(0, 20, np.prod(shape))
        measurements.append(Measurement(c, y.astype(np.float64), 20.0))
    cells = jt.build(cliques, domain).size(domain)
    before = peak_mb()
    estimate(measurements[: len(names)], domain, iters=2, device=device)  # warm-up (CUDA init)
    wall, cpu = time.perf_counter(), time.process_time()
    model = estimate(measurements, domain, iters=args.calls, device=device)
    # estimate() reads each chunk's loss back to the host, so the clock sees all GPU work
    t_est, c_est = time.perf_counter() - wall, time.process_time() - cpu
    wall, cpu = time.perf_counter(), time.process_time()
    model.marginals(list(itertools.combinations(names, 2)))
    t_pairs, c_pairs = time.perf_counter() - wall, time.process_time() - cpu
    calls = max(model.iterations_, 1)
    # (a checkout older than the level-batched engine has no FLAT_MAX_CELLS)
    flat_max = getattr(estimate_module, "FLAT_MAX_CELLS", 0)
    engine = "level-batched" if cells <= flat_max else "per-clique"
    gpu = (
        f"; GPU peak allocated {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MB"
        if device.type == "cuda"
        else ""
    )
    print(
        f"privsynth {privsynth.__file__} on {device} ({args.threads} threads)\n"
        f"model: {len(cliques) - len(names)} pairs, {cells:,.0f} junction-tree cells "
        f"({cells * 8 / 2**20:.0f} MB), {engine} belief propagation\n"
        f"estimate: {model.iterations_} calls, {t_est:.2f} s wall, {c_est:.1f} CPU s "
        f"({1000 * t_est / calls:.2f} ms wall per call)\n"
        f"all {len(names) * (len(names) - 1) // 2} pair marginals: {t_pairs:.2f} s wall, "
        f"{c_pairs:.2f} CPU s\n"
        f"peak RSS: {before:.0f} MB before, {peak_mb():.0f} MB after{gpu}"
    )


if __name__ == "__main__":
    main()
