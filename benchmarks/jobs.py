"""Running one benchmark job in its own process, and describing the machine it ran on;
shared by the benchmark runners."""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import time


def run_logged(cmd: list[str], log_path: str, timeout: float) -> dict:
    """Run ``cmd`` in its own process group with stdout and stderr to ``log_path``; kill the
    group past ``timeout`` seconds. Returns ``status`` (``ok``, ``failed`` or ``timeout``),
    ``wall_s`` and, unless ok, ``error`` (the log's tail) and ``returncode``."""
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            wall = time.perf_counter() - t0
            return {
                "status": "timeout",
                "wall_s": wall,
                "error": f"no result within {timeout:.0f} s",
            }
    rec = {"status": "ok", "wall_s": time.perf_counter() - t0}
    if rc != 0:
        with open(log_path) as fh:
            rec.update(status="failed", returncode=rc, error=fh.read()[-1500:])
    return rec


def machine(device: str = "cpu") -> dict:
    """Python, OS and core count, plus the GPU's name when ``device`` is not the CPU."""
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    if device != "cpu":
        import torch

        info["gpu"] = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return info
