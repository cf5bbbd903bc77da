"""Aggregate: the runs a table expects, read, then means, averages and deltas.

Per dataset and trainer: the mean and population std over seeds (as CoOp's
parse_test_res.py). Base-to-new: HM is the harmonic mean of the mean base and mean new
accuracies, as the CoOp family reports it (its std is the std of the per-seed HMs), and the
average row's HM is the harmonic mean of the averaged base and averaged new accuracies, not
the mean of the per-dataset HMs. A method that trains nothing (zero-shot CLIP) has one run
per dataset and phase: its numbers carry no std.

Deltas pair each SAR variant with its method (CoOpSAR - CoOp, ...), and each method with
zero-shot CLIP when asked (`zero_shot_deltas`); a table with no such pair compares each
trainer with the first.

With `allow_partial`, a base-to-new cell's Base, New and HM are all taken over the same
seeds: those with both a base and a new result (the `n` of its (n/N) mark). A seed with only
one of the two counts in neither.
"""
import statistics
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from sar_prompt.runs import fingerprint as fingerprints
from sar_prompt.errors import ConfigError, SarPromptError
from sar_prompt.runs.protocols import (BASE2NEW_SHOTS, DEFAULT_SEEDS, FEWSHOT_SHOTS, PROTOCOLS,
                                       SAR_SUFFIX, TRANSFER_SOURCE, default_config,
                                       default_datasets, method_name, run_dir, trains)
from sar_prompt.runs.identity import SEPARATOR, overrides_of_folder
from sar_prompt.runs.result_file import read_run
from sar_prompt.results import records as found

METRICS = {"base2new": ("base", "new", "hm"), "fewshot": ("accuracy",),
           "xd": ("accuracy",), "dg": ("accuracy",)}
AVERAGE = "average"
ZERO_SHOT = "ZeroshotCLIP"


def harmonic_mean(base, new):
    return 2 * base * new / (base + new) if base + new > 0 else 0.0


@dataclass
class Entry:
    """One number of the table: a metric of a trainer on a dataset (and shots), the mean
    and population std over seeds (None for one run), and the per-seed values. dataset
    "average" is the average row; trainer "B - A" is a delta."""
    trainer: str
    dataset: str
    shots: int
    metric: str
    mean: float
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
    source: str                                    # a transfer protocol's source dataset, or ""
    entries: list = field(default_factory=list)
    averages: list = field(default_factory=list)
    deltas: list = field(default_factory=list)
    problems: list = field(default_factory=list)   # every expected run that is not finished
    warnings: list = field(default_factory=list)
    notes: list = field(default_factory=list)      # advice, not a problem (an unpaired SAR run)
    grouped: bool = False
    configs: dict = field(default_factory=dict)    # trainer -> {dataset: config}
    zero_shot: list = field(default_factory=list)  # trainers evaluated once (nothing trained)
    pairs: list = field(default_factory=list)      # [(trainer, baseline)] of the deltas
    published: list = field(default_factory=list)  # Entries of published numbers (--published)
    labels: dict = field(default_factory=dict)     # trainer -> the name its rows show

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
        found_groups = [e.fingerprint for e in self.entries
                        if (e.trainer, e.dataset, e.shots) == (trainer, dataset, shots)]
        return list(dict.fromkeys(found_groups)) or [""]

    def expected_seeds(self, trainer):
        return 1 if trainer in self.zero_shot else len(self.seeds)


def delta_name(trainer, baseline):
    return f"{trainer} - {baseline}"


def delta_pairs(trainers, zero_shot=False):
    """[(trainer, baseline)]: each XSAR with its X, then (`zero_shot`) each method with
    zero-shot CLIP; without any such pair, each trainer with zero-shot CLIP when it is
    there, else with the first."""
    pairs = [(t, method_name(t)) for t in trainers
             if t.endswith(SAR_SUFFIX) and method_name(t) != t and method_name(t) in trainers]
    if zero_shot and ZERO_SHOT in trainers:
        pairs += [(t, ZERO_SHOT) for t in trainers if t != ZERO_SHOT]
    if not pairs and len(trainers) > 1:
        first = ZERO_SHOT if ZERO_SHOT in trainers else trainers[0]
        pairs = [(t, first) for t in trainers if t != first]
    return pairs


def unpaired_sar(trainers):
    """SAR variants whose method is not in the table (no delta can show what SAR changed)."""
    return [t for t in trainers if t.endswith(SAR_SUFFIX) and method_name(t) != t
            and method_name(t) not in trainers]


def phases(protocol, dataset, source):
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


def cell_entries(protocol, trainer, dataset, shots, config, by_metric, group, once):
    """Entries of one cell from {metric: {seed: accuracy}}; `once`: a single evaluation
    (zero-shot), reported without a std."""
    out = []

    def stat(values):
        mean, std = _stat(values)
        return mean, (None if once else std)

    if protocol == "base2new":
        seeds = sorted(set(by_metric.get("base", {})) & set(by_metric.get("new", {})))
        base = {s: by_metric["base"][s] for s in seeds}
        new = {s: by_metric["new"][s] for s in seeds}
        for metric, values in (("base", base), ("new", new)):
            out.append(Entry(trainer, dataset, shots, metric, *stat(values), len(values), values,
                             config, group))
        hms = {s: harmonic_mean(base[s], new[s]) for s in seeds}
        mb, mn = _stat(base)[0], _stat(new)[0]
        out.append(Entry(trainer, dataset, shots, "hm",
                         harmonic_mean(mb, mn) if seeds else None, stat(hms)[1], len(hms), hms,
                         config, group))
        return out
    values = by_metric.get("accuracy", {})
    return [Entry(trainer, dataset, shots, "accuracy", *stat(values), len(values), values, config,
                  group)]


def averages(table):
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


def seed_averages(table, trainer, shots):
    """{metric: {seed: value}} of a trainer's average row seed by seed (the seeds every
    dataset averaged has; base-to-new HM from that seed's averaged base and new)."""
    datasets = {d for e in table.averages if (e.trainer, e.shots) == (trainer, shots)
                for d in e.values}
    out = {}
    for metric in METRICS[table.protocol]:
        cells = [table.lookup(table.entries, trainer, d, shots, metric) for d in datasets]
        if metric != "hm" and cells and None not in cells:
            seeds = set.intersection(*(set(e.values) for e in cells))
            out[metric] = {s: statistics.fmean(e.values[s] for e in cells) for s in seeds}
    if "base" in out and "new" in out:
        out["hm"] = {s: harmonic_mean(out["base"][s], out["new"][s]) for s in out["base"]}
    return out


def _seed_deltas(table, trainer, baseline, dataset, shots, metric):
    """{seed: trainer's value - baseline's} on the seeds both have (a zero-shot baseline's
    single value stands for every seed); () when the seeds are not known."""
    def per_seed(t):
        if dataset == AVERAGE:
            return seed_averages(table, t, shots).get(metric, {})
        e = table.lookup(table.entries, t, dataset, shots, metric)
        return e.values if e is not None else {}

    a, b = per_seed(baseline), per_seed(trainer)
    if baseline in table.zero_shot and len(a) == 1:  # (zero-shot CLIP is never the trainer)
        a = {s: next(iter(a.values())) for s in b}
    return {s: b[s] - a[s] for s in sorted(set(a) & set(b))}


def deltas(table):
    """Each pair's difference (trainer minus baseline), per cell and on the average row,
    where both have a number (the average only when both average the same datasets); its
    std is that of the per-seed differences (the seeds pair the runs: the same few-shot
    sample)."""
    if table.grouped:
        return []
    out = []

    def averaged_over(trainer, k):
        return [set(e.values) for e in table.averages
                if (e.trainer, e.shots) == (trainer, k) and e.metric != "hm"]

    for trainer, baseline in table.pairs:
        for k in table.shots:
            same = averaged_over(baseline, k) == averaged_over(trainer, k)
            if not same and averaged_over(baseline, k) and averaged_over(trainer, k):
                table.warnings.append(f"the averages of {baseline} and {trainer} cover different "
                                      "datasets; no delta for the average row.")
            for dataset in table.datasets + ([AVERAGE] if same else []):
                rows = table.averages if dataset == AVERAGE else table.entries
                for metric in METRICS[table.protocol]:
                    a = table.lookup(rows, baseline, dataset, k, metric)
                    b = table.lookup(rows, trainer, dataset, k, metric)
                    if a is not None and b is not None and None not in (a.mean, b.mean):
                        per_seed = _seed_deltas(table, trainer, baseline, dataset, k, metric)
                        out.append(Entry(delta_name(trainer, baseline), dataset, k, metric,
                                         b.mean - a.mean, statistics.pstdev(per_seed.values())
                                         if len(per_seed) > 1 else None, len(per_seed),
                                         per_seed))
    return out


# -- building a table from a protocol root --------------------------------------------------
def build_table(root, protocol, trainers, datasets=None, seeds=None, shots=None,
                config="", allow_partial=False, group_by_fingerprint=False,
                source=TRANSFER_SOURCE, configs=None, zero_shot_deltas=False):
    """The Table of `trainers` under a protocol root. Datasets, shots and seeds default to
    those on disk (seeds: DEFAULT_SEEDS when none is there). `configs(trainer, dataset,
    shots)` names a cell's config (default: `config`, else the trainer's default when it has
    runs, else the one config found on disk). `zero_shot_deltas`: a delta row of each
    method against ZeroshotCLIP too."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}.")
    root = Path(root)
    transfer = protocol in ("xd", "dg")
    on_disk = found.scan(root)
    mine = found.select(on_disk, trainers=set(trainers))
    if datasets:
        targets = list(datasets)
    else:
        targets = [d for d in found.datasets_of(mine) if not (transfer and d == source)]
    if not targets:
        present = found.datasets_of(on_disk)
        raise ConfigError(
            f"no runs of {', '.join(trainers)} under {root} for the {protocol} protocol"
            + (f" (runs there: {', '.join(found.trainers_of(on_disk))} on "
               f"{', '.join(present)})." if on_disk else
               f" (no <phase>/<dataset>/shots_<K>/<trainer>/<config>/seed<N> folder there; "
               f"expected datasets such as {', '.join(default_datasets(protocol, source)[:3])}, "
               "...)."))
    if shots:
        shots = list(shots)
    elif protocol == "fewshot":
        shots = found.shots_of(mine) or list(FEWSHOT_SHOTS)
    else:
        shots = [found.most_common_shots(mine, BASE2NEW_SHOTS)]
    seeds = list(seeds) if seeds else (
        found.seeds_of([r for r in mine if trains(r.trainer)]) or
        found.seeds_of(mine)[:1] or list(DEFAULT_SEEDS))
    all_datasets = ([source] if transfer else []) + [d for d in targets if d != source or
                                                    not transfer]
    pick = configs or (lambda t, d, k: config or _default_or_found(root, protocol, t, d, k,
                                                                   source, on_disk))
    table = Table(protocol, str(root), list(trainers), all_datasets, seeds, shots,
                  source if transfer else "", grouped=group_by_fingerprint,
                  zero_shot=[t for t in trainers if not trains(t)])
    table.pairs = delta_pairs(list(trainers), zero_shot_deltas)
    fewshot_digests = {}  # (dataset, shots, seed) -> {trainer: few-shot sample digest}
    for trainer in trainers:
        table.configs[trainer] = {}
        once = trainer in table.zero_shot
        for dataset in all_datasets:
            for k in shots:
                cfg_name = pick(trainer, dataset if not transfer else source, k)
                table.configs[trainer][dataset if len(shots) == 1 else f"{dataset}@{k}"] = \
                    cfg_name
                cell_seeds = seeds
                if once:  # one evaluation per dataset and phase: whichever seed folder has it
                    there = found.seeds_of(found.select(mine, datasets={dataset},
                                                        trainers={trainer}, shots={k},
                                                        config=cfg_name))
                    cell_seeds = [next((s for s in seeds if s in there), there[0] if there
                                       else seeds[0])]
                cells = OrderedDict()  # group -> {metric: {seed: accuracy}}
                runs = []  # (label, fingerprint) of the finished runs of the cell
                for seed in cell_seeds:
                    for phase, metric in phases(protocol, dataset, source):
                        folder = run_dir(root, phase, dataset, k, trainer, cfg_name, seed)
                        state = read_run(folder)  # checks seed and shots against the folder
                        label = (f"{dataset} {trainer}" + (f" {k}-shot" if protocol == "fewshot"
                                                            else "")
                                 + (" zero-shot" if once else f" seed {seed}") + f" {metric}")
                        if not state.finished:
                            log = state.log
                            there = found.select(on_disk, phases={phase}, datasets={dataset},
                                                 trainers={trainer})
                            table.problems.append({
                                "run": label, "status": state.status, "path": str(folder),
                                "detail": state.detail, "log": str(log) if log else None,
                                "on_disk": found.on_disk_summary(there)})
                            continue
                        try:
                            fp = fingerprints.read(folder)
                        except SarPromptError as exc:  # refused (a key given twice): never averaged
                            table.problems.append({
                                "run": label, "status": "broken", "path": str(folder),
                                "detail": str(exc), "log": None, "on_disk": ""})
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
                    table.entries += cell_entries(protocol, trainer, dataset, k, cfg_name,
                                                  by_metric, group, once)
                if not group_by_fingerprint:
                    table.warnings += _fingerprint_warnings(f"{dataset} / {trainer}", runs)
    for trainer in unpaired_sar(list(trainers)):
        table.notes.append(f"{trainer} has no {method_name(trainer)} beside it: add "
                              f"{method_name(trainer)} to see what SAR changed "
                              f"({delta_name(trainer, method_name(trainer))}).")
    if not allow_partial and table.problems:
        return table
    table.warnings += _fewshot_warnings(fewshot_digests)
    if not group_by_fingerprint:
        table.averages = averages(table)
    table.deltas = deltas(table)
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


def _fewshot_warnings(digests):
    out = []
    for (dataset, shots, seed), by_trainer in sorted(digests.items()):
        if len(set(by_trainer.values())) > 1:
            out.append(f"{dataset} seed {seed} ({shots} shots): {', '.join(sorted(by_trainer))} "
                       "trained on different few-shot samples (data.fewshot_sha256 differs), so "
                       "their difference is not only the method's.")
    return out


def _default_or_found(root, protocol, trainer, dataset, shots, source, on_disk):
    """The trainer's default config when it has runs (or nothing else has), else the one
    config found on disk (runs made with CFG=...), or the one without overrides beside its
    sweep's <config>__<overrides> folders."""
    default = default_config(trainer, protocol, dataset, shots)
    phase = phases(protocol, dataset, source)[0][0]
    there = found.configs_of(found.select(on_disk, phases={phase}, datasets={dataset},
                                          trainers={trainer}, shots={shots}))
    if default and (default in there or not there):
        return default
    plain = [c for c in there if not overrides_of_folder(c)]
    if len(there) == 1 or (len(plain) == 1 and all(
            c.split(SEPARATOR)[0] == plain[0] for c in there)):
        return plain[0] if plain else there[0]  # a sweep's folders: its plain one
    folder = Path(root) / phase / dataset / f"shots_{shots}" / trainer
    if not there:
        raise ConfigError(f"{trainer} has no default config and no runs in {folder}; "
                          "give --config.")
    raise ConfigError(f"{folder} holds runs of several configs ({', '.join(there)}); "
                      "choose one with --config.")


def trainers_on_disk(root, protocol, source=TRANSFER_SOURCE):
    phase_names = {"base2new": {"train_base", "test_new"}, "fewshot": {"train_all"}}.get(
        protocol, {"train_all", "test_all"})
    return found.trainers_of(found.select(found.scan(root), phases=phase_names))
