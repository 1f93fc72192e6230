"""The attack suite: every attack, the distance diagnostics, the self-test and the canary
audit, judged by a policy, as one aggregate-only :class:`SuiteResult`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from privsynth.attacks import attribute, linkability, membership, selftest, singling_out
from privsynth.attacks.base import EVIDENCE_NOTE, AttackResult
from privsynth.attacks.canary import canary_audit
from privsynth.attacks.distance import MixedSpace, distance_diagnostics, nearest
from privsynth.attacks.policy import Policy, load_policy
from privsynth.device import resolve_device
from privsynth.errors import ConfigError, DataError
from privsynth.schema import CATEGORICAL_KINDS, Schema

RESULT_VERSION = 1
#: Targets drawn (uniformly, without replacement) from train and from holdout.
N_TARGETS = 5000
#: Synthetic rows (a uniform sample when there are more) whose distance to the closest
#: record is measured against the full training and holdout sets.
DCR_QUERIES = 10_000
#: Predicates generated per singling-out mode.
N_QUERIES = 1000
#: Rows of train (and of holdout) the self-test draws; its synthetic sets have as many.
SELF_TEST_ROWS = 2000
#: Categorical quasi-identifiers with more codes are given to the model as ordinal codes.
MAX_MODEL_CATEGORIES = 250


@dataclass
class SuiteResult:
    """Everything the suite found, aggregates only. :meth:`to_dict` is the JSON form."""

    attacks: list[AttackResult]
    diagnostics: dict[str, Any]
    policy: Policy
    settings: dict[str, Any]
    timing_s: dict[str, float]
    plots: dict[str, Any]
    skipped: list[dict[str, str]] = field(default_factory=list)
    canary: dict[str, Any] | None = None
    self_test: dict[str, Any] | None = None

    def verdict(self) -> dict[str, Any]:
        """Policy summary: judged attacks, failures, canary status and self-test outcome."""
        judged = [a for a in self.attacks if a.passed is not None]
        failed = [a.name for a in judged if a.passed is False]
        violation = self.canary is not None and self.canary["status"] == "VIOLATION"
        out = {
            "policy": self.policy.name,
            "passed": not failed and not violation,
            "failed": failed,
            "n_judged": len(judged),
            "n_diagnostics": len(self.attacks) - len(judged),
            "canary_status": self.canary["status"] if self.canary else None,
            "self_test_ok": None,
        }
        if self.self_test is not None:
            out["self_test_ok"] = bool(
                self.self_test["detected_leak"] and not self.self_test["false_alarm"]
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (non-finite numbers become ``null``)."""
        return _finite(
            {
                "version": RESULT_VERSION,
                "note": EVIDENCE_NOTE,
                "policy": self.policy.to_dict(),
                "verdict": self.verdict(),
                "settings": self.settings,
                "attacks": [a.to_dict() for a in self.attacks],
                "diagnostics": self.diagnostics,
                "canary": self.canary,
                "self_test": self.self_test,
                "skipped": self.skipped,
                "timing_s": self.timing_s,
                "plots": self.plots,
            }
        )


def _finite(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def _at_most(requested: int, *sizes: int) -> int:
    """``requested``, or less when the data are smaller: the smallest size rounded *down* to
    two significant digits, so that a count we draw never reveals a private row count."""
    n = min(sizes)
    if n >= requested:
        return requested
    step = 10 ** max(0, len(str(n)) - 2)
    return max(1, n // step * step)


class _Timer:
    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    def __call__(self, name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        out = fn()
        self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - t0
        return out


def _validated(df: pd.DataFrame | None, schema: Schema, what: str) -> pd.DataFrame | None:
    if df is None:
        return None
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in schema.names if c not in df.columns]
    if missing:
        raise DataError(f"{what} lacks column(s) {missing} that the schema synthesises")
    if len(df) == 0:
        return None
    clean, _ = schema.validate(df[schema.names])
    return clean.reset_index(drop=True)


def _exact_codes(
    frames: list[pd.DataFrame],
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Integer codes of the exact values (missing is a value) shared by ``frames``, and the
    number of distinct values per column."""
    lengths = np.cumsum([0, *(len(f) for f in frames)])
    joined = pd.concat([f.astype(object) for f in frames], ignore_index=True)
    codes = np.empty((len(joined), joined.shape[1]), dtype=np.int64)
    for j, name in enumerate(joined.columns):
        codes[:, j] = pd.factorize(joined[name], use_na_sentinel=False)[0]
    sizes = codes.max(0) + 1
    return tuple(codes[a:b] for a, b in zip(lengths, lengths[1:], strict=False)), sizes


def _dcr_queries(emb_syn: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The synthetic rows whose distances to the (full) reference sets are measured: all of
    them, or a uniform sample of ``DCR_QUERIES`` (the synthetic data is public)."""
    if len(emb_syn) <= DCR_QUERIES:
        return emb_syn
    return emb_syn[np.sort(rng.choice(len(emb_syn), DCR_QUERIES, replace=False))]


def _row_hashes(df: pd.DataFrame) -> np.ndarray:
    return pd.util.hash_pandas_object(df.astype(object), index=False).to_numpy()


#: Neighbours in the density-ratio attack's k-NN estimates.
DENSITY_K = membership.DENSITY_K


@dataclass
class _Run:
    """The prepared inputs of one suite run (validated frames, embeddings, settings)."""

    schema: Schema
    space: MixedSpace
    train: pd.DataFrame
    holdout: pd.DataFrame
    sensitive: list[str]
    quasi_identifiers: list[str]
    policy: Policy
    device: torch.device
    n_targets: int
    n_queries: int
    rng: np.random.Generator
    link_columns: tuple[list[str], list[str]] | None

    def __post_init__(self) -> None:
        self.emb_train = self.space.embed(self.train)
        self.emb_holdout = self.space.embed(self.holdout)
        self.codes_train = self.space.codes(self.train)
        self.codes_holdout = self.space.codes(self.holdout)
        self.hashes = (_row_hashes(self.train), _row_hashes(self.holdout))

    def attacks(self, synthetic: pd.DataFrame, timer: _Timer | None = None) -> dict[str, Any]:
        """Every attack and diagnostic on ``synthetic`` (validated): ``results`` (judged),
        ``roc`` points, distance ``summary`` and ``histogram``."""
        timer = timer or _Timer()
        emb_syn = self.space.embed(synthetic)
        rng, dev = self.rng, self.device
        n_t = _at_most(self.n_targets, len(self.train), len(self.holdout))
        i_tr = rng.choice(len(self.train), n_t, replace=False)
        i_h = rng.choice(len(self.holdout), n_t, replace=False)

        def diagnostics() -> tuple:
            queries = _dcr_queries(emb_syn, rng)
            to_tr, _ = nearest(queries, self.emb_train, 2, device=dev)
            to_h, _ = nearest(queries, self.emb_holdout, 1, device=dev)
            return distance_diagnostics(to_tr, to_h[:, 0], (_row_hashes(synthetic), *self.hashes))

        diag, summary, hist = timer("distance_diagnostics", diagnostics)

        # Each target's distances to its nearest synthetic rows serve both membership attacks.
        def to_synthetic() -> tuple[np.ndarray, np.ndarray]:
            d_in, _ = nearest(self.emb_train[i_tr], emb_syn, DENSITY_K, device=dev)
            d_out, _ = nearest(self.emb_holdout[i_h], emb_syn, DENSITY_K, device=dev)
            return d_in, d_out

        members, non_members = timer("membership_distance", to_synthetic)
        results: list[AttackResult] = []
        roc: dict[str, list[dict]] = {}
        res, roc["membership_distance"] = timer(
            "membership_distance", lambda: membership.distance_attack(members, non_members)
        )
        results.append(res)

        def density() -> tuple:
            ref_in, _ = nearest(self.emb_train[i_tr], self.emb_holdout, DENSITY_K, device=dev)
            ref_out, _ = nearest(
                self.emb_holdout[i_h], self.emb_holdout, DENSITY_K, device=dev, exclude_self=True
            )
            return membership.density_ratio_attack((members, ref_in), (non_members, ref_out))

        res, roc["membership_density_ratio"] = timer("membership_density_ratio", density)
        results.append(res)
        if self.sensitive:
            results += timer(
                "attribute_inference", lambda: self._inference(synthetic, emb_syn, i_tr, i_h)
            )
        if self.link_columns is not None:
            cols = self.link_columns
            groups = (self.space.features(cols[0]), self.space.features(cols[1]))
            results.append(
                timer(
                    "linkability",
                    lambda: linkability.linkability(
                        self.emb_train[i_tr], self.emb_holdout[i_h], emb_syn, groups, cols, dev
                    ),
                )
            )
        n_so = min(len(self.train), len(self.holdout))
        i_t = rng.choice(len(self.train), n_so, replace=False)
        i_c = rng.choice(len(self.holdout), n_so, replace=False)
        # Univariate predicates test exact values; multivariate ones the schema's bins.
        exact = _exact_codes([synthetic, self.train.iloc[i_t], self.holdout.iloc[i_c]])
        binned = (self.space.codes(synthetic), self.codes_train[i_t], self.codes_holdout[i_c])
        sizes = np.array(list(self.space.encoder.shape.values()))
        for mode, (codes, size) in (("univariate", exact), ("multivariate", (binned, sizes))):
            results.append(
                timer(
                    f"singling_out_{mode}",
                    lambda mode=mode, codes=codes, size=size: singling_out.singling_out(
                        *codes, size, rng, mode=mode, n_queries=self.n_queries
                    ),
                )
            )
        return {
            "results": diag + [self.policy.judge(r) for r in results],
            "roc": roc,
            "summary": summary,
            "histogram": hist,
        }

    def _inference(
        self, synthetic: pd.DataFrame, emb_syn: np.ndarray, i_tr: np.ndarray, i_h: np.ndarray
    ) -> list[AttackResult]:
        feats = self.space.features(self.quasi_identifiers)
        x_syn = emb_syn[:, feats]
        x_t = (self.emb_train[i_tr][:, feats], self.emb_holdout[i_h][:, feats])
        nn = [nearest(x, x_syn, 1, device=self.device)[1][:, 0] for x in x_t]
        q = [self.space.names.index(c) for c in self.quasi_identifiers]
        codes_syn = self.space.codes(synthetic)[:, q]
        codes_t = [self.codes_train[i_tr][:, q], self.codes_holdout[i_h][:, q]]
        categorical = np.array(
            [
                self.space.columns[j].kind in CATEGORICAL_KINDS
                and self.space.encoder.codecs[j].size <= MAX_MODEL_CATEGORIES
                for j in q
            ]
        )
        out = []
        for name in self.sensitive:
            col = self.space.columns[self.space.names.index(name)]
            truths = (self.train[name].iloc[i_tr], self.holdout[name].iloc[i_h])
            by_nn = tuple(synthetic[name].iloc[idx].reset_index(drop=True) for idx in nn)
            by_model = tuple(
                attribute.model_guesses(col, codes_syn, synthetic[name], codes_t, categorical)
            )
            for method, guesses in (("nn", by_nn), ("model", by_model)):
                out.append(
                    attribute.score_inference(
                        col, method, self.quasi_identifiers, guesses, truths, synthetic[name]
                    )
                )
        return out


def _check_columns(schema: Schema, names: Sequence[str], what: str) -> list[str]:
    names = list(names)
    known = {c.name for c in schema.synthesised}
    bad = [n for n in names if n not in known]
    if bad:
        raise ConfigError(
            f"{what} {bad} are not synthesised columns of the schema; choose from {sorted(known)}"
        )
    return names


def _link_groups(
    schema: Schema,
    qis: list[str],
    qis_given: bool,
    link_columns: tuple[Sequence[str], Sequence[str]] | None,
) -> tuple[list[str], list[str]] | None:
    """The two column groups of the linkability attack: as given; else the halves of the
    declared quasi-identifiers; else the halves of all synthesised columns. None if a group
    would be empty."""
    if link_columns is not None:
        if len(link_columns) != 2:
            raise ConfigError("link_columns must be two lists of columns (group A, group B)")
        a = _check_columns(schema, link_columns[0], "link column(s)")
        b = _check_columns(schema, link_columns[1], "link column(s)")
        if not a or not b or set(a) & set(b):
            raise ConfigError("link_columns must be two non-empty, disjoint lists of columns")
        return a, b
    cols = qis if qis_given else schema.names
    if len(cols) < 2:
        return None
    half = (len(cols) + 1) // 2
    return cols[:half], cols[half:]


def run_suite(
    train: pd.DataFrame,
    holdout: pd.DataFrame | None,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    sensitive: Sequence[str] = (),
    quasi_identifiers: Sequence[str] | None = None,
    link_columns: tuple[Sequence[str], Sequence[str]] | None = None,
    policy: str | Path | Policy = "standard",
    canary: dict[str, Any] | None = None,
    seed: int = 0,
    device: str = "auto",
    n_targets: int = N_TARGETS,
    n_queries: int = N_QUERIES,
    self_test: bool = True,
) -> SuiteResult:
    """Attack ``synthetic`` and report aggregate evidence of privacy risk.

    Parameters
    ----------
    train
        The private rows the generator was fitted on (members).
    holdout
        Rows from the same population never used in fitting (non-members and control set).
        ``None`` or empty skips every attack that needs them (said in ``skipped``).
    synthetic
        The synthetic release.
    schema
        The release schema; its public bounds scale numeric distances.
    sensitive
        Columns an attacker tries to infer.
    quasi_identifiers
        Columns an attacker knows for attribute inference (default: every synthesised
        column not sensitive).
    link_columns
        The two column groups of the linkability attack (default: the two halves of the
        declared quasi-identifiers, or of all synthesised columns when none are declared).
    policy
        ``standard``, ``strict`` (``audits/policies/``) or a path to a TOML policy.
    canary
        ``dict(factory=..., epsilon=..., m=1000, delta=None)`` runs the one-run canary audit:
        ``factory()`` must return an unfitted generator (``fit(df, schema).sample(n,
        seed=...)``); the extra fit is never released.
    seed
        Seeds every random choice (numpy Generator).
    device
        ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    n_targets
        Training and holdout targets drawn for membership, inference and linkability.
    n_queries
        Predicates generated per singling-out mode.
    self_test
        Also run the suite on planted leaky and null generators.

    Returns
    -------
    SuiteResult
        ``to_dict()`` is the JSON form; ``verdict()`` the policy summary.

    Raises
    ------
    ConfigError
        Unknown columns, policy or device, invalid counts or canary settings.
    DataError
        Frames that lack schema columns or break the schema.
    """
    t_start = time.perf_counter()
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"seed ({seed!r}) must be an integer")
    for value, what in ((n_targets, "n_targets"), (n_queries, "n_queries")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 10:
            raise ConfigError(f"{what} ({value!r}) must be an integer >= 10")
    policy = policy if isinstance(policy, Policy) else load_policy(policy)
    dev = resolve_device(device)
    sub = Schema(columns=schema.synthesised, unit_of_privacy=schema.unit_of_privacy)
    sensitive = _check_columns(sub, sensitive, "sensitive column(s)")
    quasi_identifiers_given = quasi_identifiers is not None
    if quasi_identifiers is None:
        quasi_identifiers = [n for n in sub.names if n not in sensitive]
    qis = _check_columns(sub, quasi_identifiers, "quasi-identifier(s)")
    if sensitive and not qis:
        raise ConfigError(
            "attribute inference needs at least one quasi-identifier: name the columns an "
            "attacker would know (or leave quasi_identifiers unset to use all the others)"
        )
    both = sorted(set(qis) & set(sensitive))
    if both:
        raise ConfigError(f"column(s) {both} are both sensitive and quasi-identifiers")
    links = _link_groups(sub, qis, quasi_identifiers_given, link_columns)
    if canary is not None and not callable(canary.get("factory")):
        raise ConfigError("canary must be a dict with a callable 'factory' and 'epsilon'")

    train_v = _validated(train, sub, "train")
    if train_v is None:
        raise DataError("train has no rows")
    syn_v = _validated(synthetic, sub, "synthetic")
    if syn_v is None:
        raise DataError("synthetic has no rows")
    hold_v = _validated(holdout, sub, "holdout")
    frames = [f for f in (syn_v, train_v, hold_v) if f is not None]
    space = MixedSpace(sub, frames)
    timer = _Timer()
    rng = np.random.default_rng(seed)
    skipped: list[dict[str, str]] = []

    plots: dict[str, Any] = {"roc": {}, "dcr_histogram": None}
    st = None
    if hold_v is None:
        skipped.append(
            {
                "attack": "membership, attribute inference, singling out, linkability, "
                "self-test, DCR train-vs-holdout",
                "reason": "no holdout data: these attacks compare training rows with rows never "
                "used in fitting",
            }
        )

        def diagnostics_only() -> tuple:
            queries = _dcr_queries(space.embed(syn_v), rng)
            to_tr, _ = nearest(queries, space.embed(train_v), 2, device=dev)
            return distance_diagnostics(
                to_tr, None, (_row_hashes(syn_v), _row_hashes(train_v), None)
            )

        attacks, summary, plots["dcr_histogram"] = timer("distance_diagnostics", diagnostics_only)
    else:
        run = _Run(
            sub,
            space,
            train_v,
            hold_v,
            sensitive,
            qis,
            policy,
            dev,
            n_targets,
            n_queries,
            rng,
            links,
        )
        out = run.attacks(syn_v, timer)
        attacks, summary = out["results"], out["summary"]
        plots["roc"], plots["dcr_histogram"] = out["roc"], out["histogram"]
        if not sensitive:
            skipped.append({"attack": "attribute inference", "reason": "no sensitive column"})
        if links is None:
            skipped.append({"attack": "linkability", "reason": "needs two column groups"})
        if self_test and len(train_v) // 2 <= DENSITY_K:
            skipped.append(
                {
                    "attack": "self-test",
                    "reason": "it needs two disjoint samples of more than "
                    f"{DENSITY_K} training rows each",
                }
            )
        elif self_test:
            st = timer("self_test", lambda: _self_test(run, sub, rng))
    canary_out = None
    if canary is not None:
        canary_out = timer(
            "canary",
            lambda: canary_audit(
                train_v,
                sub,
                canary["factory"],
                epsilon=canary.get("epsilon"),
                m=canary.get("m", 1000),
                delta=canary.get("delta"),
                loose_ratio=policy.thresholds["canary"]["loose_ratio"],
                seed=seed,
                device=dev,
            ),
        )
    timer.times["total"] = time.perf_counter() - t_start
    settings = {
        "seed": seed,
        "device": dev.type,
        "sensitive": sensitive,
        "quasi_identifiers": qis,
        "link_columns": [list(g) for g in links] if links is not None else None,
        "n_targets_requested": n_targets,
        "n_queries_requested": n_queries,
        # Train and holdout sizes are private and not reported (not even rounded).
        "synthetic_rows": len(syn_v),
        "distance": "mixed: category mismatch 1, numeric (a-b)/range squared, missing a value",
    }
    return SuiteResult(
        attacks=attacks,
        diagnostics=summary,
        policy=policy,
        settings=settings,
        timing_s={k: round(v, 3) for k, v in timer.times.items()},
        plots=plots,
        skipped=skipped,
        canary=canary_out,
        self_test=st,
    )


def _self_test(run: _Run, schema: Schema, rng: np.random.Generator) -> dict:
    # Two disjoint training samples: the members the planted generators are attacked on, and
    # the rows the null generator is fitted on. A null fitted on the members themselves is
    # not null: each member shifts the marginals it is drawn from by 1/n per column, a pull
    # that adds up over the columns (membership AUC 0.89 at 200 binary columns, 25 members).
    n = _at_most(SELF_TEST_ROWS, len(run.train) // 2, len(run.holdout))
    drawn = rng.choice(len(run.train), 2 * n, replace=False)
    small = _Run(
        schema,
        run.space,
        run.train.iloc[drawn[:n]].reset_index(drop=True),
        run.holdout.iloc[rng.choice(len(run.holdout), n, replace=False)].reset_index(drop=True),
        run.sensitive,
        run.quasi_identifiers,
        run.policy,
        run.device,
        min(run.n_targets, n),
        run.n_queries,
        rng,
        run.link_columns,
    )

    def attacks(synthetic: pd.DataFrame) -> list[AttackResult]:
        clean, _ = schema.validate(synthetic)
        return small.attacks(clean.reset_index(drop=True))["results"]

    null_source = run.train.iloc[drawn[n:]].reset_index(drop=True)
    return selftest.self_test(attacks, small.train, null_source, schema, rng)
