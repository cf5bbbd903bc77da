"""The per-seed tables of one dataset that the scripts print as they finish: base / new /
HM per seed with their mean (format_table), and one folder's seed runs (format_seed_runs)."""
import statistics

from sar_prompt.results.aggregate import harmonic_mean


def _fmt(x):
    return "-" if x is None else f"{x:.2f}"


def format_table(rows, title=""):
    """Per-seed base / new / HM and the mean +- std over the complete seeds. The mean row's
    HM is the harmonic mean of the mean base and mean new accuracies, as the CoOp family
    reports it; std is the population std over seeds (numpy's default, as CoOp's parser)."""
    lines = [title] if title else []
    lines.append(f"{'seed':<8}{'base':>16}{'new':>16}{'HM':>16}")
    complete = [(b, n) for _, b, n in rows if b is not None and n is not None]
    for seed, b, n in rows:
        hm = harmonic_mean(b, n) if b is not None and n is not None else None
        lines.append(f"{seed:<8}{_fmt(b):>16}{_fmt(n):>16}{_fmt(hm):>16}")
    if complete:
        bases = [b for b, _ in complete]
        news = [n for _, n in complete]
        hms = [harmonic_mean(b, n) for b, n in complete]
        mb, mn = statistics.fmean(bases), statistics.fmean(news)

        def cell(mean, values):
            return f"{mean:.2f} +- {statistics.pstdev(values):.2f}"

        lines.append(f"{'mean':<8}{cell(mb, bases):>16}{cell(mn, news):>16}"
                     f"{_fmt(harmonic_mean(mb, mn)):>16}")
        lines.append(f"({len(complete)} of {len(rows)} seeds complete; per-seed HM mean "
                     f"{statistics.fmean(hms):.2f} +- {statistics.pstdev(hms):.2f})")
    else:
        lines.append("(no seed has both a base and a new result yet)")
    return "\n".join(lines)


def format_seed_runs(accuracies, title=""):
    """{seed: accuracy or None} of one folder of seed*/ runs and their mean +- std."""
    lines = [title] if title else []
    lines.append(f"{'seed':<8}{'accuracy':>16}")
    for seed, acc in accuracies.items():
        lines.append(f"{seed:<8}{_fmt(acc):>16}")
    done = [a for a in accuracies.values() if a is not None]
    if done:
        lines.append(f"{'mean':<8}{statistics.fmean(done):>8.2f} +- {statistics.pstdev(done):.2f}")
        lines.append(f"({len(done)} of {len(accuracies)} seed folders finished)")
    else:
        lines.append("(no seed folder holds a finished result yet)")
    return "\n".join(lines)
