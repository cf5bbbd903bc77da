"""Paired comparisons over seeds: each arm (a method at one setting) has a base and a new
accuracy per seed; a pair (arm minus baseline) is compared seed by seed, so what the seed
changes for both (the few-shot sample, the order of batches) cancels.

For each pair and metric (base, new, HM): the per-seed differences, their mean, sample std
(n - 1), a 95% confidence interval of the mean (Student's t, n - 1 degrees of freedom) and
how many seeds went up. A baseline with one number (zero-shot CLIP) is that number for
every seed. `to_markdown` renders the table, `plot` the figure (sized as plots.py sizes
figures).
"""
import math
import statistics
from dataclasses import dataclass, field

from sar_prompt.results.aggregate import harmonic_mean

METRICS = ("base", "new", "hm")
TITLES = {"base": "Base", "new": "New", "hm": "HM"}
# Student's t, two-sided 95%, by degrees of freedom (1 to 30); beyond: the normal's 1.96
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t95(df):
    return _T95[df - 1] if 1 <= df <= len(_T95) else 1.96


@dataclass
class Arm:
    """One method at one setting: {seed: (base, new)} (a zero-shot arm: one seed, used for
    every seed of a pair)."""
    label: str
    seeds: dict
    constant: bool = False

    def value(self, seed, metric):
        if self.constant:
            seed = next(iter(self.seeds))
        if seed not in self.seeds:
            return None
        base, new = self.seeds[seed]
        if None in (base, new):
            return None
        return {"base": base, "new": new, "hm": harmonic_mean(base, new)}[metric]

    def summary(self, metric):
        values = [self.value(s, metric) for s in self.seeds]
        return describe([v for v in values if v is not None])


@dataclass
class Pair:
    arm: Arm
    baseline: Arm
    differences: dict = field(default_factory=dict)  # metric -> {seed: difference}

    @property
    def label(self):
        return f"{self.arm.label} - {self.baseline.label}"


def describe(values):
    """{n, mean, std (sample), ci95 (half-width), min, max} of a list of numbers."""
    n = len(values)
    if not n:
        return {"n": 0, "mean": None, "std": None, "ci95": None, "min": None, "max": None}
    std = statistics.stdev(values) if n > 1 else None
    return {"n": n, "mean": statistics.fmean(values), "std": std,
            "ci95": t95(n - 1) * std / math.sqrt(n) if std is not None else None,
            "min": min(values), "max": max(values)}


def pair(arm, baseline):
    """The seed-by-seed differences of `arm` minus `baseline` where both have a number."""
    out = Pair(arm, baseline)
    for metric in METRICS:
        out.differences[metric] = {}
        for seed in arm.seeds:
            a, b = arm.value(seed, metric), baseline.value(seed, metric)
            if a is not None and b is not None:
                out.differences[metric][seed] = a - b
    return out


def pair_summary(p, metric):
    diffs = list(p.differences[metric].values())
    return {**describe(diffs), "up": sum(d > 0 for d in diffs)}


def _pm(d, digits=2):
    if d["mean"] is None:
        return "-"
    if d["std"] is None:
        return f"{d['mean']:.{digits}f}"
    return f"{d['mean']:.{digits}f} ± {d['std']:.{digits}f}"


def _delta(d):
    if d["mean"] is None:
        return "-"
    text = f"{d['mean']:+.2f}"
    if d["std"] is not None:
        text += f" ± {d['std']:.2f} [{d['mean'] - d['ci95']:+.2f}, {d['mean'] + d['ci95']:+.2f}]"
    return text + f" ({d['up']}/{d['n']} up)"


def to_markdown(arms, pairs, title=""):
    """Two tables: each arm's mean ± std over seeds, then each pair's per-seed differences
    (mean ± std [95% CI], seeds up)."""
    lines = [f"### {title}", ""] if title else []
    lines += ["| Method | Seeds | Base | New | HM |", "|:---|---:|---:|---:|---:|"]
    for arm in arms:
        n = "zero-shot" if arm.constant else str(len(arm.seeds))
        lines.append(f"| {arm.label} | {n} | "
                     + " | ".join(_pm(arm.summary(m)) for m in METRICS) + " |")
    lines += ["", "| Paired difference | Seeds | Base | New | HM |", "|:---|---:|---:|---:|---:|"]
    for p in pairs:
        n = len(p.differences["hm"])
        lines.append(f"| {p.label} | {n} | "
                     + " | ".join(_delta(pair_summary(p, m)) for m in METRICS) + " |")
    lines += ["", "_Mean ± sample std over seeds (HM per seed). Paired: the difference seed by "
              "seed, mean ± sample std [95% confidence interval of the mean, Student's t], and "
              "how many seeds went up. A zero-shot baseline is one evaluation, the same for "
              "every seed._"]
    return "\n".join(lines) + "\n"


def to_json(arms, pairs):
    return {"arms": [{"label": a.label, "constant": a.constant,
                      "seeds": {str(s): list(v) for s, v in a.seeds.items()},
                      "summary": {m: a.summary(m) for m in METRICS}} for a in arms],
            "pairs": [{"label": p.label, "arm": p.arm.label, "baseline": p.baseline.label,
                       "differences": {m: {str(s): d for s, d in p.differences[m].items()}
                                       for m in METRICS},
                       "summary": {m: pair_summary(p, m) for m in METRICS}} for p in pairs]}


def plot(arms, pairs, path, metrics=("base", "new")):
    """Left: each arm's accuracy per seed (dots) and mean, one panel per metric; right: each
    pair's per-seed differences with their mean and 95% CI, on an axis centred on zero."""
    from sar_prompt.results.plots import COLORS, COLUMN_WIDTH, STYLE, _pyplot, _save

    plt = _pyplot()
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(2 * COLUMN_WIDTH, 0.3 * max(len(arms),
                                                                            len(pairs)) + 0.9))
        _arms_panel(axes[0], arms, metrics, COLORS)
        _pairs_panel(axes[1], pairs, metrics, COLORS)
        handles, labels = axes[1].get_legend_handles_labels()
        fig.tight_layout(w_pad=1.0, rect=(0, 0, 1, 0.93))
        if labels:  # (no pair with a common seed: nothing drawn to name)
            fig.legend(handles, labels, loc="upper center", ncol=len(labels), frameon=False,
                       bbox_to_anchor=(0.5, 1.0), handlelength=1.2)
        return _save(fig, plt, path)


def _arms_panel(ax, arms, metrics, colors):
    rows = list(range(len(arms)))[::-1]
    offsets = {m: (i - (len(metrics) - 1) / 2) * 0.22 for i, m in enumerate(metrics)}
    for i, m in enumerate(metrics):
        for y, arm in zip(rows, arms):
            values = [arm.value(s, m) for s in arm.seeds]
            values = [v for v in values if v is not None]
            if not values:
                continue
            ax.scatter(values, [y + offsets[m]] * len(values), s=6, color=colors[i],
                       alpha=0.45, linewidths=0)
            ax.plot([statistics.fmean(values)], [y + offsets[m]], marker="|", markersize=7,
                    color=colors[i], markeredgewidth=1.2)
    ax.set_yticks(rows)
    ax.set_yticklabels([a.label for a in arms])
    ax.set_xlabel("accuracy (%): seeds (dots) and mean (bar)")
    ax.grid(axis="x", alpha=0.4)
    ax.set_ylim(-0.6, len(arms) - 0.4)


def _pairs_panel(ax, pairs, metrics, colors):
    rows = list(range(len(pairs)))[::-1]
    offsets = {m: (i - (len(metrics) - 1) / 2) * 0.22 for i, m in enumerate(metrics)}
    for i, m in enumerate(metrics):
        labelled = False  # the legend names each metric once, at its first drawn row
        for y, p in zip(rows, pairs):
            diffs = list(p.differences[m].values())
            if not diffs:
                continue
            d = pair_summary(p, m)
            ax.scatter(diffs, [y + offsets[m]] * len(diffs), s=6, color=colors[i], alpha=0.45,
                       linewidths=0)
            ax.errorbar([d["mean"]], [y + offsets[m]], xerr=[[d["ci95"] or 0], [d["ci95"] or 0]],
                        fmt="D", markersize=3, color=colors[i], elinewidth=1, capsize=1.5,
                        label=None if labelled else TITLES[m])
            labelled = True
    ax.axvline(0, color="0.3", linewidth=0.6)
    ax.set_yticks(rows)
    ax.set_yticklabels([p.label for p in pairs])
    ax.set_xlabel("paired difference (points): seeds, mean and 95% CI")
    ax.grid(axis="x", alpha=0.4)
    ax.set_ylim(-0.6, len(pairs) - 0.4)
    low, high = ax.get_xlim()
    span = max(abs(low), abs(high))
    ax.set_xlim(-span, span)
