"""The synthetic tables of a release folder: written whole, or drawn and written in chunks.

A one-table release of independent rows streams: each chunk is drawn, written and dropped,
and only a uniform sample of the rows stays in memory for the audit (the attack suite and
the utility metrics work on fixed-size samples anyway), so memory is bounded by a chunk
whatever the row count. Releases of persons, of linked tables or with rules draw their
table whole (a person's rows, a parent and its children, a rule's redraws belong together).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from privsynth.generators.base import Generator

#: Rows drawn, decoded and written at a time when a release streams its table.
CHUNK_ROWS = 500_000


def table_file(name: str, fmt: str) -> str:
    """``synthetic.csv``, or ``synthetic.<table>.csv`` for one of linked tables."""
    return f"synthetic.{name}.{fmt}" if name else f"synthetic.{fmt}"


def write_table(rows: pd.DataFrame, folder: Path, name: str, fmt: str) -> str:
    """Write one synthetic table into the release folder; returns its file name."""
    file = table_file(name, fmt)
    with _writer(folder / file, fmt) as write:
        write(rows)
    return file


def stream_table(
    gen: Generator,
    rows: int,
    folder: Path,
    fmt: str,
    rng: np.random.Generator,
    keep: int,
    *,
    chunk_rows: int = CHUNK_ROWS,
) -> tuple[str, pd.DataFrame]:
    """Draw ``rows`` synthetic rows into the folder's ``synthetic.<fmt>``, ``chunk_rows`` at
    a time; returns the file name and a uniform sample of ``keep`` of the written rows (all of
    them when there are no more), in file order. The file is never read back.

    With one chunk (``rows <= chunk_rows``) the rows are those of ``gen.sample(rows,
    seed=rng)``, and with ``rows <= keep`` nothing else is drawn from ``rng``.
    """
    chosen = np.arange(rows) if rows <= keep else np.sort(rng.choice(rows, keep, replace=False))
    file = table_file("", fmt)
    kept = []
    with _writer(folder / file, fmt) as write:
        for start in range(0, rows, chunk_rows):
            chunk = gen.sample(min(chunk_rows, rows - start), seed=rng)
            write(chunk)
            lo, hi = np.searchsorted(chosen, [start, start + len(chunk)])
            kept.append(chunk.iloc[chosen[lo:hi] - start])
    return file, pd.concat(kept, ignore_index=True)


@contextlib.contextmanager
def _writer(path: Path, fmt: str) -> Iterator[Callable[[pd.DataFrame], None]]:
    """A function that appends frames to ``path`` (CSV with one header, or Parquet with one
    row group per frame and the first frame's column types, a column that frame holds only
    missing values in being text: the decoder's only columns of Python objects)."""
    if fmt == "csv":
        with open(path, "w", encoding="utf-8", newline="") as fh:
            first = [True]

            def write_csv(frame: pd.DataFrame) -> None:
                frame.to_csv(fh, index=False, header=first[0])
                first[0] = False

            yield write_csv
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer: list[pq.ParquetWriter] = []
    try:

        def write_parquet(frame: pd.DataFrame) -> None:
            if not writer:
                table = pa.Table.from_pandas(frame, preserve_index=False)
                schema = pa.schema(
                    [
                        f.with_type(pa.string()) if pa.types.is_null(f.type) else f
                        for f in table.schema
                    ],
                    metadata=table.schema.metadata,
                )
                table = table.cast(schema)
                writer.append(pq.ParquetWriter(path, schema))
            else:
                table = pa.Table.from_pandas(frame, schema=writer[0].schema, preserve_index=False)
            writer[0].write_table(table)

        yield write_parquet
    finally:
        if writer:
            writer[0].close()
