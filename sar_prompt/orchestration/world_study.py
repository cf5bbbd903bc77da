"""The world's comparisons: zero-shot CLIP, CoOp and CoOpSAR (at one or several weights)
base-to-new on the world dataset, each run through the benchmark runner exactly as
`sar-prompt base2new` runs it (same folders, resumable, skipped when finished), then the
paired table over seeds (sar_prompt.results.paired) and its figure.

`sar-prompt world` runs the three methods at their defaults; `sar-prompt world study` is the
study of docs/world.md: CoOpSAR at several weights over at least five seeds.
"""
import sys
from dataclasses import dataclass
from pathlib import Path

from sar_prompt.errors import ConfigError

DATASET = "world"
SHOTS = 16
DEMO_SEEDS = ("1", "2", "3")
STUDY_SEEDS = ("1", "2", "3", "4", "5")
STUDY_WEIGHTS = ("0.1", "1", "10")


@dataclass(frozen=True)
class Arm:
    """One method at one setting: its label in tables, trainer and KEY VALUE options."""
    label: str
    trainer: str
    opts: tuple = ()


def demo_arms():
    return [Arm("ZeroshotCLIP", "ZeroshotCLIP"), Arm("CoOp", "CoOp"), Arm("CoOpSAR", "CoOpSAR")]


def study_arms(weights):
    return [Arm("ZeroshotCLIP", "ZeroshotCLIP"), Arm("CoOp", "CoOp")] + [
        Arm(f"CoOpSAR w={w}", "CoOpSAR", ("TRAINER.SAR.WEIGHT", str(w))) for w in weights]


def demo_pairs(arms):
    zs, coop, sar = arms
    return [(coop, zs), (sar, coop), (sar, zs)]


def study_pairs(arms):
    zs, coop, *sars = arms
    return [(coop, zs)] + [(s, coop) for s in sars]


def bench_argv(arm, args):
    argv = ["base2new", arm.trainer, *args.opts, *arm.opts, "--datasets", DATASET,
            "--data", args.data, "--output", args.output, "--seeds", *args.seeds,
            "--table", "none"]
    if args.gpus:
        argv += ["--gpus", args.gpus]
    if args.verbose:
        argv.append("--verbose")
    return argv


def run_arms(arms, args):
    """Run every arm's jobs; the worst exit status (130 stops at once)."""
    from sar_prompt.orchestration import bench

    worst = 0
    for i, arm in enumerate(arms, 1):
        print(f"== world: {arm.label} ({i}/{len(arms)})", flush=True)
        code = bench.main(bench_argv(arm, args))
        if code == 130:
            return code
        worst = max(worst, code or 0)
    return worst


def folder(arm, args):
    """The config folder of an arm's runs, as the runner names it."""
    from sar_prompt.runs.protocols import Benchmark

    bench = Benchmark(protocol="base2new", trainer=arm.trainer, datasets=(DATASET,),
                      seeds=tuple(args.seeds), config=args.config,
                      opts=tuple(args.opts) + tuple(arm.opts))
    return bench.folder_for(DATASET, SHOTS)


def collect(arms, args):
    """paired.Arm of each arm from the runs on disk (a seed without both results has None)."""
    from sar_prompt.results import collect as collect_runs
    from sar_prompt.results.paired import Arm as Results
    from sar_prompt.runs.protocols import protocol_root, trains

    root = protocol_root(args.output, "base2new")
    out = []
    for arm in arms:
        constant = not trains(arm.trainer)
        seeds = args.seeds[:1] if constant else args.seeds
        rows = collect_runs(root, DATASET, arm.trainer, folder(arm, args), SHOTS,
                            [int(s) for s in seeds])
        out.append(Results(arm.label, {seed: (base, new) for seed, base, new in rows},
                           constant=constant))
    return out


def report(arms, pair_arms, args, name, title, record):
    """Print the paired table and write it (markdown, JSON) with its figure under
    OUTPUT/base2new/tables/<name>.* (`world_study__<the options' tag>` with trailing
    options); the paths written."""
    from sar_prompt.io import atomic_write_json, atomic_write_text
    from sar_prompt.results import paired

    results = collect(arms, args)
    by_label = {r.label: r for r in results}
    pairs = [paired.pair(by_label[a.label], by_label[b.label]) for a, b in pair_arms]
    table = paired.to_markdown(results, pairs, title)
    print()
    print(table)
    missing = [f"{r.label} seed {s}" for r in results for s, v in r.seeds.items()
               if None in v]
    if missing:
        print(f"not finished: {', '.join(missing)} (the table leaves them out)",
              file=sys.stderr)
    out = Path(args.output) / "base2new" / "tables"
    settings = {**record, "seeds": list(args.seeds), "opts": list(args.opts),
                "arms": [{"label": a.label, "trainer": a.trainer, "opts": list(a.opts),
                          "config_folder": folder(a, args)} for a in arms]}
    paths = [atomic_write_text(out / f"{name}.md", table),
             atomic_write_json(out / f"{name}.json", {"settings": settings,
                                                       **paired.to_json(results, pairs)})]
    try:
        paths += paired.plot(results, pairs, out / name)
    except ImportError:  # matplotlib is optional (the `plots` extra)
        print("(no figure: matplotlib is not installed; pip install matplotlib)",
              file=sys.stderr)
    print(f"table and figure: {', '.join(str(p) for p in paths)}")
    return paths


def check_seeds(seeds, least, command):
    if len(seeds) < least:
        raise ConfigError(f"{command} compares methods seed by seed: give at least {least} "
                          f"seeds (got {' '.join(seeds)}).")


def world_record(data):
    """What the runs ran on: the world's manifest (its CLIP's digest, the dataset's settings)."""
    from sar_prompt.world.dataset import DATASET_DIR, read_manifest

    manifest = read_manifest(Path(data).expanduser().resolve() / DATASET_DIR) or {}
    return {"world": {k: manifest.get(k) for k in ("world_seed", "per_split", "clip_weights")}}


def run(args, study=False):
    from sar_prompt.world.dataset import prepare

    prepare(args.data)
    arms = study_arms(args.weights) if study else demo_arms()
    if study:
        check_seeds(args.seeds, 2, "world study")
    code = run_arms(arms, args)
    if code == 130:
        return code
    from sar_prompt.runs.identity import config_folder

    name, title = (("world_study", "world study: base-to-new, paired over seeds") if study
                   else ("world", "world: base-to-new, paired over seeds"))
    name = config_folder(name, args.opts)  # a setting's table beside another's
    pair_arms = study_pairs(arms) if study else demo_pairs(arms)
    report(arms, pair_arms, args, name, title, world_record(args.data))
    return code
