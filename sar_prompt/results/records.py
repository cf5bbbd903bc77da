"""Collect: what runs are on disk, as flat records, and the runs a table expects, read.

A protocol root holds `<phase>/<dataset>/shots_<K>/<trainer>/<config>/seed<N>` folders
(sar_prompt/runs/protocols.py). `scan` lists every such folder, whatever the dataset's name (the
demo's, a host suite's), so a table can be built from what is there without naming it.
"""
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sar_prompt.catalog import ALL
from sar_prompt.runs.protocols import PHASES, SEED_FOLDER, parse_run_dir

_REFERENCE_ORDER = {d.key: i for i, d in enumerate(ALL)}


@dataclass(frozen=True)
class RunRecord:
    """One run folder found on disk."""
    phase: str
    dataset: str
    shots: int
    trainer: str
    config: str
    seed: int
    path: Path


def scan(root):
    """Every run folder under a protocol root, sorted."""
    root = Path(root)
    found = []
    for phase in PHASES:
        for path in root.glob(f"{phase}/*/shots_*/*/*/seed*"):
            parsed = parse_run_dir(path)
            if parsed is None or not path.is_dir():
                continue
            found.append(RunRecord(*parsed, path))
    return sorted(found, key=lambda r: (r.phase, dataset_order(r.dataset), r.shots, r.trainer,
                                        r.config, r.seed))


def dataset_order(key):
    """Sort key: the reference tables' order, then any other dataset by name."""
    return (_REFERENCE_ORDER.get(key, len(_REFERENCE_ORDER)), key)


def select(records, phases=None, datasets=None, trainers=None, shots=None, config=None):
    return [r for r in records
            if (phases is None or r.phase in phases) and (datasets is None or r.dataset in datasets)
            and (trainers is None or r.trainer in trainers) and (shots is None or r.shots in shots)
            and (config is None or r.config == config)]


def datasets_of(records):
    return sorted({r.dataset for r in records}, key=dataset_order)


def trainers_of(records):
    return sorted({r.trainer for r in records})


def seeds_of(records):
    return sorted({r.seed for r in records})


def shots_of(records):
    return sorted({r.shots for r in records})


def configs_of(records):
    return sorted({r.config for r in records})


def most_common_shots(records, preferred):
    """`preferred` when runs with it exist (or nothing is there), else the shots most runs
    have."""
    counts = Counter(r.shots for r in records)
    if not counts or preferred in counts:
        return preferred
    return counts.most_common(1)[0][0]


def on_disk_summary(records):
    """What is there for one dataset and trainer, in a few words: "shots_16 (cfg): seeds 1 2
    found", or "nothing on disk"."""
    if not records:
        return "nothing on disk"
    parts = []
    for shots in shots_of(records):
        for config in configs_of([r for r in records if r.shots == shots]):
            runs = [r for r in records if r.shots == shots and r.config == config]
            seeds = " ".join(str(s) for s in seeds_of(runs))
            parts.append(f"shots_{shots}/{config}: seed{'s' if len(seeds_of(runs)) > 1 else ''} "
                         f"{seeds} found")
    return "; ".join(parts)


def is_seed_folder_parent(path):
    """Whether `path` directly holds seed*/ run folders (one config's runs)."""
    path = Path(path)
    return path.is_dir() and any(SEED_FOLDER.fullmatch(p.name) and p.is_dir() for p in path.iterdir())


def seed_folders(path):
    """{seed: folder} of the seed*/ folders directly under `path`."""
    out = {}
    for p in Path(path).iterdir():
        m = SEED_FOLDER.fullmatch(p.name)
        if m and p.is_dir():
            out[int(m[1])] = p
    return dict(sorted(out.items()))


# -- reading the runs of one dataset, seed by seed ------------------------------------------
def run_dirs(root, dataset, trainer, config, shots, seed):
    from sar_prompt.runs.protocols import run_dir

    return (run_dir(root, "train_base", dataset, shots, trainer, config, seed),
            run_dir(root, "test_new", dataset, shots, trainer, config, seed))


def collect(root, dataset, trainer, config, shots, seeds):
    """[(seed, base accuracy or None, new accuracy or None)]; only finished runs count."""
    from sar_prompt.runs.result_file import read_run

    rows = []
    for seed in seeds:
        states = [read_run(d) for d in run_dirs(root, dataset, trainer, config, shots, seed)]
        rows.append((seed, *(s.accuracy if s.finished else None for s in states)))
    return rows
