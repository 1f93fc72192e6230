"""How a SQL engine spells what privsynth's generated SQL needs (DuckDB's spelling by default;
:mod:`privsynth.sources.spark` overrides what Spark SQL spells differently)."""

from __future__ import annotations

from collections.abc import Sequence


class Dialect:
    """How an engine spells what the generated SQL needs."""

    def ident(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def string(self, s: str) -> str:
        return "'" + s.replace("'", "''") + "'"

    def array(self, items: Sequence[str]) -> str:
        return "[" + ", ".join(items) + "]"

    def element(self, array: str, pos: str) -> str:
        return f"list_extract({array}, {pos})"

    def epoch_us(self, x: str, family: str) -> str:
        return f"epoch_us(CAST({x} AS TIMESTAMP))" if family == "date" else f"epoch_us({x})"

    def epoch_ns(self, x: str, family: str) -> str:
        return f"epoch_ns(CAST({x} AS TIMESTAMP))" if family == "date" else f"epoch_ns({x})"

    def row_number(self) -> str:
        return "row_number() OVER () - 1"

    def keyed_hash(self, columns: Sequence[str], key: int) -> str:
        """A 64-bit hash of a row's values under a secret ``key``, as a non-negative integer."""
        return f"hash({', '.join(columns)}, CAST({key} AS BIGINT))"

    def sample(self, source: str, k: int, seed: int) -> str:
        """``k`` rows drawn uniformly at random without replacement (all if fewer)."""
        return f"SELECT * FROM {source} USING SAMPLE reservoir({k} ROWS) REPEATABLE ({seed})"

    def double(self, v: float) -> str:
        """A double literal that parses to exactly ``v`` (``repr`` round-trips)."""
        return f"CAST({self.string(repr(float(v)))} AS DOUBLE)"

    def bucket(self, x: str, interior: Sequence[float]) -> str:
        """``#{k : interior[k] <= x}`` for sorted ``interior`` (a bin or bucket index)."""
        return bucket_sql(x, interior, self)


def bucket_sql(x: str, interior: Sequence[float], dialect: Dialect, offset: int = 0) -> str:
    """``#{k : interior[k] <= x}`` as a balanced CASE tree over sorted ``interior``:
    ``log2`` comparisons a row (DuckDB evaluates it fast)."""
    if not len(interior):
        return str(offset)
    mid = len(interior) // 2
    left = bucket_sql(x, interior[:mid], dialect, offset)
    right = bucket_sql(x, interior[mid + 1 :], dialect, offset + mid + 1)
    return f"(CASE WHEN {x} < {dialect.double(interior[mid])} THEN {left} ELSE {right} END)"
