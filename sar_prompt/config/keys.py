"""The config keys our trainers read, declared on top of Dassl's defaults.

Each method reads its own node, named and defaulted as its reference repository declares
it (TRAINER.COOP, TRAINER.COCOOP, TRAINER.MAPLE, TRAINER.PROMPTSRC), so config files
written for those repositories load unchanged. `extend_cfg(cfg)` adds each key only where
the host suite has not declared it already, so a CoOp/KgCoOp suite keeps its own defaults.
Values are checked when a trainer starts (`check_method_cfg`, `check_sar_cfg`). Defaults
marked "our reading" are choices the SAR paper's abstract does not settle; see docs/config.md
("Config keys").
"""
import math
import numbers

from yacs.config import CfgNode as CN

from sar_prompt.errors import ConfigError

# CoOp-compatible keys (CoOp's own defaults; KgCoOp's W from its base-to-new setting).
COOP_DEFAULTS = {
    "N_CTX": 16,  # number of context tokens (ignored when CTX_INIT is given)
    "CSC": False,  # class-specific context
    "CTX_INIT": "",  # words that initialise the context, e.g. "a photo of a"
    "PREC": "fp16",  # fp16 | fp32 | amp (CUDA; a CPU runs fp32 unless SAR_PROMPT_CPU_HALF=1)
    "CLASS_TOKEN_POSITION": "end",  # end | middle | front
    "W": 8.0,  # KgCoOp: weight of the 1 - cos(learned, hand-crafted) term
    "TEMPLATE": "",  # hand-crafted prompt for KgCoOp and SAR; "" = the dataset's template
}

# CoCoOp's node as CoOp's repository declares it, plus our TEMPLATE.
COCOOP_DEFAULTS = {
    "N_CTX": 16,  # number of context tokens (ignored when CTX_INIT is given)
    "CTX_INIT": "",  # words that initialise the context, e.g. "a photo of a"
    "PREC": "fp16",  # fp16 | fp32 | amp (CUDA; a CPU runs fp32 unless SAR_PROMPT_CPU_HALF=1)
    "TEMPLATE": "",  # hand-crafted prompt for SAR; "" = the dataset's template
}

# MaPLe's and PromptSRC's nodes exactly as their repositories declare them.
MAPLE_DEFAULTS = {
    "N_CTX": 2,
    "CTX_INIT": "a photo of a",
    "PREC": "fp16",
    "PROMPT_DEPTH": 9,  # layers with prompts; 1 = shallow MaPLe
}

PROMPTSRC_DEFAULTS = {
    "N_CTX_VISION": 4,
    "N_CTX_TEXT": 4,
    "CTX_INIT": "a photo of a",
    "PREC": "fp16",
    "PROMPT_DEPTH_VISION": 9,
    "PROMPT_DEPTH_TEXT": 9,
    "TEXT_LOSS_WEIGHT": 25,
    "IMAGE_LOSS_WEIGHT": 10,
    "GPA_MEAN": 15,
    "GPA_STD": 1,
}

METHOD_NODES = {"COOP": COOP_DEFAULTS, "COCOOP": COCOOP_DEFAULTS, "MAPLE": MAPLE_DEFAULTS,
                "PROMPTSRC": PROMPTSRC_DEFAULTS}

SAR_DEFAULTS = {
    "WEIGHT": 1.0,  # lambda: total = method loss + WEIGHT * SAR loss (our reading)
    "LOSS": "kl",  # kl | l1 | mse (our reading: kl)
    "TEMPERATURE": 0.01,  # softmax temperature of the kl loss; CLIP's own 1/100 (our reading)
    "NUM_NOVEL": 64,  # novel classes sampled per step; 0 = all (our reading)
    "EXCLUDE_SELF": True,  # drop each class's similarity to itself (our reading)
    "NOVEL_FILE": "",  # "" = novel_classes/<dataset key>.json shipped with sar_prompt
    # image-conditioned methods (CoCoOp): which class text features SAR aligns (our reading)
    "CONDITION": "each_image",  # each_image | batch_mean | none
}

# How the learnable prompts' text pass runs with gradients; losses are the same either way.
TEXT_ENCODER_DEFAULTS = {
    "CHUNK_SIZE": 0,  # prompts per text-encoder pass; 0 = all in one pass
    "CHECKPOINT": False,  # activation checkpointing per pass: recompute in backward, less memory
}

SAR_LOSSES = ("kl", "l1", "mse")
SAR_CONDITIONS = ("each_image", "batch_mean", "none")
PRECISIONS = ("fp16", "fp32", "amp")
CLASS_TOKEN_POSITIONS = ("end", "middle", "front")


def _declare_node(parent, name):
    if name not in parent:
        parent[name] = CN()
    return parent[name]


def _declare(node, defaults):
    for key, value in defaults.items():
        if key not in node:
            node[key] = value


def extend_cfg(cfg):
    """Declare every key sar_prompt's trainers and datasets read. Call it right after
    `get_cfg_default()`, before merging config files. Keys already declared are kept."""
    for node, defaults in METHOD_NODES.items():
        _declare(_declare_node(cfg.TRAINER, node), defaults)
    _declare(_declare_node(cfg.TRAINER, "SAR"), SAR_DEFAULTS)
    _declare(cfg.DATASET, {"SUBSAMPLE_CLASSES": "all"})  # all | base | new
    # A local CLIP weights file; "" = by MODEL.BACKBONE.NAME from the CLIP cache.
    _declare(cfg.MODEL.BACKBONE, {"PATH": ""})
    # Checkpoints that need a full unpickle can run code; load them only if True.
    _declare(cfg.MODEL, {"TRUST_CHECKPOINT_CODE": False})
    _declare(_declare_node(cfg.MODEL, "TEXT_ENCODER"), TEXT_ENCODER_DEFAULTS)
    return cfg


def lookup(cfg, dotted_key):
    node = cfg
    for part in dotted_key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(dotted_key)
        node = node[part]
    return node


def require_keys(cfg, keys, who):
    """Fail with a message naming `extend_cfg` when a key our code reads was never declared."""
    missing = []
    for key in keys:
        try:
            lookup(cfg, key)
        except KeyError:
            missing.append(key)
    if missing:
        raise ConfigError(
            f"{who} reads config keys that were never declared: {', '.join(missing)}. "
            "Call sar_prompt.extend_cfg(cfg) right after get_cfg_default(), before merging "
            "config files (train.py does this for you)."
        )


def required_trainer_keys(node="", sar=False):
    """The keys a trainer reading TRAINER.<node> (none if "") and, with `sar`, TRAINER.SAR reads."""
    keys = ["DATASET.SUBSAMPLE_CLASSES", "MODEL.BACKBONE.PATH", "MODEL.TRUST_CHECKPOINT_CODE",
            *(f"MODEL.TEXT_ENCODER.{k}" for k in TEXT_ENCODER_DEFAULTS)]
    if node:
        keys += [f"TRAINER.{node}.{k}" for k in METHOD_NODES[node]]
    if sar:
        keys += [f"TRAINER.SAR.{k}" for k in SAR_DEFAULTS]
    return keys


def check_choice(value, choices, key):
    if value not in choices:
        raise ConfigError(f"{key} is {value!r}; it must be one of {', '.join(map(repr, choices))}.")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value):
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def _check(ok, key, value, must):
    if not ok:
        node, _, name = key.rpartition(".")
        default = _default_of(node, name)
        example = f" Set it in the config file or on the command line, e.g. {key} {default!r}." \
            if default is not None else ""
        raise ConfigError(f"{key} is {value!r}; it must be {must}.{example}")


def _default_of(node, name):
    defaults = {"TRAINER.SAR": SAR_DEFAULTS, "MODEL.TEXT_ENCODER": TEXT_ENCODER_DEFAULTS}.get(
        node) or METHOD_NODES.get(node.split(".")[-1])
    return (defaults or {}).get(name)


def positive_int(value, key):
    _check(_is_int(value) and value >= 1, key, value, "a whole number 1 or more")


def non_negative_int(value, key):
    _check(_is_int(value) and value >= 0, key, value, "a whole number 0 or more")


def non_negative_number(value, key):
    _check(_is_number(value) and value >= 0, key, value, "a number 0 or more")


def positive_number(value, key):
    _check(_is_number(value) and value > 0, key, value, "a number greater than 0")


def boolean(value, key):
    _check(isinstance(value, bool), key, value, "True or False")


def text(value, key):
    _check(isinstance(value, str), key, value, "a string (quote it in YAML)")


def ctx_init(value, key):
    _check(isinstance(value, (str, bool)), key, value,
           'words such as "a photo of a", "" for a random context, or True (KgCoOp: '
           '"a photo of a")')


def _choice(choices):
    return lambda value, key: check_choice(value, choices, key)


# How each key of a method node is checked, by key name (shared by all nodes).
METHOD_KEY_CHECKS = {
    "N_CTX": positive_int, "N_CTX_VISION": positive_int, "N_CTX_TEXT": positive_int,
    "CTX_INIT": ctx_init, "PREC": _choice(PRECISIONS), "CSC": boolean,
    "CLASS_TOKEN_POSITION": _choice(CLASS_TOKEN_POSITIONS), "W": non_negative_number,
    "TEMPLATE": text, "PROMPT_DEPTH": non_negative_int, "PROMPT_DEPTH_VISION": non_negative_int,
    "PROMPT_DEPTH_TEXT": non_negative_int, "TEXT_LOSS_WEIGHT": non_negative_number,
    "IMAGE_LOSS_WEIGHT": non_negative_number, "GPA_MEAN": non_negative_number,
    "GPA_STD": positive_number,
}

SAR_KEY_CHECKS = {
    "WEIGHT": non_negative_number, "LOSS": _choice(SAR_LOSSES), "TEMPERATURE": positive_number,
    "NUM_NOVEL": non_negative_int, "EXCLUDE_SELF": boolean, "NOVEL_FILE": text,
    "CONDITION": _choice(SAR_CONDITIONS),
}


def check_method_cfg(cfg, node):
    """ConfigError naming the key for the first bad value in TRAINER.<node>."""
    values = cfg.TRAINER[node]
    for key in METHOD_NODES[node]:
        if key in METHOD_KEY_CHECKS:
            METHOD_KEY_CHECKS[key](values[key], f"TRAINER.{node}.{key}")


TEXT_ENCODER_KEY_CHECKS = {"CHUNK_SIZE": non_negative_int, "CHECKPOINT": boolean}


def check_text_encoder_cfg(cfg):
    for key, check in TEXT_ENCODER_KEY_CHECKS.items():
        check(cfg.MODEL.TEXT_ENCODER[key], f"MODEL.TEXT_ENCODER.{key}")


def check_sar_cfg(cfg):
    for key, check in SAR_KEY_CHECKS.items():
        check(cfg.TRAINER.SAR[key], f"TRAINER.SAR.{key}")


def check_num_shots(value, key="DATASET.NUM_SHOTS"):
    """Images per class to train on: 1 or more, or -1 (Dassl's default) for every image.
    Dassl reads any value below 1 as every image, so a mistyped -3 would train on all."""
    if isinstance(value, int) and not isinstance(value, bool) and (value >= 1 or value == -1):
        return
    raise ConfigError(f"{key} is {value!r}: give the number of images per class to train on, "
                      f"a whole number 1 or more (e.g. {key} 16), or -1 (Dassl's default) "
                      "for every image.")
