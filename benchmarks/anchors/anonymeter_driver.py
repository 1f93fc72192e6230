"""anonymeter's three evaluators on one (train, control, synthetic) split, timed.

Runs in ``benchmarks/.venvs/anonymeter`` (see ``setup_anchors.sh``); standard library,
pandas and anonymeter only. anonymeter is run as shipped: its default control-set handling,
``n_jobs=1`` (the benchmark machine is shared). Writes one JSON object to ``--out``:
``{"tool", "version", "n_attacks", "evaluators": {name: {"time_s", "risk", "risk_ci",
"attack_rate", "control_rate", "baseline_rate", ...}}}``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import time

import pandas as pd
from anonymeter.evaluators import (
    InferenceEvaluator,
    LinkabilityEvaluator,
    SinglingOutEvaluator,
)


def _rates(ev) -> dict:
    res = ev.results(confidence_level=0.95)
    risk = ev.risk(confidence_level=0.95)

    def rate(r):
        return None if r is None else {"value": r.value, "error": r.error}

    return {
        "risk": risk.value,
        "risk_ci": list(risk.ci),
        "attack_rate": rate(res.attack_rate),
        "control_rate": rate(res.control_rate),
        "baseline_rate": rate(res.baseline_rate),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--train", required=True)
    p.add_argument("--control", required=True)
    p.add_argument("--synthetic", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--aux", required=True, help="comma-separated inference aux columns")
    p.add_argument("--link-a", required=True)
    p.add_argument("--link-b", required=True)
    p.add_argument("--n-attacks", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    ori, ctl, syn = (pd.read_csv(x) for x in (a.train, a.control, a.synthetic))
    out: dict = {}
    t0 = time.perf_counter()
    for mode in ("univariate", "multivariate"):
        t = time.perf_counter()
        ev = SinglingOutEvaluator(
            ori=ori, syn=syn, control=ctl, n_attacks=a.n_attacks, seed=a.seed
        ).evaluate(mode=mode)
        out[f"singling_out_{mode}"] = {
            "time_s": time.perf_counter() - t,
            "queries_generated": len(ev.queries()),
            **_rates(ev),
        }
    t = time.perf_counter()
    ev = LinkabilityEvaluator(
        ori=ori,
        syn=syn,
        control=ctl,
        n_attacks=a.n_attacks,
        aux_cols=(a.link_a.split(","), a.link_b.split(",")),
        n_neighbors=10,
    ).evaluate(n_jobs=1)
    out["linkability"] = {"time_s": time.perf_counter() - t, **_rates(ev)}
    t = time.perf_counter()
    ev = InferenceEvaluator(
        ori=ori,
        syn=syn,
        control=ctl,
        aux_cols=a.aux.split(","),
        secret=a.secret,
        n_attacks=a.n_attacks,
    ).evaluate(n_jobs=1)
    out[f"inference[{a.secret}]"] = {"time_s": time.perf_counter() - t, **_rates(ev)}
    doc = {
        "tool": "anonymeter",
        "version": importlib.metadata.version("anonymeter"),
        "n_attacks": a.n_attacks,
        "total_s": time.perf_counter() - t0,
        "evaluators": out,
    }
    with open(a.out, "w") as fh:
        json.dump(doc, fh, indent=1)


if __name__ == "__main__":
    main()
