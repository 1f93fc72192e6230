"""Rules: public domain knowledge that every synthetic row keeps.

A rule is written by the custodian in the schema's top-level ``"rules"`` list; it is never
read from the data, so enforcing it is public knowledge or post-processing and costs no
privacy budget. Four kinds (``docs/schema.md``, "Rules"):

``determines``
    ``{"kind": "determines", "columns": [fine, coarse], "mapping": {fine: coarse, ...}}``: the
    fine (categorical) column's value fixes the coarse one's (education fixes education-num,
    zip fixes state). ``mapping`` is optional; without it the rule says only that equal fine
    values come with equal coarse values.
``forbid`` / ``allow``
    ``{"kind": "forbid", "columns": [a, b, ...], "values": [[va, vb, ...], ...]}``: the listed
    combinations of categorical values never occur (``allow``: only the listed ones occur).
``compare``
    ``{"kind": "compare", "left": a, "op": ">=", "right": b, "offset": 0}``: ``a op b +
    offset`` for numeric or datetime columns; the offset is in the columns' unit, in **days**
    for datetime columns.

A missing value never breaks a rule: a row breaks one only when every value the rule reads is
present. :func:`broken_rows` finds, per rule, the rows of a table that break it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from privsynth.errors import SchemaError
from privsynth.schema.columns import CATEGORICAL_KINDS, NUMERIC_KINDS, Column, canonical_category

RULE_KINDS = ("determines", "forbid", "allow", "compare")
OPS = (">=", ">", "<=", "<")
#: A datetime rule's offset is in days; datetimes are handled as nanoseconds.
NS_PER_DAY = 86_400 * 10**9
_FIELDS = {
    "determines": {"kind", "columns", "mapping"},
    "forbid": {"kind", "columns", "values"},
    "allow": {"kind", "columns", "values"},
    "compare": {"kind", "left", "op", "right", "offset"},
}


@dataclass(frozen=True)
class Rule:
    """One rule of the schema (see the module docstring for the JSON forms).

    Parameters
    ----------
    kind
        ``determines``, ``forbid``, ``allow`` or ``compare``.
    columns
        ``determines``: (fine, coarse); ``forbid``/``allow``: the columns the combinations
        are over; ``compare``: (left, right).
    values
        ``forbid``/``allow``: the combinations, one value per column (canonical strings).
    mapping
        ``determines``: (fine value, coarse value) pairs, when the custodian knows them.
    op, offset
        ``compare``: ``left op right + offset`` (offset in days for datetimes).
    """

    kind: str
    columns: tuple[str, ...]
    values: tuple[tuple[str, ...], ...] | None = None
    mapping: tuple[tuple[str, Any], ...] | None = None
    op: str | None = None
    offset: float = 0.0

    # ---------------------------------------------------------------- JSON
    @classmethod
    def from_dict(cls, index: int, data: Any) -> Rule:
        """Parse ``rules[index]`` of a schema file; unknown fields are refused."""
        where = f"rules[{index}]"
        if not isinstance(data, Mapping):
            raise SchemaError(f"{where}: expected an object with 'kind', got {data!r}")
        kind = data.get("kind")
        if kind not in RULE_KINDS:
            raise SchemaError(f"{where}: kind {kind!r} must be one of {', '.join(RULE_KINDS)}")
        where = f"{where} ({kind})"
        unknown = sorted(set(data) - _FIELDS[kind])
        if unknown:
            raise SchemaError(
                f"{where}: unknown field(s) {unknown}; a {kind} rule takes {sorted(_FIELDS[kind])}"
            )
        if kind == "compare":
            missing = [k for k in ("left", "op", "right") if k not in data]
            if missing:
                raise SchemaError(f"{where}: needs {missing}, e.g. left >= right")
            offset = data.get("offset", 0)
            if isinstance(offset, bool) or not isinstance(offset, (int, float)):
                raise SchemaError(f"{where}: offset ({offset!r}) must be a number")
            if not math.isfinite(offset):
                raise SchemaError(f"{where}: offset ({offset!r}) must be finite")
            if not all(isinstance(data[k], str) for k in ("left", "right")):
                raise SchemaError(f"{where}: 'left' and 'right' must be column names")
            if data["op"] not in OPS:
                raise SchemaError(f"{where}: op {data['op']!r} must be one of {', '.join(OPS)}")
            return cls(kind, (data["left"], data["right"]), op=data["op"], offset=float(offset))
        columns = data.get("columns")
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise SchemaError(f"{where}: 'columns' must be a list of column names")
        if kind == "determines":
            if len(columns) != 2:
                raise SchemaError(f"{where}: 'columns' must be [fine, coarse], got {columns}")
            mapping = data.get("mapping")
            if mapping is not None and not isinstance(mapping, Mapping):
                raise SchemaError(f"{where}: 'mapping' must be an object {{fine: coarse}}")
            pairs = (
                None
                if mapping is None
                else tuple((canonical_category(k), v) for k, v in mapping.items())
            )
            return cls(kind, tuple(columns), mapping=pairs)
        if len(columns) < 2:
            raise SchemaError(f"{where}: 'columns' must name at least two columns")
        values = data.get("values")
        if not isinstance(values, list) or not all(
            isinstance(v, list) and len(v) == len(columns) for v in values
        ):
            raise SchemaError(
                f"{where}: 'values' must be a list of combinations, each a list of "
                f"{len(columns)} values (one per column of {columns})"
            )
        combos = tuple(tuple(canonical_category(x) for x in v) for v in values)
        return cls(kind, tuple(columns), values=combos)

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "compare":
            left, right = self.columns
            out: dict[str, Any] = {"kind": "compare", "left": left, "op": self.op, "right": right}
            if self.offset:
                out["offset"] = int(self.offset) if self.offset.is_integer() else self.offset
            return out
        out = {"kind": self.kind, "columns": list(self.columns)}
        if self.values is not None:
            out["values"] = [list(v) for v in self.values]
        if self.mapping is not None:
            out["mapping"] = dict(self.mapping)
        return out

    def describe(self) -> str:
        """One line for people: ``relationship, sex: forbid ('Husband', 'Female')``."""
        if self.kind == "compare":
            left, right = self.columns
            off = f" {'+' if self.offset >= 0 else '-'} {abs(self.offset):g}" if self.offset else ""
            return f"{left} {self.op} {right}{off}"
        if self.kind == "determines":
            fine, coarse = self.columns
            how = " (declared mapping)" if self.mapping is not None else ""
            return f"{fine} determines {coarse}{how}"
        combos = ", ".join("(" + ", ".join(map(repr, v)) + ")" for v in self.values or ())
        return f"{', '.join(self.columns)}: {self.kind} {combos or 'nothing'}"

    @property
    def derived(self) -> str | None:
        """The coarse column a ``determines`` rule with a mapping derives, else None."""
        return self.columns[1] if self.kind == "determines" and self.mapping is not None else None


def label(index: int, rule: Rule) -> str:
    """How errors and reports name a rule: ``rules[1] (forbid relationship, sex)``."""
    return f"rules[{index}] ({rule.kind} {', '.join(rule.columns)})"


# ---------------------------------------------------------------- checks
def check_rules(rules: Sequence[Rule], columns: Sequence[Column]) -> None:
    """Refuse rules that name unknown or identifier columns, values outside declared
    categories or bounds, columns of the wrong kind, cyclic ``determines`` chains and
    contradictions.

    Raises
    ------
    SchemaError
        Naming the rule (index and kind), the column or value, and what to do.
    """
    by_name = {c.name: c for c in columns}
    for i, rule in enumerate(rules):
        where = label(i, rule)
        for name in rule.columns:
            if name not in by_name:
                raise SchemaError(
                    f"{where}: column {name!r} is not in the schema; columns: {list(by_name)}"
                )
            if by_name[name].kind == "identifier":
                raise SchemaError(
                    f"{where}: column {name!r} is an identifier (never synthesised); a rule "
                    "can name synthesised columns only"
                )
        if len(set(rule.columns)) != len(rule.columns):
            raise SchemaError(f"{where}: names a column twice; name each column once")
        cols = [by_name[n] for n in rule.columns]
        if rule.kind == "compare":
            _check_compare(where, rule, cols)
        elif rule.kind == "determines":
            _check_determines(where, rule, cols)
        else:
            _check_combinations(where, rule, cols)
    _check_chains(rules)
    _check_combination_sets(rules, by_name)
    _check_comparisons(rules, by_name)


def _declared(col: Column) -> tuple[str, ...] | None:
    """Categories the custodian declared (public or reviewed); DP-learned lists keep only
    the values common enough to release, so a rule may name a value they lack."""
    return col.categories if col.source != "dp" else None


def _check_value(where: str, col: Column, value: str) -> None:
    cats = _declared(col)
    if cats is not None and value not in cats:
        raise SchemaError(
            f"{where}: value {value!r} is not a category of column {col.name!r} "
            f"({list(cats)}); fix the rule or add the value to 'categories'"
        )


def _check_combinations(where: str, rule: Rule, cols: list[Column]) -> None:
    for col in cols:
        if col.kind not in CATEGORICAL_KINDS:
            raise SchemaError(
                f"{where}: column {col.name!r} is {col.kind}; {rule.kind} rules take "
                "categorical or ordinal columns (use a compare rule for numbers)"
            )
    for combo in rule.values or ():
        for col, v in zip(cols, combo, strict=True):
            _check_value(where, col, v)
    if rule.kind == "allow" and not rule.values:
        raise SchemaError(f"{where}: allows no combination, so every row would break it")


def _check_determines(where: str, rule: Rule, cols: list[Column]) -> None:
    fine, coarse = cols
    if fine.kind not in CATEGORICAL_KINDS:
        raise SchemaError(
            f"{where}: the fine column {fine.name!r} is {fine.kind}; it must be categorical "
            "or ordinal"
        )
    if coarse.kind not in (*CATEGORICAL_KINDS, "integer", "continuous"):
        raise SchemaError(
            f"{where}: the coarse column {coarse.name!r} is {coarse.kind}; it must be "
            "categorical, ordinal, integer or continuous"
        )
    if rule.mapping is None:
        return
    if fine.nullable and not coarse.nullable:
        raise SchemaError(
            f"{where}: {fine.name!r} is nullable, so a missing value derives a missing "
            f"{coarse.name!r}: make {coarse.name!r} nullable too"
        )
    keys = [k for k, _ in rule.mapping]
    for k, v in rule.mapping:
        _check_value(where, fine, k)
        if coarse.kind in CATEGORICAL_KINDS:
            _check_value(where, coarse, canonical_category(v))
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise SchemaError(f"{where}: mapping[{k!r}] ({v!r}) must be a finite number")
        if coarse.kind == "integer" and not float(v).is_integer():
            raise SchemaError(f"{where}: mapping[{k!r}] ({v!r}) must be a whole number")
        if coarse.lower is not None:
            lo, hi = coarse.bound_values()
            if not lo <= v <= hi:
                raise SchemaError(
                    f"{where}: mapping[{k!r}] ({v!r}) lies outside the bounds of "
                    f"{coarse.name!r} ({lo:g}..{hi:g}); fix the mapping or the bounds"
                )
    cats = _declared(fine)
    missing = [c for c in cats or () if c not in keys]
    if missing:
        raise SchemaError(
            f"{where}: the mapping gives no {coarse.name!r} for {fine.name!r} value(s) "
            f"{missing}; map every category (or drop 'mapping')"
        )


def _check_compare(where: str, rule: Rule, cols: list[Column]) -> None:
    for col in cols:
        if col.kind not in NUMERIC_KINDS:
            raise SchemaError(
                f"{where}: column {col.name!r} is {col.kind}; compare rules take integer, "
                "continuous or datetime columns (use forbid/allow for categories)"
            )
    if len({c.kind == "datetime" for c in cols}) > 1:
        raise SchemaError(
            f"{where}: compares a datetime with a number ({cols[0].name!r} is "
            f"{cols[0].kind}, {cols[1].name!r} is {cols[1].kind}); compare like with like"
        )
    if cols[0].kind == "integer" and cols[1].kind == "integer" and not rule.offset.is_integer():
        raise SchemaError(f"{where}: integer columns need a whole offset, got {rule.offset:g}")


def _check_chains(rules: Sequence[Rule]) -> None:
    """Each column is fixed by at most one rule, and no chain of rules comes back to its
    start (a fine value would then be fixed by its own coarse value)."""
    fixed_by: dict[str, int] = {}
    for i, rule in enumerate(rules):
        if rule.kind != "determines":
            continue
        coarse = rule.columns[1]
        if coarse in fixed_by:
            raise SchemaError(
                f"{label(i, rule)}: column {coarse!r} is already determined by "
                f"{label(fixed_by[coarse], rules[fixed_by[coarse]])}; keep one of the two"
            )
        fixed_by[coarse] = i
    # Each column has at most one rule fixing it, so walking back from a column along the
    # rules that fix it is a single path: it comes back to its start exactly on a cycle.
    fine_of = {rules[i].columns[1]: rules[i].columns[0] for i in fixed_by.values()}
    for coarse, i in fixed_by.items():
        path, col = [coarse], fine_of[coarse]
        while col in fine_of and col != coarse and len(path) <= len(fine_of):
            path.append(col)
            col = fine_of[col]
        if col == coarse:
            chain = " -> ".join(reversed([*path, col]))
            raise SchemaError(
                f"{label(i, rules[i])}: determines rules form a cycle ({chain}); a column "
                "cannot determine itself: remove one rule of the cycle"
            )


def _check_combination_sets(rules: Sequence[Rule], by_name: Mapping[str, Column]) -> None:
    """forbid/allow rules over the same columns must leave some combination possible."""
    groups: dict[frozenset[str], list[int]] = {}
    for i, r in enumerate(rules):
        if r.kind in ("forbid", "allow"):
            groups.setdefault(frozenset(r.columns), []).append(i)
    for members in groups.values():
        order = rules[members[0]].columns
        possible: set[tuple[str, ...]] | None = None
        domains = [_declared(by_name[c]) for c in order]
        if all(d is not None for d in domains):
            possible = set(itertools.product(*(d or () for d in domains)))
        for i in members:
            r = rules[i]
            combos = {
                tuple(v[r.columns.index(c)] for c in order) for v in r.values or ()
            }  # in the group's column order
            if r.kind == "allow":
                possible = combos if possible is None else possible & combos
            elif possible is not None:
                possible -= combos
        if possible is not None and not possible:
            names = ", ".join(label(i, rules[i]) for i in members)
            raise SchemaError(
                f"{names}: together they forbid every combination of {', '.join(order)}, so "
                "no row could keep them; remove or fix one"
            )


def _check_comparisons(rules: Sequence[Rule], by_name: Mapping[str, Column]) -> None:
    """compare rules (with the columns' declared bounds) must be satisfiable together.

    Each rule is a difference constraint ``x_u - x_v <= w`` (strict or not); they hold
    together exactly when the constraint graph has no cycle of negative weight, or of zero
    weight through a strict edge (Floyd-Warshall on the tightest path, weight then
    strictness). Bounds are constraints against a zero node.
    """
    idx = [i for i, r in enumerate(rules) if r.kind == "compare"]
    if not idx:
        return
    names = sorted({c for i in idx for c in rules[i].columns})
    nodes = ["0", *names]
    n = len(nodes)
    inf = (math.inf, 0)
    # dist[u][v] = (w, s): x_v - x_u <= w, s = -1 when strict (so tighter sorts first)
    dist = [[(0.0, 0) if u == v else inf for v in range(n)] for u in range(n)]

    def add(u: str, v: str, w: float, strict: bool) -> None:  # x_v - x_u <= w
        a, b = nodes.index(u), nodes.index(v)
        dist[a][b] = min(dist[a][b], (w, -1 if strict else 0))

    for name in names:
        col = by_name[name]
        if col.lower is not None:
            lo, hi = col.bound_values()
            add("0", name, hi, False)
            add(name, "0", -lo, False)
    for i in idx:
        r = rules[i]
        left, right = r.columns
        off = r.offset * (NS_PER_DAY if by_name[left].kind == "datetime" else 1)
        strict = r.op in (">", "<")
        if r.op in (">=", ">"):  # right - left <= -off
            add(left, right, -off, strict)
        else:  # left - right <= off
            add(right, left, off, strict)
    for k, u, v in itertools.product(range(n), repeat=3):
        via = (dist[u][k][0] + dist[k][v][0], min(dist[u][k][1], dist[k][v][1]))
        if via < dist[u][v]:
            dist[u][v] = via
    bad = [nodes[u] for u in range(n) if dist[u][u] < (0.0, 0)]
    if bad:
        culprits = [label(i, rules[i]) for i in idx if set(rules[i].columns) & set(bad)]
        raise SchemaError(
            f"{', '.join(culprits)}: cannot all hold together, given the declared bounds of "
            f"{', '.join(n for n in bad if n != '0')}; fix the rules or the bounds"
        )


# ------------------------------------------------------------- violations
def _categories(s: pd.Series) -> pd.Series:
    """Canonical strings (missing stays missing), as validation stores categories."""
    mapping = {v: canonical_category(v) for v in pd.unique(s.dropna())}
    return s.map(mapping)


def numbers(s: pd.Series) -> pd.Series:
    """A numeric or datetime column as floats (datetimes as nanoseconds since the epoch, as a
    validated frame holds them); missing values are NaN."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        ns = s.astype("datetime64[ns]").astype("int64").astype(float)
        return ns.where(s.notna(), np.nan)
    return pd.to_numeric(s, errors="coerce").astype(float)


def offset_of(rule: Rule, columns: Mapping[str, Column]) -> float:
    """The rule's offset in the stored unit of its columns (days to nanoseconds for dates)."""
    return rule.offset * (NS_PER_DAY if columns[rule.columns[0]].kind == "datetime" else 1)


def holds(op: str, left: pd.Series | np.ndarray, right: pd.Series | np.ndarray) -> np.ndarray:
    """``left op right`` elementwise (False where either side is NaN)."""
    a, b = np.asarray(left, dtype=float), np.asarray(right, dtype=float)
    with np.errstate(invalid="ignore"):
        return {">=": a >= b, ">": a > b, "<=": a <= b, "<": a < b}[op]


def coarse_mode(fine: pd.Series, coarse: pd.Series) -> dict[Any, Any]:
    """For each fine value, its most common coarse value (ties: the smallest), where both are
    present."""
    both = fine.notna() & coarse.notna()
    pairs = pd.DataFrame({"f": fine[both].to_numpy(), "c": coarse[both].to_numpy()})
    if pairs.empty:
        return {}
    counts = pairs.value_counts().rename("n").reset_index()
    counts = counts.sort_values(["f", "n", "c"], ascending=[True, False, True], kind="stable")
    return dict(counts.drop_duplicates("f").set_index("f")["c"].items())


def coarse_values(rule: Rule, coarse: Column) -> dict[str, Any]:
    """The declared mapping, coarse values as the coarse column holds them (canonical strings
    or floats)."""
    if coarse.kind in CATEGORICAL_KINDS:
        return {k: canonical_category(v) for k, v in rule.mapping or ()}
    return {k: float(v) for k, v in rule.mapping or ()}


def broken_rows(rule: Rule, frame: pd.DataFrame, columns: Mapping[str, Column]) -> np.ndarray:
    """Which rows of ``frame`` break ``rule`` (a boolean array); a row with a missing value in
    a column the rule reads never breaks it.

    ``determines`` without a mapping breaks in the rows whose coarse value is not the most
    common one for their fine value: the fewest rows to change for the rule to hold.
    """
    if rule.kind == "compare":
        left, right = rule.columns
        a, b = numbers(frame[left]), numbers(frame[right]) + offset_of(rule, columns)
        return (a.notna() & b.notna()).to_numpy() & ~holds(rule.op or ">=", a, b)
    if rule.kind == "determines":
        fine_name, coarse_name = rule.columns
        fine = _categories(frame[fine_name])
        coarse_col = columns[coarse_name]
        coarse = (
            _categories(frame[coarse_name])
            if coarse_col.kind in CATEGORICAL_KINDS
            else numbers(frame[coarse_name])
        )
        want = (
            coarse_values(rule, coarse_col)
            if rule.mapping is not None
            else coarse_mode(fine, coarse)
        )
        expected = fine.map(want)
        return (expected.notna() & coarse.notna() & (coarse != expected)).to_numpy()
    parts = [_categories(frame[c]) for c in rule.columns]
    present = np.logical_and.reduce([p.notna().to_numpy() for p in parts])
    listed = pd.MultiIndex.from_arrays(parts).isin(list(rule.values or ()))
    return present & (listed if rule.kind == "forbid" else ~listed)


def count_broken(
    rules: Iterable[Rule], frame: pd.DataFrame, columns: Iterable[Column]
) -> list[int]:
    """How many rows of ``frame`` break each rule (see :func:`broken_rows`)."""
    by_name = {c.name: c for c in columns}
    return [int(broken_rows(r, frame, by_name).sum()) for r in rules]
