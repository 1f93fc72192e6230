"""A release on a real Spark standalone cluster: a master and one worker started on localhost
with the launcher that ships with pyspark (``bin/spark-class``), the release run from the
command line with ``--spark-master spark://...``. Its marginal counts equal the pandas
path's, and no query brings more rows to the driver than the audit's sample."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pyspark = pytest.importorskip("pyspark", reason="Spark tests need pyspark: pip install '.[scale]'")
if shutil.which("java") is None:
    pytest.skip("Spark tests need Java (17 or later) on PATH", allow_module_level=True)

from privsynth.attacks.policy import POLICY_DIR  # noqa: E402
from privsynth.report.keys import keygen  # noqa: E402
from privsynth.report.verify import verify_release  # noqa: E402
from privsynth.schema import Schema  # noqa: E402
from privsynth.sources.standalone import standalone_cluster  # noqa: E402

ROWS = 3000
#: A rare code among the jobs, as real tables have.
JOBS = [0.4, 0.2, 0.1, 0.1, 0.1, 0.05, 0.04, 0.01]
#: The audit's training (and holdout) sample: no query may return more rows than this.
SAMPLE = 400

SCHEMA = {
    "version": 1,
    "columns": {
        "sex": {"kind": "categorical", "categories": ["F", "M"]},
        "age": {"kind": "integer", "lower": 18, "upper": 90, "bins": 12},
        "job": {"kind": "categorical", "categories": list("abcdefgh")},
        "income": {"kind": "continuous", "lower": 0, "upper": 200000, "bins": 10},
    },
}

# Runs in a child process (this one may hold the local session of other tests, which
# getOrCreate would hand back): records what each query of the release brings to the driver
# while it runs the CLI. Raw rows leave the engine only through ``sample_rows`` (the audit's
# samples); every other query must be an aggregate.
_CHILD = """
import json, re, sys
from privsynth.sources.sql import SqlSource
from privsynth.sources.spark import SparkSource
seen = {"samples": [], "other": []}
run, sample = SparkSource._run, SqlSource.sample_rows
def counted(self, sql):
    out = run(self, sql)
    aggregate = bool(re.search(r"count\\(|GROUP BY|DISTINCT|min\\(|max\\(", sql, re.I))
    seen["other"].append({"rows": len(out), "aggregate": aggregate, "sql": sql[:80]})
    return out
def sampled(self, k, seed):
    out = sample(self, k, seed)
    seen["samples"].append(len(out))
    seen["other"].pop()  # the _run call just made
    return out
SparkSource._run, SqlSource.sample_rows = counted, sampled
from privsynth.cli.root import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    if exc.code:
        raise
SparkSource._run = run
# Then, on the session the release used: every 1- and 2-way marginal a fit reads, counted on
# the cluster and in pandas.
import itertools
import numpy as np, pandas as pd
from pyspark.sql import SparkSession
from privsynth.schema import Schema
from privsynth.sources.source import FrameSource
spark = SparkSession.builder.getOrCreate()
path, schema = sys.argv[2], Schema.load(sys.argv[sys.argv.index("--schema") + 1])
sets = [(j,) for j in range(len(schema.names))]
sets += list(itertools.combinations(range(len(schema.names)), 2))
want = FrameSource(pd.read_csv(path)).validate(schema).encode(schema).marginals(sets)
src = SparkSource(spark.read.csv(path, header=True, inferSchema=True))
got = src.validate(schema).encode(schema).marginals(sets)
seen["master"] = spark.sparkContext.master
seen["counts_equal"] = all(np.array_equal(w, g) for w, g in zip(want, got, strict=True))
print(json.dumps(seen))
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``spark://127.0.0.1:PORT``: a standalone master and one worker (1 core, 1 GB)."""
    with standalone_cluster(logs=tmp_path_factory.mktemp("spark")) as master:
        yield master


def _table(path: Path) -> None:
    rng = np.random.default_rng(11)
    df = pd.DataFrame(
        {
            "sex": rng.choice(["F", "M"], ROWS),
            "age": rng.integers(18, 91, ROWS),
            "job": rng.choice(
                list("abcdefgh"), ROWS, p=[0.4, 0.2, 0.1, 0.1, 0.1, 0.05, 0.04, 0.01]
            ),
            # zero-inflated and heavy-tailed, as incomes are
            "income": np.where(
                rng.random(ROWS) < 0.3, 0.0, np.minimum(rng.lognormal(10, 1, ROWS), 2e5)
            ).round(2),
        }
    )
    df.to_csv(path, index=False)


def test_a_release_on_a_standalone_cluster_counts_as_pandas_and_collects_only_samples(
    cluster, tmp_path
):
    _table(tmp_path / "people.csv")
    schema = Schema.from_dict(SCHEMA)
    schema.save(tmp_path / "s.json")
    keygen(tmp_path / "k")
    policy = (POLICY_DIR / "standard.toml").read_text(encoding="utf-8")
    policy = policy[: policy.index("[sample]")] + (
        f"[sample]\nsynthetic_rows = {SAMPLE}\nreference_rows = {SAMPLE}\n"
        "targets = 100\nqueries = 100\n"
    )
    (tmp_path / "p.toml").write_text(policy, encoding="utf-8")

    out = tmp_path / "rel"
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, "release", str(tmp_path / "people.csv"),
         "--schema", str(tmp_path / "s.json"), "--engine", "spark", "--spark-master", cluster,
         "--epsilon", "1", "--ledger", str(tmp_path / "l.sqlite"), "--cap-epsilon", "5",
         "--dataset-id", "people", "--key", str(tmp_path / "k"), "--out", str(out),
         "--policy", str(tmp_path / "p.toml"), "--seed", "3"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert child.returncode == 0, child.stderr[-3000:]
    seen = json.loads(child.stdout.strip().splitlines()[-1])
    assert seen["master"] == cluster and seen["counts_equal"], seen
    # Aggregates and the audit's samples only: never the table (3,000 rows).
    assert len(seen["samples"]) == 2 and max(seen["samples"]) <= SAMPLE, seen
    assert seen["other"] and all(q["aggregate"] for q in seen["other"]), seen
    verify_release(out, ledger=tmp_path / "l.sqlite")
    report = json.loads((out / "audit.json").read_text(encoding="utf-8"))
    assert report["release"]["engine"] == "spark"
    assert (
        len(pd.read_csv(out / report["release"]["data_file"])) == report["release"]["rows_released"]
    )
