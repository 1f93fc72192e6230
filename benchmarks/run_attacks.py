"""Attack-suite benchmark: privsynth's suite beside anonymeter on the same Adult splits.

One run, three synthetic sets from the same training split of the bundled UCI Adult sample:
``leaky`` (half verbatim, half perturbed copies of training rows), ``null`` (independent
columns, see ``privsynth.attacks.selftest``) and ``mst`` (a privsynth MST release at
epsilon 1). Each set is attacked by privsynth's full suite (timed per attack; the canary
refit only for MST and timed apart) and by anonymeter's three evaluators in its own
virtualenv (``benchmarks/anchors/anonymeter_driver.py``; ``setup_anchors.sh`` creates it).

    .venv/bin/python benchmarks/run_attacks.py                 # train 30k, holdout the rest
    .venv/bin/python benchmarks/run_attacks.py --skip-anonymeter
    .venv/bin/python benchmarks/run_attacks.py --scale-rows 200000 2000000   # timing only

``--scale-rows N [N ...]`` times the suite alone, each size in a child process, on N rows
drawn with replacement from Adult (80% training, 20% holdout) and as many null-synthetic
rows as training rows (a timing run: the split is not disjoint), and reports the ratio of
the largest size's wall time to the smallest's.

Results: ``benchmarks/results/attacks-<date>.json`` and a text table beside it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from privsynth.attacks import run
from privsynth.attacks.selftest import leaky_synthetic, null_synthetic
from privsynth.datasets import load_adult
from privsynth.generators.marginal.mst import MST

HERE = os.path.dirname(os.path.abspath(__file__))
ANON_PY = os.path.join(HERE, ".venvs", "anonymeter", "bin", "python")
ANON_DRIVER = os.path.join(HERE, "anchors", "anonymeter_driver.py")
SCRATCH = os.path.join(HERE, "results", "scratch", "attacks")

SECRET = "income"
QIS = ["age", "sex", "race", "marital-status", "education", "occupation", "native-country"]
# anonymeter's own Adult example groups for linkability.
LINK = (
    ["workclass", "education", "hours-per-week", "capital-loss", "capital-gain"],
    ["race", "sex", "fnlwgt", "age", "native-country"],
)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--train-rows", type=int, default=30000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-attacks", type=int, default=1000, help="anonymeter's n_attacks")
    p.add_argument("--sets", nargs="+", default=["leaky", "null", "mst"])
    p.add_argument("--skip-anonymeter", action="store_true")
    p.add_argument("--no-canary", action="store_true")
    p.add_argument("--threads", type=int, default=2, help="torch threads (shared machine)")
    p.add_argument(
        "--scale-rows", type=int, nargs="+", help="timing runs on these many rows (see above)"
    )
    p.add_argument("--repeat", type=int, default=1, help="runs per size (--scale-rows)")
    p.add_argument("--scale-child", type=int, help=argparse.SUPPRESS)
    return p.parse_args()


def compact(result) -> dict:
    doc = result.to_dict()
    return {
        "timing_s": doc["timing_s"],
        "verdict": doc["verdict"],
        "attacks": [
            {k: a[k] for k in ("name", "metric", "value", "ci", "baseline", "passed")}
            | (
                {"tpr_at_fpr": a["details"]["tpr_at_fpr"]}
                if a["name"].startswith("membership_")
                else {}
            )
            | (
                {"queries_generated": a["details"]["queries_generated"]}
                if a["name"].startswith("singling_out_")
                else {}
            )
            for a in doc["attacks"]
        ],
        "diagnostics": doc["diagnostics"],
        "self_test": {
            k: doc["self_test"][k]
            for k in ("detected_leak", "leak_flagged_by", "false_alarm", "null_flagged_by")
        }
        if doc["self_test"]
        else None,
        "canary": doc["canary"],
    }


def _ci(x: dict) -> str:
    return f"{x['value']:.3f} [{x['ci'][0]:.3f}, {x['ci'][1]:.3f}]"


def table(doc: dict) -> str:
    """The results as text: per set, privsynth's attacks (value [95% CI], verdict, seconds)
    and anonymeter's evaluators (risk [95% CI], seconds)."""
    lines = [f"attack benchmark {doc['date']} ({doc['split']}), {doc['machine']}"]
    for name, e in doc["sets"].items():
        p = e["privsynth"]
        t = p["timing_s"]
        lines.append(
            f"\n== {name}: privsynth suite {p['suite_s_without_canary']:.1f} s "
            f"(self-test {t.get('self_test', 0):.1f} s, canary refit {t.get('canary', 0):.1f} s)"
        )
        for a in p["attacks"]:
            lines.append(
                f"  {a['name']:36s} {a['metric']:45s} {_ci(a)}  baseline {a['baseline']}  "
                f"passed {a['passed']}"
            )
        lines.append("  seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in t.items()))
        if p["canary"]:
            c = p["canary"]
            lines.append(
                f"  canary: eps lower bound {c['epsilon_lower_bound']:.3f} vs claimed "
                f"{c['epsilon_claimed']} ({c['correct']}/{c['guesses']} right): {c['status']}"
            )
        an = e.get("anonymeter", {})
        if "evaluators" in an:
            lines.append(f"  anonymeter {an['version']}: {an['wall_s']:.1f} s")
            for k, v in an["evaluators"].items():
                risk = {"value": v["risk"], "ci": v["risk_ci"]}
                lines.append(f"  {k:36s} risk {_ci(risk)}  {v['time_s']:.1f} s")
    return "\n".join(lines) + "\n"


def scale_child(n: int, seed: int) -> dict:
    """One timing run of the suite on ``n`` rows (80% training, 20% holdout, as many null
    synthetic rows as training rows), in this process: wall and CPU seconds, peak RSS."""
    df, schema = load_adult()
    rng = np.random.default_rng(seed)
    n_train = int(n * 0.8)
    train = df.iloc[rng.integers(0, len(df), n_train)].reset_index(drop=True)
    holdout = df.iloc[rng.integers(0, len(df), n - n_train)].reset_index(drop=True)
    syn = null_synthetic(train, schema, n_train, rng)
    load = os.getloadavg()
    t, cpu = time.perf_counter(), time.process_time()
    result = run(
        train, holdout, syn, schema, sensitive=[SECRET], quasi_identifiers=QIS,
        link_columns=LINK, seed=seed,
    )  # fmt: skip
    return {
        "rows": n,
        "wall_s": time.perf_counter() - t,
        "cpu_s": time.process_time() - cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "load_average_at_start": load,
        "timing_s": result.timing_s,
        "settings": {
            k: result.settings[k]
            for k in ("synthetic_rows", "synthetic_rows_attacked", "reference_rows_at_most")
        },
        "verdict": result.verdict(),
    }


def scale_run(args: argparse.Namespace) -> None:
    """Each size ``--repeat`` times, alternating sizes, each run in its own child process (a
    clean peak RSS); the fastest run of each size is the one reported (the others were slowed
    by whatever else the machine did), all wall times are kept."""
    runs: dict[int, list[dict]] = {n: [] for n in args.scale_rows}
    for _ in range(args.repeat):
        for n in args.scale_rows:
            out = subprocess.run(
                [sys.executable, __file__, "--scale-child", str(n), "--seed", str(args.seed),
                 "--threads", str(args.threads)],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            run = json.loads(out.stdout.strip().splitlines()[-1])
            runs[n].append(run)
            print(f"{n:>10,} rows: suite {run['wall_s']:.1f} s wall, {run['cpu_s']:.1f} s CPU, "
                  f"{run['peak_rss_mb']:.0f} MB")  # fmt: skip
    best = [min(runs[n], key=lambda r: r["wall_s"]) for n in args.scale_rows]
    for n, run in zip(args.scale_rows, best, strict=True):
        run["all_wall_s"] = [r["wall_s"] for r in runs[n]]
    date = datetime.date.today().isoformat()
    doc = {
        "date": date,
        "machine": {"cpus": os.cpu_count(), "torch_threads": args.threads},
        "runs": best,
        "wall_ratio_largest_to_smallest": best[-1]["wall_s"] / best[0]["wall_s"],
        "cpu_ratio_largest_to_smallest": best[-1]["cpu_s"] / best[0]["cpu_s"],
    }
    sizes = "-".join(str(n) for n in args.scale_rows)
    path = os.path.join(HERE, "results", f"attacks-scale-{sizes}-{date}.json")
    with open(path, "w") as fh:
        json.dump(doc, fh, indent=1)
    print(f"ratio {doc['wall_ratio_largest_to_smallest']:.2f}; wrote {path}")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.scale_child:
        return print(json.dumps(scale_child(args.scale_child, args.seed)))
    if args.scale_rows:
        return scale_run(args)
    df, schema = load_adult()
    rng = np.random.default_rng(args.seed)
    perm = rng.permutation(len(df))
    train = df.iloc[perm[: args.train_rows]].reset_index(drop=True)
    holdout = df.iloc[perm[args.train_rows :]].reset_index(drop=True)
    n = len(train)
    os.makedirs(SCRATCH, exist_ok=True)
    date = datetime.date.today().isoformat()
    out_path = os.path.join(HERE, "results", f"attacks-{date}.json")
    doc: dict = {
        "date": date,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average_at_start": os.getloadavg(),
        },
        "data": "bundled UCI Adult sample, seeded split",
        "split": {"train": len(train), "holdout": len(holdout), "seed": args.seed},
        "sensitive": SECRET,
        "quasi_identifiers": QIS,
        "link_columns": LINK,
        "sets": {},
    }
    train.to_csv(os.path.join(SCRATCH, "train.csv"), index=False)
    holdout.to_csv(os.path.join(SCRATCH, "holdout.csv"), index=False)
    for name in args.sets:
        entry: dict = {}
        t = time.perf_counter()
        canary = None
        if name == "leaky":
            syn = leaky_synthetic(train, schema, n, rng)
        elif name == "null":
            syn = null_synthetic(train, schema, n, rng)
        else:
            gen = MST(epsilon=1.0).fit(train, schema)
            syn = gen.sample(n, seed=args.seed)
            if not args.no_canary:
                canary = {"factory": lambda: MST(epsilon=1.0), "epsilon": 1.0, "m": 1000}
        entry["make_s"] = time.perf_counter() - t
        result = run(
            train,
            holdout,
            syn,
            schema,
            sensitive=[SECRET],
            quasi_identifiers=QIS,
            link_columns=LINK,
            canary=canary,
            seed=args.seed,
        )
        entry["privsynth"] = compact(result)
        times = result.timing_s
        entry["privsynth"]["suite_s_without_canary"] = times["total"] - times.get("canary", 0.0)
        entry["privsynth"]["suite_s_without_canary_or_self_test"] = (
            times["total"] - times.get("canary", 0.0) - times.get("self_test", 0.0)
        )
        print(
            f"[{name}] privsynth {entry['privsynth']['suite_s_without_canary']:.1f} s", flush=True
        )
        if not args.skip_anonymeter:
            syn_path = os.path.join(SCRATCH, f"{name}.csv")
            syn.to_csv(syn_path, index=False)
            anon_out = os.path.join(SCRATCH, f"{name}.anonymeter.json")
            cmd = [
                ANON_PY,
                ANON_DRIVER,
                "--train", os.path.join(SCRATCH, "train.csv"),
                "--control", os.path.join(SCRATCH, "holdout.csv"),
                "--synthetic", syn_path,
                "--secret", SECRET,
                "--aux", ",".join(QIS),
                "--link-a", ",".join(LINK[0]),
                "--link-b", ",".join(LINK[1]),
                "--n-attacks", str(args.n_attacks),
                "--seed", str(args.seed),
                "--out", anon_out,
            ]  # fmt: skip
            t = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - t
            if proc.returncode == 0:
                with open(anon_out) as fh:
                    entry["anonymeter"] = json.load(fh) | {"wall_s": wall}
            else:
                entry["anonymeter"] = {"error": proc.stderr[-2000:]}
            print(f"[{name}] anonymeter {wall:.1f} s", flush=True)
        doc["sets"][name] = entry
        with open(out_path, "w") as fh:
            json.dump(doc, fh, indent=1)
    with open(out_path.replace(".json", ".txt"), "w") as fh:
        fh.write(table(doc))
    print(f"wrote {out_path}")


if __name__ == "__main__":
    sys.exit(main())
