"""Result tables, read from each run folder's results.json (see run_result.py).

    python -m sar_prompt.results OUTPUT/base2new --trainer CoOpSAR
    python -m sar_prompt.results OUTPUT/base2new --compare CoOp CoOpSAR [--save DIR]
    python -m sar_prompt.results OUTPUT/fewshot --trainer CoOp
    python -m sar_prompt.results OUTPUT/transfer/from_imagenet --protocol dg --trainer CoOp
    python -m sar_prompt.results OUTPUT/base2new --dataset caltech101 --trainer CoOpSAR \\
        --config vit_b16_ctxv1          # one dataset, seed by seed

Per dataset and trainer: the mean +- std over seeds (population std, as CoOp's
parse_test_res.py). Base-to-new: HM is the harmonic mean of the mean base and mean new
accuracies, as the CoOp family reports it (its +- is the std of the per-seed HMs), and the
average row's HM is the harmonic mean of the averaged base and averaged new accuracies, not
the mean of the per-dataset HMs. Datasets follow the reference tables' order. A seed set
that is not complete (a run missing, interrupted, failed, or with a broken results.json) is
refused, every such run named, unless --allow-partial; cells averaged over fewer seeds are
marked (n/N). Runs whose fingerprints differ are reported (see fingerprint.py).
"""
import argparse
import csv
import io
import json
import statistics
import sys
from collections import Counter, OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import fingerprint as fingerprints
from .errors import ConfigError, OutputError, SarPromptError, os_error_message
from .protocol import (BASE2NEW_SHOTS, DEFAULT_SEEDS, FEWSHOT_SHOTS, PROTOCOLS,
                       TRANSFER_SOURCE, dataset_title, default_config, default_datasets,
                       protocol_of_root, protocol_root, run_dir)
from .run_result import read_run

METRICS = {"base2new": ("base", "new", "hm"), "fewshot": ("accuracy",),
           "xd": ("accuracy",), "dg": ("accuracy",)}
METRIC_TITLES = {"base": "Base", "new": "New", "hm": "HM", "accuracy": "Accuracy"}
FORMATS = ("markdown", "csv", "json")
AVERAGE = "average"


def harmonic_mean(base, new):
    return 2 * base * new / (base + new) if base + new > 0 else 0.0


# -- one dataset, seed by seed (the table scripts/base2new.sh prints) ----------------------
def run_dirs(root, dataset, trainer, config, shots, seed):
    return (run_dir(root, "train_base", dataset, shots, trainer, config, seed),
            run_dir(root, "test_new", dataset, shots, trainer, config, seed))


def collect(root, dataset, trainer, config, shots, seeds):
    """[(seed, base accuracy or None, new accuracy or None)]; only finished runs count."""
    rows = []
    for seed in seeds:
        states = [read_run(d) for d in run_dirs(root, dataset, trainer, config, shots, seed)]
        rows.append((seed, *(s.accuracy if s.finished else None for s in states)))
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
        lines.append("(no seed has both a base and a new result yet)")
    return "\n".join(lines)


def single_dataset(args):
    rows = collect(args.root, args.dataset, args.trainer, args.config, args.shots, args.seeds)
    title = (f"base-to-new: {args.dataset} / {args.trainer} / {args.config} / "
             f"{args.shots} shots")
    print(format_table(rows, title))
    missing = [str(s) for s, b, n in rows if b is None or n is None]
    if missing:
        for seed in args.seeds:
            for folder in run_dirs(args.root, args.dataset, args.trainer, args.config,
                                   args.shots, seed):
                state = read_run(folder)
                if not state.finished:
                    print(f"  {state.status}: {folder}" + (f" ({state.detail})" if state.detail
                                                           else ""), file=sys.stderr)
        print(f"missing results for seed(s) {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


# -- many datasets and trainers ----------------------------------------------------------
@dataclass
class Entry:
    """One number of the table: a metric of a trainer on a dataset (and shots), the mean
    and population std over seeds, and the per-seed values. dataset "average" is the average
    row; trainer "B - A" is a delta."""
    trainer: str
    dataset: str
    shots: int
    metric: str
    mean: float = None
    std: float = None
    n: int = 0
    values: dict = field(default_factory=dict)
    config: str = ""
    fingerprint: str = ""


@dataclass
class Table:
    protocol: str
    root: str
    trainers: list
    datasets: list
    seeds: list
    shots: list
    source: str = ""
    entries: list = field(default_factory=list)
    averages: list = field(default_factory=list)
    deltas: list = field(default_factory=list)
    problems: list = field(default_factory=list)   # every expected run that is not finished
    warnings: list = field(default_factory=list)
    grouped: bool = False
    configs: dict = field(default_factory=dict)    # trainer -> {dataset: config}

    @property
    def complete(self):
        return not self.problems

    def lookup(self, rows, trainer, dataset, shots, metric, fingerprint=""):
        for e in rows:
            if (e.trainer, e.dataset, e.shots, e.metric, e.fingerprint) == \
                    (trainer, dataset, shots, metric, fingerprint):
                return e
        return None

    def groups(self, trainer, dataset, shots):
        """Fingerprint groups of a cell ([""] unless grouped)."""
        found = [e.fingerprint for e in self.entries
                 if (e.trainer, e.dataset, e.shots) == (trainer, dataset, shots)]
        return list(dict.fromkeys(found)) or [""]


def _phases(protocol, dataset, source):
    """[(phase folder, metric)] of one dataset's runs under a protocol."""
    if protocol == "base2new":
        return [("train_base", "base"), ("test_new", "new")]
    if protocol == "fewshot":
        return [("train_all", "accuracy")]
    return [("train_all" if dataset == source else "test_all", "accuracy")]


def _stat(values):
    vals = list(values.values())
    if not vals:
        return None, None
    return statistics.fmean(vals), statistics.pstdev(vals)


def _cell_entries(protocol, trainer, dataset, shots, config, by_metric, group):
    """Entries of one cell from {metric: {seed: accuracy}}."""
    out = []
    if protocol == "base2new":
        seeds = sorted(set(by_metric.get("base", {})) & set(by_metric.get("new", {})))
        base = {s: by_metric["base"][s] for s in seeds}
        new = {s: by_metric["new"][s] for s in seeds}
        for metric, values in (("base", base), ("new", new)):
            mean, std = _stat(values)
            out.append(Entry(trainer, dataset, shots, metric, mean, std, len(values), values,
                             config, group))
        hms = {s: harmonic_mean(base[s], new[s]) for s in seeds}
        mb, mn = _stat(base)[0], _stat(new)[0]
        out.append(Entry(trainer, dataset, shots, "hm",
                         harmonic_mean(mb, mn) if seeds else None, _stat(hms)[1], len(hms), hms,
                         config, group))
        return out
    values = by_metric.get("accuracy", {})
    mean, std = _stat(values)
    return [Entry(trainer, dataset, shots, "accuracy", mean, std, len(values), values, config,
                  group)]


def build_table(root, protocol, trainers, datasets=None, seeds=DEFAULT_SEEDS, shots=None,
                config="", allow_partial=False, group_by_fingerprint=False,
                source=TRANSFER_SOURCE, configs=None):
    """The Table of `trainers` under a protocol root. `configs(trainer, dataset, shots)`
    names a cell's config (default: `config`, else the trainer's default, else the one
    config found on disk)."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}.")
    root = Path(root)
    shots = list(shots or (FEWSHOT_SHOTS if protocol == "fewshot" else (BASE2NEW_SHOTS,)))
    seeds = list(seeds)
    transfer = protocol in ("xd", "dg")
    targets = list(datasets or _datasets_on_disk(root, protocol, trainers, source))
    if not targets:
        raise ConfigError(f"no runs of {', '.join(trainers)} under {root} for the {protocol} "
                          f"protocol (looked for {', '.join(default_datasets(protocol, source))}).")
    all_datasets = ([source] if transfer else []) + [d for d in targets if d != source or
                                                    not transfer]
    pick = configs or (lambda t, d, k: config or _default_or_found(root, protocol, t, d, k,
                                                                   source))
    table = Table(protocol, str(root), list(trainers), all_datasets, seeds, shots,
                  source if transfer else "", grouped=group_by_fingerprint)
    fewshot_digests = {}  # (dataset, shots, seed) -> {trainer: few-shot sample digest}
    for trainer in trainers:
        table.configs[trainer] = {}
        for dataset in all_datasets:
            for k in shots:
                cfg_name = pick(trainer, dataset if not transfer else source, k)
                table.configs[trainer][dataset if len(shots) == 1 else f"{dataset}@{k}"] = \
                    cfg_name
                cells = OrderedDict()  # group -> {metric: {seed: accuracy}}
                runs = []  # (label, fingerprint) of the finished runs of the cell
                for seed in seeds:
                    for phase, metric in _phases(protocol, dataset, source):
                        folder = run_dir(root, phase, dataset, k, trainer, cfg_name, seed)
                        expect = {"seed": seed}
                        if protocol in ("base2new", "fewshot"):
                            expect["num_shots"] = k
                        state = read_run(folder, expect)
                        label = (f"{dataset} {trainer}" + (f" {k}-shot" if protocol == "fewshot"
                                                            else "") + f" seed {seed} {metric}")
                        if not state.finished:
                            log = state.log
                            table.problems.append({
                                "run": label, "status": state.status, "path": str(folder),
                                "detail": state.detail, "log": str(log) if log else None})
                            continue
                        try:
                            fp = fingerprints.read(folder)
                        except SarPromptError as exc:  # refused: never averaged
                            table.problems.append({"run": label, "status": "broken",
                                                   "path": str(folder), "detail": str(exc),
                                                   "log": None})
                            continue
                        digest = fingerprints.digest(fp) if fp else ""
                        group = digest if group_by_fingerprint else ""
                        cells.setdefault(group, {}).setdefault(metric, {})[seed] = state.accuracy
                        runs.append((label, fp, digest))
                        if fp and phase.startswith("train") and (fp.get("data") or {}).get(
                                "fewshot_sha256"):
                            fewshot_digests.setdefault((dataset, k, seed), {})[trainer] = \
                                fp["data"]["fewshot_sha256"]
                for group, by_metric in (cells.items() or [("", {})]):
                    table.entries += _cell_entries(protocol, trainer, dataset, k, cfg_name,
                                                   by_metric, group)
                if not group_by_fingerprint:
                    table.warnings += _fingerprint_warnings(f"{dataset} / {trainer}", runs)
    if not allow_partial and table.problems:
        return table
    table.warnings += _fewshot_warnings(fewshot_digests, trainers)
    if not group_by_fingerprint:
        table.averages = _averages(table)
    table.deltas = _deltas(table)
    return table


def _fingerprint_warnings(where, runs):
    with_fp = [(label, fp, d) for label, fp, d in runs if fp]
    out = []
    if with_fp and len(with_fp) < len(runs):
        missing = [label for label, fp, _ in runs if not fp]
        out.append(f"{where}: {len(missing)} run(s) have no fingerprint.json (written before "
                   f"fingerprints existed?): {', '.join(missing)}")
    digests = Counter(d for _, _, d in with_fp)
    if len(digests) > 1:
        ref_digest = digests.most_common(1)[0][0]
        ref = next(fp for _, fp, d in with_fp if d == ref_digest)
        parts = []
        for digest in digests:
            if digest == ref_digest:
                continue
            labels = [label for label, _, d in with_fp if d == digest]
            other = next(fp for _, fp, d in with_fp if d == digest)
            diff = fingerprints.differences(ref, other)
            shown = ", ".join(diff[:6]) + (f" (+{len(diff) - 6} more)" if len(diff) > 6 else "")
            parts.append(f"{', '.join(labels)} differ(s) in {shown}")
        out.append(f"{where}: the runs averaged have {len(digests)} different fingerprints: "
                   + "; ".join(parts) + ". Compare their fingerprint.json, or see each "
                   "group with --group-by-fingerprint.")
    return out


def _fewshot_warnings(digests, trainers):
    out = []
    for (dataset, shots, seed), by_trainer in sorted(digests.items()):
        if len(set(by_trainer.values())) > 1:
            out.append(f"{dataset} seed {seed} ({shots} shots): {', '.join(sorted(by_trainer))} "
                       "trained on different few-shot samples (data.fewshot_sha256 differs), so "
                       "their difference is not only the method's.")
    return out


def _averages(table):
    """The average row: each metric's mean over the datasets (the targets, for transfer);
    for base-to-new, HM of the averaged base and averaged new."""
    out = []
    for trainer in table.trainers:
        for k in table.shots:
            datasets = [d for d in table.datasets if d != table.source]
            means = {}
            for metric in METRICS[table.protocol]:
                if metric == "hm":
                    continue
                cells = [table.lookup(table.entries, trainer, d, k, metric) for d in datasets]
                have = [e for e in cells if e is not None and e.mean is not None]
                if not have:
                    continue
                means[metric] = statistics.fmean(e.mean for e in have)
                out.append(Entry(trainer, AVERAGE, k, metric, means[metric], None, len(have),
                                 {e.dataset: e.mean for e in have}))
            if table.protocol == "base2new" and "base" in means and "new" in means:
                out.append(Entry(trainer, AVERAGE, k, "hm",
                                 harmonic_mean(means["base"], means["new"]), None,
                                 out[-1].n, {}))
    return out


def _deltas(table):
    """Each later trainer minus the first, per cell and on the average row, where both have
    a number (the average only when both are averaged over the same datasets)."""
    if len(table.trainers) < 2 or table.grouped:
        return []
    first, out = table.trainers[0], []

    def averaged_over(trainer, k):
        return [set(e.values) for e in table.averages
                if (e.trainer, e.shots) == (trainer, k) and e.metric != "hm"]

    for other in table.trainers[1:]:
        name = f"{other} - {first}"
        for k in table.shots:
            same = averaged_over(first, k) == averaged_over(other, k)
            if not same and averaged_over(first, k) and averaged_over(other, k):
                table.warnings.append(f"the averages of {first} and {other} cover different "
                                      "datasets; no delta for the average row.")
            for dataset in table.datasets + ([AVERAGE] if same else []):
                rows = table.averages if dataset == AVERAGE else table.entries
                for metric in METRICS[table.protocol]:
                    a = table.lookup(rows, first, dataset, k, metric)
                    b = table.lookup(rows, other, dataset, k, metric)
                    if a is not None and b is not None and None not in (a.mean, b.mean):
                        out.append(Entry(name, dataset, k, metric, b.mean - a.mean))
    return out


def _datasets_on_disk(root, protocol, trainers, source):
    """The protocol's datasets (reference order) that have a run folder of these trainers."""
    found = []
    for dataset in default_datasets(protocol, source):
        phases = {p for p, _ in _phases(protocol, dataset, source)}
        if any(next((root / p / dataset).glob(f"shots_*/{t}"), None) for p in phases
               for t in trainers):
            found.append(dataset)
    return found


def _default_or_found(root, protocol, trainer, dataset, shots, source):
    """The trainer's default config when it has runs (or nothing else has), else the one
    config found on disk (runs made with CFG=...)."""
    default = default_config(trainer, protocol, dataset, shots)
    phase = _phases(protocol, dataset, source)[0][0]
    folder = root / phase / dataset / f"shots_{shots}" / trainer
    if default and ((folder / default).is_dir() or not folder.is_dir()):
        return default
    return _config_on_disk(root, protocol, trainer, dataset, shots, source)


def _config_on_disk(root, protocol, trainer, dataset, shots, source):
    phase = _phases(protocol, dataset, source)[0][0]
    folder = root / phase / dataset / f"shots_{shots}" / trainer
    configs = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if len(configs) == 1:
        return configs[0]
    if not configs:
        raise ConfigError(f"{trainer} has no default config and no runs in {folder}; "
                          "give --config.")
    raise ConfigError(f"{folder} holds runs of several configs ({', '.join(configs)}); "
                      "choose one with --config.")


def trainers_on_disk(root, protocol, source=TRANSFER_SOURCE):
    names = set()
    for dataset in default_datasets(protocol, source) + ((source,) if protocol in ("xd", "dg")
                                                         else ()):
        for phase, _ in _phases(protocol, dataset, source):
            for shots_dir in (Path(root) / phase / dataset).glob("shots_*"):
                names.update(p.name for p in shots_dir.iterdir() if p.is_dir())
    return sorted(names)


# -- rendering -------------------------------------------------------------------------------
def _cell(entry, expected, with_std=True):
    if entry is None or entry.mean is None:
        return "-"
    text = f"{entry.mean:.2f}"
    if with_std and entry.std is not None:
        text += f" ± {entry.std:.2f}"
    if entry.dataset != AVERAGE and entry.n < expected:
        text += f" ({entry.n}/{expected})"
    return text


def _delta(entry):
    return "-" if entry is None else f"{entry.mean:+.2f}"


def _row_label(table, dataset, group):
    title = "**Average**" if dataset == AVERAGE else dataset_title(dataset)
    if dataset == table.source and dataset != AVERAGE:
        title += " (source)"
    return title + (f" [fp {group}]" if group else "")


def _md(header, rows, align):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(":---" if a == "l" else "---:" for a in align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def title_of(table):
    configs = []
    for trainer in table.trainers:
        counts = Counter(table.configs.get(trainer, {}).values())
        if not counts:
            continue
        main = counts.most_common(1)[0][0]
        odd = [f"{dataset_title(d)}: {c}" for d, c in table.configs[trainer].items() if c != main]
        if len(odd) > 3:  # configs per shots (CoOp's few-shot epochs): list them only
            configs.append(f"{trainer} {', '.join(counts)} (by dataset and shots: see the CSV)")
        else:
            configs.append(f"{trainer} {main}" + (f" ({', '.join(odd)})" if odd else ""))
    shots = "shots " + " ".join(map(str, table.shots))
    what = {"base2new": "base-to-new generalisation", "fewshot": "few-shot learning",
            "xd": f"cross-dataset transfer from {dataset_title(table.source)}",
            "dg": f"domain generalisation from {dataset_title(table.source)}"}[table.protocol]
    return (f"{what}: {'; '.join(configs)}; {shots}; seeds "
            f"{' '.join(map(str, table.seeds))}")


def to_markdown(table):
    exp = len(table.seeds)
    lines = [f"### {title_of(table)}", ""]
    trainers, first = table.trainers, table.trainers[0]
    others = trainers[1:]
    if table.protocol == "base2new":
        metrics = METRICS["base2new"]
        header = ["Dataset"] + [f"{t} {METRIC_TITLES[m]}" if len(trainers) > 1 else METRIC_TITLES[m]
                                for t in trainers for m in metrics]
        header += [f"Δ {METRIC_TITLES[m]}" if len(trainers) == 2 else f"Δ {o} {METRIC_TITLES[m]}"
                   for o in others for m in metrics]
        rows = []
        k = table.shots[0]
        for dataset in table.datasets + ([AVERAGE] if table.averages else []):
            source = table.averages if dataset == AVERAGE else table.entries
            groups = [""] if dataset == AVERAGE else sorted(
                {g for t in trainers for g in table.groups(t, dataset, k)})
            for group in groups:
                row = [_row_label(table, dataset, group)]
                for t in trainers:
                    for m in metrics:
                        row.append(_cell(table.lookup(source, t, dataset, k, m, group), exp,
                                         with_std=dataset != AVERAGE))
                for o in others:
                    for m in metrics:
                        row.append(_delta(table.lookup(table.deltas, f"{o} - {first}", dataset,
                                                       k, m)))
                rows.append(row)
        lines.append(_md(header, rows, ["l"] + ["r"] * (len(header) - 1)))
    elif table.protocol == "fewshot":
        header = ["Dataset", "Trainer"] + [f"{k} shot" + ("s" if k > 1 else "")
                                           for k in table.shots]
        rows = []
        for dataset in table.datasets + ([AVERAGE] if table.averages else []):
            source = table.averages if dataset == AVERAGE else table.entries
            for t in trainers:
                groups = [""] if dataset == AVERAGE else sorted(
                    {g for k in table.shots for g in table.groups(t, dataset, k)})
                for group in groups:
                    rows.append([_row_label(table, dataset, group), t] + [
                        _cell(table.lookup(source, t, dataset, k, "accuracy", group), exp,
                              with_std=dataset != AVERAGE) for k in table.shots])
            for o in others:
                rows.append([_row_label(table, dataset, ""), f"Δ {o}"] + [
                    _delta(table.lookup(table.deltas, f"{o} - {first}", dataset, k, "accuracy"))
                    for k in table.shots])
        lines.append(_md(header, rows, ["l", "l"] + ["r"] * len(table.shots)))
    else:
        k = table.shots[0]
        columns = table.datasets + ([AVERAGE] if table.averages else [])
        header = ["Trainer"] + [_row_label(table, d, "").replace("**", "") for d in columns]
        rows = []
        for t in trainers:
            groups = sorted({g for d in table.datasets for g in table.groups(t, d, k)})
            for group in groups:
                rows.append([t + (f" [fp {group}]" if group else "")] + [
                    _cell(table.lookup(table.averages if d == AVERAGE else table.entries, t, d, k,
                                       "accuracy", "" if d == AVERAGE else group), exp,
                          with_std=d != AVERAGE) for d in columns])
        for o in others:
            rows.append([f"Δ {o}"] + [_delta(table.lookup(table.deltas, f"{o} - {first}", d, k,
                                                          "accuracy")) for d in columns])
        lines.append(_md(header, rows, ["l"] + ["r"] * len(columns)))
    notes = []
    if table.protocol == "base2new":
        notes.append("HM: harmonic mean of the mean base and mean new accuracy (± std of the "
                     "per-seed HMs); Average: mean over datasets, its HM from the averaged base "
                     "and new.")
    if any(e.n < exp for e in table.entries if e.mean is not None):
        notes.append(f"(n/{exp}): averaged over n of the {exp} seeds asked for (--allow-partial).")
    if table.grouped:
        notes.append("[fp ...]: runs grouped by fingerprint digest (no average row).")
    lines += [""] + [f"_{n}_" for n in notes]
    return "\n".join(lines)


def _csv_rows(table):
    for kind, rows in (("cell", table.entries), ("average", table.averages),
                       ("delta", table.deltas)):
        for e in rows:
            yield {"protocol": table.protocol, "kind": kind, "trainer": e.trainer,
                   "dataset": e.dataset, "shots": e.shots, "metric": e.metric,
                   "mean": "" if e.mean is None else f"{e.mean:.4f}",
                   "std": "" if e.std is None else f"{e.std:.4f}", "n": e.n,
                   "seeds": " ".join(str(s) for s in e.values) if kind == "cell" else "",
                   "config": e.config, "fingerprint": e.fingerprint}


def to_csv(table):
    buf = io.StringIO()
    fields = ["protocol", "kind", "trainer", "dataset", "shots", "metric", "mean", "std", "n",
              "seeds", "config", "fingerprint"]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(_csv_rows(table))
    return buf.getvalue()


def to_json(table):
    return json.dumps(asdict(table), indent=2, ensure_ascii=False) + "\n"


RENDER = {"markdown": to_markdown, "csv": to_csv, "json": to_json}


def save(table, folder, name=None, plot=True):
    """Write <name>.md, .csv, .json (and the plot, .png) into `folder`; the paths written."""
    from .io import atomic_write_text

    folder = Path(folder)
    name = name or f"{table.protocol}_" + "_vs_".join(table.trainers)
    paths = []
    try:  # each file whole or not at all (atomic); a refusal is the user's to fix
        for fmt, ext in (("markdown", "md"), ("csv", "csv"), ("json", "json")):
            paths.append(atomic_write_text(folder / f"{name}.{ext}", RENDER[fmt](table)))
        if plot:
            from .plots import plot_table

            png = plot_table(table, folder / f"{name}.png")
            if png:
                paths.append(png)
    except OSError as exc:
        message = os_error_message(exc)
        if message is None:
            raise
        kept = f" ({', '.join(str(p) for p in paths)} were written in full)" if paths else ""
        raise OutputError(f"cannot save the table in {folder}: {message}{kept}") from exc
    return paths


def problems_text(table):
    lines = [f"{len(table.problems)} run(s) are not finished:"]
    for p in table.problems:
        detail = f" ({p['detail']})" if p["detail"] else ""
        log = f"; log: {p['log']}" if p.get("log") else ""
        lines.append(f"  {p['status']:<11} {p['run']}: {p['path']}{detail}{log}")
    return "\n".join(lines)


# -- command line ------------------------------------------------------------------------------
def build_parser():
    p = argparse.ArgumentParser(prog="python -m sar_prompt.results", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="a protocol's output folder (OUTPUT/base2new, OUTPUT/fewshot, "
                                "OUTPUT/transfer/from_imagenet) or OUTPUT itself")
    p.add_argument("--trainer", help="one trainer (default: the only one found)")
    p.add_argument("--compare", nargs="+", metavar="TRAINER",
                   help="trainers side by side; deltas are each minus the first")
    p.add_argument("--protocol", choices=PROTOCOLS,
                   help="default: from the folder's name (transfer folders: xd, else dg)")
    p.add_argument("--dataset", help="one dataset, seed by seed (with --config)")
    p.add_argument("--datasets", nargs="+", help="datasets (transfer: targets) expected "
                                                 "[those found, in the reference order]")
    p.add_argument("--config", default="", help="config name of every run [each trainer's "
                                                "default, else the one found on disk]")
    p.add_argument("--shots", type=int, nargs="+", help="[16; few-shot: 1 2 4 8 16]")
    p.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    p.add_argument("--source", default=TRANSFER_SOURCE, help="transfer source [imagenet]")
    p.add_argument("--allow-partial", action="store_true",
                   help="average incomplete seed sets instead of refusing")
    p.add_argument("--group-by-fingerprint", action="store_true",
                   help="one row per fingerprint within each dataset and trainer")
    p.add_argument("--format", choices=FORMATS, default="markdown", help="what to print")
    p.add_argument("--save", metavar="DIR", help="also write DIR/<name>.md, .csv, .json, .png")
    p.add_argument("--no-plot", action="store_true", help="with --save: no PNG")
    return p


def resolve_root(root, protocol, source=TRANSFER_SOURCE):
    """(protocol root, protocol) from what the user gave: a protocol folder or OUTPUT."""
    root = Path(root)
    found = protocol_of_root(root)
    if found is None and protocol:
        nested = protocol_root(root, protocol, source)
        if nested.is_dir():
            return nested, protocol
    if found is None and not protocol:
        for name in ("base2new", "fewshot"):
            if (root / name).is_dir() and not (root / "train_base").is_dir():
                return root / name, name
        protocol = "base2new"
    if found == "transfer" and not protocol:
        xd_targets = default_datasets("xd", source)
        protocol = "xd" if any((root / "test_all" / d).is_dir() for d in xd_targets) else "dg"
    return root, protocol or found


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.dataset:
            if not (args.trainer and args.config):
                raise ConfigError("--dataset shows one dataset seed by seed; give --trainer and "
                                  "--config too.")
            args.shots = (args.shots or [BASE2NEW_SHOTS])[0]
            return single_dataset(args)
        root, protocol = resolve_root(args.root, args.protocol, args.source)
        if not root.is_dir():
            raise ConfigError(f"{root} is not a folder of runs.")
        trainers = args.compare or ([args.trainer] if args.trainer else
                                    trainers_on_disk(root, protocol, args.source))
        if not trainers:
            raise ConfigError(f"no runs under {root}.")
        if len(trainers) > 1 and not args.compare:
            raise ConfigError(f"{root} holds runs of {', '.join(trainers)}: choose one with "
                              f"--trainer, or compare them with --compare {' '.join(trainers)}.")
        table = build_table(root, protocol, trainers, args.datasets, args.seeds, args.shots,
                            args.config, args.allow_partial, args.group_by_fingerprint,
                            args.source)
    except SarPromptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if table.problems and not args.allow_partial:
        print(problems_text(table), file=sys.stderr)
        print("Refusing to average incomplete seed sets: run or repair the runs above, or "
              "pass --allow-partial.", file=sys.stderr)
        return 1
    print(RENDER[args.format](table), end="" if args.format != "markdown" else "\n")
    for warning in table.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if table.problems:
        print(problems_text(table), file=sys.stderr)
    if args.save:
        try:
            written = save(table, args.save, plot=not args.no_plot)
        except OutputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        for path in written:
            print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
