"""Side-by-side benchmark: privsynth MST / AIM against anchor implementations on Adult.

Every fit runs as a subprocess (``benchmarks/anchors/<tool>_driver.py`` in that tool's own
virtualenv under ``benchmarks/.venvs/``; privsynth in the interpreter running this script), so
each gets its own peak-RSS reading and its own dependency pins. Quality metrics are computed
here, once, for every synthetic CSV (``benchmarks/metrics.py``).

    .venv/bin/python benchmarks/run_marginal.py --epsilons 1 --seeds 0
    .venv/bin/python benchmarks/run_marginal.py --scale          # MST on 1M rows, privsynth

Results: ``benchmarks/results/marginal-<date>.json`` (rewritten after every finished job).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime
import itertools
import json
import os
import re
import sys
import threading

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from adult_split import DATA, DOMAIN, adult, load_domain  # noqa: E402
from jobs import machine, run_logged  # noqa: E402
from metrics import independent_sample, marginal_sets, mean_tvd, tstr_auc  # noqa: E402

# The shared data sits beside the repository: ../shared/data from the repo root.
VENVS = os.path.join(HERE, ".venvs")
ANCHORS = os.path.join(HERE, "anchors")

# tool -> (interpreter, driver, algorithms it offers, does the driver take the runner's rho?)
TOOLS = {
    "privsynth": (sys.executable, "privsynth_driver.py", ("mst", "aim"), False),
    "opendp": (
        os.path.join(VENVS, "opendp", "bin", "python"),
        "opendp_mbi.py",
        ("mst", "aim"),
        True,
    ),
    "dpmm": (os.path.join(VENVS, "dpmm", "bin", "python"), "dpmm_driver.py", ("mst", "aim"), False),
    "smartnoise": (
        os.path.join(VENVS, "smartnoise", "bin", "python"),
        "smartnoise_driver.py",
        ("mst", "aim"),
        False,
    ),
    "mbi": (os.path.join(VENVS, "mbi", "bin", "python"), "mbi_driver.py", ("mst", "aim"), True),
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--epsilons", type=float, nargs="+", default=[1.0], help="epsilons for privsynth"
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds for privsynth")
    p.add_argument(
        "--anchor-epsilons",
        type=float,
        nargs="+",
        default=None,
        help="epsilons for anchors (default: --epsilons)",
    )
    p.add_argument(
        "--anchor-seeds",
        type=int,
        nargs="+",
        default=None,
        help="seeds for anchors (default: --seeds)",
    )
    p.add_argument(
        "--tools",
        nargs="+",
        default=list(TOOLS),
        help="subset of tools, or tool:algo entries (e.g. opendp:mst)",
    )
    p.add_argument(
        "--privsynth-variants",
        nargs="+",
        default=[""],
        metavar="K=V[,K=V]",
        help="privsynth runs each variant: comma-separated driver options, '' for the "
        "defaults (e.g. '' 'target=income>50K' runs MST without and with a target)",
    )
    p.add_argument(
        "--anchor-variants",
        nargs="+",
        default=[""],
        metavar="K=V[,K=V]",
        help="every anchor runs each variant: comma-separated driver options, '' for the "
        "defaults (e.g. '' 'score=entrywise' runs OpenDP's MST with its own and the paper's "
        "pair score)",
    )
    p.add_argument("--delta", type=float, default=1e-9)
    p.add_argument(
        "--device", default="cpu", help="torch device for privsynth's fits (cpu, cuda, auto)"
    )
    p.add_argument("--timeout", type=float, default=1500, help="seconds per fit+sample job")
    p.add_argument("--jobs", type=int, default=1, help="jobs run at once (times get noisier)")
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument(
        "--no-opendp-round",
        action="store_true",
        help="skip OpenDP's default method='round' synthesis at eps=1",
    )
    p.add_argument(
        "--scale",
        action="store_true",
        help="only: privsynth MST fit on 1,000,000 rows (resampled Adult)",
    )
    p.add_argument("--scale-rows", type=int, default=1_000_000)
    p.add_argument(
        "--out", default=None, help="results JSON (default results/marginal-<date>.json)"
    )
    p.add_argument(
        "--merge",
        nargs="+",
        default=None,
        metavar="JSON",
        help="only: combine the runs of earlier result files (e.g. a privsynth-only "
        "run and an anchors run), print the ratio table and write --out",
    )
    return p.parse_args()


def rho_for(epsilon: float, delta: float) -> float:
    from privsynth.budget import rho_for_epsilon

    return rho_for_epsilon(epsilon, delta)


def run_job(job: dict, work: str, train_csv: str, timeout: float, n: int | None = None) -> dict:
    python, driver, _, takes_rho = TOOLS[job["tool"]]
    tag = f"{job['tool']}-{job['algo']}-eps{job['epsilon']:g}-s{job['seed']}"
    tag += job.get("tag_suffix", "")
    out = os.path.join(work, tag + ".csv")
    cmd = [
        python,
        os.path.join(ANCHORS, driver),
        "--train",
        train_csv,
        "--domain",
        DOMAIN,
        "--algo",
        job["algo"],
        "--epsilon",
        str(job["epsilon"]),
        "--delta",
        str(job["delta"]),
        "--seed",
        str(job["seed"]),
        "--out",
        out,
    ]
    if n:
        cmd += ["--n", str(n)]
    if takes_rho:
        cmd += ["--option", f"rho={rho_for(job['epsilon'], job['delta'])!r}"]
    for kv in job.get("options", []):
        cmd += ["--option", kv]
    rec = dict(job, tag=tag, cmd=" ".join(cmd))
    if not os.path.exists(python):
        return dict(rec, status="not-installed", error=f"{python} missing")
    log_path = os.path.join(work, tag + ".log")
    rec.update(run_logged(cmd, log_path, timeout))
    if rec["status"] != "ok":
        return rec
    if not os.path.exists(out + ".json"):
        with open(log_path) as fh:
            return dict(rec, status="failed", error=fh.read()[-1500:])
    with open(out + ".json") as fh:
        rec.update(json.load(fh))
    rec["status"] = "ok"
    rec["synthetic_csv"] = out
    return rec


def add_quality(rec: dict, train, test, domain, sets) -> None:
    syn = pd.read_csv(rec["synthetic_csv"])
    rec["tvd"] = mean_tvd(syn, train, domain, sets)
    rec["auc"] = tstr_auc(syn, test, domain)
    rnd = rec["synthetic_csv"] + ".round.csv"
    if os.path.exists(rnd):
        rec["round_method"] = {"tvd": mean_tvd(pd.read_csv(rnd), train, domain, sets)}


def summarize(results: list[dict]) -> dict:
    """Mean over seeds per (tool and privsynth variant, algo, epsilon) of the finished runs."""
    groups: dict = {}
    for r in results:
        if r.get("status") == "ok":
            tool = r["tool"] + r.get("tag_suffix", "")
            groups.setdefault((tool, r["algo"], r["epsilon"]), []).append(r)
    out = {}
    for (tool, algo, eps), rs in groups.items():

        def m(f, rs=rs):
            return float(np.mean([f(r) for r in rs]))

        out[f"{tool}|{algo}|{eps:g}"] = {
            "tool": tool,
            "algo": algo,
            "epsilon": eps,
            "runs": len(rs),
            "fit_s": m(lambda r: r["fit_s"]),
            "fit_cpu_s": m(lambda r: r["fit_cpu_s"]),
            "sample_s": m(lambda r: r["sample_s"]),
            "peak_rss_mb": m(lambda r: r["peak_rss_mb"]),
            "tvd1": m(lambda r: r["tvd"]["1way"]),
            "tvd2": m(lambda r: r["tvd"]["2way"]),
            "tvd3": m(lambda r: r["tvd"]["3way"]),
            "auc": m(lambda r: r["auc"]),
        }
    return out


def ratio_table(summary: dict, results: list[dict]) -> str:
    lines = []
    hdr = (
        f"{'tool':<11}{'algo':<5}{'eps':>5}{'runs':>5}{'fit_s':>9}{'cpu_s':>9}{'samp_s':>8}"
        f"{'rss_MB':>8}{'tvd1':>7}{'tvd2':>7}{'tvd3':>7}{'auc':>7}"
        f"  | privsynth/anchor: {'fit':>6}{'cpu':>6}{'rss':>6}{'tvd2':>6}"
    )
    lines.append(hdr)
    for key in sorted(
        summary,
        key=lambda k: (
            summary[k]["algo"],
            summary[k]["epsilon"],
            summary[k]["tool"] != "privsynth",
            k,
        ),
    ):
        s = summary[key]
        row = (
            f"{s['tool']:<11}{s['algo']:<5}{s['epsilon']:>5g}{s['runs']:>5}{s['fit_s']:>9.1f}"
            f"{s['fit_cpu_s']:>9.1f}{s['sample_s']:>8.2f}{s['peak_rss_mb']:>8.0f}"
            f"{s['tvd1']:>7.4f}{s['tvd2']:>7.4f}{s['tvd3']:>7.4f}{s['auc']:>7.3f}"
        )
        ps = summary.get(f"privsynth|{s['algo']}|{s['epsilon']:g}")
        if ps and not s["tool"].startswith("privsynth"):
            row += (
                f"  | {'':>17} {ps['fit_s'] / s['fit_s']:>6.3f}"
                f"{ps['fit_cpu_s'] / s['fit_cpu_s']:>6.3f}"
                f"{ps['peak_rss_mb'] / s['peak_rss_mb']:>6.2f}{ps['tvd2'] / s['tvd2']:>6.2f}"
            )
        lines.append(row)
    for r in results:
        if r.get("status") != "ok":
            err = str(r.get("error") or "").strip().splitlines()
            lines.append(
                f"{r['tool']:<11}{r['algo']:<5}{r['epsilon']:>5g}  {r['status'].upper()}: "
                f"{err[-1][:100] if err else ''}"
            )
        elif "round_method" in r:
            t = r["round_method"]["tvd"]
            lines.append(
                f"{r['tool']:<11}{r['algo']:<5}{r['epsilon']:>5g}  method='round' (default): "
                f"tvd1 {t['1way']:.4f} tvd2 {t['2way']:.4f} tvd3 {t['3way']:.4f}"
            )
    return "\n".join(lines)


def scale_mode(args, work: str) -> dict:
    full = pd.read_csv(DATA)
    rng = np.random.default_rng(args.split_seed)
    big = full.iloc[rng.integers(0, len(full), size=args.scale_rows)].reset_index(drop=True)
    path = os.path.join(work, f"adult-{args.scale_rows}.csv")
    big.to_csv(path, index=False)
    job = {
        "tool": "privsynth",
        "algo": "mst",
        "epsilon": 1.0,
        "seed": 0,
        "delta": args.delta,
        "tag_suffix": f"-scale{args.scale_rows}",
        "options": [f"device={args.device}"],
    }
    rec = run_job(job, work, path, args.timeout, n=args.scale_rows)
    rec["rows"] = args.scale_rows
    rec.pop("synthetic_csv", None)
    print(
        json.dumps(
            {
                k: rec.get(k)
                for k in (
                    "status",
                    "rows",
                    "fit_s",
                    "fit_cpu_s",
                    "sample_s",
                    "peak_rss_mb",
                    "error",
                )
            },
            indent=1,
        )
    )
    return rec


REPO = os.path.dirname(HERE)


def write_json(path: str, doc: dict) -> None:
    """Write results atomically, with machine paths made relative to the repository root."""
    text = json.dumps(doc, indent=1, default=str)
    text = text.replace(os.path.dirname(REPO) + os.sep + "shared", os.path.join("..", "shared"))
    text = text.replace(REPO + os.sep, "")
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def main() -> None:
    args = parse_args()
    if not os.path.exists(DATA):
        sys.exit(
            f"benchmark data not found: {DATA} (the shared datasets beside the repository); "
            "nothing was run"
        )
    date = datetime.date.today().isoformat()
    results_dir = os.path.join(HERE, "results")
    work = os.path.join(results_dir, "scratch")
    os.makedirs(work, exist_ok=True)
    domain = load_domain()

    if args.merge:
        docs = []
        for path in args.merge:
            with open(path) as fh:
                docs.append(json.load(fh))
        runs = [r for d in docs for r in d["runs"]]
        done = {
            (r["tool"], r["algo"], r["epsilon"], r["seed"]) for r in runs if r.get("status") == "ok"
        }
        # A job that finished in one file supersedes the same job killed (failed) in another;
        # timeouts stay listed.
        runs = [
            r
            for r in runs
            if r.get("status") != "failed"
            or (r["tool"], r["algo"], r["epsilon"], r["seed"]) not in done
        ]
        doc = dict(docs[0], merged_from=args.merge, runs=runs)
        doc["summary"] = summarize(doc["runs"])
        out = args.out or os.path.join(results_dir, f"marginal-{date}.json")
        write_json(out, doc)
        print_report(doc)
        print("wrote", out)
        return

    if args.scale:
        out = args.out or os.path.join(results_dir, f"marginal-scale-{date}.json")
        rec = scale_mode(args, work)
        write_json(out, {"date": date, "machine": machine(args.device), "scale": rec})
        print("wrote", out)
        return

    train, test, _ = adult(args.split_seed)
    train_csv = os.path.join(work, "train.csv")
    train.to_csv(train_csv, index=False)
    sets = marginal_sets(list(domain))

    baselines = {
        "real_auc": tstr_auc(train, test, domain),
        "holdout_vs_train_tvd": mean_tvd(test, train, domain, sets),
        "independent_sampler": {},
    }
    ind = independent_sample(train, len(train), seed=0)
    baselines["independent_sampler"] = {
        "tvd": mean_tvd(ind, train, domain, sets),
        "auc": tstr_auc(ind, test, domain),
        "note": "non-private per-column sampler",
    }

    anchor_eps = args.anchor_epsilons or args.epsilons
    anchor_seeds = args.anchor_seeds or args.seeds
    wanted = []
    for t in args.tools:
        tool, _, algo = t.partition(":")
        for a in TOOLS[tool][2]:
            if not algo or algo == a:
                wanted.append((tool, a))
    jobs = []
    for tool, algo in wanted:
        eps_list, seed_list = (
            (args.epsilons, args.seeds) if tool == "privsynth" else (anchor_eps, anchor_seeds)
        )
        variants = args.privsynth_variants if tool == "privsynth" else args.anchor_variants
        for eps, seed, variant in itertools.product(eps_list, seed_list, variants):
            opts = [f"device={args.device}"] if tool == "privsynth" else []
            extra = [kv for kv in variant.split(",") if kv]
            if (
                tool == "opendp"
                and algo == "mst"
                and eps == 1
                and seed == seed_list[0]
                and not args.no_opendp_round
            ):
                opts.append("also_round=1")
            jobs.append(
                {
                    "tool": tool,
                    "algo": algo,
                    "epsilon": eps,
                    "seed": seed,
                    "delta": args.delta,
                    "options": opts + extra,
                    "tag_suffix": "".join("-" + re.sub(r"[^\w.=-]", "_", kv) for kv in extra),
                }
            )
    # Anchors are recorded as not offering what their driver lacks.
    for tool in {t.partition(":")[0] for t in args.tools}:
        for algo in ("mst", "aim"):
            if algo not in TOOLS[tool][2]:
                jobs.append(
                    {
                        "tool": tool,
                        "algo": algo,
                        "epsilon": anchor_eps[0],
                        "seed": anchor_seeds[0],
                        "delta": args.delta,
                        "skip": "no driver for this algorithm",
                    }
                )

    # Longest first, so the slow anchors overlap the many short privsynth runs.
    def priority(j: dict) -> tuple:
        primary = (
            j["epsilon"] == anchor_eps[0]
            and j["seed"] == (args.seeds if j["tool"] == "privsynth" else anchor_seeds)[0]
        )
        return (not primary, j["tool"] == "privsynth", j["algo"] != "aim")

    jobs.sort(key=priority)

    out = args.out or os.path.join(results_dir, f"marginal-{date}.json")
    doc = {
        "date": date,
        "machine": machine(args.device),
        "args": vars(args),
        "data": DATA,
        "split": {"seed": args.split_seed, "train_rows": len(train), "test_rows": len(test)},
        "marginal_sets": {k: len(v) for k, v in sets.items()},
        "baselines": baselines,
        "runs": [],
        "summary": {},
    }
    lock = threading.Lock()

    def save() -> None:
        doc["summary"] = summarize(doc["runs"])
        write_json(out, doc)

    def one(job: dict) -> dict:
        if job.get("skip"):
            return dict(job, status="not-run", error=job["skip"])
        rec = run_job(job, work, train_csv, args.timeout)
        if rec["status"] == "ok":
            add_quality(rec, train, test, domain, sets)
        return rec

    print(f"{len(jobs)} jobs; results -> {out}", flush=True)
    with cf.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futs = {pool.submit(one, j): j for j in jobs}
        for fut in cf.as_completed(futs):
            rec = fut.result()
            with lock:
                doc["runs"].append(rec)
                save()
            brief = {
                k: rec.get(k)
                for k in (
                    "tool",
                    "algo",
                    "epsilon",
                    "seed",
                    "status",
                    "fit_s",
                    "peak_rss_mb",
                    "auc",
                )
            }
            if "tvd" in rec:
                brief["tvd2"] = round(rec["tvd"]["2way"], 4)
            print(json.dumps(brief), flush=True)
    save()
    print_report(doc)
    print("wrote", out)


def print_report(doc: dict) -> None:
    baselines = doc["baselines"]
    print(
        f"\nreal-data AUC {baselines['real_auc']:.3f}; holdout-vs-train TVD "
        + " ".join(f"{k} {v:.4f}" for k, v in baselines["holdout_vs_train_tvd"].items())
        + "; independent sampler TVD "
        + " ".join(f"{k} {v:.4f}" for k, v in baselines["independent_sampler"]["tvd"].items())
        + f" AUC {baselines['independent_sampler']['auc']:.3f}"
    )
    print(ratio_table(doc["summary"], doc["runs"]))


if __name__ == "__main__":
    main()
