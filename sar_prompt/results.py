"""The base-to-new table: per-seed base / new / harmonic-mean accuracy and mean +- std,
read from each run folder's results.json (see run_result.py).

    python -m sar_prompt.results OUTPUT/base2new --dataset caltech101 --trainer CoOpSAR \
        --config vit_b16_ctxv1 [--shots 16] [--seeds 1 2 3]
"""
import argparse
import statistics
import sys
from pathlib import Path

from .run_result import read_accuracy

def harmonic_mean(base, new):
    return 2 * base * new / (base + new) if base + new > 0 else 0.0


def run_dirs(root, dataset, trainer, config, shots, seed):
    tail = Path(dataset) / f"shots_{shots}" / trainer / config / f"seed{seed}"
    return Path(root) / "train_base" / tail, Path(root) / "test_new" / tail


def collect(root, dataset, trainer, config, shots, seeds):
    """[(seed, base accuracy or None, new accuracy or None)]."""
    rows = []
    for seed in seeds:
        base_dir, new_dir = run_dirs(root, dataset, trainer, config, shots, seed)
        rows.append((seed, read_accuracy(base_dir), read_accuracy(new_dir)))
    return rows


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
        lines.append(f"(no seed has both a base and a new result yet)")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m sar_prompt.results", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="the base2new output folder (holds train_base/ and test_new/)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--trainer", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--shots", type=int, default=16)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = p.parse_args(argv)
    rows = collect(args.root, args.dataset, args.trainer, args.config, args.shots, args.seeds)
    title = (f"base-to-new: {args.dataset} / {args.trainer} / {args.config} / "
             f"{args.shots} shots")
    print(format_table(rows, title))
    missing = [str(s) for s, b, n in rows if b is None or n is None]
    if missing:
        print(f"missing results for seed(s) {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
