"""The sweep figure: each dataset's HM (or Base, New) against a swept value, with the
average over datasets, one column wide (plots.py's style).

The points are evenly spaced and labelled with their values (a weight sweep such as 0, 0.5,
1, 5, 50 reads on no linear or log axis). The average has a panel of its own above the
datasets' (its own axis: a point's change shows, and it hides no dataset's line); each
dataset's line is nudged sideways a little so that the error bars (std over seeds) stay
apart.
"""
import math
import statistics

from sar_prompt.errors import ConfigError
from sar_prompt.results.plots import (AVERAGE, COLORS, COLUMN_WIDTH, ERRORBAR, MARKERS, STYLE,
                                      _accuracy_ticks, _legend_below, _pyplot, _save, _title,
                                      accuracy_limits)

METRIC_INDEX = {"base": 0, "new": 1, "hm": 2}


def plot_sweep(rows, path, metric="hm", xlabel="swept value"):
    """`rows`: one dict per sweep point, {"label": str, "value": number, "datasets":
    {dataset: (base, new, hm)}, "std": {dataset: (std base, std new, std hm)} (optional)};
    an "average" dataset is the average, else it is computed over the datasets every point
    has (HM from the averaged base and new). The paths written (.png, .pdf, .svg)."""
    from sar_prompt.results.aggregate import harmonic_mean
    from sar_prompt.results.records import dataset_order

    if not rows:
        raise ConfigError("plot_sweep: no sweep points to plot.")
    index = METRIC_INDEX[metric]
    points = sorted(rows, key=lambda r: float(r["value"]))
    xs = list(range(len(points)))
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
        with_average = bool(names) or any(AVERAGE in r["datasets"] for r in points)
        fig, axes = plt.subplots(2 if with_average else 1, 1, sharex=True, squeeze=False,
                                 figsize=(COLUMN_WIDTH, 2.9 if with_average else 2.2),
                                 gridspec_kw={"height_ratios": [1, 2.3]} if with_average
                                 else None)
        axes = [a[0] for a in axes]
        ax = axes[-1]
        if with_average:  # its own panel and axis: a 1-point change is visible there
            means = [average(r) for r in points]
            axes[0].plot(xs, means, color="black", lw=1.4, marker="o", ms=3.2)
            _accuracy_ticks(axes[0], "y", accuracy_limits([(m, 0) for m in means], pad=0.5,
                                                          grid=1))
            axes[0].set_ylabel("Average")
            axes[0].grid(axis="y", alpha=0.5)
        spread = []  # (value, error) of everything drawn
        width = min(0.06, 0.36 / max(len(names), 1))
        for i, d in enumerate(names):
            ys = [r["datasets"][d][index] for r in points]
            errors = [((r.get("std") or {}).get(d) or (None,) * 3)[index] for r in points]
            errors = [math.nan if e is None else e for e in errors]
            spread += [(y, 0 if math.isnan(e) else e) for y, e in zip(ys, errors)]
            shift = (i - (len(names) - 1) / 2) * width
            ax.errorbar([x + shift for x in xs], ys,
                        yerr=None if all(math.isnan(e) for e in errors) else errors,
                        marker=MARKERS[(i + i // len(COLORS)) % len(MARKERS)],
                        color=COLORS[i % len(COLORS)], lw=0.8, ms=2.6, label=_title(d),
                        **ERRORBAR)
        ax.set_xticks(xs)
        labels = [str(r.get("label", r["value"])) for r in points]
        long = max(map(len, labels)) > 5
        ax.set_xticklabels(labels, rotation=30 if long else 0, ha="right" if long else "center")
        ax.set_xlim(-0.5, len(xs) - 0.5)
        if spread:
            _accuracy_ticks(ax, "y", accuracy_limits(spread, pad=1.0))
        ax.set_xlabel(xlabel)
        fig.supylabel({"base": "Base", "new": "New", "hm": "HM"}[metric] + " accuracy (%)")
        ax.grid(axis="y", alpha=0.5)
        fig.tight_layout(pad=0.3, h_pad=0.4)
        handles, legend_labels = ax.get_legend_handles_labels()
        if handles:
            _legend_below(fig, handles, legend_labels, ncol=4)
        return _save(fig, plt, path)
