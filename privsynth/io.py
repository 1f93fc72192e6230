"""Reading tables with clear errors, and writing files atomically."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from privsynth.errors import DataError

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz")
PARQUET_SUFFIXES = (".parquet", ".pq")


def read_tables(folder: str | Path, names: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Linked tables from a folder holding one CSV or Parquet file per table, named after it
    (``patients.csv``, ``visits.parquet``).

    Raises
    ------
    DataError
        ``folder`` is not a folder, or holds no file (or several) for a table.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(
            f"{folder} is not a folder: linked tables {list(names)} are read from a folder "
            f"holding one file per table ({', '.join(n + '.csv' for n in names)})"
        )
    tables = {}
    for name in names:
        found = [p for p in sorted(folder.iterdir()) if p.name.split(".")[0] == name]
        if len(found) != 1:
            raise DataError(
                f"{folder} must hold one file for table {name!r} ({name}.csv or "
                f"{name}.parquet); found {[p.name for p in found] or 'none'}"
            )
        tables[name] = read_table(found[0])
    return tables


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file (chosen by suffix) into a DataFrame.

    Raises
    ------
    DataError
        Missing or unreadable file, unknown suffix, bad encoding, truncated Parquet, empty
        table, or duplicate/empty column names; the message names the file and what to do.
    """
    path = Path(path)
    name = path.name.lower()
    if not path.exists():
        raise DataError(f"data file {path} does not exist")
    if path.is_dir():
        raise DataError(f"data path {path} is a directory; give a CSV or Parquet file")
    try:
        if name.endswith(CSV_SUFFIXES):
            df = pd.read_csv(path, encoding="utf-8", encoding_errors="strict")
            if not df.index.equals(pd.RangeIndex(len(df))):  # extra fields became an index
                raise DataError(
                    f"data file {path}: the rows have more fields than the header names; add "
                    "the missing column names (or remove the extra fields)"
                )
        elif name.endswith(PARQUET_SUFFIXES):
            df = pd.read_parquet(path)
        else:
            raise DataError(
                f"data file {path}: unknown format; use one of "
                f"{', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}"
            )
    except DataError:
        raise
    except UnicodeDecodeError as exc:
        raise DataError(
            f"data file {path} is not UTF-8 (byte {exc.start}); re-encode it as UTF-8"
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"data file {path} is empty; it needs a header row and data") from exc
    except (pd.errors.ParserError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot read data file {path}: {first}") from exc
    check_frame(df, source=str(path))
    return df


def check_frame(df: pd.DataFrame, *, source: str = "the data") -> None:
    """Refuse tables that no schema can describe: no rows, duplicate or empty column names."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}")
    names = [str(c) for c in df.columns]
    if not names:
        raise DataError(f"{source} has no columns")
    blank = [i for i, n in enumerate(names) if not n.strip() or n.startswith("Unnamed: ")]
    if blank:
        raise DataError(
            f"{source}: column(s) at position {blank} have no name; name every column in the header"
        )
    dupes = sorted({n for n in names if names.count(n) > 1})
    # pandas renames duplicate CSV headers to "x.1"; catch those too.
    mangled = sorted(
        n
        for n in names
        if "." in n and n.rsplit(".", 1)[0] in names and n.rsplit(".", 1)[1].isdigit()
    )
    if dupes or mangled:
        raise DataError(f"{source}: duplicate column name(s) {dupes or mangled}; rename them")
    if len(df) == 0:
        raise DataError(f"{source} has a header but no rows")
    for name in df.columns[[pd.api.types.is_object_dtype(t) for t in df.dtypes]]:
        nested = df[name].map(lambda v: isinstance(v, (list, tuple, dict, set, np.ndarray)))
        if nested.any():
            row = nested[nested].index[0]
            raise DataError(
                f"{source}: column {name!r} holds lists or arrays (e.g. row {row}); a table cell "
                "must hold one value: flatten or drop the column"
            )


@contextlib.contextmanager
def atomic_output(path: str | Path, *, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block ends without error, the file
    written there is fsynced and renamed over ``path`` (readers see the old file or the new
    one, never half). On error it is removed. ``mode`` sets permissions before the rename."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_output`), e.g. 0o600 keys."""
    with atomic_output(path, mode=mode) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str, *, mode: int | None = None) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory or ".", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
