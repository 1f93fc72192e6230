"""Numeric columns as custodians describe them: raw Adult with codebook facts only, side by side.

Each job fits one generator on the raw training rows (the bundled ``adult.csv.gz``, an 80/20
split) in its own process (``benchmarks/anchors/*_driver.py``; anchors in their virtualenvs
under ``benchmarks/.venvs/``) and samples as many rows. privsynth runs under these schemas:

* ``codebook``  kinds, ranges and category lists from the codebook (the bundled schema):
  numeric encodings learned with DP;
* ``equal``     the same ranges cut into 32 equal-width bins (what privsynth did before);
* ``handtuned`` the former bundled schema (one code per year and hour, capital-gain edges
  with zero kept apart), tuned by hand on the data;
* ``nobounds``  no numeric bounds at all: bounds learned with DP too.

Every run's output is graded the same way, never by its own encoding: per numeric column the
KS statistic, Wasserstein-1 over the real inter-quartile range, zero and modal-value shares
against the real training rows; the mean 2-way TVD of all column pairs after mapping real and
synthetic rows into one fixed evaluation binning (the hand-tuned schema's bins); the ROC AUC
of a classifier trained on synthetic rows and tested on the real holdout (income); fit time
and peak RSS.

    .venv/bin/python benchmarks/run_numeric.py --epsilons 1 --seeds 0 1 2
    .venv/bin/python benchmarks/run_numeric.py --jobs privsynth:mst:codebook mostlyai:tabularargn

Results: ``benchmarks/results/numeric-<date>.json`` (rewritten after every job) and a table
on stdout.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp, wasserstein_distance

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from adult_split import split  # noqa: E402
from jobs import machine, run_logged  # noqa: E402

from privsynth.datasets import adult_path  # noqa: E402
from privsynth.encoding import Encoder  # noqa: E402
from privsynth.schema import OTHER, Schema  # noqa: E402
from privsynth.utility.classifiers import fit_score  # noqa: E402
from privsynth.utility.marginals import column_sets, marginal_tvds  # noqa: E402

ANCHORS = os.path.join(HERE, "anchors")
VENVS = os.path.join(HERE, ".venvs")
HANDTUNED = os.path.join(HERE, "adult-handtuned.schema.json")
CODEBOOK = os.path.join(ROOT, "privsynth", "data", "adult.schema.json")
NLSWORK = os.path.join(ROOT, "..", "shared", "data", "nlswork", "nlswork.csv")
NLSWORK_CODEBOOK = os.path.join(HERE, "nlswork.codebook.schema.json")


@dataclass(frozen=True)
class Dataset:
    """A raw table, its codebook schema, the numeric columns graded one by one, the TSTR
    target, and the fixed evaluation binning every run is graded in."""

    load: Callable[[], pd.DataFrame]
    codebook: str
    numeric: tuple[str, ...]
    target: str
    eval_schema: Callable[[], dict]


def _handtuned() -> dict:
    with open(HANDTUNED) as fh:
        return json.load(fh)


def _nlswork_eval() -> dict:
    """nlswork's codebook with every numeric column cut into 16 equal-width bins (ln_wage over
    0..6): a fixed, public evaluation binning."""
    with open(NLSWORK_CODEBOOK) as fh:
        spec = json.load(fh)
    spec["columns"]["ln_wage"].update(lower=0, upper=6)
    for col in spec["columns"].values():
        if col["kind"] in ("integer", "continuous"):
            col["bins"] = 16
    return spec


def _nlswork() -> pd.DataFrame:
    """nlswork's rows without the person id: a row-level table for the encoding benchmark
    (its DP guarantee is per row, not per woman; here only fidelity is compared)."""
    if not os.path.exists(NLSWORK):
        sys.exit(f"{NLSWORK} is missing (../shared/data/nlswork)")
    return pd.read_csv(NLSWORK).drop(columns="idcode")


DATASETS = {
    "adult": Dataset(
        load=lambda: pd.read_csv(adult_path()),
        codebook=CODEBOOK,
        numeric=("age", "fnlwgt", "capital-gain", "capital-loss", "hours-per-week"),
        target="income",
        eval_schema=_handtuned,
    ),
    "nlswork": Dataset(
        load=_nlswork,
        codebook=NLSWORK_CODEBOOK,
        numeric=("age", "grade", "wks_ue", "ttl_exp", "tenure", "hours", "wks_work", "ln_wage"),
        target="collgrad",
        eval_schema=_nlswork_eval,
    ),
}
TOOLS = {
    "privsynth": (sys.executable, "privsynth_driver.py"),
    "mostlyai": (os.path.join(VENVS, "mostlyai", "bin", "python"), "mostlyai_driver.py"),
}
DEFAULT_JOBS = [
    f"privsynth:{algo}:{schema}"
    for algo in ("mst", "aim")
    for schema in ("codebook", "equal", "handtuned", "nobounds")
] + ["mostlyai:tabularargn"]


def schemas(data: Dataset) -> dict[str, dict]:
    """The schema variants (see the module docstring), as dicts."""
    with open(data.codebook) as fh:
        codebook = json.load(fh)
    equal = json.loads(json.dumps(codebook))
    nobounds = json.loads(json.dumps(codebook))
    for name in data.numeric:
        if "lower" in equal["columns"][name]:
            equal["columns"][name]["bins"] = 32
        for key in ("lower", "upper"):
            nobounds["columns"][name].pop(key, None)
    out = {"codebook": codebook, "equal": equal, "nobounds": nobounds}
    if data.eval_schema is _handtuned:
        out["handtuned"] = _handtuned()
    return out


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dataset", choices=sorted(DATASETS), default="adult")
    p.add_argument("--epsilons", type=float, nargs="+", default=[1.0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument(
        "--jobs",
        nargs="+",
        default=DEFAULT_JOBS,
        help="tool:algo[:schema][@eps,eps] entries (schema for privsynth: codebook, equal, "
        "handtuned, nobounds; @ limits the entry to those epsilons)",
    )
    p.add_argument(
        "--append", action="store_true", help="keep the runs already in --out and add these"
    )
    p.add_argument("--option", action="append", default=[], help="driver key=value, all jobs")
    p.add_argument(
        "--train-rows", type=int, default=None, help="fit on this many training rows (seeded)"
    )
    p.add_argument("--delta", type=float, default=1e-9)
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--out", default=None)
    p.add_argument(
        "--report",
        metavar="JSON",
        help="only: print the tables of an earlier results file (with --dataset and "
        "--train-rows as it was run)",
    )
    return p.parse_args()


class Grader:
    """Grades synthetic tables against the real training rows and holdout, all alike."""

    def __init__(self, data: Dataset, train: pd.DataFrame, holdout: pd.DataFrame) -> None:
        spec = data.eval_schema()
        self.numeric, self.target = data.numeric, data.target
        for col in spec["columns"].values():
            col["nullable"] = True  # a missing value where the real column has none: its own code
        for col in spec["columns"].values():  # an unknown value ("_RARE_", a learned
            if "categories" in col:  # list's "(other)") is graded as one extra category
                col.update(categories=[*col["categories"], OTHER], source="dp")
        self.eval_schema = Schema.from_dict(spec)
        self.encoder = Encoder(self.eval_schema)
        self.train = train
        self.train_codes = self._codes(train)
        self.hold_codes = self._codes(holdout)
        self.pairs = [list(p) for p in column_sets(list(train.columns), 2)]
        self.sizes = list(self.encoder.shape.values())

    def _codes(self, df: pd.DataFrame) -> np.ndarray:
        return self.encoder.encode(self.eval_schema.validate(df)[0])

    def grade(self, syn: pd.DataFrame) -> dict:
        syn = syn[list(self.train.columns)]
        out: dict = {"columns": {}}
        for c in self.numeric:
            r = self.train[c].dropna().to_numpy(float)
            s = pd.to_numeric(syn[c], errors="coerce").dropna().to_numpy(float)
            mode = float(pd.Series(r).mode().iloc[0])
            if not len(s):  # no value at all (an anchor's failed numeric column)
                out["columns"][c] = {
                    "ks": 1.0, "w1_iqr": float("nan"), "zero_real": float((r == 0).mean()),
                    "zero_syn": 0.0, "mode": mode, "mode_real": float((r == mode).mean()),
                    "mode_syn": 0.0, "real_outside_syn_range": 1.0,
                }  # fmt: skip
                continue
            iqr = float(np.subtract(*np.percentile(r, [75, 25]))) or float(np.std(r)) or 1.0
            out["columns"][c] = {
                "ks": float(ks_2samp(r, s).statistic),
                "w1_iqr": float(wasserstein_distance(r, s) / iqr),
                "zero_real": float((r == 0).mean()),
                "zero_syn": float((s == 0).mean()),
                "mode": mode,
                "mode_real": float((r == mode).mean()),
                "mode_syn": float((s == mode).mean()),
                "real_outside_syn_range": float(((r < s.min()) | (r > s.max())).mean()),
            }
        codes = self._codes(syn)
        pos = {c: i for i, c in enumerate(self.train.columns)}
        idx = [[pos[c] for c in p] for p in self.pairs]
        out["tvd2"] = float(np.mean(marginal_tvds(self.train_codes, codes, self.sizes, idx)))
        y = pos[self.target]
        feats = [j for j in range(codes.shape[1]) if j != y]
        auc = fit_score(
            codes[:, feats],
            codes[:, y],
            self.hold_codes[:, feats],
            self.hold_codes[:, y],
            categorical=np.ones(len(feats), dtype=bool),
            binary=True,
            seed=0,
        )
        out["auc"] = float("nan") if auc is None else float(auc)
        return out


def run(job: str, eps: float, seed: int, args, work: str, train_csv: str, variants) -> dict:
    tool, algo, *rest = job.split(":")
    variant = rest[0] if rest else "codebook"
    python, driver = TOOLS[tool]
    schema_path = os.path.join(work, f"{variant}.schema.json")
    with open(schema_path, "w") as fh:
        json.dump(variants[variant], fh)
    tag = f"{tool}-{algo}-{variant}-eps{eps:g}-s{seed}"
    out = os.path.join(work, tag + ".csv")
    cmd = [python, os.path.join(ANCHORS, driver), "--train", train_csv, "--codebook"]
    cmd += [schema_path, "--algo", algo, "--epsilon", str(eps), "--delta", str(args.delta)]
    cmd += ["--seed", str(seed), "--out", out]
    for kv in args.option:
        cmd += ["--option", kv]
    rec = {"tool": tool, "algo": algo, "schema": variant, "epsilon": eps, "seed": seed}
    rec["options"] = list(args.option)
    if not os.path.exists(python):
        return dict(rec, status="not-installed")
    rec.update(run_logged(cmd, os.path.join(work, tag + ".log"), args.timeout))
    if rec["status"] == "ok" and os.path.exists(out + ".json"):
        with open(out + ".json") as fh:
            rec.update(json.load(fh))
        rec["synthetic_csv"] = out
    elif rec["status"] == "ok":
        rec["status"] = "failed"
    return rec


def table(results: list[dict], numeric: tuple[str, ...]) -> str:
    """Means over seeds per (tool, algo, schema, epsilon)."""
    groups: dict = {}
    for r in results:
        if r.get("status") == "ok" and "quality" in r:
            label = " ".join([r["tool"], r["algo"], r["schema"], *r.get("options", [])])
            groups.setdefault((label, r["epsilon"]), []).append(r)
    head = "| run | eps | seeds | " + " | ".join(f"{c} KS" for c in numeric)
    head += " | zero shares | modal shares | 2-way TVD | AUC | fit s | RSS MB |"
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for (label, eps), rs in sorted(groups.items()):

        def mean(f, rs=rs):
            return float(np.mean([f(r) for r in rs]))

        def col(c: str, key: str) -> float:
            return mean(lambda r: r["quality"]["columns"][c][key])

        ks = [col(c, "ks") for c in numeric]
        # syn/real shares of zero and of the real modal value, for columns where they matter
        zeros = " ".join(
            f"{c}:{col(c, 'zero_syn'):.3f}/{col(c, 'zero_real'):.3f}"
            for c in numeric
            if col(c, "zero_real") > 0.05
        )
        modes = " ".join(
            f"{c}={rs[0]['quality']['columns'][c]['mode']:g}:"
            f"{col(c, 'mode_syn'):.3f}/{col(c, 'mode_real'):.3f}"
            for c in numeric
            if col(c, "mode_real") > 0.2 and col(c, "zero_real") < 0.05
        )
        lines.append(
            f"| {label} | {eps:g} | {len(rs)} | "
            + " | ".join(f"{k:.3f}" for k in ks)
            + f" | {zeros} | {modes} | {mean(lambda r: r['quality']['tvd2']):.4f}"
            + f" | {mean(lambda r: r['quality']['auc']):.3f} | {mean(lambda r: r['fit_s']):.1f}"
            + f" | {mean(lambda r: r['peak_rss_mb']):.0f} |"
        )
    return "\n".join(lines)


def coverage(results: list[dict], train: pd.DataFrame) -> str:
    """For runs that learned bounds with DP: the share of real training values outside the
    learned range of each column (max over columns and seeds)."""
    groups: dict = {}
    for r in results:
        learned = r.get("extra", {}).get("learned", {})
        shares = [
            float(((train[c] < v["lower"]) | (train[c] > v["upper"])).mean())
            for c, v in learned.items()
            if r.get("schema") == "nobounds" and c in train
        ]
        if shares:
            groups.setdefault((r["algo"], r["epsilon"]), []).append(max(shares))
    return "\n".join(
        f"{algo} eps {eps:g}: at most {max(v):.4%} of a column's real values outside its "
        f"learned range ({len(v)} fits)"
        for (algo, eps), v in sorted(groups.items())
    )


def main() -> None:
    args = parse_args()
    data = DATASETS[args.dataset]
    train, holdout = split(data.load(), seed=0)
    if args.train_rows:
        train = train.sample(n=args.train_rows, random_state=0).reset_index(drop=True)
    if args.report:
        with open(args.report) as fh:
            runs = json.load(fh)["runs"]
        print(table(runs, data.numeric))
        print(coverage(runs, train))
        return
    grader = Grader(data, train, holdout)
    variants = schemas(data)
    date = datetime.date.today().isoformat()
    out = args.out or os.path.join(HERE, "results", f"numeric-{args.dataset}-{date}.json")
    results: list[dict] = []
    if args.append and os.path.exists(out):
        with open(out) as fh:
            results = json.load(fh)["runs"]
    with tempfile.TemporaryDirectory(prefix="numeric-") as work:
        train_csv = os.path.join(work, "train.csv")
        train.to_csv(train_csv, index=False)
        for eps in args.epsilons:
            for seed in args.seeds:
                for entry in args.jobs:
                    job, _, only = entry.partition("@")
                    if only and eps not in {float(e) for e in only.split(",")}:
                        continue
                    rec = run(job, eps, seed, args, work, train_csv, variants)
                    if rec["status"] == "ok":
                        rec["quality"] = grader.grade(pd.read_csv(rec.pop("synthetic_csv")))
                    results.append(rec)
                    print(
                        json.dumps(
                            {
                                k: rec.get(k)
                                for k in (
                                    "tool",
                                    "algo",
                                    "schema",
                                    "epsilon",
                                    "seed",
                                    "status",
                                    "fit_s",
                                )
                            }
                        ),
                        flush=True,
                    )
                    with open(out, "w") as fh:
                        json.dump(
                            {
                                "date": date,
                                "machine": machine(),
                                "delta": args.delta,
                                "split": "80/20, seed 0",
                                "runs": results,
                            },
                            fh,
                            indent=1,
                        )
    print(table(results, data.numeric))
    print(coverage(results, train))


if __name__ == "__main__":
    main()
