"""A Spark standalone cluster on this machine: a master and one worker started with the
launcher that ships with pyspark (``bin/spark-class``), to try ``--spark-master spark://...``
without a cluster, and for the tests and benchmarks that run releases on one.

>>> with standalone_cluster(cores=2, memory="2g", logs="/tmp/spark") as master:  # doctest: +SKIP
...     subprocess.run(["privsynth", "release", ..., "--spark-master", master])
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from privsynth.errors import ConfigError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(port: int, proc: subprocess.Popen, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ConfigError(f"the Spark {what} exited with code {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise ConfigError(f"the Spark {what} did not listen on port {port} in {timeout:g} s")


@contextlib.contextmanager
def standalone_cluster(
    *, cores: int = 1, memory: str = "1g", logs: str | Path, timeout: float = 120
) -> Iterator[str]:
    """Start a standalone master and one worker (``cores``, ``memory``) on 127.0.0.1, on free
    ports, logging into the folder ``logs``; yields the master's URL and stops both at the
    end.

    Raises
    ------
    ConfigError
        pyspark or Java is missing, or a daemon did not start (its log is in ``logs``).
    """
    try:
        import pyspark
    except ImportError as exc:
        raise ConfigError("a Spark cluster needs pyspark: pip install 'privsynth[scale]'") from exc
    launcher = Path(pyspark.__file__).parent / "bin" / "spark-class"
    logs = Path(logs)
    logs.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_WORKER_DIR": str(logs / "work"),
    }
    port, worker_port = _free_port(), _free_port()
    started: list[tuple[subprocess.Popen, IO[bytes]]] = []

    def start(args: list[str], name: str) -> subprocess.Popen:
        out = open(logs / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen([str(launcher), *args], env=env, stdout=out, stderr=out)
        started.append((proc, out))
        return proc

    try:
        master = start(
            ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port",
             str(port), "--webui-port", str(_free_port())],
            "master",
        )  # fmt: skip
        _wait_for(port, master, "master", timeout)
        worker = start(
            ["org.apache.spark.deploy.worker.Worker", f"spark://127.0.0.1:{port}", "--host",
             "127.0.0.1", "--port", str(worker_port), "--webui-port", str(_free_port()),
             "--cores", str(cores), "--memory", memory],
            "worker",
        )  # fmt: skip
        _wait_for(worker_port, worker, "worker", timeout)
        yield f"spark://127.0.0.1:{port}"
    finally:
        for proc, out in started:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            out.close()
