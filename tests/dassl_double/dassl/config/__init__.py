from .defaults import _C as cfg_default


def get_cfg_default():
    # Callers mutate the config, so always hand out a fresh copy.
    return cfg_default.clone()
