"""People, not rows: what a person-level guarantee costs in fidelity, on a real panel and a
generated hospital table.

Datasets (codebook facts only, the person declared):

* ``nlswork``  ../shared/data/nlswork (28,534 interview rows of 4,711 women, 1-15 each); the
  person is ``idcode``, K = 15 (the survey's 15 interview rounds, a public design fact);
  ``birth_yr`` and ``race`` are ``level: unit``, ``year`` orders a woman's rows, one per year
  (``"order": "distinct"``);
* ``visits``   ``privsynth.datasets.make_visits(2000)`` (13,346 visits, 1-30 per patient); the
  person is ``patient``, K = 12; sex, arm and birth year are ``level: unit``, ``day`` orders.

Variants of the same MST fit:

* ``person``     the person with the declared K (the guarantee a release now states);
* ``person-dp``  the person with K chosen by a DP quantile (``"max_rows": "dp"``);
* ``person:K``   the person with a smaller declared K (longer histories truncated);
  ``person:1`` keeps one random row per person: a proxy for weighting each person's rows to a
  total of 1 (the same noise, sensitivity 1, and the same person-weighted estimand; weights
  would average a person's rows where this samples one);
* ``person-unordered`` the person without the ``order`` column (graded after sorting each
  person's rows by it, as a user would): what ordering, and nlswork's one row per year
  (``"order": "distinct"``), change;
* ``row-claim``  the same rows with a per-row guarantee (``rows_are_people``): what a release
  claimed before, about K times weaker for a person with K rows. Fidelity only.

Graded on one fixed evaluation binning (every numeric column in 16 equal-width bins): the
mean 2-way TVD of all column pairs and of the person x row pairs (a ``level: unit`` column with
a row column), the KS distance between the real and synthetic rows-per-person distributions,
the share of synthetic persons whose unit columns are constant and whose rows are ordered,
the share of real and synthetic persons whose order values are all distinct (one row per
survey year), the mean 2-way TVD of each row column with the row's position among its
person's rows (by the order column: how well a person's sequence of rows is kept), and the
fit time.

``--canary`` also runs the one-run canary audit on the ``person`` variant: 1,000 canary
persons of K identical rows each (a fit never released); its 95% lower bound on the
per-person epsilon must not exceed the claimed epsilon.

    .venv/bin/python benchmarks/run_persons.py --epsilons 1 3 --seeds 0 1 2 --canary

Results: ``benchmarks/results/persons-<date>.json`` and a table on stdout.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from privsynth import MST, Schema
from privsynth.attacks.canary import canary_audit
from privsynth.datasets import VISITS_SCHEMA, make_visits
from privsynth.encoding import Encoder
from privsynth.persons import person_fidelity
from privsynth.utility.marginals import column_sets, encode, marginal_tvds

HERE = os.path.dirname(os.path.abspath(__file__))
NLSWORK = os.path.join(HERE, "..", "..", "shared", "data", "nlswork", "nlswork.csv")
NLSWORK_CODEBOOK = os.path.join(HERE, "nlswork.codebook.schema.json")


@dataclass(frozen=True)
class Dataset:
    load: Callable[[], tuple[pd.DataFrame, dict[str, Any]]]
    person: str
    #: The column that orders a person's rows.
    order: str
    #: Evaluation ranges of numeric columns the codebook leaves open.
    eval_bounds: dict[str, tuple[float, float]]


def _nlswork() -> tuple[pd.DataFrame, dict[str, Any]]:
    if not os.path.exists(NLSWORK):
        sys.exit(f"{NLSWORK} is missing (../shared/data/nlswork)")
    df = pd.read_csv(NLSWORK)
    with open(NLSWORK_CODEBOOK) as fh:
        spec = json.load(fh)
    spec["columns"] = {"idcode": {"kind": "identifier"}, **spec["columns"]}
    spec["unit_of_privacy"] = {"column": "idcode", "max_rows": 15}
    for name in ("birth_yr", "race"):
        spec["columns"][name]["level"] = "unit"
    spec["columns"]["year"]["order"] = "distinct"  # one interview per woman and year
    return df, spec


def _visits() -> tuple[pd.DataFrame, dict[str, Any]]:
    df, _ = make_visits(2000, seed=0)
    return df, json.loads(json.dumps(VISITS_SCHEMA))


DATASETS = {
    "nlswork": Dataset(_nlswork, "idcode", "year", {"ln_wage": (0.0, 6.0)}),
    "visits": Dataset(_visits, "patient", "day", {}),
}


def variant_spec(spec: dict[str, Any], person: str, variant: str) -> dict[str, Any]:
    out = json.loads(json.dumps(spec))
    if variant == "person-dp":
        out["unit_of_privacy"]["max_rows"] = "dp"
    elif variant.startswith("person:"):  # a smaller K: more persons truncated, less noise
        out["unit_of_privacy"]["max_rows"] = int(variant.split(":")[1])
    elif variant == "person-unordered":  # no order column: rows neither sorted nor distinct
        for col in out["columns"].values():
            col.pop("order", None)
    elif variant == "row-claim":
        out["unit_of_privacy"] = {"column": person, "rows_are_people": True}
        for col in out["columns"].values():
            col.pop("level", None), col.pop("order", None)
    return out


def eval_schema(spec: dict[str, Any], bounds: dict[str, tuple[float, float]]) -> Schema:
    """The synthesised columns, numeric ones in 16 equal-width bins over their declared range
    (a public binning that no variant is fitted on)."""
    cols = {}
    for name, col in spec["columns"].items():
        if col["kind"] == "identifier":
            continue
        col = {k: v for k, v in col.items() if k not in ("level", "order", "decimals")}
        if col["kind"] in ("integer", "continuous"):
            col["bins"] = 16
            if name in bounds:
                col["lower"], col["upper"] = bounds[name]
        cols[name] = col
    return Schema.from_dict({"version": 1, "columns": cols})


def grade(
    real: pd.DataFrame, syn: pd.DataFrame, spec: dict[str, Any], ds: Dataset
) -> dict[str, Any]:
    person = ds.person
    schema = eval_schema(spec, ds.eval_bounds)
    enc = Encoder(schema)
    sizes = list(enc.shape.values())
    r, s = encode(real[schema.names], schema, enc), encode(syn[schema.names], schema, enc)
    units = [schema.names.index(n) for n, c in spec["columns"].items() if c.get("level") == "unit"]
    pairs = [(u, j) for u in units for j in range(len(sizes)) if j not in units]
    out: dict[str, Any] = {
        "tvd2_all": float(np.mean(marginal_tvds(r, s, sizes, column_sets(range(len(sizes)), 2)))),
        "tvd2_person_x_row": float(np.mean(marginal_tvds(r, s, sizes, pairs))) if pairs else None,
        "rows_real": len(real),
        "rows_synthetic": len(syn),
    }
    if person in syn.columns:
        out.update(persons_synthetic=int(syn[person].nunique()))
        out.update(person_fidelity(real, syn, Schema.from_dict(spec)))
        out["tvd2_position_x_row"] = position_tvd(real, syn, schema, person, ds.order, spec)
        order = [n for n, c in spec["columns"].items() if c.get("order")]
        if order:
            out["order_distinct"] = {
                side: float(frame.groupby(person)[order[0]].apply(lambda x: x.is_unique).mean())
                for side, frame in (("real", real), ("synthetic", syn))
            }
    return out


#: Bins of a row's position among its person's rows (1st, 2nd, ...), for grading.
POSITION_STARTS = np.array([1, 2, 3, 4, 5, 6, 8, 11, 16, 26])


def position_tvd(
    real: pd.DataFrame,
    syn: pd.DataFrame,
    schema: Schema,
    person: str,
    order: str,
    spec: dict[str, Any],
) -> float:
    """Mean 2-way TVD of (position among the person's rows, row column) over the row columns,
    positions in :data:`POSITION_STARTS` bins: how well each person's sequence of rows is
    kept."""
    rows = [n for n in schema.names if spec["columns"][n].get("level") != "unit" and n != order]
    enc = Encoder(schema)
    sizes = [*enc.shape.values(), len(POSITION_STARTS)]
    coded = []
    for frame in (real, syn):
        frame = frame.sort_values([person, order], kind="stable")
        rank = frame.groupby(person, sort=False).cumcount().to_numpy() + 1
        codes = encode(frame[schema.names], schema, enc)
        position = np.searchsorted(POSITION_STARTS, rank, side="right") - 1
        coded.append(np.column_stack([codes, position]))
    at = len(sizes) - 1
    pairs = [(schema.names.index(n), at) for n in rows]
    return float(np.mean(marginal_tvds(coded[0], coded[1], sizes, pairs)))


def canary(real: pd.DataFrame, fit_spec: dict[str, Any], epsilon: float, seed: int) -> dict:
    """The canary audit of a person-level MST fit: canaries are persons of K identical rows."""
    schema = Schema.from_dict(fit_spec)
    train, _ = schema.validate(real)
    out = canary_audit(train, schema, lambda: MST(epsilon=epsilon), epsilon=epsilon, seed=seed)
    keys = ("m", "guesses", "correct", "epsilon_claimed", "epsilon_lower_bound", "status")
    return {k: out[k] for k in keys}


def run(dataset: str, variant: str, epsilon: float, seed: int, with_canary: bool) -> dict[str, Any]:
    ds = DATASETS[dataset]
    real, spec = ds.load()
    fit_spec = variant_spec(spec, ds.person, variant)
    t = time.perf_counter()
    model = MST(epsilon=epsilon).fit(real, Schema.from_dict(fit_spec))
    fit_s = time.perf_counter() - t
    syn = model.sample(seed=seed)
    spec_out = model.privacy_spec()
    row = {
        "dataset": dataset,
        "variant": variant,
        "epsilon": epsilon,
        "seed": seed,
        "fit_s": round(fit_s, 2),
        "unit_of_privacy": spec_out["unit_of_privacy"],
        "max_rows": getattr(model, "persons_", {}).get("max_rows"),
        **grade(real, syn, fit_spec, ds),
    }
    if with_canary and variant == "person":
        row["canary"] = canary(real, fit_spec, epsilon, seed)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=list(DATASETS))
    p.add_argument(
        "--variants",
        nargs="+",
        default=["person", "person:5", "person:1", "person-unordered", "person-dp", "row-claim"],
    )
    p.add_argument("--epsilons", nargs="+", type=float, default=[1.0, 3.0])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--canary", action="store_true", help="canary audit of the person variant")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    today = datetime.date.today().isoformat()
    out = args.out or os.path.join(HERE, "results", f"persons-{today}.json")
    rows = []
    for dataset in args.datasets:
        for epsilon in args.epsilons:
            for variant in args.variants:
                for seed in args.seeds:
                    row = run(dataset, variant, epsilon, seed, args.canary)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    with open(out, "w") as fh:
                        json.dump({"generated": today, "runs": rows}, fh, indent=1)
    table = pd.DataFrame(rows)
    cols = ["tvd2_all", "tvd2_person_x_row", "rows_per_person_ks", "unit_consistency", "fit_s"]
    summary = table.groupby(["dataset", "epsilon", "variant"])[cols + ["max_rows"]].agg(
        ["min", "max"]
    )
    print(summary.round(4).to_string())


if __name__ == "__main__":
    main()
