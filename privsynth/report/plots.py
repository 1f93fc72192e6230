"""Figures for the HTML report, drawn with matplotlib from the report's aggregate plot data and
embedded as PNG data URIs (the page stays one self-contained file)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # no display; set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402

REAL, SYNTH, HOLDOUT = "#1f5fa8", "#e07b00", "#6a9e3f"


def _png(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def marginal(
    column: str, labels: Sequence[str], real: Sequence[float | None], synth: Sequence[float]
) -> str:
    """Real vs synthetic proportions of one column, side by side; a real share withheld by
    small-cell suppression (``None``) has no bar."""
    n = len(labels)
    fig, ax = plt.subplots(figsize=(4.6, 2.6))
    x = range(n)
    w = 0.42
    shown = [(i, r) for i, r in zip(x, real, strict=True) if r is not None]
    ax.bar([i - w / 2 for i, _ in shown], [r for _, r in shown], w, label="real", color=REAL)
    ax.bar([i + w / 2 for i in x], synth, w, label="synthetic", color=SYNTH)
    ax.set_title(column, fontsize=10)
    ax.set_ylabel("share of rows", fontsize=8)
    ax.set_xticks(list(x))
    ax.set_xticklabels(
        [str(s)[:14] for s in labels],
        rotation=60 if n > 4 else 0,
        ha="right" if n > 4 else "center",
        fontsize=7,
    )
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=7, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def roc(curves: Sequence[tuple[str, Sequence[float], Sequence[float]]]) -> str:
    """ROC curves (name, fpr, tpr) of the membership attacks, with the chance diagonal,
    on linear and log false-positive axes (low-FPR behaviour is what matters)."""
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.4))
    for ax, log in zip(axes, (False, True), strict=True):
        ax.plot([1e-4, 1], [1e-4, 1], ls="--", color="grey", lw=1, label="chance")
        for name, fpr, tpr in curves:
            ax.plot(fpr, tpr, lw=1.6, label=name)
        if log:
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlim(1e-3, 1)
            ax.set_ylim(1e-3, 1)
        else:
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
        ax.set_xlabel("false positive rate", fontsize=8)
        ax.set_ylabel("true positive rate", fontsize=8)
        ax.set_title("log scale" if log else "linear scale", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].legend(fontsize=7, frameon=False)
    return _png(fig)


def dcr(edges: Sequence[float], train: Sequence[float], holdout: Sequence[float] | None) -> str:
    """Distance from each synthetic row to its closest training row and to its closest holdout
    row, as shares of synthetic rows per bin. Curves that coincide mean the generator is no
    closer to the rows it was fitted on than to unseen rows."""
    fig, ax = plt.subplots(figsize=(5.6, 2.8))
    for counts, label, color, ls in (
        (train, "closest training row", REAL, "-"),
        (holdout, "closest holdout row", HOLDOUT, "--"),
    ):
        if counts is None:  # no holdout: training distances only
            continue
        total = sum(counts) or 1
        ax.stairs([c / total for c in counts], edges, label=label, color=color, lw=1.8, ls=ls)
    ax.set_xlabel("distance (mixed-type, see the report)", fontsize=8)
    ax.set_ylabel("share of synthetic rows", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)
