"""The `sar-prompt results` command line (the package docstring describes it)."""
import argparse
import sys
from pathlib import Path

from sar_prompt.errors import ConfigError, SarPromptError
from sar_prompt.runs.protocols import (BASE2NEW_SHOTS, DEFAULT_SEEDS, PROTOCOLS, TRANSFER_SOURCE,
                                       default_datasets, protocol_of_root, protocol_root)
from sar_prompt.runs.result_file import read_run
from sar_prompt.vocabulary import DeprecatedAlias, env_help, setting
from sar_prompt.results import published, records as found
from sar_prompt.results.aggregate import build_table, trainers_on_disk
from sar_prompt.results.formats import FORMATS, problems_text, render, save
from sar_prompt.results.seed_tables import format_seed_runs, format_table


def build_parser():
    from sar_prompt.results import __doc__ as doc

    p = argparse.ArgumentParser(prog="python -m sar_prompt.results", description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", nargs="?", help="a protocol's output folder (OUTPUT/base2new, "
                                           "OUTPUT/fewshot, OUTPUT/transfer/from_imagenet), "
                                           "OUTPUT itself, or any folder of seed*/ runs "
                                           "(the same as --output)")
    p.add_argument("--output", dest="output_root", metavar="ROOT",
                   help="the results to read: what `run --output` wrote, a protocol folder of "
                        f"it, or a folder of seed*/ runs [ROOT; {env_help('output')}; ./output]")
    p.add_argument("--trainers", nargs="+", metavar="TRAINER",
                   help="one trainer (as --trainer) or several side by side (as --compare)")
    p.add_argument("--trainer", help="one trainer (default: the only one found)")
    p.add_argument("--compare", nargs="+", metavar="TRAINER",
                   help="trainers side by side (rows); each XSAR gets a delta row against its "
                        "X [every trainer on disk]")
    p.add_argument("--zero-shot-deltas", action="store_true",
                   help="also a delta row of each method against ZeroshotCLIP")
    p.add_argument("--label", action="append", default=[], metavar="TRAINER=TEXT",
                   help="the name a trainer's rows show, e.g. --label CoOpSAR='CoOp + SAR' "
                        "(repeat for several)")
    p.add_argument("--point", metavar="OVERRIDES",
                   help="read the trainers that have it at this sweep point (the part of "
                        "their config folder after __, e.g. SAR.WEIGHT=5), the others at "
                        "their default: X against XSAR at a chosen value")
    p.add_argument("--protocol", choices=PROTOCOLS,
                   help="default: from the folder's name (transfer folders: xd, else dg)")
    p.add_argument("--per-seed", "--dataset", dest="dataset", metavar="DATASET",
                   action=DeprecatedAlias, preferred="--per-seed",
                   help="one dataset, seed by seed (with --trainer, --config); --dataset is "
                        "its deprecated spelling")
    p.add_argument("--datasets", nargs="+", help="datasets (transfer: targets) expected "
                                                 "[those found, in the reference order]")
    p.add_argument("--config", default="", help="config name of every run [each trainer's "
                                                "default, else the one found on disk]")
    p.add_argument("--shots", type=int, nargs="+", help="[those found; 16 first]")
    p.add_argument("--seeds", type=int, nargs="+", help="[those found on disk]")
    p.add_argument("--source", default=TRANSFER_SOURCE, help="transfer source [imagenet]")
    p.add_argument("--allow-partial", action="store_true",
                   help="average incomplete seed sets instead of refusing")
    p.add_argument("--group-by-fingerprint", action="store_true",
                   help="one row per fingerprint within each dataset and trainer")
    p.add_argument("--std", action="store_true", help="show ± the std over seeds")
    p.add_argument("--published", action="store_true",
                   help="show each baseline's published numbers beside the reproduced ones "
                        "and flag those more than --tolerance points apart")
    p.add_argument("--published-file", help="another published-baselines CSV [the shipped "
                                            "sar_prompt/published/base2new.csv]")
    p.add_argument("--tolerance", type=float, default=published.DEFAULT_TOLERANCE,
                   help="points a reproduced baseline may differ from its published number "
                        "[%(default)g]")
    p.add_argument("--format", choices=FORMATS, default="text", help="what to print [text]")
    p.add_argument("--latex-label", metavar="KEY", help="the LaTeX table's \\label "
                                                        "[tab:<protocol>]")
    p.add_argument("--save", metavar="DIR", help="also write DIR/<name>.md, .tex, .csv, "
                                                 ".wide.csv, .json and the figures")
    p.add_argument("--no-plot", action="store_true", help="with --save: no figures")
    p.add_argument("--sweep", action="store_true",
                   help="one row per config folder (sweep point) of --trainer, in any "
                        "--format; automatic when a dataset has several (see "
                        "sar_prompt/results/sweep_table.py)")
    return p


def parse_args(argv=None):
    """The command line, with the shared spellings folded into the names main() reads:
    --output into root, --trainers into --trainer (one) or --compare (several)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.root and args.output_root and Path(args.root) != Path(args.output_root):
        parser.error(f"two results folders given: ROOT {args.root} and --output "
                     f"{args.output_root}; give one.")
    args.root = args.root or args.output_root or setting("output", "output")
    if args.trainers:
        if args.trainer or args.compare:
            parser.error("--trainers replaces --trainer and --compare; give one of them.")
        if len(args.trainers) == 1:
            args.trainer = args.trainers[0]
        else:
            args.compare = args.trainers
    return args


def resolve_root(root, protocol, source=TRANSFER_SOURCE):
    """(protocol root, protocol) from what the user gave: a protocol folder or OUTPUT."""
    root = Path(root)
    found_protocol = protocol_of_root(root)
    if found_protocol is None and protocol:
        nested = protocol_root(root, protocol, source)
        if nested.is_dir():
            return nested, protocol
    if found_protocol is None and not protocol:
        for name in ("base2new", "fewshot"):
            if (root / name).is_dir() and not (root / "train_base").is_dir():
                return root / name, name
        if not (root / "train_base").is_dir() and (root / "train_all").is_dir():
            protocol = "fewshot"
        else:
            protocol = "base2new"
    if found_protocol == "transfer" and not protocol:
        xd_targets = default_datasets("xd", source)
        protocol = "xd" if any((root / "test_all" / d).is_dir() for d in xd_targets) else "dg"
    return root, protocol or found_protocol


def single_dataset(args):
    shots = (args.shots or [BASE2NEW_SHOTS])[0]
    seeds = args.seeds or list(DEFAULT_SEEDS)
    root = resolve_root(args.root, "base2new")[0]  # OUTPUT itself: its base2new/ folder
    rows = found.collect(root, args.dataset, args.trainer, args.config, shots, seeds)
    title = f"base-to-new: {args.dataset} / {args.trainer} / {args.config} / {shots} shots"
    print(format_table(rows, title))
    missing = [str(s) for s, b, n in rows if b is None or n is None]
    if missing:
        for seed in seeds:
            for folder in found.run_dirs(root, args.dataset, args.trainer, args.config,
                                         shots, seed):
                state = read_run(folder)
                if not state.finished:
                    print(f"  {state.status}: {folder}" + (f" ({state.detail})" if state.detail
                                                           else ""), file=sys.stderr)
        print(f"missing results for seed(s) {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


def seed_folder_runs(folder):
    """A folder of seed*/ runs (one config's): per seed, its accuracy; when it is a
    train_base folder of the base-to-new layout with its test_new sibling, base / new / HM."""
    folder = Path(folder).resolve()
    runs = found.seed_folders(folder)
    parts = folder.parts
    if len(parts) >= 6 and parts[-5] == "train_base":
        new_folder = Path(*parts[:-5], "test_new", *parts[-4:])
        if new_folder.is_dir():
            rows = [(seed, read_run(path).accuracy,
                     read_run(new_folder / path.name).accuracy) for seed, path in runs.items()]
            print(format_table(rows, f"base-to-new: {folder} (new: {new_folder})"))
            return 0 if all(b is not None and n is not None for _, b, n in rows) else 1
    states = {seed: read_run(path) for seed, path in runs.items()}
    print(format_seed_runs({s: st.accuracy for s, st in states.items()}, str(folder)))
    for seed, state in states.items():
        if not state.finished:
            print(f"  {state.status}: {state.path}" + (f" ({state.detail})" if state.detail
                                                       else ""), file=sys.stderr)
    return 0 if all(s.finished for s in states.values()) else 1


def check_trainer_names(trainers, root, protocol, source):
    """A trainer asked for that has no runs and is none of the project's is a typo: say
    which trainer with runs it is closest to."""
    from sar_prompt.config.command_line import suggest
    from sar_prompt.runs.protocols import method_of

    on_disk = trainers_on_disk(root, protocol, source)
    for trainer in trainers:
        if trainer in on_disk or method_of(trainer) is not None:
            continue
        close = suggest(trainer, on_disk)
        hint = f" Did you mean {close[0]}?" if close else ""
        raise ConfigError(f"no runs of {trainer} under {root}.{hint} Trainers with runs there: "
                          f"{', '.join(on_disk) or 'none'}.")


def table_from_args(args):
    root, protocol = resolve_root(args.root, args.protocol, args.source)
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder of runs.")
    trainers = args.compare or ([args.trainer] if args.trainer else
                                trainers_on_disk(root, protocol, args.source))
    check_trainer_names(trainers, root, protocol, args.source)
    if not trainers:
        raise ConfigError(f"no runs under {root}: it holds no "
                          "<phase>/<dataset>/shots_<K>/<trainer>/<config>/seed<N> folder.")
    from sar_prompt.results import sweep_table as sweep

    if args.sweep and len(trainers) > 1 and not args.trainer:
        raise ConfigError(f"--sweep tabulates one trainer's points; {root} holds "
                          f"{', '.join(trainers)}: choose one with --trainer.")
    if len(trainers) == 1 and not args.config and not args.point and (
            args.sweep or sweep.several_configs(root, protocol, trainers[0], args.shots,
                                                args.source)):
        return sweep.results_main(args, root, protocol, trainers[0])
    configs = sweep.point_configs(root, protocol, args.point, args.source) if args.point \
        else None
    table = build_table(root, protocol, trainers, args.datasets, args.seeds, args.shots,
                        args.config, args.allow_partial, args.group_by_fingerprint,
                        args.source, configs=configs, zero_shot_deltas=args.zero_shot_deltas)
    table.labels = labels(args.label, trainers)
    return table


def labels(pairs, trainers):
    """{trainer: text} of --label TRAINER=TEXT."""
    out = {}
    for pair in pairs:
        trainer, sep, text = pair.partition("=")
        if not sep or not text.strip():
            raise ConfigError(f"--label {pair!r}: write TRAINER=TEXT, e.g. --label "
                              "CoOpSAR='CoOp + SAR'.")
        if trainer not in trainers:
            raise ConfigError(f"--label {pair!r}: {trainer} is not in the table "
                              f"({', '.join(trainers)}).")
        out[trainer] = text.strip()
    return out


def main(argv=None):
    args = parse_args(argv)
    flagged = None
    try:
        if args.latex_label:
            from sar_prompt.results.latex import check_label

            check_label(args.latex_label)
        if args.dataset:
            if not (args.trainer and args.config):
                raise ConfigError("--per-seed shows one dataset seed by seed; give --trainer and "
                                  "--config too.")
            return single_dataset(args)
        if found.is_seed_folder_parent(args.root):
            return seed_folder_runs(args.root)
        table = table_from_args(args)
        if isinstance(table, int):  # a sweep: its table is printed
            return table
        if args.published and not (table.problems and not args.allow_partial):
            if table.protocol != "base2new":
                raise ConfigError("--published: the shipped numbers are base-to-new ones; "
                                  f"this table is {table.protocol}.")
            rows = published.load(args.published_file)
            table.published = published.entries(table, rows)
            flagged = published.flags(table, table.published, args.tolerance,
                                      published.withheld_averages(table, rows))
    except SarPromptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if table.problems and not args.allow_partial:
        print(problems_text(table), file=sys.stderr)
        print("Refusing to average incomplete seed sets: run or repair the runs above, or "
              "pass --allow-partial.", file=sys.stderr)
        return 1
    text = render(table, args.format, args.std, args.latex_label)
    print(text, end="" if text.endswith("\n") else "\n")
    if flagged is not None:  # beside a table to paste or parse, on stderr
        print("\n" + published.flags_text(*flagged, args.tolerance),
              file=sys.stdout if args.format == "text" else sys.stderr)
    for warning in table.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for note in table.notes:
        print(f"note: {note}", file=sys.stderr)
    if table.problems:
        print(problems_text(table), file=sys.stderr)
    if args.save:
        try:
            written = save(table, args.save, plot=not args.no_plot, with_std=args.std,
                           label=args.latex_label)
        except SarPromptError as exc:  # a folder that cannot be written: nothing partial left
            print(f"error: {exc}", file=sys.stderr)
            return 2
        for path in written:
            print(f"wrote {path}", file=sys.stderr)
    return 0
