"""Benchmark: privsynth DPVAE / DPCTGAN on the bundled Adult sample (raw columns, public bounds),
side by side with smartnoise-synth's DPCTGAN and PATECTGAN.

Every fit runs in its own subprocess (this script with ``--job``, or an anchor driver from
``benchmarks/anchors/`` in the anchor's virtualenv) so that each gets its own peak-RSS reading
and a wall-clock limit (``--timeout``; a job past it is killed and recorded as a timeout).
Quality is measured here, once, on the columns binned by the schema's public bins
(``privsynth.encoding.Encoder``): mean 1- and 2-way TVD against the training split, and
train-synthetic-test-real AUC for ``income`` (``benchmarks/metrics.py``). The anchors are given
the same training split as those integer codes, every column categorical. Baselines on the
same binning: real data, an independent (non-private) per-column sampler, and privsynth MST.
``--throughput`` times DP-SGD against plain SGD for the same model and batches on ``--device``.

    .venv/bin/python benchmarks/run_dpsgd.py --epsilons 1 3 --seeds 0
    .venv/bin/python benchmarks/run_dpsgd.py --epsilons 1 --algos dpvae dpctgan \
        sn-dpctgan sn-patectgan --timeout 1500 --no-throughput
    .venv/bin/python benchmarks/run_dpsgd.py --throughput-only

Anchor virtualenvs: ``benchmarks/setup_anchors.sh`` (or ``--venvs DIR``).
Results: ``benchmarks/results/dpsgd-<date>.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import sys
import time

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import adult_split  # noqa: E402
from jobs import machine, run_logged  # noqa: E402
from metrics import independent_sample, marginal_sets, mean_tvd, tstr_auc  # noqa: E402

REPO = os.path.dirname(HERE)
WORK = os.path.join(HERE, "results", "scratch")
TARGET_COLUMN = "income"  # metrics.TARGET is the discretised file's name for it
# algo -> (anchor tool, its algorithm); the tool's driver is benchmarks/anchors/<tool>_driver.py
ANCHOR_ALGOS = {
    "sn-dpctgan": ("smartnoise", "dpctgan"),
    "sn-patectgan": ("smartnoise", "patectgan"),
}


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def split(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, object]:
    from privsynth.datasets import load_adult

    df, schema = load_adult()
    return (*adult_split.split(df, seed), schema)


def binned(df: pd.DataFrame, schema) -> tuple[pd.DataFrame, dict[str, int]]:
    """Codes of the schema's public bins, with the label renamed as metrics.py expects."""
    from metrics import TARGET

    from privsynth.encoding import Encoder

    enc = Encoder(schema)
    clean, _ = schema.validate(df)
    codes = pd.DataFrame(enc.encode(clean), columns=enc.names).rename(
        columns={TARGET_COLUMN: TARGET}
    )
    domain = {(TARGET if k == TARGET_COLUMN else k): v for k, v in enc.shape.items()}
    return codes, domain


# ------------------------------------------------------------------ one fit
def job(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    train, _, schema = split()
    params = json.loads(args.params)
    if args.algo == "mst":
        from privsynth.generators.marginal.mst import MST

        model = MST(epsilon=args.epsilon, delta=args.delta, device=args.device, **params)
    else:
        from privsynth.generators.dpsgd.dpctgan import DPCTGAN
        from privsynth.generators.dpsgd.dpvae import DPVAE

        cls = {"dpvae": DPVAE, "dpctgan": DPCTGAN}[args.algo]
        model = cls(epsilon=args.epsilon, delta=args.delta, device=args.device, **params)
    torch.manual_seed(args.seed)
    c0, t0 = cpu_s(), time.perf_counter()
    model.fit(train, schema)
    c1, t1 = cpu_s(), time.perf_counter()
    syn = model.sample(len(train), seed=args.seed)
    t2 = time.perf_counter()
    syn.to_csv(args.out, index=False)
    spec = model.privacy_spec()
    meta = {
        "fit_s": t1 - t0,
        "fit_cpu_s": c1 - c0,
        "sample_s": t2 - t1,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "epsilon_spent": spec["epsilon_spent"],
        "dpsgd": {
            k: spec.get(k) for k in ("sample_rate", "noise_multiplier", "steps", "opacus_epsilon")
        },
    }
    with open(args.out + ".json", "w") as fh:
        json.dump(meta, fh)


def run_fit(algo: str, eps: float, seed: int, params: dict, args) -> dict:
    tag = f"privsynth-{algo}-eps{eps:g}-s{seed}"
    out = os.path.join(WORK, tag + ".csv")
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--job",
        "--algo",
        algo,
        "--epsilon",
        str(eps),
        "--delta",
        str(args.delta),
        "--seed",
        str(seed),
        "--threads",
        str(args.threads),
        "--device",
        args.device,
        "--params",
        json.dumps(params),
        "--out",
        out,
    ]
    rec = {"algo": algo, "epsilon": eps, "seed": seed, "params": params, "device": args.device}
    rec.update(run_logged(cmd, os.path.join(WORK, tag + ".log"), args.timeout))
    if rec["status"] == "ok":
        with open(out + ".json") as fh:
            rec.update(json.load(fh))
        rec["synthetic_csv"] = out
    return rec


def run_anchor(algo: str, eps: float, seed: int, params: dict, args, train_csv: str) -> dict:
    """One anchor fit+sample through its driver (the shared harness times it and reads its
    peak RSS); the synthetic CSV holds integer codes of the same binning."""
    tool, tool_algo = ANCHOR_ALGOS[algo]
    python = os.path.join(args.venvs, tool, "bin", "python")
    tag = f"{algo}-eps{eps:g}-s{seed}"
    out = os.path.join(WORK, tag + ".csv")
    cmd = [
        python,
        os.path.join(HERE, "anchors", f"{tool}_driver.py"),
        "--train",
        train_csv,
        "--domain",
        train_csv + ".domain.json",
        "--algo",
        tool_algo,
        "--epsilon",
        str(eps),
        "--delta",
        str(args.delta),
        "--seed",
        str(seed),
        "--out",
        out,
    ]
    cmd += [a for k, v in params.items() for a in ("--option", f"{k}={v}")]
    rec = {"algo": algo, "epsilon": eps, "seed": seed, "params": params}
    if not os.path.exists(python):
        return dict(rec, status="not-installed", error=f"{python} missing")
    rec.update(run_logged(cmd, os.path.join(WORK, tag + ".log"), args.timeout))
    if rec["status"] == "ok":
        with open(out + ".json") as fh:
            meta = json.load(fh)
        # the driver's "algo" is the tool's own name for it: keep ours, record the tool's
        rec.update({k: v for k, v in meta.items() if k not in rec}, tool_algo=tool_algo)
        rec["synthetic_csv"] = out
    return rec


def quality(syn: pd.DataFrame, train_b, test_b, domain, sets, schema, coded: bool) -> dict:
    codes = syn if coded else binned(syn, schema)[0]
    tvd = mean_tvd(codes, train_b, domain, sets)
    return {"tvd1": tvd["1way"], "tvd2": tvd["2way"], "auc": tstr_auc(codes, test_b, domain)}


# ----------------------------------------------------------- throughput
def throughput(args) -> dict:
    """Steps per second of one DPVAE-sized model on ``--device``, DP-SGD (each clipping mode) vs
    plain Adam on the same Poisson batch sizes."""
    import torch

    from privsynth.device import resolve_device
    from privsynth.generators.dpsgd.transform import OneHotBlocks

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    train, _, schema = split()
    codes, domain = binned(train, schema)
    blocks = OneHotBlocks(list(domain.values()))
    data = blocks.transform(codes.to_numpy())
    out = {}
    for name, hidden, batch in (("dpvae-default", (64,), 2000), ("mlp-256x3", (256, 256), 512)):
        rates = {}
        for mode in ("bookkeeping", "ghost", "hooks", "non_dp"):
            # an untimed warm-up first: library and kernel set-up (CUDA init, cuBLAS handles)
            steps_per_s(mode, 2, hidden, batch, blocks, data, device)
            rates[mode] = steps_per_s(
                mode, args.throughput_steps, hidden, batch, blocks, data, device
            )
        out[name] = {
            "hidden": list(hidden),
            "batch": batch,
            "steps_per_s": rates,
            **{f"ratio_{m}": rates[m] / rates["non_dp"] for m in ("bookkeeping", "ghost", "hooks")},
        }
        print(name, json.dumps(out[name]))
    return out


def steps_per_s(mode: str, steps: int, hidden, batch: int, blocks, data, device) -> float:
    """DP-SGD in ``mode`` (bookkeeping, ghost or hooks), or plain Adam on the same Poisson
    batch sizes with no clipping or noise (``non_dp``), for a DPVAE network of ``hidden``
    widths."""
    import torch

    from privsynth.generators.dpsgd.dpvae import _VAE
    from privsynth.generators.dpsgd.privacy import SGDPlan
    from privsynth.generators.dpsgd.train import train_dp

    def loss_fn(model, x, latent=8):
        noise = torch.randn(len(x), latent, device=x.device)
        logits, mu, logvar = model(x, noise)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)
        return blocks.block_cross_entropy(logits, x) + kl

    def sync() -> None:  # CUDA kernels run asynchronously: wait before reading the clock
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    q = batch / len(data)
    torch.manual_seed(0)
    model = _VAE(blocks.width, hidden, 8).to(device)
    sync()
    t0 = time.perf_counter()
    if mode == "non_dp":
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(steps):
            batch_x = data[torch.rand(len(data)) < q].to(device)
            opt.zero_grad()
            loss_fn(model, batch_x).mean().backward()
            opt.step()
    else:
        plan = SGDPlan(q, 1.0, steps, batch)
        train_dp(
            model,
            loss_fn,
            data,
            plan,
            max_grad_norm=1.0,
            lr=1e-3,
            grad_sample_mode=mode,
            device=device,
        )
    sync()
    return steps / (time.perf_counter() - t0)


# ----------------------------------------------------------------- main
def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--epsilons", type=float, nargs="+", default=[1.0, 3.0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument(
        "--algos",
        nargs="+",
        default=["dpvae", "dpctgan", "mst"],
        choices=["dpvae", "dpctgan", "mst", *ANCHOR_ALGOS],
    )
    p.add_argument("--delta", type=float, default=1e-9)
    p.add_argument(
        "--threads", type=int, default=1, help="torch threads per fit (2 spin on busy cores)"
    )
    p.add_argument(
        "--device", default="cpu", help="privsynth fits and --throughput: cpu, cuda or auto"
    )
    p.add_argument("--timeout", type=float, default=1500, help="seconds per fit+sample job")
    p.add_argument(
        "--venvs",
        default=os.path.join(HERE, ".venvs"),
        help="anchor virtualenvs (setup_anchors.sh)",
    )
    p.add_argument(
        "--anchor-params", default="{}", help="JSON driver options for the anchors (e.g. epochs)"
    )
    p.add_argument("--dpvae-params", default="{}", help="JSON keyword arguments for DPVAE")
    p.add_argument("--dpctgan-params", default="{}", help="JSON keyword arguments for DPCTGAN")
    p.add_argument("--throughput-steps", type=int, default=30)
    p.add_argument("--no-throughput", action="store_true")
    p.add_argument("--throughput-only", action="store_true")
    p.add_argument("--out", default=None)
    # internal: one fit in a subprocess
    p.add_argument("--job", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--algo", help=argparse.SUPPRESS)
    p.add_argument("--epsilon", type=float, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    return p.parse_args()


def write_json(path: str, doc: dict) -> None:
    text = json.dumps(doc, indent=1, default=str).replace(REPO + os.sep, "")
    with open(path + ".tmp", "w") as fh:
        fh.write(text)
    os.replace(path + ".tmp", path)


def main() -> None:
    args = parse_args()
    if args.job:
        job(args)
        return
    os.makedirs(WORK, exist_ok=True)
    date = datetime.date.today().isoformat()
    out = args.out or os.path.join(HERE, "results", f"dpsgd-{date}.json")
    import privsynth

    doc: dict = {
        "date": date,
        "privsynth_version": privsynth.__version__,
        "machine": dict(machine(args.device), torch_threads=args.threads, device=args.device),
        "data": "privsynth.datasets.load_adult(), 80/20 split (seed 0), schema's public bins",
    }
    if not args.throughput_only:
        train, test, schema = split()
        train_b, domain = binned(train, schema)
        test_b, _ = binned(test, schema)
        sets = marginal_sets(list(domain))
        ind = independent_sample(train_b, len(train_b), seed=0)
        tvd_ind = mean_tvd(ind, train_b, domain, sets)
        tvd_hold = mean_tvd(test_b, train_b, domain, sets)
        doc["baselines"] = {
            "real": {
                "tvd1": tvd_hold["1way"],
                "tvd2": tvd_hold["2way"],
                "auc": tstr_auc(train_b, test_b, domain),
                "note": "holdout vs train TVD; AUC trained on real train",
            },
            "independent_sampler": {
                "tvd1": tvd_ind["1way"],
                "tvd2": tvd_ind["2way"],
                "auc": tstr_auc(ind, test_b, domain),
                "note": "non-private per-column sampler",
            },
        }
        print(json.dumps(doc["baselines"]))
        doc["runs"] = []
        params = {
            "dpvae": json.loads(args.dpvae_params),
            "dpctgan": json.loads(args.dpctgan_params),
            "mst": {},
            **{a: json.loads(args.anchor_params) for a in ANCHOR_ALGOS},
        }
        train_csv = os.path.join(WORK, "train-codes.csv")
        train_b.to_csv(train_csv, index=False)
        with open(train_csv + ".domain.json", "w") as fh:
            json.dump(domain, fh)
        for eps in args.epsilons:
            for algo in args.algos:
                for seed in args.seeds:
                    anchor = algo in ANCHOR_ALGOS
                    if anchor:
                        rec = run_anchor(algo, eps, seed, params[algo], args, train_csv)
                    else:
                        rec = run_fit(algo, eps, seed, params[algo], args)
                    if rec["status"] == "ok":
                        syn = pd.read_csv(rec["synthetic_csv"])
                        rec.update(quality(syn, train_b, test_b, domain, sets, schema, anchor))
                    print(json.dumps({k: v for k, v in rec.items() if k != "synthetic_csv"}))
                    doc["runs"].append(rec)
                    write_json(out, doc)
    if not args.no_throughput:
        doc[f"throughput_{args.device}"] = throughput(args)
    write_json(out, doc)
    print("wrote", out)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
