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


def comparison_figure(curves: dict[str, list[dict[str, Any]]], labels: dict[str, str], metric: str | None,
                      per_class: dict[str, Any] | None = None) -> Any:
    """Runs side by side: the main metric at each epoch, one line per run (left), and the per-class
    metric every run has, grouped bars per class (right, when there is one)."""
    classes = (per_class or {}).get("classes") or []
    fig, axes = plt.subplots(1, 2 if classes else 1, figsize=(10 if classes else 5.5, 3.2), squeeze=False)
    ax = axes[0][0]
    for run_id, points in curves.items():
        if points:
            ax.plot([p["epoch"] for p in points], [p["value"] for p in points], marker="o", markersize=3,
                    linewidth=1.5, label=labels.get(run_id, run_id[:8]))
    ax.set_title(f"{metric_name(metric) if metric else 'main metric'} by epoch", fontsize=9)
    ax.set_xlabel("epoch", fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    if any(curves.values()):
        ax.legend(fontsize=7)
    if classes:
        bar = axes[0][1]
        values = per_class["values"]
        width = 0.8 / max(1, len(values))
        for i, (run_id, by_class) in enumerate(values.items()):
            ys = [by_class.get(c) if isinstance(by_class.get(c), int | float) else 0.0 for c in classes]
            bar.bar([x + i * width for x in range(len(classes))], ys, width=width, label=labels.get(run_id, run_id[:8]))
        bar.set_xticks([x + width * (len(values) - 1) / 2 for x in range(len(classes))])
        bar.set_xticklabels(classes, fontsize=7, rotation=30, ha="right")
        bar.set_title(f"{per_class['key']} per class", fontsize=9)
        bar.set_ylim(0, 1)
        bar.tick_params(labelsize=7)
        bar.grid(alpha=0.3, axis="y")
        bar.legend(fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    return fig
