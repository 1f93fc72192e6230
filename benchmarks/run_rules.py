"""Domain rules on Adult at epsilon 1: every generator with and without the schema's rules.

The raw Adult table (``../shared/data/adult/adult_raw.csv``, 48,842 rows) under the bundled
codebook schema, split 80/20 as the other benchmarks split it (``adult_split.split``). Two
public rules from the codebook:

* ``education`` determines ``education-num`` (the codebook's mapping, declared);
* ``relationship`` Husband => ``sex`` Male, Wife => Female (forbid [Husband, Female],
  [Wife, Male]).

The real table breaks the second in a handful of rows; they are dropped from the training
rows for both variants (the release's ``--drop-rule-violations`` filter), so "violations"
are synthetic rows breaking a rule the training rows never break. Runs are interleaved
(for each seed and generator: without rules, then with) in one process, so CPU contention
from other work hits both alike. Each run: fit, then sample as many rows as the training
table; graded as ``run_numeric.py`` grades (2-way TVD in the hand-tuned evaluation binning,
TSTR AUC on the holdout for income), plus each rule's share of violating rows and, with the
rules, each rule's rejection rate at sampling.

A second table, generated (no data needed): :func:`admissions`, 20,000 hospital stays
with an admission and a discharge date (codebook range 2020-2023, in days) and the rule
``discharge >= admission``; graded by the rule's violations and the KS distance of the length
of stay (discharge - admission, in days) to the real one.

Times are wall and CPU seconds of this process (CPU time is what contention from other work
does not inflate).

    .venv/bin/python benchmarks/run_rules.py --seeds 0 1

Results: ``benchmarks/results/rules-<date>.json`` and a table on stdout.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from adult_split import SHARED, split  # noqa: E402
from jobs import machine  # noqa: E402
from run_numeric import DATASETS, Grader  # noqa: E402

from privsynth.encoding import Encoder  # noqa: E402
from privsynth.generators.registry import make_generator  # noqa: E402
from privsynth.schema import Schema  # noqa: E402
from privsynth.sources.source import FrameSource  # noqa: E402
from privsynth.utility.marginals import column_sets, encode, marginal_tvds  # noqa: E402

RAW = os.path.join(SHARED, "adult_raw.csv")
CODEBOOK = os.path.join(ROOT, "privsynth", "data", "adult.schema.json")
#: The codebook's education levels and their education-num (public).
EDUCATION_NUM = {
    "Preschool": 1,
    "1st-4th": 2,
    "5th-6th": 3,
    "7th-8th": 4,
    "9th": 5,
    "10th": 6,
    "11th": 7,
    "12th": 8,
    "HS-grad": 9,
    "Some-college": 10,
    "Assoc-voc": 11,
    "Assoc-acdm": 12,
    "Bachelors": 13,
    "Masters": 14,
    "Prof-school": 15,
    "Doctorate": 16,
}
RULES = [
    {"kind": "determines", "columns": ["education", "education-num"], "mapping": EDUCATION_NUM},
    {
        "kind": "forbid",
        "columns": ["relationship", "sex"],
        "values": [["Husband", "Female"], ["Wife", "Male"]],
    },
]


DAYS_2020_2023 = {"lower": "2020-01-01", "upper": "2023-12-31", "unit": "day"}
ADMISSIONS_SCHEMA = {
    "version": 1,
    "columns": {
        "ward": {"kind": "categorical", "categories": ["medicine", "surgery", "icu", "maternity"]},
        "age": {"kind": "integer", "lower": 0, "upper": 100},
        "admission": {
            "kind": "datetime",
            "lower": "2020-01-01",
            "upper": "2023-12-31",
            "unit": "day",
        },
        "discharge": {
            "kind": "datetime",
            "lower": "2020-01-01",
            "upper": "2023-12-31",
            "unit": "day",
        },
    },
}
ADMISSIONS_RULES = [{"kind": "compare", "left": "discharge", "op": ">=", "right": "admission"}]


def admissions(n: int = 20_000, seed: int = 0) -> pd.DataFrame:
    """Generated hospital stays: ward, age, admission date and a discharge 0-60 days later
    (longer in the ICU, older patients stay longer). Public synthetic data for the benchmark."""
    rng = np.random.default_rng(seed)
    ward = rng.choice(["medicine", "surgery", "icu", "maternity"], n, p=[0.45, 0.3, 0.1, 0.15])
    age = np.where(ward == "maternity", rng.integers(18, 45, n), rng.integers(0, 100, n))
    stay = rng.geometric(np.where(ward == "icu", 0.08, 0.25) * np.where(age > 70, 0.6, 1.0)) - 1
    admission = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1400, n), unit="D")
    discharge = admission + pd.to_timedelta(np.minimum(stay, 60), unit="D")
    return pd.DataFrame({"ward": ward, "age": age, "admission": admission, "discharge": discharge})


def admissions_tvd(real: pd.DataFrame, syn: pd.DataFrame) -> float:
    """Mean 2-way TVD over all column pairs, dates in 48 monthly-width and ages in 10 bins."""
    cols = dict(ADMISSIONS_SCHEMA["columns"])
    cols["age"] = {**cols["age"], "bins": 10}
    for name in ("admission", "discharge"):
        cols[name] = {**cols[name], "bins": 48}
    schema = Schema.from_dict({"version": 1, "columns": cols})
    enc = Encoder(schema)
    sizes = list(enc.shape.values())
    r, s = encode(real, schema, enc), encode(syn, schema, enc)
    return float(np.mean(marginal_tvds(r, s, sizes, column_sets(range(len(sizes)), 2))))


def stay_ks(real: pd.DataFrame, syn: pd.DataFrame) -> float:
    """KS distance between the real and synthetic lengths of stay (days)."""
    days = [(f["discharge"] - f["admission"]).dt.days.to_numpy() for f in (real, syn)]
    grid = np.union1d(*days)
    cdf = [np.searchsorted(np.sort(d), grid, side="right") / len(d) for d in days]
    return float(np.abs(cdf[0] - cdf[1]).max())


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--generators", nargs="+", default=["mst", "aim", "dpvae", "dpctgan"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--epsilon", type=float, default=1.0)
    p.add_argument("--delta", type=float, default=1e-9)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--out", default=None, help="results JSON (default results/rules-<date>.json)")
    return p.parse_args()


def run_one(name: str, schema: Schema, train: pd.DataFrame, args, seed: int) -> tuple:
    """Fit and sample one generator; (synthetic rows, {fit,sample}_{s,cpu_s}, rule checks)."""
    gen = make_generator(name, args.epsilon, args.delta, device="cpu")
    t0, c0 = time.perf_counter(), time.process_time()
    gen.fit(train, schema)
    t1, c1 = time.perf_counter(), time.process_time()
    syn = gen.sample(len(train), seed=seed)
    t2, c2 = time.perf_counter(), time.process_time()
    times = {"fit_s": t1 - t0, "sample_s": t2 - t1, "fit_cpu_s": c1 - c0, "sample_cpu_s": c2 - c1}
    return syn, times, list(getattr(gen, "rule_checks_", []))


def table(results: list[dict]) -> str:
    lines = [
        "| generator | rules | education ⇒ education-num violations | relationship/sex "
        "violations | 2-way TVD | AUC | fit+sample s (CPU s) | CPU ratio |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in dict.fromkeys(r["generator"] for r in results):
        base = [r for r in results if r["generator"] == name and not r["rules"]]
        for with_rules in (False, True):
            rs = [r for r in results if r["generator"] == name and r["rules"] == with_rules]

            def mean(key: str, rs: list[dict] = rs) -> float:
                return float(np.mean([r[key] for r in rs]))

            shares = np.mean([r["violation_share"] for r in rs], axis=0)
            ratio = mean("total_cpu_s") / float(np.mean([r["total_cpu_s"] for r in base]))
            lines.append(
                f"| {name.upper()} | {'yes' if with_rules else 'no'} | {shares[0]:.2%} | "
                f"{shares[1]:.2%} | {mean('tvd2'):.4f} | {mean('auc'):.3f} | "
                f"{mean('total_s'):.1f} ({mean('total_cpu_s'):.1f}) | {ratio:.2f} |"
            )
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    if not os.path.exists(RAW):
        print(f"Adult is not at {RAW}: put the shared data there (see PROVENANCE.md); skipping.")
        return
    raw = pd.read_csv(RAW).drop(columns=["split"], errors="ignore")
    train, holdout = split(raw, args.split_seed)
    with open(CODEBOOK) as fh:
        plain = json.load(fh)
    ruled = Schema.from_dict({**plain, "rules": RULES})
    plain_schema = Schema.from_dict(plain)
    # The training rows that keep the rules (the release's drop filter), for both variants.
    kept = FrameSource(train).validate(ruled, on_rule_violation="drop")
    dropped = dict(kept.dropped_by_rules)
    train = train.loc[kept.frame.index].reset_index(drop=True)
    grader = Grader(DATASETS["adult"], train, holdout)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    date = datetime.date.today().isoformat()
    out = args.out or os.path.join(HERE, "results", f"rules-{date}.json")
    results: list[dict] = []
    for seed in args.seeds:
        for name in args.generators:
            for with_rules in (False, True):  # interleaved: contention hits both alike
                schema = ruled if with_rules else plain_schema
                syn, times, checks = run_one(name, schema, train, args, seed)
                q = grader.grade(syn)
                broken = ruled.rule_violations(syn)
                results.append(
                    {
                        "generator": name,
                        "rules": with_rules,
                        "seed": seed,
                        "rows": len(syn),
                        "violations": broken,
                        "violation_share": [b / len(syn) for b in broken],
                        "rejection_rate": [c["rejection_rate"] for c in checks],
                        "rows_repaired": [c["rows_repaired"] for c in checks],
                        "tvd2": q["tvd2"],
                        "auc": q["auc"],
                        **times,
                        "total_s": times["fit_s"] + times["sample_s"],
                        "total_cpu_s": times["fit_cpu_s"] + times["sample_cpu_s"],
                    }
                )
                print(
                    f"{name} seed {seed} rules={with_rules}: violations {broken}, "
                    f"tvd2 {q['tvd2']:.4f}, auc {q['auc']:.3f}, "
                    f"{results[-1]['total_s']:.1f} s ({results[-1]['total_cpu_s']:.1f} CPU s)",
                    flush=True,
                )
                doc = {
                    "benchmark": "rules",
                    "date": date,
                    "commit": commit,
                    "machine": machine(),
                    "data": "adult_raw.csv (shared), bundled codebook schema",
                    "epsilon": args.epsilon,
                    "delta": args.delta,
                    "split": f"80/20, seed {args.split_seed}",
                    "rules": RULES,
                    "train_rows": len(train),
                    "dropped_training_rows": dropped,
                    "results": results,
                }
                with open(out, "w") as fh:
                    json.dump(doc, fh, indent=1)
    doc["admissions"] = admissions_runs(args)
    with open(out, "w") as fh:
        json.dump(doc, fh, indent=1)
    print(table(results))
    print(admissions_table(doc["admissions"]))
    print(f"wrote {out}")


def admissions_runs(args: argparse.Namespace) -> list[dict]:
    """Every generator on :func:`admissions`, without and with ``discharge >= admission``."""
    real = admissions()
    ruled = Schema.from_dict({**ADMISSIONS_SCHEMA, "rules": ADMISSIONS_RULES})
    plain = Schema.from_dict(ADMISSIONS_SCHEMA)
    out = []
    for seed in args.seeds:
        for name in args.generators:
            for with_rules in (False, True):
                syn, times, checks = run_one(name, ruled if with_rules else plain, real, args, seed)
                out.append(
                    {
                        "generator": name,
                        "rules": with_rules,
                        "seed": seed,
                        "violation_share": ruled.rule_violations(syn)[0] / len(syn),
                        "rejection_rate": [c["rejection_rate"] for c in checks],
                        "stay_ks": stay_ks(real, syn),
                        "tvd2": admissions_tvd(real, syn),
                        **times,
                        "total_cpu_s": times["fit_cpu_s"] + times["sample_cpu_s"],
                    }
                )
                print(f"admissions {out[-1]}", flush=True)
    return out


def admissions_table(runs: list[dict]) -> str:
    lines = [
        "| generator | rules | discharge < admission | 2-way TVD | length-of-stay KS | CPU s |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for name in dict.fromkeys(r["generator"] for r in runs):
        for with_rules in (False, True):
            rs = [r for r in runs if r["generator"] == name and r["rules"] == with_rules]
            lines.append(
                f"| {name.upper()} | {'yes' if with_rules else 'no'} | "
                f"{np.mean([r['violation_share'] for r in rs]):.2%} | "
                f"{np.mean([r['tvd2'] for r in rs]):.4f} | "
                f"{np.mean([r['stay_ks'] for r in rs]):.3f} | "
                f"{np.mean([r['total_cpu_s'] for r in rs]):.1f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
