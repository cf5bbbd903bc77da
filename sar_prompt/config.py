"""The config keys our trainers read, declared on top of Dassl's defaults.

`extend_cfg(cfg)` adds each key only where the host suite has not declared it already,
so a CoOp/KgCoOp suite keeps its own defaults. Defaults marked "our reading" are choices
the SAR paper's abstract does not settle; see README "Config keys".
"""
from yacs.config import CfgNode as CN

from .errors import ConfigError

# CoOp-compatible keys (CoOp's own defaults; KgCoOp's W from its base-to-new setting).
COOP_DEFAULTS = {
    "N_CTX": 16,  # number of context tokens (ignored when CTX_INIT is given)
    "CSC": False,  # class-specific context
    "CTX_INIT": "",  # words that initialise the context, e.g. "a photo of a"
    "PREC": "fp16",  # fp16 | fp32 | amp (CUDA only; CPU always runs fp32)
    "CLASS_TOKEN_POSITION": "end",  # end | middle | front
    "W": 8.0,  # KgCoOp: weight of the 1 - cos(learned, hand-crafted) term
    "TEMPLATE": "",  # hand-crafted prompt for KgCoOp and SAR; "" = the dataset's template
}

SAR_DEFAULTS = {
    "WEIGHT": 1.0,  # lambda: total = method loss + WEIGHT * SAR loss (our reading)
    "LOSS": "kl",  # kl | l1 | mse (our reading: kl)
    "TEMPERATURE": 0.01,  # softmax temperature of the kl loss; CLIP's own 1/100 (our reading)
    "NUM_NOVEL": 64,  # novel classes sampled per step; 0 = all (our reading)
    "EXCLUDE_SELF": True,  # drop each class's similarity to itself (our reading)
    "NOVEL_FILE": "",  # "" = novel_classes/<dataset key>.json shipped with sar_prompt
}

SAR_LOSSES = ("kl", "l1", "mse")
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
    _declare(_declare_node(cfg.TRAINER, "COOP"), COOP_DEFAULTS)
    _declare(_declare_node(cfg.TRAINER, "SAR"), SAR_DEFAULTS)
    _declare(cfg.DATASET, {"SUBSAMPLE_CLASSES": "all"})  # all | base | new
    # A local CLIP weights file; "" = by MODEL.BACKBONE.NAME from the CLIP cache.
    _declare(cfg.MODEL.BACKBONE, {"PATH": ""})
    # Checkpoints that need a full unpickle can run code; load them only if True.
    _declare(cfg.MODEL, {"TRUST_CHECKPOINT_CODE": False})
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


def required_trainer_keys(sar=False):
    keys = ["DATASET.SUBSAMPLE_CLASSES", "MODEL.BACKBONE.PATH", "MODEL.TRUST_CHECKPOINT_CODE"]
    keys += [f"TRAINER.COOP.{k}" for k in COOP_DEFAULTS]
    if sar:
        keys += [f"TRAINER.SAR.{k}" for k in SAR_DEFAULTS]
    return keys


def check_choice(value, choices, key):
    if value not in choices:
        raise ConfigError(f"{key} is {value!r}; it must be one of {', '.join(map(repr, choices))}.")
