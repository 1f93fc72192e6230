"""Figures for the HTML report, drawn with matplotlib from the report's aggregate plot data and
embedded as PNG data URIs (the page stays one self-contained file).

Every figure has the same size (:data:`FIGSIZE`) and font, so the page shows them as equal
tiles; legends sit outside the plotting area, never over a bar or a curve; and a label too
long for its place is shortened with an ellipsis (:func:`ellipsis`), never cut bare.
"""

from __future__ import annotations

import base64
import functools
import io
import re
from collections.abc import Callable, Sequence
from typing import ParamSpec

import matplotlib

matplotlib.use("Agg")  # no display; set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402

REAL, SYNTH, HOLDOUT = "#1f5fa8", "#e07b00", "#6a9e3f"
#: One size for every figure (inches) and its resolution: the page shows them as equal tiles.
FIGSIZE = (5.2, 3.0)
DPI = 110
#: One font and size for every figure's text (titles a step larger).
FONT_FAMILY, FONT_SIZE, TITLE_SIZE = "DejaVu Sans", 7.5, 9
#: The longest tick label and title, in characters, before an ellipsis shortens it.
MAX_TICK = 18
MAX_TITLE = 48

P = ParamSpec("P")


def _styled(draw: Callable[P, str]) -> Callable[P, str]:
    """Draw with one font for every figure, set per figure: the caller's global matplotlib
    settings are left alone."""

    @functools.wraps(draw)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> str:
        with plt.rc_context(
            {"font.family": FONT_FAMILY, "font.size": FONT_SIZE, "axes.titlesize": TITLE_SIZE}
        ):
            return draw(*args, **kwargs)

    return wrapper


def ellipsis(text: str, limit: int) -> str:
    """``text`` if it has at most ``limit`` characters, else its start and an ellipsis, so
    that a shortened label always shows it was shortened.

    Examples
    --------
    >>> ellipsis("Married-AF-spouse", 14), ellipsis("Private", 14)
    ('Married-AF-sp…', 'Private')
    """
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _compact(number: str) -> str:
    """A long number in a few digits: 1500000 -> 1.5M, 42521 -> 42.5k."""
    x = float(number)
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    return number


def readable(labels: Sequence[str], kind: str | None) -> list[str]:
    """Tick labels a reader can take in: a date bin by its first day (no time of day where
    the bars stay distinct), numbers of five digits or more compacted (``780565–1500000`` reads
    ``781k–1.5M``), then at most :data:`MAX_TICK` characters.

    Examples
    --------
    >>> readable(["[2020-03-07T02:13:20, 2020-04-01)", "2020-05-01"], "datetime")
    ['from 2020-03-07', '2020-05-01']
    >>> readable(["780565–1500000", "0–42520"], "integer")
    ['781k–1.5M', '0–42.5k']
    """
    out = [str(s) for s in labels]
    if kind == "datetime":
        # a bin [start, end) reads by its start: the next bar's start is its end
        starts = [re.sub(r"^\[([^,]+), .*$", r"\1", s) for s in out]
        days = [re.sub(r"(\d{4}-\d{2}-\d{2})T[\d:.]+", r"\1", s) for s in starts]
        if len(set(days)) == len(days):
            out = [f"from {d}" if d != s else d for d, s in zip(days, out, strict=True)]
        else:  # bins shorter than a day keep their time, or two bars would read alike
            out = [re.sub(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})[\d:.]*", r"\1 \2", s) for s in starts]
    elif kind in ("integer", "continuous"):
        out = [re.sub(r"\d{5,}(?:\.\d+)?", lambda m: _compact(m.group()), s) for s in out]
    return [ellipsis(s, MAX_TICK) for s in out]


def _figure(ncols: int = 1) -> tuple[plt.Figure, list[plt.Axes]]:
    fig, axes = plt.subplots(1, ncols, figsize=FIGSIZE, layout="constrained")
    return fig, list(axes) if ncols > 1 else [axes]


def _png(fig: plt.Figure) -> str:
    # No bbox_inches="tight": it would trim each figure to a different size.
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _legend_outside(ax: plt.Axes, **kw: object) -> None:
    """The legend above the plotting area, right-aligned, clear of every bar and curve."""
    ax.legend(
        loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=3, frameon=False, borderaxespad=0.2, **kw
    )


def _style(ax: plt.Axes) -> None:
    ax.spines[["top", "right"]].set_visible(False)


@_styled
def marginal(
    column: str,
    labels: Sequence[str],
    real: Sequence[float | None],
    synth: Sequence[float],
    kind: str | None = None,
) -> str:
    """Real vs synthetic proportions of one column, side by side; a real share withheld by
    small-cell suppression (``None``) has no bar."""
    n = len(labels)
    fig, (ax,) = _figure()
    x = range(n)
    w = 0.42
    shown = [(i, r) for i, r in zip(x, real, strict=True) if r is not None]
    ax.bar([i - w / 2 for i, _ in shown], [r for _, r in shown], w, label="real", color=REAL)
    ax.bar([i + w / 2 for i in x], synth, w, label="synthetic", color=SYNTH)
    ax.set_title(ellipsis(column, MAX_TITLE), loc="left")
    ax.set_ylabel("share of rows")
    ax.set_xticks(list(x))
    ax.set_xticklabels(
        readable(labels, kind),
        rotation=60 if n > 4 else 0,
        ha="right" if n > 4 else "center",
        rotation_mode="anchor",
    )
    _legend_outside(ax)
    _style(ax)
    return _png(fig)


@_styled
def roc(curves: Sequence[tuple[str, Sequence[float], Sequence[float]]]) -> str:
    """ROC curves (name, fpr, tpr) of the membership attacks, with the chance diagonal,
    on linear and log false-positive axes (low-FPR behaviour is what matters)."""
    fig, axes = _figure(2)
    for ax, log in zip(axes, (False, True), strict=True):
        ax.plot([1e-4, 1], [1e-4, 1], ls="--", color="grey", lw=1, label="chance")
        for name, fpr, tpr in curves:
            ax.plot(fpr, tpr, lw=1.6, label=ellipsis(name, 44))
        if log:
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlim(1e-3, 1)
            ax.set_ylim(1e-3, 1)
        else:
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
        ax.set_xlabel("false positive rate")
        ax.set_title("log scale" if log else "linear scale", loc="left")
        _style(ax)
    axes[0].set_ylabel("true positive rate")
    # one legend for both panels, below them (outside every curve)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=2, frameon=False)
    return _png(fig)


@_styled
def dcr(edges: Sequence[float], train: Sequence[float], holdout: Sequence[float] | None) -> str:
    """Distance from each synthetic row to its closest training row and to its closest holdout
    row, as shares of synthetic rows per bin. Curves that coincide mean the generator is no
    closer to the rows it was fitted on than to unseen rows."""
    fig, (ax,) = _figure()
    for counts, label, color, ls in (
        (train, "closest training row", REAL, "-"),
        (holdout, "closest holdout row", HOLDOUT, "--"),
    ):
        if counts is None:  # no holdout: training distances only
            continue
        total = sum(counts) or 1
        ax.stairs([c / total for c in counts], edges, label=label, color=color, lw=1.8, ls=ls)
    ax.set_xlabel("distance (mixed-type, see the report)")
    ax.set_ylabel("share of synthetic rows")
    _legend_outside(ax)
    _style(ax)
    return _png(fig)


@_styled
def privacy_profile(curves: Sequence[tuple[str, Sequence[float], Sequence[float | None]]]) -> str:
    """Epsilon against delta (name, deltas, epsilons) on a log delta axis, smaller deltas to
    the right: how the same release's guarantee reads at each delta. A delta with no finite
    epsilon (``None``) has no point."""
    fig, (ax,) = _figure()
    for (name, deltas, eps), color in zip(curves, (REAL, SYNTH), strict=False):
        shown = [(d, e) for d, e in zip(deltas, eps, strict=True) if e is not None]
        ax.plot(
            [d for d, _ in shown],
            [e for _, e in shown],
            marker="o",
            ms=3,
            lw=1.6,
            color=color,
            label=name,
        )
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_ylim(bottom=0)
    ax.set_xlabel("delta")
    ax.set_ylabel("epsilon (upper bound)")
    _legend_outside(ax)
    _style(ax)
    return _png(fig)
