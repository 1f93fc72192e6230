"""The data's identity in the ledger: a fingerprint of the table a release reads.

A release records it with its reservation, and the ledger refuses a table that another
dataset id already charged (:meth:`privsynth.budget.Ledger.bind_data`), so the same table
copied under a new name does not get a fresh budget.

The fingerprint is of the *content* when the table is in memory (the same table read from a
CSV or a Parquet file gets the same one), and of the file's bytes when the table stays in
DuckDB or Spark. It is unkeyed: the ledger stays with the custodian (the signed report holds a
fingerprint keyed by the signer, :func:`privsynth.report.build.source_fingerprint`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd


def data_fingerprint(data: pd.DataFrame | Path) -> str:
    """``sha256:`` of a DataFrame's column names and values (row order included), or of a
    file's bytes.

    Examples
    --------
    >>> a = pd.DataFrame({"x": [1, 2], "y": ["a", "b"]})
    >>> data_fingerprint(a) == data_fingerprint(a.copy())
    True
    >>> data_fingerprint(a) == data_fingerprint(a.rename(columns={"y": "z"}))
    False
    """
    digest = hashlib.sha256()
    if isinstance(data, Path):
        with open(data, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return "sha256:" + digest.hexdigest()
    digest.update("\x1f".join(map(str, data.columns)).encode("utf-8"))
    for name in data.columns:
        col = data[name]
        # Text as Python objects, so that a CSV's and a Parquet file's string dtypes agree;
        # numbers as they are (casting them would cost seconds on millions of rows).
        values = col if pd.api.types.is_numeric_dtype(col) else col.astype(object)
        digest.update(pd.util.hash_pandas_object(values, index=False).to_numpy().tobytes())
    return "sha256:" + digest.hexdigest()
