"""``--plot FILE``: the Pareto front as a picture (PNG, SVG or PDF, by suffix).

Two objectives: one scatter plot. More: a matrix of every pair of objectives.
Front plans are dots, each heuristic's plan a labelled cross, the chosen plan a star.
matplotlib (Agg backend) is imported here only, when a plot is asked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from fogctl.errors import InvalidInput, OperationFailed
from fogctl.schedule.instance import FloatArray

__all__ = ["FORMATS", "plot_front"]

FORMATS = (".png", ".svg", ".pdf")
LABELS = {
    "latency": "latency (ms)",
    "balance": "utilisation variance",
    "trust": "mean trust",
    "cost": "operating cost",
    "price": "market price",
}


def check_path(path: str | Path) -> Path:
    p = Path(path)
    if p.suffix.lower() not in FORMATS:
        raise InvalidInput(f"--plot {p}: give a file ending in {', '.join(FORMATS)}")
    if not p.parent.exists():
        raise InvalidInput(f"--plot {p}: no such directory {p.parent}")
    return p


def plot_front(
    path: str | Path,
    front: FloatArray,
    names: Sequence[str],
    *,
    chosen: int | None = None,
    heuristics: Mapping[str, Sequence[float]] | None = None,
    title: str = "",
) -> Path:
    """Write the front (rows of reported objective values, columns ``names``)."""
    p = check_path(path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    M = len(names)
    heuristics = heuristics or {}
    pairs = [(i, k) for i in range(M) for k in range(i + 1, M)] if M > 1 else [(0, 0)]
    cols = min(len(pairs), 4)
    rows = (len(pairs) + cols - 1) // cols
    n_labels = 2 + len(heuristics) + (chosen is not None)
    ncol = 4
    legend_rows = (n_labels + ncol - 1) // ncol
    width = max(4.2 * cols, 8.0)
    height = 3.6 * rows + 0.3 * legend_rows
    fig, axes = plt.subplots(rows, cols, figsize=(width, height), squeeze=False)
    markers = ["x", "+", "1", "2", "3", "4", "^", "v"]
    for ax, (i, k) in zip(axes.ravel(), pairs, strict=False):
        xs = front[:, i]
        ys = front[:, k] if M > 1 else np.zeros(len(front))
        ax.scatter(xs, ys, s=14, alpha=0.6, color="tab:blue", label="front")
        for h, (name, point) in enumerate(heuristics.items()):
            ax.scatter(
                point[i],
                point[k] if M > 1 else 0.0,
                marker=markers[h % len(markers)],
                s=60,
                color="tab:gray",
                label=name,
            )
        if chosen is not None:
            ax.scatter(xs[chosen], ys[chosen], marker="*", s=180, color="tab:red", label="chosen")
        ax.set_xlabel(LABELS.get(names[i], names[i]))
        if M > 1:
            ax.set_ylabel(LABELS.get(names[k], names[k]))
        ax.grid(True, alpha=0.3)
    for ax in axes.ravel()[len(pairs) :]:
        ax.axis("off")
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    bottom = min(0.4, (0.3 * legend_rows + 0.15) / height)
    fig.tight_layout(rect=(0, bottom, 1, 0.95 if title else 1))
    try:
        fig.savefig(p)
    except OSError as exc:
        raise OperationFailed(f"--plot {p}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
    return p
