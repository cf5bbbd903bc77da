"""Figures of result tables (matplotlib), sized for a paper's single column (3.3 in wide,
fonts 7 pt at that size) and written as PNG (300 dpi), PDF and SVG.

- `plot_table`: base-to-new as a dot plot, one panel per metric (Base, New, HM) sharing one
  accuracy axis and the dataset rows (error bars: std over seeds); few-shot as accuracy
  against shots, every panel on one shared axis; transfer as a dot plot of its datasets.
- `plot_deltas`: what SAR changed: New and HM of each pair (XSAR - X) per dataset, on one
  axis centred on zero.
- `plot_sweep`: HM against a swept value, one line per dataset and the average.
Axes are never cut silently: panels share their axis, and dot plots (whose reading is
position, not length) show their range on labelled ticks.
"""
import math
from pathlib import Path

from sar_prompt.io import atomic_writer
from sar_prompt.runs.protocols import dataset_title

AVERAGE = "average"
COLUMN_WIDTH = 3.3   # inches: one column of a two-column paper
FONT_PT = 7
FORMATS = ("png", "pdf", "svg")
COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
          "#F0E442")  # Okabe-Ito: distinguishable with colour-vision deficiencies
MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*")
STYLE = {"font.size": FONT_PT, "axes.titlesize": FONT_PT, "axes.labelsize": FONT_PT,
         "xtick.labelsize": FONT_PT, "ytick.labelsize": FONT_PT, "legend.fontsize": FONT_PT,
         "axes.linewidth": 0.5, "xtick.major.width": 0.5, "ytick.major.width": 0.5,
         "xtick.major.size": 2, "ytick.major.size": 2, "lines.linewidth": 1.0,
         "lines.markersize": 3.5, "grid.linewidth": 0.4, "pdf.fonttype": 42,
         "svg.fonttype": "none", "font.family": "DejaVu Sans"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def _title(dataset):
    return "Average" if dataset == AVERAGE else dataset_title(dataset)


def _save(fig, plt, stem):
    """Write `stem`.png/.pdf/.svg; the paths written."""
    stem = Path(stem)
    if stem.suffix.lower() in ("." + f for f in FORMATS):
        stem = stem.with_suffix("")
    paths = []
    try:
        for fmt in FORMATS:
            path = stem.with_name(f"{stem.name}.{fmt}")
            with atomic_writer(path) as f:
                fig.savefig(f, format=fmt, dpi=300, bbox_inches="tight", pad_inches=0.02)
            paths.append(path)
    finally:
        plt.close(fig)
    return paths


def _entry(table, rows, trainer, dataset, shots, metric):
    e = table.lookup(rows, trainer, dataset, shots, metric)
    if e is None or e.mean is None:
        return math.nan, None
    return e.mean, e.std


def _panels(table):
    return list(table.datasets) + ([AVERAGE] if table.averages else [])


def _span(values, pad, floor=None, ceil=None):
    finite = [v for v in values if v is not None and not math.isnan(v)]
    if not finite:
        return (0.0, 100.0)
    low, high = min(finite) - pad, max(finite) + pad
    low = math.floor(low / 5) * 5
    high = math.ceil(high / 5) * 5
    if floor is not None:
        low = max(floor, low)
    if ceil is not None:
        high = min(ceil, high)
    return low, high


def _legend_below(fig, handles, labels):
    """The legend under the axes, clear of any title."""
    ncol = min(len(labels), 3)
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=ncol,
               frameon=False, handletextpad=0.3, columnspacing=1.0)


def _dataset_axis(ax, rows, source=""):
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([_title(d) + (" (source)" if d == source else "") for d in rows])
    for label, d in zip(ax.get_yticklabels(), rows):
        if d == AVERAGE:
            label.set_fontweight("bold")
    ax.set_ylim(len(rows) - 0.5, -0.5)


def _average_rule(axes, rows):
    if AVERAGE in rows:
        for ax in axes:
            ax.axhline(rows.index(AVERAGE) - 0.5, color="0.6", lw=0.5)


def _dot_panels(table, plt, metrics, titles):
    """Dot plot: one panel per metric, datasets as rows, trainers as markers."""
    rows, k = _panels(table), table.shots[0]
    n = len(table.trainers)
    fig, axes = plt.subplots(1, len(metrics), sharey=True, sharex=True, squeeze=False,
                             figsize=(COLUMN_WIDTH, 0.55 + 0.16 * len(rows) * max(1, n / 3)))
    axes = axes[0]
    values = []
    for ax, metric, title in zip(axes, metrics, titles):
        source_rows = [table.averages if d == AVERAGE else table.entries for d in rows]
        for i, trainer in enumerate(table.trainers):
            stats = [_entry(table, src, trainer, d, k, metric) for d, src in zip(rows, source_rows)]
            means = [s[0] for s in stats]
            values += means
            offset = (i - (n - 1) / 2) * min(0.18, 0.7 / max(n, 1))
            ys = [j + offset for j in range(len(rows))]
            errors = [s[1] if s[1] is not None else math.nan for s in stats]
            ax.errorbar(means, ys, xerr=None if all(math.isnan(e) for e in errors) else errors,
                        fmt=MARKERS[i % len(MARKERS)], color=COLORS[i % len(COLORS)],
                        ecolor=COLORS[i % len(COLORS)], elinewidth=0.6, capsize=0,
                        markeredgewidth=0, label=trainer)
        ax.set_title(title, pad=2)
        ax.grid(axis="x", alpha=0.5)
        ax.tick_params(axis="y", length=0)
    _dataset_axis(axes[0], rows, table.source)
    _average_rule(axes, rows)
    axes[0].set_xlim(*_span(values, 2, floor=0, ceil=100))
    for ax in axes:
        ax.locator_params(axis="x", nbins=3)
    fig.supxlabel("accuracy (%)")
    return fig, axes


def _base2new(table, plt):
    fig, axes = _dot_panels(table, plt, ("base", "new", "hm"), ("Base", "New", "HM"))
    return fig, axes


def _transfer(table, plt):
    return _dot_panels(table, plt, ("accuracy",), ("Accuracy",))


def _fewshot(table, plt):
    panels = _panels(table)
    cols = min(3, len(panels))
    nrows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(nrows, cols, sharex=True, sharey=True, squeeze=False,
                             figsize=(COLUMN_WIDTH, 0.3 + 1.05 * nrows))
    values = []
    for ax, dataset in zip(axes.flat, panels):
        src = table.averages if dataset == AVERAGE else table.entries
        for i, trainer in enumerate(table.trainers):
            stats = [_entry(table, src, trainer, dataset, k, "accuracy") for k in table.shots]
            means = [s[0] for s in stats]
            values += means
            errors = [s[1] if s[1] is not None else math.nan for s in stats]
            ax.errorbar(table.shots, means,
                        yerr=None if all(math.isnan(e) for e in errors) else errors,
                        marker=MARKERS[i % len(MARKERS)], color=COLORS[i % len(COLORS)],
                        capsize=0, elinewidth=0.6, label=trainer)
        ax.set_title(_title(dataset), pad=2, fontweight="bold" if dataset == AVERAGE else None)
        ax.grid(alpha=0.5)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    first = axes[0][0]
    first.set_xscale("log", base=2)
    first.set_xticks(table.shots)
    first.set_xticklabels([str(k) for k in table.shots])
    first.minorticks_off()
    first.set_ylim(*_span(values, 3, floor=0, ceil=100))
    fig.supxlabel("shots per class")
    fig.supylabel("accuracy (%)")
    return fig, axes


def plot_table(table, path):
    """Draw `table` into `path`.png/.pdf/.svg (`path` without or with a suffix); the paths,
    or None when matplotlib is not installed."""
    try:
        plt = _pyplot()
    except ImportError:
        print("[sar_prompt] matplotlib is not installed: no plot (pip install matplotlib)")
        return None
    draw = {"base2new": _base2new, "fewshot": _fewshot}.get(table.protocol, _transfer)
    with plt.rc_context(STYLE):
        fig, axes = draw(table, plt)
        handles, labels = next(iter(axes.flat if hasattr(axes, "flat") else axes)) \
            .get_legend_handles_labels()
        labels = [f"{t} (zero-shot)" if t in table.zero_shot else t for t in labels]
        fig.tight_layout(pad=0.3, w_pad=0.9)
        _legend_below(fig, handles, labels)
        return _save(fig, plt, path)


def plot_deltas(table, path, metrics=("new", "hm")):
    """What each pair's trainer changed against its baseline (XSAR - X, and methods against
    zero-shot CLIP when in the table): per dataset and on average, New and HM, in points."""
    if not table.pairs:
        return []
    try:
        plt = _pyplot()
    except ImportError:
        print("[sar_prompt] matplotlib is not installed: no plot (pip install matplotlib)")
        return None
    from sar_prompt.results.aggregate import ZERO_SHOT, delta_name

    pairs = [p for p in table.pairs if p[1] != ZERO_SHOT] or list(table.pairs)
    rows, k = _panels(table), table.shots[0]
    titles = {"base": "Δ Base", "new": "Δ New", "hm": "Δ HM"}
    n = len(pairs)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(metrics), sharey=True, sharex=True, squeeze=False,
                                 figsize=(COLUMN_WIDTH, 0.55 + 0.16 * len(rows) * max(1, n / 3)))
        axes = axes[0]
        values = []
        for ax, metric in zip(axes, metrics):
            ax.axvline(0, color="0.3", lw=0.6)
            for i, (trainer, baseline) in enumerate(pairs):
                name = delta_name(trainer, baseline)
                ds = []
                for d in rows:
                    e = table.lookup(table.deltas, name, d, k, metric)
                    ds.append(math.nan if e is None else e.mean)
                values += ds
                offset = (i - (n - 1) / 2) * min(0.18, 0.7 / max(n, 1))
                ax.plot(ds, [j + offset for j in range(len(rows))], MARKERS[i % len(MARKERS)],
                        color=COLORS[i % len(COLORS)], markeredgewidth=0,
                        label=f"{trainer} − {baseline}")
            ax.set_title(titles[metric], pad=2)
            ax.grid(axis="x", alpha=0.5)
            ax.tick_params(axis="y", length=0)
        _dataset_axis(axes[0], rows)
        _average_rule(axes, rows)
        finite = [abs(v) for v in values if not math.isnan(v)]
        reach = max(finite + [0.5]) * 1.15
        axes[0].set_xlim(-reach, reach)  # symmetric: gains and losses on the same scale
        for ax in axes:
            ax.locator_params(axis="x", nbins=4)
        fig.supxlabel("difference (points)")
        fig.tight_layout(pad=0.3, w_pad=0.9)
        handles, labels = axes[0].get_legend_handles_labels()
        _legend_below(fig, handles, labels)
        return _save(fig, plt, path)


def plot_sweep(rows, path, metric="hm", xlabel="swept value"):
    """HM (or `metric`: base, new) against a swept value. `rows`: one dict per sweep point,
    {"label": str, "value": number, "datasets": {dataset: (base, new, hm)}}; an "average"
    dataset is drawn bold, else the average is computed over the datasets every point has
    (HM from the averaged base and new). The paths written (.png, .pdf, .svg)."""
    import statistics

    from sar_prompt.errors import ConfigError
    from sar_prompt.results.aggregate import harmonic_mean
    from sar_prompt.results.records import dataset_order

    if not rows:
        raise ConfigError("plot_sweep: no sweep points to plot.")
    index = {"base": 0, "new": 1, "hm": 2}[metric]
    points = sorted(rows, key=lambda r: float(r["value"]))
    xs = [float(r["value"]) for r in points]
    common = set.intersection(*(set(r["datasets"]) for r in points)) - {AVERAGE}
    names = sorted(common, key=dataset_order)

    def average(r):
        if AVERAGE in r["datasets"]:
            return r["datasets"][AVERAGE][index]
        base = statistics.fmean(r["datasets"][d][0] for d in names)
        new = statistics.fmean(r["datasets"][d][1] for d in names)
        return (base, new, harmonic_mean(base, new))[index]

    plt = _pyplot()
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.2))
        for i, d in enumerate(names):
            ax.plot(xs, [r["datasets"][d][index] for r in points], marker=MARKERS[i % 8],
                    color=COLORS[i % len(COLORS)], lw=0.7, ms=2.5, alpha=0.8, label=_title(d))
        if names or any(AVERAGE in r["datasets"] for r in points):
            ax.plot(xs, [average(r) for r in points], color="black", lw=1.8, marker="o", ms=3.5,
                    label="Average")
        ax.set_xticks(xs)
        labels = [str(r.get("label", r["value"])) for r in points]
        ax.set_xticklabels(labels, rotation=30 if max(map(len, labels)) > 5 else 0,
                           ha="right" if max(map(len, labels)) > 5 else "center")
        ax.set_xlabel(xlabel)
        ax.set_ylabel({"base": "Base", "new": "New", "hm": "HM"}[metric] + " accuracy (%)")
        ax.grid(alpha=0.5)
        fig.tight_layout(pad=0.3)
        handles, legend_labels = ax.get_legend_handles_labels()
        _legend_below(fig, handles, legend_labels)
        return _save(fig, plt, path)
