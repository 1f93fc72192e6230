"""The walkthrough ``privsynth demo`` runs: one signed DP release of the bundled Adult sample,
start to finish.

Steps: draft a schema and see why a drafted schema is refused; take the reviewed public
schema, leave one column's categories undeclared so they are learned with DP; make a
throwaway signing key; release with MST at epsilon 1 against a fresh ledger (holdout split,
utility, attack suite with canary audit, signed report); show the ledger; verify the release
offline, and show that a changed byte is caught.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table
from scipy.stats import ks_2samp

from privsynth.budget import Budget, Ledger
from privsynth.datasets import adult_path, load_adult
from privsynth.errors import SchemaError, SignatureError
from privsynth.pipeline import release
from privsynth.report import ENVELOPE, REPORT_HTML, REPORT_JSON
from privsynth.report.keys import keygen
from privsynth.report.verify import verify_release
from privsynth.schema import Schema

MARKER = ".privsynth-demo"
DEMO_CAP = Budget(epsilon=3.0, delta=1e-6)
EPSILON, DELTA = 1.0, 1e-9


def _numeric_fidelity(real: pd.DataFrame, synthetic_csv: Path, schema: Schema) -> Table:
    """KS distance and zero/modal shares of each numeric column, real against synthetic: for
    the custodian's screen (exact statistics of the private table), never released."""
    syn = pd.read_csv(synthetic_csv)
    table = Table(
        "numeric column (for you only)", "KS real vs synthetic", "zeros", "modal value share"
    )
    for col in schema.synthesised:
        if col.kind not in ("integer", "continuous"):
            continue
        r = real[col.name].to_numpy(float)
        s = syn[col.name].to_numpy(float)
        mode = pd.Series(r).mode().iloc[0]
        table.add_row(
            col.name,
            f"{ks_2samp(r, s).statistic:.3f}",
            f"{(r == 0).mean():.3f} / {(s == 0).mean():.3f}",
            f"{mode:g}: {(r == mode).mean():.3f} / {(s == mode).mean():.3f}",
        )
    return table


def run_demo(out: Path, console: Console | None = None) -> None:
    """Run the walkthrough, writing its files to the (existing, empty) folder ``out``."""
    console = console or Console()
    df, public = load_adult()
    console.rule("[bold]1. The bundled sample")
    console.print(
        f"{adult_path().name}: UCI Adult, CC BY 4.0 (Becker & Kohavi 1996), {df.shape[1]} columns"
    )

    console.rule("[bold]2. A schema drafted from the data is a starting point, not a release")
    draft = Schema.draft(df)
    draft.save(out / "schema.draft.json")
    flagged = [c.name for c in draft.columns if c.kind == "identifier"]
    console.print(
        f"wrote {out / 'schema.draft.json'}: {len(draft.data_dependent_columns())} "
        f"domains marked source: data; likely identifiers: {flagged or 'none'}"
    )
    try:
        draft.release_caveats()
    except SchemaError as exc:
        console.print(f"[yellow]a release with it is refused:[/] {exc}")

    console.rule("[bold]3. The reviewed schema: codebook facts; the rest learned with DP")
    col = public["native-country"]
    schema = public.with_columns([replace(col, categories=None, note="learned with DP")])
    schema.save(out / "schema.json")
    console.print(
        f"wrote {out / 'schema.json'}: categories and ranges from the UCI codebook; the "
        "numeric encodings (point masses, bins) and native-country's list are learned with DP"
    )

    console.rule("[bold]4. A signing key (throwaway, for the demo)")
    priv, pub = keygen(out / "demo-key")
    console.print(f"wrote {priv} (mode 0600) and {pub}")

    console.rule(f"[bold]5. Signed release with MST at epsilon={EPSILON:g}, delta={DELTA:g}")
    with Ledger.open(out / "ledger.sqlite", dataset_id="adult", cap=DEMO_CAP) as ledger:
        result = release(
            df,
            schema,
            out=out / "release",
            ledger=ledger,
            key=priv,
            generator="mst",
            epsilon=EPSILON,
            delta=DELTA,
            sensitive=["income", "occupation"],
            quasi_identifiers=["age", "sex", "race", "marital-status", "native-country"],
            target="income",
            seed=0,
            source=adult_path(),
        )
        console.print(f"wrote {result.out}: {', '.join(result.files)}, {ENVELOPE}")
        console.print(ledger.describe(last=3))

    console.rule("[bold]6. What the report says")
    report = json.loads((result.out / REPORT_JSON).read_text())
    v = report["verdict"]
    console.print(
        f"policy {v['policy']!r}: {'passed' if v['passed'] else 'FAILED'} "
        f"{', '.join(v.get('failed_checks', []))}"
    )
    table = Table("check", "value")
    table.add_row("mean 2-way TVD", f"{report['utility']['tvd']['2way']['mean']:.3f}")
    for r in report["attacks"]["attacks"]:
        if r["passed"] is not None and r["value"] is not None:
            verdict = "pass" if r["passed"] else "FAIL"
            table.add_row(
                f"{r['name']} ({r['metric']})",
                f"{r['value']:.3f}  95% CI [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]  {verdict}",
            )
    if canary := report["attacks"].get("canary"):
        table.add_row(
            "canary audit: epsilon lower bound",
            f"{canary['epsilon_lower_bound']:.3f} vs claimed {canary['epsilon_claimed']:g} "
            f"({canary['status']})",
        )
    console.print(table)
    console.print(_numeric_fidelity(df, result.out / "synthetic.csv", schema))

    console.rule("[bold]7. Verify offline, as a recipient would")
    checked = verify_release(result.out, public_key=pub, ledger=out / "ledger.sqlite")
    for line in checked.checks:
        console.print(f"  ok  {line}")
    tampered = out / "tampered"
    shutil.copytree(result.out, tampered)
    with open(tampered / "synthetic.csv", "r+b") as fh:
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(b"0" if byte != b"0" else b"1")
    try:
        verify_release(tampered, public_key=pub)
    except SignatureError as exc:
        console.print(f"  a copy with one byte changed is refused: {exc}")
    console.print(
        f"[green]demo done.[/] Open {result.out / REPORT_HTML} in a browser; try "
        f"`privsynth verify {result.out} --public-key {pub}`"
    )
