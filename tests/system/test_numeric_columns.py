"""Numeric columns described only by a codebook range: fits end to end on a messy table."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from privsynth import AIM, MST
from privsynth.budget import Budget, Ledger
from privsynth.budget.events import event_to_dict
from privsynth.schema import Schema


@pytest.mark.parametrize("cls", [MST, AIM])
def test_messy_table_comes_back_with_its_zeros_point_masses_and_types(cls, messy, tmp_path):
    df, spec = messy
    schema = Schema.from_dict(spec)
    with Ledger.open(tmp_path / "l.sqlite", dataset_id="m", cap=Budget(20, 1e-6)) as ledger:
        gen = cls(epsilon=10.0, delta=1e-9).fit(df, schema, ledger)
        # the reservation is exactly the plan, learned encodings included
        entries = [e for e in ledger.entries() if e["kind"] == "reserve"]
        assert entries[-1]["events"] == [event_to_dict(e) for e in gen.plan(schema)]
    gen.save(tmp_path / "model.json")  # the learned encodings travel in the model file
    again = cls.load(tmp_path / "model.json", device="cpu")
    assert again.schema_ == gen.schema_ and again.schema_["amount"].learned is not None
    syn = again.sample(len(df), seed=0)
    assert syn["amount"].dtype == np.int64 and syn["amount"].between(0, 99_999).all()
    assert syn["visit"].dt.normalize().eq(syn["visit"]).all()  # dates, never invented times
    assert syn["turnaround"].between(0, 2000).all()
    assert syn["turnaround"].round(3).eq(syn["turnaround"]).all()  # public precision
    # n = 4,000 rows: the two-sample KS of two samples of the *same* distribution exceeds
    # 1.95 / sqrt(2000) = 0.044 with probability 0.1%; at epsilon 10 the DP noise in the
    # 1-way marginals is a few rows per cell. 0.08 leaves room for both.
    for c in ("amount", "hours", "turnaround", "balance"):
        real = pd.to_numeric(df[c]).dropna().to_numpy(float)
        ks = ks_2samp(real, syn[c].dropna().to_numpy(float)).statistic
        assert ks < 0.08, (c, ks)
    for c, value in (("amount", 0), ("hours", 40), ("amount", 99_999)):
        # the share's sampling sd is sqrt(p(1-p)/n) <= 0.008; 0.03 is about 4 sd
        assert (syn[c] == value).mean() == pytest.approx((df[c] == value).mean(), abs=0.03)
    assert syn["balance"].isna().mean() == pytest.approx(df["balance"].isna().mean(), abs=0.03)


def test_degenerate_columns_fit_and_the_custodian_hears_of_clipping(tmp_path):
    rng = np.random.default_rng(5)
    n = 3000
    df = pd.DataFrame(
        {
            "zeros": np.zeros(n, dtype=int),  # one repeated value, bounds undeclared
            "empty": [None] * n,  # all missing
            "above": rng.integers(50, 200, n),  # beyond its public upper bound of 100
            "income": rng.lognormal(10, 1, n).round(2),  # bounds undeclared, one outlier
        }
    )
    df.loc[7, "income"] = 1e12
    schema = Schema.from_dict(
        {
            "version": 1,
            "columns": {
                "zeros": {"kind": "integer"},
                "empty": {"kind": "continuous", "lower": 0, "upper": 1, "nullable": True},
                "above": {"kind": "integer", "lower": 0, "upper": 100},
                "income": {"kind": "continuous"},
            },
        }
    )
    _, report = schema.validate(df)
    assert report.clipped["above"] > n / 2  # declared bounds: counted for the custodian
    with Ledger.open(tmp_path / "l.sqlite", dataset_id="d", cap=Budget(10, 1e-6)) as ledger:
        gen = MST(epsilon=3.0, delta=1e-9).fit(df, schema, ledger)
        assert ledger.spent().epsilon > 0
    syn = gen.sample(1000, seed=0)
    # The point mass (and the missing code) holds every row; the other codes get only the
    # noise of the 1-way measurement (sd well under 1% of 3,000 rows at this budget).
    assert (syn["zeros"] == 0).mean() > 0.95 and syn["empty"].isna().mean() > 0.95
    assert syn["above"].between(0, 100).all()
    # The outlier is clipped by the learned bounds, and only the custodian is told so. The
    # bounds are the data buckets widened by a decade: the low tail of a lognormal(10, 1)
    # below a tenth of its lowest data bucket is far under 1% of rows.
    (note,) = [line for line in gen.custodian_notes_ if line.startswith("income: ")]
    share = float(note.split()[1].rstrip("%")) / 100
    assert 1 / n <= share + 5e-5 and share < 0.01
    assert syn["income"].max() < 1e9


def test_cli_release_of_a_messy_csv_tells_only_the_custodian_what_was_clipped(messy, tmp_path):
    import json
    import subprocess
    import sys

    df, spec = messy
    del spec["columns"]["balance"]["lower"], spec["columns"]["balance"]["upper"]  # learned
    df.loc[5, "balance"] = 1e9  # far beyond anything else: clipped by the learned bounds
    df.loc[6:7, "amount"] = 250_000  # beyond its declared upper bound
    df.to_csv(tmp_path / "messy.csv", index=False)
    (tmp_path / "schema.json").write_text(json.dumps(spec))

    def cli(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "privsynth.cli", *args]
        return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)

    assert cli("keygen", "--out", "k.key").returncode == 0
    run = cli(
        *("release", "messy.csv", "--schema", "schema.json", "--epsilon", "3"),
        *("--ledger", "l.sqlite", "--cap-epsilon", "5", "--key", "k.key", "--out", "rel"),
        *("--no-canary", "--discovery-share", "0.2", "--seed", "0"),
    )
    assert run.returncode == 0, run.stderr
    notes = [x for x in run.stderr.splitlines() if "note (for you only, not released)" in x]
    assert any("amount: 2 value(s) (0.05%) lie outside its declared bounds" in x for x in notes)
    assert any("balance: " in x and "bounds learned with DP" in x for x in notes)
    for path in (tmp_path / "rel").iterdir():  # the exact share never leaves the screen
        assert "for you only" not in path.read_text(errors="ignore"), path.name
    report = json.loads((tmp_path / "rel" / "audit.json").read_text())
    columns = {c["name"]: c for c in report["schema"]["columns"]}
    assert 0 in columns["amount"]["encoding"]["point_masses"]
    assert report["release"]["generator"] == "mst"
    visits = pd.read_csv(tmp_path / "rel" / "synthetic.csv")["visit"]
    assert visits.str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()  # dates, as the unit says
