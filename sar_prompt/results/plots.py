"""Figures of result tables (matplotlib), sized for a paper's single column (3.3 in wide,
fonts 7 pt at that size) and written as PNG (300 dpi), PDF and SVG.

- `plot_table`: base-to-new as a dot plot, one panel per metric (Base, New, HM) sharing one
  accuracy axis and the dataset rows, each XSAR beside its X as a dumbbell (X hollow, XSAR
  filled, joined); error bars: std over seeds. Few-shot: accuracy against shots, every
  panel on one shared axis; transfer: a dot plot of its datasets.
- `plot_deltas`: what SAR changed, the figure to show it with: Base, New and HM of each
  pair (XSAR - X) per dataset and on average, on one axis centred on zero, error bars the
  std of the per-seed differences.
- sweep_plot.py: a sweep's figure.
Axes are never cut: the limits leave room for every marker and error bar (an axis near 100
goes past it, its ticks stop at 100), and panels share their axis.
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
ERRORBAR = {"elinewidth": 0.6, "capsize": 0}


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


def accuracy_limits(points, pad=1.5, grid=5):
    """Axis limits that hold every (value, error) of `points` with `pad` to spare, on a
    grid of `grid`; past 100 (or below 0) only as far as the markers need."""
    low = [v - (e or 0) for v, e in points if v is not None and not math.isnan(v)]
    high = [v + (e or 0) for v, e in points if v is not None and not math.isnan(v)]
    if not low:
        return 0.0, 100.0
    lo, hi = min(low) - pad, max(high) + pad
    lo = max(math.floor(lo / grid) * grid, min(lo, 0.0))
    hi = min(math.ceil(hi / grid) * grid, max(hi, 100.0))
    return lo, hi


def _accuracy_ticks(ax, axis, limits):
    """Ticks inside 0..100 only: an axis may run past 100 to show a marker whole."""
    from matplotlib.ticker import MaxNLocator

    ticks = [t for t in MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]).tick_values(*limits)
             if max(limits[0], 0) - 1e-9 <= t <= min(limits[1], 100) + 1e-9]
    (ax.set_xticks if axis == "x" else ax.set_yticks)(ticks)
    (ax.set_xlim if axis == "x" else ax.set_ylim)(*limits)


def _legend_below(fig, handles, labels, ncol=3):
    """The legend under the axes, in as many columns as fit the figure's width."""
    ncol = min(len(labels), ncol)
    while True:
        legend = fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0),
                            ncol=ncol, frameon=False, handletextpad=0.3, columnspacing=1.0)
        fig.canvas.draw()
        if ncol == 1 or legend.get_window_extent().width <= fig.bbox.width:
            return legend
        legend.remove()
        ncol -= 1


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


def label_of(table, trainer):
    if trainer in table.labels:
        return table.labels[trainer]
    return f"{trainer} (zero-shot)" if trainer in table.zero_shot else trainer


def marker_groups(table):
    """[[(trainer, filled)]]: the rows of markers a dataset gets, each XSAR with its X (X
    hollow, XSAR filled: a dumbbell), every other trainer alone."""
    from sar_prompt.results.aggregate import ZERO_SHOT

    partner = {t: b for t, b in table.pairs if b != ZERO_SHOT and b in table.trainers}
    groups, done = [], set()
    for t in table.trainers:
        if t in done:
            continue
        sar = next((x for x, b in partner.items() if b == t), None)
        if sar is not None:
            groups.append([(t, False), (sar, True)])
            done |= {t, sar}
        elif t not in partner:
            groups.append([(t, True)])
            done.add(t)
        else:  # an XSAR listed before its X: drawn with it
            groups.append([(partner[t], False), (t, True)])
            done |= {t, partner[t]}
    return groups


def _dot_panels(table, plt, metrics, titles):
    """Dot plot: one panel per metric, datasets as rows, trainers as markers (pairs as
    dumbbells)."""
    rows, k = _panels(table), table.shots[0]
    groups = marker_groups(table)
    n = len(groups)
    fig, axes = plt.subplots(1, len(metrics), sharey=True, sharex=True, squeeze=False,
                             figsize=(COLUMN_WIDTH, 0.55 + 0.16 * len(rows) * max(1, n / 3)))
    axes = axes[0]
    points = []
    for ax, metric, title in zip(axes, metrics, titles):
        for i, group in enumerate(groups):
            color = COLORS[i % len(COLORS)]
            offset = (i - (n - 1) / 2) * min(0.18, 0.7 / max(n, 1))
            ys = [j + offset for j in range(len(rows))]
            stats = {t: [_entry(table, table.averages if d == AVERAGE else table.entries,
                                t, d, k, metric) for d in rows] for t, _ in group}
            if len(group) == 2:  # the dumbbell's bar: X to XSAR
                (x, _), (sar, _) = group
                for y, (a, _), (b, _) in zip(ys, stats[x], stats[sar]):
                    ax.plot([a, b], [y, y], color=color, lw=1.4, alpha=0.55,
                            solid_capstyle="butt", zorder=2)
            for (trainer, filled), marker in zip(group, ("o", "o") if len(group) == 2 else
                                                 (MARKERS[i % len(MARKERS)],)):
                means = [s[0] for s in stats[trainer]]
                errors = [s[1] if s[1] is not None else math.nan for s in stats[trainer]]
                points += list(zip(means, [0 if math.isnan(e) else e for e in errors]))
                ax.errorbar(means, ys, xerr=None if all(math.isnan(e) for e in errors)
                            else errors, fmt=marker, color=color, ecolor=color,
                            markerfacecolor=color if filled else "white",
                            markeredgewidth=0 if filled else 0.8, zorder=3,
                            label=label_of(table, trainer), **ERRORBAR)
        ax.set_title(title, pad=2)
        ax.grid(axis="x", alpha=0.5)
        ax.tick_params(axis="y", length=0)
    _dataset_axis(axes[0], rows, table.source)
    _average_rule(axes, rows)
    _accuracy_ticks(axes[0], "x", accuracy_limits(points))
    fig.supxlabel("accuracy (%)")
    return fig, axes


def _base2new(table, plt):
    return _dot_panels(table, plt, ("base", "new", "hm"), ("Base", "New", "HM"))


def _transfer(table, plt):
    return _dot_panels(table, plt, ("accuracy",), ("Accuracy",))


def _fewshot(table, plt):
    panels = _panels(table)
    cols = min(3, len(panels))
    nrows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(nrows, cols, sharex=True, sharey=True, squeeze=False,
                             figsize=(COLUMN_WIDTH, 0.3 + 1.05 * nrows))
    points = []
    for ax, dataset in zip(axes.flat, panels):
        src = table.averages if dataset == AVERAGE else table.entries
        for i, trainer in enumerate(table.trainers):
            stats = [_entry(table, src, trainer, dataset, k, "accuracy") for k in table.shots]
            means = [s[0] for s in stats]
            errors = [s[1] if s[1] is not None else math.nan for s in stats]
            points += list(zip(means, [0 if math.isnan(e) else e for e in errors]))
            ax.errorbar(table.shots, means,
                        yerr=None if all(math.isnan(e) for e in errors) else errors,
                        marker=MARKERS[i % len(MARKERS)], color=COLORS[i % len(COLORS)],
                        label=label_of(table, trainer), **ERRORBAR)
        ax.set_title(_title(dataset), pad=2, fontweight="bold" if dataset == AVERAGE else None)
        ax.grid(alpha=0.5)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    first = axes[0][0]
    first.set_xscale("log", base=2)
    first.set_xticks(table.shots)
    first.set_xticklabels([str(k) for k in table.shots])
    first.minorticks_off()
    _accuracy_ticks(first, "y", accuracy_limits(points, pad=2))
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
        fig.tight_layout(pad=0.3, w_pad=0.9)
        _legend_below(fig, handles, labels, ncol=2 if table.pairs else 3)
        return _save(fig, plt, path)


def plot_deltas(table, path, metrics=("base", "new", "hm")):
    """What each pair's trainer changed against its baseline (XSAR - X, else the table's
    other pairs): per dataset and on average, Base, New and HM, in points, with the std
    of the per-seed differences as error bars."""
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
    n = len(pairs)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(metrics), sharey=True, sharex=True, squeeze=False,
                                 figsize=(COLUMN_WIDTH, 0.55 + 0.16 * len(rows) * max(1, n / 3)))
        axes = axes[0]
        reach = 0.5
        for ax, metric in zip(axes, metrics):
            ax.axvline(0, color="0.3", lw=0.6)
            for i, (trainer, baseline) in enumerate(pairs):
                stats = [table.lookup(table.deltas, delta_name(trainer, baseline), d, k, metric)
                         for d in rows]
                means = [math.nan if e is None else e.mean for e in stats]
                errors = [math.nan if e is None or e.std is None else e.std for e in stats]
                reach = max([reach] + [abs(m) + (0 if math.isnan(e) else e)
                                       for m, e in zip(means, errors) if not math.isnan(m)])
                offset = (i - (n - 1) / 2) * min(0.18, 0.7 / max(n, 1))
                name = lambda t: table.labels.get(t, t)  # noqa: E731
                ax.errorbar(means, [j + offset for j in range(len(rows))],
                            xerr=None if all(math.isnan(e) for e in errors) else errors,
                            fmt=MARKERS[i % len(MARKERS)], color=COLORS[i % len(COLORS)],
                            markeredgewidth=0, label=f"{name(trainer)} − {name(baseline)}",
                            **ERRORBAR)
            ax.set_title({"base": "Δ Base", "new": "Δ New", "hm": "Δ HM",
                          "accuracy": "Δ Acc."}[metric], pad=2)
            ax.grid(axis="x", alpha=0.5)
            ax.tick_params(axis="y", length=0)
        _dataset_axis(axes[0], rows)
        _average_rule(axes, rows)
        axes[0].set_xlim(-reach * 1.15, reach * 1.15)  # symmetric: gains and losses alike
        step = max(s for s in (0.1, 0.2, 0.5, 1, 2, 3, 4, 5, 10, 20, 25, 50) if s <= reach
                   or s == 0.1)  # three ticks, -step 0 step: room for their labels
        axes[0].set_xticks([-step, 0, step])
        fig.supxlabel("difference (points)")
        fig.tight_layout(pad=0.3, w_pad=0.9)
        handles, labels = axes[0].get_legend_handles_labels()
        _legend_below(fig, handles, labels, ncol=2)
        return _save(fig, plt, path)
