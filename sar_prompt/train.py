"""Train or evaluate with the same command line as CoOp's train.py:

    python train.py --root DATA --seed 1 --trainer CoOpSAR \
        --dataset-config-file configs/datasets/caltech101.yaml \
        --config-file configs/trainers/CoOp/vit_b16_ctxv1.yaml \
        --output-dir OUT [--eval-only --model-dir DIR --load-epoch N] [KEY VALUE ...]

Config layers, later ones winning: Dassl's defaults + `extend_cfg`, the dataset config
file, the method config file, the command-line flags, the trailing KEY VALUE pairs.
"""
import argparse
import difflib
import re
import sys
from contextlib import contextmanager
from pathlib import Path

from sar_prompt.config import lookup
from sar_prompt.errors import ConfigError, SarPromptError, run_command


def build_parser():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", "--data", type=str, default="", help="path to dataset")
    p.add_argument("--output-dir", "--output", type=str, default="", help="output directory")
    p.add_argument("--resume", type=str, default="",
                   help="checkpoint directory (from which the training resumes)")
    p.add_argument("--seed", type=int, default=-1, help="only positive value enables a fixed seed")
    p.add_argument("--source-domains", type=str, nargs="+", help="source domains for DA/DG")
    p.add_argument("--target-domains", type=str, nargs="+", help="target domains for DA/DG")
    p.add_argument("--transforms", type=str, nargs="+", help="data augmentation methods")
    p.add_argument("--config-file", "--config", type=str, default="", help="path to config file")
    p.add_argument("--dataset-config-file", type=str, default="",
                   help="path to config file for dataset setup")
    p.add_argument("--trainer", type=str, default="", help="name of trainer")
    p.add_argument("--backbone", type=str, default="", help="name of CNN backbone")
    p.add_argument("--head", type=str, default="", help="name of head")
    p.add_argument("--eval-only", action="store_true", help="evaluation only")
    p.add_argument("--model-dir", type=str, default="",
                   help="load model from this directory for eval-only mode")
    p.add_argument("--load-epoch", type=int,
                   help="load model weights at this epoch for evaluation")
    p.add_argument("--no-train", action="store_true", help="do not call trainer.train()")
    p.add_argument("--trust-checkpoint-code", action="store_true",
                   help="load checkpoints that need a full unpickle, which can run arbitrary "
                        "code: only for files you trust (sets MODEL.TRUST_CHECKPOINT_CODE)")
    p.add_argument("--overwrite-results", action="store_true",
                   help="with --eval-only: replace an existing results.json in --output-dir")
    p.add_argument("--move-aside", action="store_true",
                   help="when --output-dir holds a run of another config, rename it to "
                        "<folder>.moved-<UTC time> and start afresh (see docs/runs.md)")
    p.add_argument("opts", default=None, nargs=argparse.REMAINDER,
                   help="modify config options using the command-line")
    return p


def _all_keys(node, prefix=""):
    for k, v in node.items():
        if isinstance(v, dict):
            yield from _all_keys(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


def suggest(value, choices, n=1):
    """Closest choices to `value`, a case-insensitive exact match first."""
    lowered = {c.lower(): c for c in choices}
    if value.lower() in lowered:
        return [lowered[value.lower()]]
    return [lowered[c] for c in difflib.get_close_matches(value.lower(), list(lowered), n=n)]


def _nonexistent_key(exc):
    """The key yacs reports in 'Non-existent (config) key: KEY', or None."""
    text = str(exc.args[0]) if exc.args else ""
    return text.split(":", 1)[1].strip() if "Non-existent" in text and ":" in text else None


def _unknown_key_error(cfg, key, source):
    close = suggest(key, list(_all_keys(cfg)), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return ConfigError(f"{source}: unknown config key {key}.{hint} Keys come from Dassl's "
                       "defaults and sar_prompt.extend_cfg; check the spelling.")


_TYPE_WORDS = {"float": "a number", "int": "a whole number", "bool": "True or False",
               "str": "a string", "list": "a list", "tuple": "a list", "NoneType": "None"}
_TYPE_MISMATCH = re.compile(r"Type mismatch \(<class '(\w+)'> vs\. <class '(\w+)'>\) with "
                            r"values \((.*) vs\. (.*)\) for config key: (\S+)", re.S)


def _type_mismatch_error(exc, source):
    """yacs' 'Type mismatch (<class 'bool'> vs. <class 'int'>) ...' in the user's words."""
    match = _TYPE_MISMATCH.search(str(exc))
    if not match:
        return None
    want, got, default, value, key = match.groups()
    shown = repr(value) if got == "str" else value
    # a list on the command line is one shell word: quoted, or bash reads its parentheses
    example = f'"{default}"' if want in ("tuple", "list") and source == _OPTIONS else default
    return ConfigError(f"{source}: {key} takes {_TYPE_WORDS.get(want, want)} (default "
                       f"{default}), but got {shown}, {_TYPE_WORDS.get(got, got)}. Give "
                       f"{_TYPE_WORDS.get(want, want)}, e.g. {key} {example}.")


_OPTIONS = "command-line options"


@contextmanager
def _merging(cfg, source):
    """Turn yacs' errors while merging `source` into messages that name it and the key."""
    try:
        yield
    except (KeyError, AssertionError) as exc:
        key = _nonexistent_key(exc)
        if key is None:
            raise ConfigError(f"{source}: {exc}") from exc
        raise _unknown_key_error(cfg, key, source) from exc
    except Exception as exc:  # yaml syntax, wrong value types
        raise (_type_mismatch_error(exc, source) or ConfigError(f"{source}: {exc}")) from exc


def _decoded(value):
    from yacs.config import CfgNode

    return CfgNode._decode_cfg_value(value) if isinstance(value, str) else value


def _widen_ints(node, reference):
    """yacs refuses a whole number for a float key (`TRAINER.SAR.WEIGHT 2`, `-1`): read it
    as the float it means. `node` is a loaded config file, `reference` the config."""
    for key, value in node.items():
        ref = reference.get(key) if isinstance(reference, dict) else None
        if isinstance(value, dict):
            _widen_ints(value, ref)
        elif type(_decoded(value)) is int and type(ref) is float:
            node[key] = float(_decoded(value))


def _widen_int_opts(cfg, opts):
    out = list(opts)
    for i in range(0, len(out) - 1, 2):
        try:
            ref = lookup(cfg, out[i])
        except KeyError:
            continue  # yacs names the unknown key below
        if type(_decoded(out[i + 1])) is int and type(ref) is float:
            out[i + 1] = repr(float(_decoded(out[i + 1])))
    return out


def _merge_file(cfg, path, flag):
    if not path:
        return
    if Path(path).is_dir():
        raise ConfigError(f"{flag} {path} is a folder. Give the .yaml file itself, e.g. "
                          f"{flag} {Path(path) / '<name>.yaml'}.")
    if not Path(path).is_file():
        raise ConfigError(f"{flag} {path}: no such file.")
    with _merging(cfg, path):
        with open(path, encoding="utf-8") as f:
            loaded = cfg.load_cfg(f)
        _widen_ints(loaded, cfg)
        cfg.merge_from_other_cfg(loaded)


# The flags that set a config key, and the key (CoOp's reset_cfg).
FLAG_KEYS = (("root", "DATASET.ROOT"), ("output_dir", "OUTPUT_DIR"), ("resume", "RESUME"),
             ("source_domains", "DATASET.SOURCE_DOMAINS"),
             ("target_domains", "DATASET.TARGET_DOMAINS"), ("transforms", "INPUT.TRANSFORMS"),
             ("trainer", "TRAINER.NAME"), ("backbone", "MODEL.BACKBONE.NAME"),
             ("head", "MODEL.HEAD.NAME"))


def reset_cfg(cfg, args):
    for arg, key in FLAG_KEYS:
        value = getattr(args, arg)
        if value:
            node = cfg
            *parents, leaf = key.split(".")
            for part in parents:
                node = node[part]
            node[leaf] = value
    if args.seed >= 0:  # CoOp skips seed 0 (falsy); 0 is a valid seed here
        cfg.SEED = args.seed
    if getattr(args, "trust_checkpoint_code", False):
        cfg.MODEL.TRUST_CHECKPOINT_CODE = True


def setup_cfg(args):
    from dassl.config import get_cfg_default

    from sar_prompt import extend_cfg

    cfg = get_cfg_default()
    extend_cfg(cfg)
    _merge_file(cfg, args.dataset_config_file, "--dataset-config-file")
    _merge_file(cfg, args.config_file, "--config-file")
    reset_cfg(cfg, args)
    opts = args.opts or []
    if len(opts) % 2:
        raise ConfigError(f"trailing options must be KEY VALUE pairs; got {len(opts)} words: "
                          f"{' '.join(opts)}")
    with _merging(cfg, _OPTIONS):
        cfg.merge_from_list(_widen_int_opts(cfg, opts))
    cfg.freeze()
    return cfg


def _file_declares(path, key):
    import yaml

    try:
        node = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        return lookup(node, key) is not None
    except (KeyError, OSError, ValueError, yaml.YAMLError):
        return False


def origin(key, args):
    """Which layer of the command line gave `key` its final value, in its own words."""
    if args is None:
        return None
    opts = args.opts or []
    if key in opts[0::2]:
        return f"the trailing option {key}"
    for arg, flag_key in FLAG_KEYS:
        if flag_key == key and getattr(args, arg):
            return f"--{arg.replace('_', '-')}"
    for path, flag in ((args.config_file, "--config-file"),
                       (args.dataset_config_file, "--dataset-config-file")):
        if path and _file_declares(path, key):
            return f"{flag} {path}"
    return "nothing: Dassl's default"


def check_names(cfg, args=None):
    """Unknown trainer or dataset names fail here, before anything heavy is built; the
    message says which part of the command line set the name."""
    from dassl.data.datasets import DATASET_REGISTRY
    from dassl.engine import TRAINER_REGISTRY

    for what, key, value, registry, how in (
            ("trainer", "TRAINER.NAME", cfg.TRAINER.NAME, TRAINER_REGISTRY, "--trainer NAME"),
            ("dataset", "DATASET.NAME", cfg.DATASET.NAME, DATASET_REGISTRY,
             "--dataset-config-file configs/datasets/<dataset>.yaml")):
        names = registry.registered_names()
        if value in names:
            continue
        registered = f"Registered: {', '.join(sorted(names))}."
        if not value:
            raise ConfigError(f"no {what} given ({key} is empty): pass {how}. {registered}")
        close = suggest(value, names)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        source = origin(key, args) or how.split()[0]
        raise ConfigError(f"unknown {what} {value!r} ({key}, set by {source}).{hint} "
                          f"{registered}")


def check_eval_output(cfg, args):
    """An evaluation never silently replaces a finished run's results."""
    from sar_prompt.runs.result_file import RESULT_FILE

    existing = Path(cfg.OUTPUT_DIR) / RESULT_FILE
    if existing.exists() and not args.overwrite_results:
        raise ConfigError(
            f"{existing} exists: --output-dir {cfg.OUTPUT_DIR} holds a finished run's results. "
            "Evaluate into another --output-dir, or pass --overwrite-results to replace them.")


def run(args):
    import sar_prompt

    sar_prompt.register()  # patches Dassl, registers trainers and datasets
    from dassl.engine import build_trainer
    from dassl.utils import collect_env_info, set_random_seed, setup_logger
    import torch

    from sar_prompt.runs import fingerprint

    from sar_prompt.orchestration import preflight

    from sar_prompt.runs import progress

    from sar_prompt.runs import ownership as run_folder

    quiet = progress.QuietRun() if progress.quiet_requested() else None
    cfg = setup_cfg(args)
    check_names(cfg, args)
    preflight.train_inputs(cfg, args)  # INPUT.SIZE, --model-dir, --load-epoch
    if run_folder.claim(cfg, args).finished:  # another config's folder: refused here
        return
    if args.eval_only:
        check_eval_output(cfg, args)
    if cfg.SEED >= 0:
        print(f"Setting fixed seed: {cfg.SEED}")
        set_random_seed(cfg.SEED)
    setup_logger(cfg.OUTPUT_DIR)
    if quiet:
        quiet.after_logger()
    if torch.cuda.is_available() and cfg.USE_CUDA:
        torch.backends.cudnn.benchmark = True
    print("** Arguments **")
    for key in sorted(vars(args)):
        print(f"{key}: {getattr(args, key)}")
    print("** Config **")
    print(cfg)
    print(f"** System info **\n{collect_env_info()}\n")
    trainer = build_trainer(cfg)
    fingerprint.write(trainer, eval_only=args.eval_only)
    if quiet:
        quiet.attach(trainer)
    if args.eval_only:
        if not args.model_dir and trainer.get_model_names():
            raise ConfigError(
                f"--eval-only without --model-dir would evaluate {cfg.TRAINER.NAME}'s untrained "
                "prompt. Pass --model-dir with a training run's output folder (and --load-epoch "
                "N), or evaluate CLIP zero-shot with --trainer ZeroshotCLIP.")
        trainer.load_model(args.model_dir, epoch=args.load_epoch)
        trainer.test()
        return
    if not args.no_train:
        trainer.train()


def main(argv=None):
    """Exit status: 0 done, 2 a mistake in the input (a message says which and how to fix
    it), 130 interrupted, 1 anything unexpected (with its traceback)."""
    args = build_parser().parse_args(argv)

    def command():
        from sar_prompt.runs.ownership import release_claims

        try:
            run(args)
        except ModuleNotFoundError as exc:
            if exc.name != "dassl":
                raise
            raise SarPromptError("Dassl is not installed. Install it from its repository "
                                 "(see docs/install.md), then run again.") from None
        finally:
            release_claims()  # the run folder's lock

    return run_command(command, interrupted="interrupted; every file already written is kept "
                                            "(a training run resumes from its last saved "
                                            "epoch when run again).")


if __name__ == "__main__":
    sys.exit(main())
