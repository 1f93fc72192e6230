"""What of the attack suite's results the report may carry, and what stays with the custodian.

The report leaves the trusted environment, so everything in it computed on the real rows must
be an aggregate over many rows or a DP quantity. The attack suite's results are aggregates,
with three exceptions that :func:`shareable` takes out (and returns as lines for the
custodian's screen):

* **run times** of the attacks: they depend on the data (a timing side channel), and they
  are not evidence about the synthetic table;
* **a few exact copies**: the share of synthetic rows identical to a training (or holdout)
  row, when it stands for fewer than ``min_cell`` rows (say "one synthetic row is a copy of a
  real person": a statement about that person);
* **small cells of distance plots and diagnostics**: bins of the distance-to-closest-record
  histogram are merged until each holds ``min_cell`` synthetic rows (the whole histogram is
  left out when its range, the 99th percentile, has fewer than ``min_cell`` rows beyond it),
  and a distance percentile that fewer than ``min_cell`` synthetic rows lie beyond is left
  out.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

#: The attack whose value counts synthetic rows identical to a real row.
EXACT_MATCH = "exact_match_rate"
#: Share of synthetic rows beyond the distance histogram's last edge (its 99th percentile).
TOP_EDGE_TAIL = 0.01


def shareable(attacks: Mapping[str, Any] | None, min_cell: int) -> tuple[Any, list[str]]:
    """The suite's results as the report may carry them, and the custodian-only lines.

    Parameters
    ----------
    attacks
        The suite's ``to_dict()`` (or ``None`` when it did not run); not changed.
    min_cell
        The policy's ``[report] min_cell_rows``.

    Returns
    -------
    tuple
        The results for the report and, for the custodian's screen only, what was held back.
    """
    if attacks is None:
        return None, []
    out = copy.deepcopy(dict(attacks))
    notes: list[str] = []
    if times := out.pop("timing_s", None):
        notes.append(
            "attack run times (s), kept off the report (a timing side channel): "
            + ", ".join(f"{k} {v:g}" for k, v in times.items())
        )
    rows = int((out.get("settings") or {}).get("synthetic_rows") or 0)
    for result in out.get("attacks", []):
        if result["name"] == EXACT_MATCH:
            notes += _withhold_copies(result, rows, min_cell)
    plots = out.get("plots") or {}
    if plots.get("dcr_histogram"):
        if rows * TOP_EDGE_TAIL < min_cell:
            plots["dcr_histogram"] = None
            notes.append(
                "distance histogram kept off the report: its range ends at the 99th percentile "
                f"of {rows} synthetic rows' distances, fewer than {min_cell} rows beyond it"
            )
        else:
            plots["dcr_histogram"] = merge_small_bins(plots["dcr_histogram"], min_cell)
    if out.get("diagnostics"):
        notes += _drop_extreme_percentiles(out["diagnostics"], min_cell)
    return out, notes


def _withhold_copies(result: dict[str, Any], rows: int, min_cell: int) -> list[str]:
    """Blank the exact-match share (and its baseline) where it stands for 1 to
    ``min_cell - 1`` synthetic rows."""
    small = [v for v in (result["value"], result["baseline"]) if v and round(v * rows) < min_cell]
    if not small or rows == 0:
        return []
    note = (
        f"{EXACT_MATCH}: {result['value']!r} of {rows} synthetic rows are identical to a "
        f"training row (holdout: {result['baseline']!r}); kept off the report: fewer than "
        f"{min_cell} rows"
    )
    result.update(value=None, ci=[None, None], baseline=None)
    result["details"] = {
        **result["details"],
        "withheld": f"fewer than {min_cell} synthetic rows (small-cell suppression)",
    }
    return [note]


def merge_small_bins(hist: Mapping[str, Any], min_cell: int) -> dict[str, Any]:
    """The distance histogram with adjacent bins merged, left to right, until each holds at
    least ``min_cell`` synthetic rows in every series (a last short run joins the bin before).

    Examples
    --------
    >>> h = {"bin_edges": [0, 1, 2, 3, 4], "train": [2, 9, 0, 30], "holdout": [5, 6, 1, 20]}
    >>> m = merge_small_bins(h, 10)
    >>> m["bin_edges"], m["train"], m["holdout"]
    ([0, 2, 4], [11, 30], [11, 21])
    """
    series = [k for k in ("train", "holdout") if hist.get(k) is not None]
    edges = list(hist["bin_edges"])
    merged: dict[str, list[int]] = {k: [] for k in series}
    kept = [edges[0]]
    run = dict.fromkeys(series, 0)
    for i in range(len(edges) - 1):
        for k in series:
            run[k] += hist[k][i]
        if all(run[k] >= min_cell for k in series):
            for k in series:
                merged[k].append(run[k])
            kept.append(edges[i + 1])
            run = dict.fromkeys(series, 0)
    if kept[-1] != edges[-1]:  # a short last run
        if len(kept) > 1:  # joins the bin before it
            kept[-1] = edges[-1]
            for k in series:
                merged[k][-1] += run[k]
        else:  # fewer than min_cell rows in all: one bin
            kept.append(edges[-1])
            for k in series:
                merged[k].append(run[k])
    out = {**hist, "bin_edges": kept, **merged}
    if kept != edges:
        out["what"] = (
            f"{hist.get('what', 'synthetic rows per distance bin')}; bins merged so that each "
            f"holds at least {min_cell} synthetic rows"
        )
    return out


def _drop_extreme_percentiles(diagnostics: dict[str, Any], min_cell: int) -> list[str]:
    """Leave out a distance percentile with fewer than ``min_cell`` synthetic rows beyond it
    (it is then nearly one row's distance to one real row)."""
    n = int(diagnostics.get("n_synthetic_queries") or 0)
    notes = []
    for name, values in diagnostics.items():
        if not (name.endswith("_percentiles") and isinstance(values, dict)):
            continue
        for key in list(values):
            m = re.fullmatch(r"p(\d+(?:\.\d+)?)", key)
            if m is None:
                continue
            tail = min(float(m.group(1)), 100 - float(m.group(1))) / 100 * n
            if tail < min_cell:
                notes.append(
                    f"{name} {key} = {values.pop(key)!r}: kept off the report (fewer than "
                    f"{min_cell} synthetic rows beyond it)"
                )
    return notes
