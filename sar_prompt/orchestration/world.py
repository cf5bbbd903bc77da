"""`sar-prompt world`: a synthetic world where a tiny CLIP works, so base-to-new numbers mean
something on a CPU (docs/world.md).

    sar-prompt world [run options]            ZeroshotCLIP, CoOp and CoOpSAR base-to-new on the
                                              world, then their table with per-seed pairs
    sar-prompt world study [--seeds ...]      the study: ZS / CoOp / CoOpSAR at several weights
                                              over seeds, paired differences, table and figure
    sar-prompt world prepare --data DATA      render the dataset and write its CLIP (DATA/sar_world)
    sar-prompt world pretrain --out FILE      pretrain the world's CLIP again (deterministic)

The dataset is `world` for every other command too (`sar-prompt base2new CoOp --datasets
world`): its runs get the world CLIP's weights and 32-pixel input on top of the method's own
config.
"""
import argparse
import json
import sys
from pathlib import Path

from sar_prompt.errors import ConfigError, run_command


def _pretrain(args):
    from dataclasses import replace

    from sar_prompt.io import atomic_write_bytes
    from sar_prompt.world import pretrain, weights

    settings = replace(pretrain.Settings(), seed=args.seed, steps=args.steps)
    out = Path(args.out).expanduser()
    if out.is_file() and not args.force:
        try:
            cached = weights.read_compact(out)
        except Exception:
            cached = None
        if cached is not None and cached["settings"] == pretrain.settings_record(settings):
            print(f"{out}: already pretrained with these settings (--force pretrains again)")
            return 0
    bar = _progress_bar(settings.steps, args.progress)
    state, summary = pretrain.pretrain(settings, progress=bar.update_to if bar else None,
                                       log=None if bar else print)
    if bar:
        bar.close()
    compact = weights.compact(state, pretrain.settings_record(settings))
    atomic_write_bytes(out, weights.to_bytes(compact))
    summary["weights"] = str(out)
    summary["sha256"] = weights.digest(compact)
    print(json.dumps(summary))
    return 0


def _progress_bar(total, wanted):
    if wanted is False or (wanted is None and not sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    class Bar(tqdm):
        def update_to(self, done, _total):
            self.update(done - self.n)

    return Bar(total=total, desc="pretraining the world's CLIP", unit="step")


def _run_options(parser, seeds):
    from sar_prompt.vocabulary import env_help, setting, words

    parser.add_argument("opts", nargs="*", metavar="KEY VALUE",
                        help="config options for every run (e.g. OPTIM.MAX_EPOCH 20)")
    parser.add_argument("--seeds", nargs="+", default=words(setting("seeds")) or list(seeds),
                        help=f"[{env_help('seeds')}; {' '.join(seeds)}]")
    parser.add_argument("--data", default=setting("data", "data"),
                        help=f"datasets root; the world goes in DATA/sar_world "
                             f"[{env_help('data')}; ./data]")
    parser.add_argument("--output", default=setting("output", "output"),
                        help=f"results root [{env_help('output')}; ./output]")
    parser.add_argument("--gpus", default=setting("gpus"), help=f"GPU ids [{env_help('gpus')}]")
    parser.add_argument("--verbose", action="store_true", help="every run's full output")


def build_parser():
    from sar_prompt.orchestration.world_study import DEMO_SEEDS, STUDY_SEEDS, STUDY_WEIGHTS
    from sar_prompt.vocabulary import env_help, setting

    p = argparse.ArgumentParser(prog="python -m sar_prompt.orchestration.world",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command")
    demo = sub.add_parser("run", help="ZeroshotCLIP, CoOp and CoOpSAR base-to-new on the "
                                      "world, then the paired table (the default command)")
    _run_options(demo, DEMO_SEEDS)
    study = sub.add_parser("study", help="ZeroshotCLIP, CoOp and CoOpSAR at several weights "
                                         "over seeds: paired differences, table and figure")
    _run_options(study, STUDY_SEEDS)
    study.add_argument("--weights", nargs="+", default=list(STUDY_WEIGHTS),
                       help=f"CoOpSAR's TRAINER.SAR.WEIGHT values [{' '.join(STUDY_WEIGHTS)}]")
    prep = sub.add_parser("prepare", help="render the world dataset and write its CLIP")
    prep.add_argument("--data", "--root", dest="data", default=setting("data", "data"),
                      metavar="DATA", help="data folder; the world goes in DATA/sar_world "
                                           f"[{env_help('data')}; ./data]")
    prep.add_argument("--weights", help="compact world CLIP weights from `world pretrain` "
                                        "[the shipped ones]")
    pre = sub.add_parser("pretrain", help="pretrain the world's CLIP (deterministic, cached)")
    pre.add_argument("--out", default="world_clip.pt",
                     help="the compact weights file to write [./world_clip.pt]")
    pre.add_argument("--seed", type=int, default=0)
    pre.add_argument("--steps", type=int, default=None, help="[the shipped weights' steps]")
    pre.add_argument("--force", action="store_true", help="pretrain even if --out holds "
                                                          "weights of the same settings")
    pre.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="a progress bar [when stderr is a terminal]")
    return p


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("run", "study", "prepare", "pretrain", "-h", "--help"):
        argv = ["run", *argv]  # `sar-prompt world [options]` is `world run`
    parser = build_parser()
    if argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    # each subcommand's own parser: KEY VALUE pairs may come before or after the options
    choices = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    args = choices.choices[argv[0]].parse_intermixed_args(argv[1:])
    args.command = argv[0]

    def command():
        if args.command in ("run", "study"):
            from sar_prompt.orchestration import world_study

            if len(args.opts) % 2:
                raise ConfigError(f"trailing options must be KEY VALUE pairs; got "
                                  f"{' '.join(args.opts)}")
            for seed in args.seeds:
                if not seed.isdigit():
                    raise ConfigError(f"--seeds: {seed!r} is not a whole number 0 or more. "
                                      "Give KEY VALUE options before --seeds (or after "
                                      "another option).")
            for weight in getattr(args, "weights", ()):
                try:
                    float(weight)
                except ValueError:
                    raise ConfigError(f"--weights: {weight!r} is not a number. Give KEY VALUE "
                                      "options before --weights (or after another "
                                      "option).") from None
            args.config = ""
            return world_study.run(args, study=args.command == "study")
        if args.command == "prepare":
            from sar_prompt.world.dataset import prepare_with

            base = prepare_with(args.data, args.weights)
            print(json.dumps({"dataset": str(base)}))
            return 0
        if args.command == "pretrain":
            from sar_prompt.world.pretrain import Settings

            args.steps = args.steps or Settings().steps
            return _pretrain(args)

    return run_command(command)


if __name__ == "__main__":
    sys.exit(main())
