"""From train.py's command line to a frozen config, as CoOp's train.py builds it.

Layers, later ones winning: Dassl's defaults + `extend_cfg`, the dataset config file, the
method config file, the command-line flags, the trailing KEY VALUE pairs. Every key and
value of a file or of the trailing pairs is checked against the config tree itself (its
keys, and the type of each key's value: yacs' rule) before yacs merges it, so a mistake is
reported in the user's words, naming the file or the option, with the closest keys.
"""
import argparse
import difflib
import functools
import importlib.util
import sys
from contextlib import contextmanager
from pathlib import Path

from yacs.config import CfgNode

from sar_prompt.config.keys import lookup
from sar_prompt.errors import ConfigError, SarPromptError
from sar_prompt.vocabulary import OneSpelling


def build_parser():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", "--root", dest="root", type=str, default="", action=OneSpelling,
                   help="path to dataset")
    p.add_argument("--output", "--output-dir", dest="output_dir", type=str, default="",
                   action=OneSpelling, help="output directory")
    p.add_argument("--resume", type=str, default="",
                   help="checkpoint directory (from which the training resumes)")
    p.add_argument("--seed", type=int, default=-1, help="only positive value enables a fixed seed")
    p.add_argument("--source-domains", type=str, nargs="+", help="source domains for DA/DG")
    p.add_argument("--target-domains", type=str, nargs="+", help="target domains for DA/DG")
    p.add_argument("--transforms", type=str, nargs="+", help="data augmentation methods")
    p.add_argument("--config", "--config-file", dest="config_file", type=str, default="",
                   action=OneSpelling, help="path to config file")
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
                   help="with --eval-only: replace an existing results.json in --output")
    p.add_argument("--move-aside", action="store_true",
                   help="when --output holds a run of another config, rename it to "
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


def _unknown_key_error(cfg, key, source):
    close = suggest(key, list(_all_keys(cfg)), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return ConfigError(f"{source}: unknown config key {key}.{hint} Keys come from Dassl's "
                       "defaults and sar_prompt.extend_cfg; check the spelling.")


_TYPE_WORDS = {float: "a number", int: "a whole number", bool: "True or False",
               str: "a string", list: "a list", tuple: "a list", type(None): "None"}
_OPTIONS = "command-line options"


def _type_error(key, value, current, source):
    """`value` for `key`, whose value so far is `current`, in the user's words."""
    want = _TYPE_WORDS.get(type(current), type(current).__name__)
    got = _TYPE_WORDS.get(type(value), type(value).__name__)
    shown = repr(value) if isinstance(value, str) else value
    # a list on the command line is one shell word: quoted, or bash reads its parentheses
    example = f'"{current}"' if isinstance(current, (list, tuple)) and source == _OPTIONS \
        else current
    return ConfigError(f"{source}: {key} takes {want} (default {current}), but got {shown}, "
                       f"{got}. Give {want}, e.g. {key} {example}.")


def _fits(value, current):
    """Whether yacs takes `value` for a key whose value is `current`: the same type, a list
    for a tuple or the reverse, or None on either side (yacs' own rule)."""
    if type(value) is type(current) or value is None or current is None:
        return True
    return isinstance(value, (list, tuple)) and isinstance(current, (list, tuple))


def check_override(cfg, key, value, source):
    """Refuse a `key` the config tree does not have, or a `value` of another type than the
    tree's, before yacs sees it (yacs would raise with its own wording)."""
    node, parts = cfg, key.split(".")
    for depth, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            if isinstance(node, CfgNode) and node.is_new_allowed():
                return
            if cfg.key_is_deprecated(key):
                return
            raise _unknown_key_error(cfg, key, source)
        if depth < len(parts) - 1:
            node = node[part]
    current = node[parts[-1]]
    if isinstance(current, dict) != isinstance(value, dict):
        raise _type_error(key, value, current, source)
    if isinstance(value, dict):
        for name, item in value.items():
            check_override(cfg, f"{key}.{name}", _decoded(item), source)
    elif not _fits(value, current):
        raise _type_error(key, value, current, source)


@contextmanager
def _merging(source):
    """What yacs still raises while merging `source` (a YAML syntax error, a renamed key),
    with the source named."""
    try:
        yield
    except SarPromptError:
        raise
    except Exception as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def _decoded(value):
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
    with _merging(path):
        with open(path, encoding="utf-8") as f:
            loaded = cfg.load_cfg(f)
        _widen_ints(loaded, cfg)
        for key, value in loaded.items():
            check_override(cfg, key, _decoded(value), path)
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


@functools.lru_cache(maxsize=1)
def _dassl_defaults_file():
    """Dassl's config/defaults.py, run as a module of its own: it needs only yacs."""
    spec = None
    for finder in sys.meta_path:  # an editable install has a finder of its own
        if getattr(finder, "registers_sar_prompt", False) or not hasattr(finder, "find_spec"):
            continue  # sar_prompt's registration hook: it would register (and import torch)
        spec = finder.find_spec("dassl", None)
        if spec is not None:
            break
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("No module named 'dassl'", name="dassl")
    path = Path(list(spec.submodule_search_locations)[0]) / "config" / "defaults.py"
    module_spec = importlib.util.spec_from_file_location("sar_prompt_dassl_defaults", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module._C


def dassl_defaults(light=False):
    """Dassl's default config. `light`: read from Dassl's config/defaults.py without
    importing the dassl package, which registers our trainers and so imports torch (seconds):
    for commands that only read configs, such as a dry run."""
    if not light or "dassl" in sys.modules:
        from dassl.config import get_cfg_default

        return get_cfg_default()
    return _dassl_defaults_file().clone()


def setup_cfg(args, light=False):
    """The frozen config of train.py's parsed command line `args` (`light`: see
    dassl_defaults)."""
    from sar_prompt.config.keys import extend_cfg

    cfg = dassl_defaults(light)
    extend_cfg(cfg)
    _merge_file(cfg, args.dataset_config_file, "--dataset-config-file")
    _merge_file(cfg, args.config_file, "--config")
    reset_cfg(cfg, args)
    opts = args.opts or []
    if len(opts) % 2:
        raise ConfigError(f"trailing options must be KEY VALUE pairs; got {len(opts)} words: "
                          f"{' '.join(opts)}")
    opts = _widen_int_opts(cfg, opts)
    for key, value in zip(opts[0::2], opts[1::2]):
        check_override(cfg, key, _decoded(value), _OPTIONS)
    with _merging(_OPTIONS):
        cfg.merge_from_list(opts)
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
    for path, flag in ((args.config_file, "--config"),
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
