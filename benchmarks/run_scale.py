"""Scale benchmark: MST on a table that never enters Python, and the engines side by side.

1. Adult (``../shared/data/adult/adult.csv``, integer-coded, 48,842 rows) resampled with
   replacement to ``--rows`` rows (default 10,000,000) and written as Parquet by DuckDB
   (in ``--workdir``, not committed).
2. The floor: one DuckDB scan of that file counting a single 1-way marginal (``age``); and
   what any MST must at least read: every column's 1-way marginal in one grouping-sets query.
3. MST (epsilon 1) fitted through :class:`privsynth.sources.duckdb.DuckDBSource` and
   ``sample_to_parquet`` of as many rows, in a child process: wall time of each step and the
   child's peak RSS.
4. The whole release of that file from the command line (``privsynth release --format parquet``
   with ``--engine duckdb``, ``--engine spark`` on ``local[N]``, and on a standalone master and
   worker started on localhost: validation, split, fit, streamed sampling and writing, the
   attack suite on its samples, the canary refit, the signed report) in a child process each:
   wall time, steps and peak RSS, against the floor of reading the data once (the all-1-way
   scan) + the MST fit + writing as many rows (step 3).
5. pandas vs DuckDB vs Spark (``local[N]``) on ``--compare-rows`` rows (default 1,000,000):
   validation + encoding + every 1-way and 2-way marginal; the counts must be identical.

DuckDB and Spark get ``--threads`` threads (default 2). Results go to
``benchmarks/results/scale-<date>.json``.

    .venv/bin/python benchmarks/run_scale.py --workdir /tmp/scale
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "data", "adult")
DATA = os.path.join(SHARED, "adult.csv")
DOMAIN = os.path.join(SHARED, "adult-domain.json")


def adult_schema():
    from privsynth.schema import Schema

    with open(DOMAIN) as fh:
        domain = json.load(fh)
    return Schema.from_dict(
        {
            "version": 1,
            "columns": {
                c: {"kind": "categorical", "categories": [str(v) for v in range(k)]}
                for c, k in domain.items()
            },
        }
    )


def connect(threads: int):
    import duckdb

    return duckdb.connect(config={"threads": threads})


def resample(path: str, rows: int, threads: int, seed: int = 0) -> None:
    """``rows`` rows drawn uniformly with replacement from Adult, written as Parquet."""
    con = connect(threads)
    con.execute(f"CREATE TABLE adult AS SELECT *, row_number() OVER () - 1 AS k FROM '{DATA}'")
    n = con.execute("SELECT count(*) FROM adult").fetchone()[0]
    con.execute(
        f"COPY (SELECT a.* EXCLUDE (k) FROM range({rows}) r(i) "
        f"JOIN adult a ON a.k = hash(r.i + {seed}) % {n}) TO '{path}' (FORMAT parquet)"
    )


def floor_scan(path: str, threads: int) -> float:
    con = connect(threads)
    t = time.perf_counter()
    con.execute(f"SELECT age, count(*) FROM read_parquet('{path}') GROUP BY 1").fetchall()
    return time.perf_counter() - t


def one_way_scan(path: str, threads: int) -> float:
    """What any MST must at least do: every column's 1-way marginal (its first measurement),
    of the raw values, in one query (DuckDB plans the grouping sets over one scan)."""
    con = connect(threads)
    cols = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()
    sets = ", ".join(f'("{c[0]}")' for c in cols)
    t = time.perf_counter()
    con.execute(
        f"SELECT count(*) FROM read_parquet('{path}') GROUP BY GROUPING SETS ({sets})"
    ).fetchall()
    return time.perf_counter() - t


def child_fit(path: str, out: str, threads: int, rows: int) -> dict:
    from privsynth.generators.marginal.mst import MST
    from privsynth.sources.duckdb import DuckDBSource

    engine = {"queries": 0, "seconds": 0.0}
    run = DuckDBSource._run

    def timed_run(self, sql):  # time spent inside DuckDB (validation, counts)
        t = time.perf_counter()
        try:
            return run(self, sql)
        finally:
            engine["queries"] += 1
            engine["seconds"] += time.perf_counter() - t

    DuckDBSource._run = timed_run
    t0 = time.perf_counter()
    src = DuckDBSource(path, connection=connect(threads))
    gen = MST(epsilon=1.0, delta=1e-9, device="cpu").fit(src, adult_schema())
    t1 = time.perf_counter()
    gen.sample_to_parquet(out, rows, chunk_rows=1_000_000, seed=0)
    t2 = time.perf_counter()
    use = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "cpu_s": use.ru_utime + use.ru_stime,
        "fit_s": t1 - t0,
        "engine_queries": engine["queries"],
        "engine_s": engine["seconds"],
        "sample_s": t2 - t1,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rows_written": rows,
    }


def child_release(path: str, workdir: str, engine: str, threads: int) -> dict:
    """One release from the command line, in this process: DuckDB on all cores, Spark
    ``local[threads]``, or ``spark-standalone``: a standalone master and one worker of
    ``threads`` cores and 2 GB started on localhost first (not timed). Wall seconds, CPU
    seconds of this process (not Spark's JVMs), peak RSS, and the steps' wall seconds."""
    if engine == "spark-standalone":
        from privsynth.sources.standalone import standalone_cluster

        logs = os.path.join(workdir, "spark-logs")
        with standalone_cluster(cores=threads, memory="2g", logs=logs) as master:
            return {"master": master, **_release(path, workdir, "spark", master)}
    return _release(path, workdir, engine, f"local[{threads}]")


def _release(path: str, workdir: str, engine: str, master: str) -> dict:
    from privsynth.cli.root import main as cli
    from privsynth.report.keys import keygen

    schema, key = os.path.join(workdir, "adult.schema.json"), os.path.join(workdir, "key")
    adult_schema().save(schema)
    if not os.path.exists(key):
        keygen(key)
    ledger = os.path.join(workdir, "release-ledger.sqlite")
    if os.path.exists(ledger):
        os.remove(ledger)  # a fresh budget each run
    stages = _time_release_stages()
    argv = [
        "release", path, "--schema", schema, "--engine", engine, "--generator", "mst",
        "--epsilon", "1", "--ledger", ledger, "--cap-epsilon", "10", "--dataset-id", "adult",
        "--key", key, "--out", os.path.join(workdir, "release"), "--force",
        "--format", "parquet", "--seed", "0",
    ] + (["--spark-master", master] if engine == "spark" else [])  # fmt: skip
    t = time.perf_counter()
    try:
        cli(argv)
    except SystemExit as exc:
        if exc.code:
            raise
    use = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "wall_s": time.perf_counter() - t,
        "cpu_s": use.ru_utime + use.ru_stime,
        "peak_rss_mb": use.ru_maxrss / 1024,
        "stages_s": stages,
        "command": "privsynth " + " ".join(argv),
    }


def _time_release_stages() -> dict[str, float]:
    """Wrap the release's steps so their wall seconds add up in the returned dict."""
    from privsynth.generators.marginal.mst import MST
    from privsynth.pipeline import steps

    times: dict[str, float] = {}

    def timed(name, fn, later=None):
        """``later``: the name of the second and later calls."""

        def wrapper(*args, **kwargs):
            key = later if later and name in times else name
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                times[key] = times.get(key, 0.0) + time.perf_counter() - t

        return wrapper

    steps.data_fingerprint = timed("fingerprint", steps.data_fingerprint)
    steps._validate_and_split = timed("validate_and_split", steps._validate_and_split)
    MST.fit = timed("fit", MST.fit, later="canary refit (part of evaluate)")
    steps.stream_table = timed("sample_and_write", steps.stream_table)
    steps.evaluate = timed("evaluate (utility, attacks, canary)", steps.evaluate)
    steps.write_signed = timed("report_and_signature", steps.write_signed)
    return times


def all_marginals(table) -> list[np.ndarray]:
    d = len(table.shape)
    return table.marginals([(j,) for j in range(d)] + list(itertools.combinations(range(d), 2)))


def compare(path: str, threads: int) -> dict:
    from privsynth.sources.duckdb import DuckDBSource
    from privsynth.sources.source import FrameSource
    from privsynth.sources.spark import SparkSource

    schema = adult_schema()
    out: dict = {}
    t = time.perf_counter()
    want = all_marginals(FrameSource(pd.read_parquet(path)).validate(schema).encode(schema))
    out["pandas_s"] = time.perf_counter() - t
    t = time.perf_counter()
    src = DuckDBSource(path, connection=connect(threads))
    got_duck = all_marginals(src.validate(schema).encode(schema))
    out["duckdb_s"] = time.perf_counter() - t
    from pyspark.sql import SparkSession

    t = time.perf_counter()
    spark = (
        SparkSession.builder.master(f"local[{threads}]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", str(threads))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    out["spark_start_s"] = time.perf_counter() - t
    t = time.perf_counter()
    got_spark = all_marginals(SparkSource(spark.read.parquet(path)).validate(schema).encode(schema))
    out["spark_s"] = time.perf_counter() - t
    spark.stop()
    out["marginals"] = len(want)
    out["duckdb_equal"] = all(np.array_equal(a, b) for a, b in zip(want, got_duck, strict=True))
    out["spark_equal"] = all(np.array_equal(a, b) for a, b in zip(want, got_spark, strict=True))
    out["duckdb_over_pandas"] = out["duckdb_s"] / out["pandas_s"]
    out["spark_over_pandas"] = out["spark_s"] / out["pandas_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--compare-rows", type=int, default=1_000_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-compare", action="store_true")
    ap.add_argument("--skip-release", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument(
        "--release-engine",
        choices=["duckdb", "spark", "spark-standalone"],
        nargs="+",
        default=["duckdb", "spark", "spark-standalone"],
    )
    ap.add_argument("--release-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    big = os.path.join(args.workdir, f"adult-{args.rows}.parquet")
    if args.child:
        print(json.dumps(child_fit(big, args.child, args.threads, args.rows)))
        return
    if args.release_child:
        engine = args.release_engine[0]
        print(json.dumps(child_release(big, args.workdir, engine, args.threads)))
        return
    os.makedirs(args.workdir, exist_ok=True)
    rec: dict = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "threads": args.threads,
        "rows": args.rows,
    }
    if not os.path.exists(big):
        t = time.perf_counter()
        resample(big, args.rows, args.threads)
        rec["resample_s"] = time.perf_counter() - t
    rec["parquet_mb"] = os.path.getsize(big) / 2**20
    rec["floor_scan_s"] = min(floor_scan(big, args.threads) for _ in range(3))
    rec["one_way_scan_s"] = min(one_way_scan(big, args.threads) for _ in range(3))
    rec["one_way_over_floor"] = rec["one_way_scan_s"] / rec["floor_scan_s"]
    t = time.perf_counter()
    child = subprocess.run(
        [sys.executable, __file__, "--workdir", args.workdir, "--rows", str(args.rows)]
        + ["--threads", str(args.threads), "--child", os.path.join(args.workdir, "syn.parquet")],
        check=True,
        capture_output=True,
        text=True,
    )
    rec["mst"] = json.loads(child.stdout.strip().splitlines()[-1])
    rec["mst"]["wall_s"] = time.perf_counter() - t
    rec["mst"]["fit_over_floor"] = rec["mst"]["fit_s"] / rec["floor_scan_s"]
    rec["mst"]["engine_over_floor"] = rec["mst"]["engine_s"] / rec["floor_scan_s"]
    rec["mst"]["engine_over_one_way_scan"] = rec["mst"]["engine_s"] / rec["one_way_scan_s"]
    rec["mst"]["fit_and_sample_over_floor"] = rec["mst"]["wall_s"] / rec["floor_scan_s"]
    if not args.skip_release:
        floor = rec["one_way_scan_s"] + rec["mst"]["fit_s"] + rec["mst"]["sample_s"]
        rec["release"] = {"read_once_fit_write_s": floor}
        for engine in args.release_engine:
            load = os.getloadavg()
            child = subprocess.run(
                [sys.executable, __file__, "--workdir", args.workdir, "--rows", str(args.rows)]
                + ["--threads", str(args.threads), "--release-child"]
                + ["--release-engine", engine],
                check=True,
                capture_output=True,
                text=True,
            )
            rel = json.loads(child.stdout.strip().splitlines()[-1])
            rec["release"][engine] = {
                **rel,
                "load_average_at_start": load,
                "release_over_read_fit_write": rel["wall_s"] / floor,
            }
    if not args.skip_compare:
        small = os.path.join(args.workdir, f"adult-{args.compare_rows}.parquet")
        if not os.path.exists(small):
            resample(small, args.compare_rows, args.threads, seed=1)
        rec["compare"] = {"rows": args.compare_rows, **compare(small, args.threads)}
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    name = os.path.join(HERE, "results", f"scale-{rec['date'][:10]}.json")
    with open(name, "w") as fh:
        json.dump(rec, fh, indent=2)
    print(json.dumps(rec, indent=2))


if __name__ == "__main__":
    main()
