"""Plots of a result table (matplotlib, PNG), saved beside the table.

base2new: one panel per dataset and one for the average, each with Base / New / HM bars per
trainer (error bars: std over seeds). fewshot: accuracy against shots per dataset and on
average. xd / dg: accuracy per dataset (and the average) per trainer.
"""
import math
from pathlib import Path

from .protocol import dataset_title

AVERAGE = "average"
COLORS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def _entry(table, rows, trainer, dataset, shots, metric):
    e = table.lookup(rows, trainer, dataset, shots, metric)
    if e is None or e.mean is None:
        return math.nan, None
    return e.mean, e.std


def _errors(stats):
    """yerr of bars or points: None when no value has a std (average rows)."""
    stds = [s[1] for s in stats]
    return None if all(v is None for v in stds) else [math.nan if v is None else v for v in stds]


def _panels(table):
    return list(table.datasets) + ([AVERAGE] if table.averages else [])


def _grid(plt, n_panels):
    """A figure with one small panel per dataset, four to a row; unused panels hidden."""
    cols = min(4, n_panels)
    rows = math.ceil(n_panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.9 * rows + 0.8), squeeze=False)
    for ax in list(axes.flat)[n_panels:]:
        ax.set_visible(False)
    return fig, axes


def _title(dataset):
    return "Average" if dataset == AVERAGE else dataset_title(dataset)


def _ylim(values):
    finite = [v for v in values if not math.isnan(v)]
    low = max(0.0, math.floor((min(finite) - 10) / 10) * 10) if finite else 0.0
    return low, 100.0


def _base2new(table, plt):
    metrics, k = ("base", "new", "hm"), table.shots[0]
    panels = _panels(table)
    fig, axes = _grid(plt, len(panels))
    n = len(table.trainers)
    width = 0.8 / n
    for ax, dataset in zip(axes.flat, panels):
        source = table.averages if dataset == AVERAGE else table.entries
        values = []
        for i, trainer in enumerate(table.trainers):
            stats = [_entry(table, source, trainer, dataset, k, m) for m in metrics]
            means = [s[0] for s in stats]
            values += means
            xs = [j + (i - (n - 1) / 2) * width for j in range(len(metrics))]
            ax.bar(xs, means, width, yerr=_errors(stats), capsize=2,
                   color=COLORS[i % len(COLORS)], label=trainer)
        ax.set_title(_title(dataset), fontsize=10, fontweight="bold" if dataset == AVERAGE
                     else "normal")
        ax.set_xticks(range(len(metrics)))
        ax.set_xticklabels(["Base", "New", "HM"], fontsize=9)
        ax.set_ylim(*_ylim(values))
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.supylabel("accuracy (%)", fontsize=10)
    return fig, axes


def _fewshot(table, plt):
    panels = _panels(table)
    fig, axes = _grid(plt, len(panels))
    for ax, dataset in zip(axes.flat, panels):
        source = table.averages if dataset == AVERAGE else table.entries
        values = []
        for i, trainer in enumerate(table.trainers):
            stats = [_entry(table, source, trainer, dataset, k, "accuracy") for k in table.shots]
            means = [s[0] for s in stats]
            values += means
            ax.errorbar(table.shots, means, yerr=_errors(stats), marker="o", ms=4,
                        capsize=2, color=COLORS[i % len(COLORS)], label=trainer)
        ax.set_xscale("log", base=2)
        ax.set_xticks(table.shots)
        ax.set_xticklabels([str(k) for k in table.shots], fontsize=8)
        ax.minorticks_off()
        ax.set_title(_title(dataset), fontsize=10)
        ax.set_ylim(*_ylim(values))
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(alpha=0.3)
    fig.supxlabel("shots per class", fontsize=10)
    fig.supylabel("accuracy (%)", fontsize=10)
    return fig, axes


def _transfer(table, plt):
    columns, k = _panels(table), table.shots[0]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.0 * len(columns) + 2), 4.2))
    n = len(table.trainers)
    width = 0.8 / n
    values = []
    for i, trainer in enumerate(table.trainers):
        stats = [_entry(table, table.averages if d == AVERAGE else table.entries, trainer, d, k,
                        "accuracy") for d in columns]
        means = [s[0] for s in stats]
        values += means
        xs = [j + (i - (n - 1) / 2) * width for j in range(len(columns))]
        ax.bar(xs, means, width, yerr=_errors(stats), capsize=2,
               color=COLORS[i % len(COLORS)], label=trainer)
    labels = [_title(d) + ("\n(source)" if d == table.source else "") for d in columns]
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels(labels, rotation=35, ha="right", fontsize=9)
    ax.set_ylim(*_ylim(values))
    ax.set_ylabel("accuracy (%)")
    ax.grid(axis="y", alpha=0.3)
    return fig, [[ax]]


def plot_table(table, path):
    """Draw `table` into `path` (PNG); None when matplotlib is not installed."""
    try:
        plt = _pyplot()
    except ImportError:
        print("[sar_prompt] matplotlib is not installed: no plot (pip install matplotlib)")
        return None
    draw = {"base2new": _base2new, "fewshot": _fewshot}.get(table.protocol, _transfer)
    fig, axes = draw(table, plt)
    handles, labels = axes[0][0].get_legend_handles_labels()
    title = {"base2new": "Base-to-new generalisation", "fewshot": "Few-shot learning",
             "xd": "Cross-dataset transfer", "dg": "Domain generalisation"}[table.protocol]
    fig.suptitle(f"{title}, seeds {' '.join(map(str, table.seeds))}", fontsize=12)
    fig.legend(handles, labels, loc="upper right", ncol=len(labels), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    tmp.replace(path)
    return path
