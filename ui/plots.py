"""Line plots of a run's metrics by epoch (one small panel per metric)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the headless backend
from matplotlib.ticker import MaxNLocator  # noqa: E402

from core.metric_names import metric_name  # noqa: E402


def metrics_figure(points: list[dict[str, Any]], title: str = "") -> Any:
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for p in points:
        if not p["name"].startswith("lr"):
            series[p["name"]].append((p["epoch"], p["value"]))
    names = sorted(series)
    cols = 4 if len(names) > 6 else max(1, min(3, len(names)))
    rows = max(1, -(-len(names) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.3 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        xs, ys = zip(*sorted(series[name]), strict=True)
        ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.5)
        ax.set_title(metric_name(name), fontsize=8)
        ax.set_xlabel("epoch", fontsize=7)
        if len(set(xs)) <= 8:  # epochs are whole numbers: a tick at each (one epoch too)
            ax.set_xticks(sorted(set(xs)))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")  # no "+6.615" offset above the axis
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    if not names:
        axes.flat[0].text(0.5, 0.5, "—", ha="center", va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    plt.close(fig)
    return fig
