"""Supply chain (issue #9): a release needs no network, and no code path unpickles a file.

(``make audit-deps``, the dependency vulnerability audit, is tested in
tests/unit/test_audit_deps.py.)
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

import privsynth
from privsynth.report.keys import keygen

PACKAGE = Path(privsynth.__file__).parent

# Installed before anything else in the child process: every route to the network raises and
# is recorded. Local IPC (AF_UNIX) stays allowed; it is not the network.
NO_NETWORK = textwrap.dedent(
    """
    import os, socket
    LOG = os.environ["PRIVSYNTH_NET_LOG"]

    def _refuse(what):
        def refuse(*args, **kwargs):
            with open(LOG, "a") as f:
                f.write(f"{what} {args[:2]!r}\\n")
            raise OSError(f"network access blocked in this test: {what}")
        return refuse

    _connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex

    def connect(self, address):
        if self.family == socket.AF_UNIX:
            return _connect(self, address)
        return _refuse("connect")(address)

    def connect_ex(self, address):
        if self.family == socket.AF_UNIX:
            return _connect_ex(self, address)
        return _refuse("connect_ex")(address)

    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "create_connection"):
        setattr(socket, name, _refuse(name))
    """
)


def test_a_release_and_its_verification_need_no_network(tmp_path):
    """Also: awkward but valid input -- column names shaped like paths, a value beyond its
    public bounds (clipped), dates in several formats -- is released, and nothing is written
    outside the release folder."""
    rng = np.random.default_rng(0)
    n = 600
    up, absolute = "../../zz_escape", "/tmp/zz_escape_abs"  # column names, not paths
    df = pd.DataFrame(
        {
            up: rng.choice(["F", "M"], n),
            absolute: rng.integers(20, 80, n).astype(object),
            "seen": rng.choice(["2021-03-04", "04/03/2021", "2021-03-04T10:00:00", "20210304"], n),
        }
    )
    df.loc[5, absolute] = 200  # beyond the public upper bound: clipped, not refused
    df.to_csv(tmp_path / "people.csv", index=False)
    schema = {
        "version": 1,
        "columns": {
            up: {"kind": "categorical", "categories": ["F", "M"]},
            absolute: {"kind": "integer", "lower": 18, "upper": 90, "bins": 8},
            "seen": {"kind": "datetime", "lower": "2020-01-01", "upper": "2022-12-31", "bins": 4},
        },
    }
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    keygen(tmp_path / "key")
    before = set(tmp_path.parent.rglob("*zz_escape*"))
    (tmp_path / "sitecustomize.py").write_text(NO_NETWORK)
    log = tmp_path / "net.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(PACKAGE.parent)]),
        "PRIVSYNTH_NET_LOG": str(log),
        "OMP_NUM_THREADS": "1",
    }
    probe = "import socket; socket.getaddrinfo('pypi.org', 443)"
    blocked = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True)
    assert blocked.returncode != 0 and "blocked" in blocked.stderr.decode(), "block not active"
    log.unlink()

    # One child process: a release (MST, fast settings: no canary refit) and its verification.
    code = textwrap.dedent(
        """
        import sys
        from privsynth.cli import main
        for args in (sys.argv[1:-3], ["verify", *sys.argv[-3:]]):
            try:
                main(args)
            except SystemExit as exc:
                if exc.code:
                    raise
        """
    )
    run = subprocess.run(
        [
            sys.executable, "-c", code,
            "release", str(tmp_path / "people.csv"), "--schema", str(tmp_path / "schema.json"),
            "--epsilon", "1", "--cap-epsilon", "2", "--ledger", str(tmp_path / "ledger.sqlite"),
            "--key", str(tmp_path / "key"), "--rows", "200", "--seed", "0", "--no-canary",
            "--out", str(tmp_path / "rel"),
            str(tmp_path / "rel"), "--ledger", str(tmp_path / "ledger.sqlite"),
        ],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "released" in run.stdout and "verified" in run.stdout.lower(), run.stdout
    assert not log.exists(), f"network was attempted:\n{log.read_text()}"
    synthetic = pd.read_csv(tmp_path / "rel" / "synthetic.csv")
    assert list(synthetic.columns) == [up, absolute, "seen"]
    assert synthetic[absolute].max() <= 90
    assert set(tmp_path.parent.rglob("*zz_escape*")) == before
    assert not Path(absolute).exists()


# ------------------------------------------------------------------------------- pickle
PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve"}
PICKLE_MODULES |= {"marshal"}


def unsafe_loads(source: str, filename: str = "<src>") -> list[str]:
    """Calls in ``source`` that can unpickle a file: ``pickle``-family loads and imports,
    ``read_pickle``, ``Unpickler``, ``torch.load`` without ``weights_only=True``, and
    ``numpy.load`` with ``allow_pickle`` other than False."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            found += [f"{where} import {a.name}" for a in node.names if a.name in PICKLE_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module in PICKLE_MODULES:
            found.append(f"{where} from {node.module} import ...")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            base = node.func.value if isinstance(node.func, ast.Attribute) else None
            owner = base.id if isinstance(base, ast.Name) else None
            kw = {k.arg: k.value for k in node.keywords}
            if name in ("read_pickle", "Unpickler"):
                found.append(f"{where} {name}")
            elif name in ("load", "loads") and owner in PICKLE_MODULES:
                found.append(f"{where} {owner}.{name}")
            elif name == "load" and owner == "torch":
                wo = kw.get("weights_only")
                if not (isinstance(wo, ast.Constant) and wo.value is True):
                    found.append(f"{where} torch.load without weights_only=True")
            elif name == "load" and owner in ("np", "numpy"):
                ap = kw.get("allow_pickle")
                if ap is not None and not (isinstance(ap, ast.Constant) and ap.value is False):
                    found.append(f"{where} numpy.load(allow_pickle=...)")
    return found


def test_the_scanner_finds_every_unsafe_load():
    planted = textwrap.dedent(
        """
        import pickle, joblib
        from dill import loads
        pickle.load(f); pickle.loads(b); joblib.load(p)
        torch.load(p); torch.load(p, weights_only=False); torch.load(p, weights_only=True)
        np.load(p, allow_pickle=True); np.load(p); numpy.load(p, allow_pickle=flag)
        pd.read_pickle(p); df.read_pickle(p); pickle.Unpickler(f).load()
        """
    )
    hits = unsafe_loads(planted)
    # 2 imports + from-import + 3 loads + 2 torch + 2 numpy + 2 read_pickle + Unpickler = 13
    assert len(hits) == 13, hits
    assert not any("weights_only=True" in h and ":6 " in h for h in hits)


def test_the_package_never_unpickles_a_file():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 30  # the whole package was scanned
    hits = [h for f in files for h in unsafe_loads(f.read_text(encoding="utf-8"), str(f))]
    assert not hits, "unsafe deserialisation in privsynth:\n" + "\n".join(hits)
