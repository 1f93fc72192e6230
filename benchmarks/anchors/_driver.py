"""Shared harness for the per-tool driver scripts in this folder.

Every driver runs in its own interpreter (its tool's virtualenv), so this module depends on
the standard library and pandas only. A driver supplies one function::

    fit_sample(train: DataFrame, domain: dict[str, int], args) -> (fit_fn, sample_fn)

or, more simply, two callables via :func:`main`: ``fit(train, domain, args) -> model`` and
``sample(model, n, args) -> DataFrame``. The harness times both, records the process's peak
resident set size, casts the synthetic columns to integer codes and writes

* ``args.out``            the synthetic CSV (same columns as the training CSV),

With ``--codebook SCHEMA.json`` instead of ``--domain`` the driver gets raw values (strings,
numbers) and a privsynth-style schema of codebook facts (kinds, bounds, category lists) in
``args.codebook``; the synthetic values are written as they come (no casting to codes).
* ``args.out + ".json"``  {"tool", "algo", "epsilon", "delta", "seed", "fit_s", "sample_s",
                           "peak_rss_mb", "n", "extra"}.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import pandas as pd


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--train", required=True, help="training CSV of integer codes")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--domain", help="JSON {column: domain size}; the CSV holds codes")
    what.add_argument("--codebook", help="privsynth schema JSON; the CSV holds raw values")
    p.add_argument(
        "--algo",
        required=True,
        choices=["mst", "aim", "dpvae", "dpctgan", "patectgan", "tabularargn"],
    )
    p.add_argument("--epsilon", type=float, required=True)
    p.add_argument("--delta", type=float, default=1e-9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="synthetic CSV to write")
    p.add_argument("--n", type=int, default=None, help="rows to sample (default: len(train))")
    p.add_argument(
        "--option", action="append", default=[], help="tool-specific key=value (e.g. method=round)"
    )
    return p.parse_args(argv)


def options(args: argparse.Namespace) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in args.option)


def peak_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_s() -> float:
    """User + system CPU seconds of this process (all threads) and its reaped children."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        total += r.ru_utime + r.ru_stime
    return total


def main(
    tool: str,
    fit: Callable[[pd.DataFrame, dict[str, int], argparse.Namespace], Any],
    sample: Callable[[Any, int, argparse.Namespace], pd.DataFrame],
    argv: list[str] | None = None,
    after: Callable[[Any, int, argparse.Namespace], None] | None = None,
) -> None:
    args = parse_args(argv)
    train = pd.read_csv(args.train)
    if args.domain:
        with open(args.domain) as fh:
            domain = {k: int(v) for k, v in json.load(fh).items()}
        train = train[list(domain)]
        args.codebook = None
    else:
        with open(args.codebook) as fh:
            args.codebook = json.load(fh)
        domain = {c: 0 for c in train.columns}  # raw values: no code counts
    n = args.n or len(train)
    extra: dict[str, Any] = {}
    args.domain_cols = list(domain)
    args.extra = extra  # drivers may note tool versions, chosen settings, ...

    c0, t0 = cpu_s(), time.perf_counter()
    model = fit(train, domain, args)
    c1, t1 = cpu_s(), time.perf_counter()
    syn = sample(model, n, args)
    c2, t2 = cpu_s(), time.perf_counter()

    syn = pd.DataFrame(syn)[list(domain)]
    for c in domain if args.codebook is None else ():
        syn[c] = pd.to_numeric(syn[c], errors="coerce").round().astype("Int64")
    syn.to_csv(args.out, index=False)
    meta = {
        "tool": tool,
        "algo": args.algo,
        "epsilon": args.epsilon,
        "delta": args.delta,
        "seed": args.seed,
        "fit_s": t1 - t0,
        "sample_s": t2 - t1,
        "fit_cpu_s": c1 - c0,
        "sample_cpu_s": c2 - c1,
        "peak_rss_mb": peak_rss_mb(),
        "n": int(len(syn)),
        "extra": extra,
    }
    if after is not None:  # untimed extras (after the peak-RSS reading above)
        after(model, n, args)
    with open(args.out + ".json", "w") as fh:
        json.dump(meta, fh, indent=1)
    print(json.dumps(meta), file=sys.stderr)
