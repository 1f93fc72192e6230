"""``privsynth demo``: one DP release of the bundled Adult sample, start to finish.

Steps: draft a schema and see why a drafted schema is refused; take the reviewed public
schema, leave one column's categories undeclared so they are learned with DP; release with
MST at epsilon 1 against a fresh ledger; show what the ledger recorded and how close the
synthetic table is to the real one. (The signed audit report will join the release later.)
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from privsynth.budget import Budget, Ledger
from privsynth.datasets import adult_path, load_adult
from privsynth.errors import SchemaError
from privsynth.release import release
from privsynth.schema import Schema
from privsynth.utility import mean_tvd

MARKER = ".privsynth-demo"
DEMO_CAP = Budget(epsilon=3.0, delta=1e-6)
EPSILON, DELTA = 1.0, 1e-9


def run_demo(out: Path, console: Console | None = None) -> None:
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

    console.rule("[bold]3. The reviewed schema: public domains, one learned with DP")
    col = public["native-country"]
    schema = public.with_columns([replace(col, categories=None, note="learned with DP")])
    schema.save(out / "schema.json")
    console.print(
        f"wrote {out / 'schema.json'}: categories from the UCI codebook and public "
        "bounds; native-country's list is left out, to be learned under DP"
    )

    console.rule(f"[bold]4. Release with MST at epsilon={EPSILON:g}, delta={DELTA:g}")
    with Ledger.open(out / "ledger.sqlite", dataset_id="adult", cap=DEMO_CAP) as ledger:
        result = release(
            df,
            schema,
            out=out / "release",
            ledger=ledger,
            generator="mst",
            epsilon=EPSILON,
            delta=DELTA,
            seed=0,
        )
        console.print(
            f"wrote {result.out}: {', '.join(result.files)} and release.json "
            f"({result.rows} rows, the DP estimate of the row count)"
        )
        console.print(ledger.describe())

    console.rule("[bold]5. How close is it? (custodian-side check against the real rows)")
    synthetic = pd.read_csv(result.out / "synthetic.csv")
    learned = Schema.from_dict(json.loads((result.out / "model.json").read_text())["schema"])
    table = Table("metric", "synthetic vs real")
    table.add_row("mean 1-way TVD", f"{mean_tvd(df, synthetic, learned, way=1):.3f}")
    table.add_row("mean 2-way TVD", f"{mean_tvd(df, synthetic, learned, way=2):.3f}")
    console.print(table)
    console.print(synthetic.head(5).to_string(index=False))
    console.print(f"[green]demo done.[/] Try: privsynth ledger show {out / 'ledger.sqlite'}")
