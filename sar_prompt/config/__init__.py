"""The config: the keys our trainers read, on top of Dassl's defaults, and their checks
(keys.py); and the config a train.py command line builds, layer by layer, checked against
the config tree (command_line.py)."""
from sar_prompt.config.keys import (  # noqa: F401
    CLASS_TOKEN_POSITIONS, COCOOP_DEFAULTS, COOP_DEFAULTS, MAPLE_DEFAULTS, METHOD_NODES, PRECISIONS,
    PROMPTSRC_DEFAULTS, SAR_CONDITIONS, SAR_DEFAULTS, SAR_LOSSES, TEXT_ENCODER_DEFAULTS,
    check_method_cfg, check_num_shots, check_sar_cfg, check_text_encoder_cfg, extend_cfg, lookup,
    require_keys, required_trainer_keys)
