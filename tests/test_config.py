import pytest
from yacs.config import CfgNode as CN

import sar_prompt
from dassl.config import get_cfg_default
from sar_prompt.config import COOP_DEFAULTS, SAR_DEFAULTS, require_keys
from sar_prompt.errors import ConfigError


def test_extend_cfg_declares_every_key():
    cfg = sar_prompt.extend_cfg(get_cfg_default())
    for key, value in COOP_DEFAULTS.items():
        assert cfg.TRAINER.COOP[key] == value
    for key, value in SAR_DEFAULTS.items():
        assert cfg.TRAINER.SAR[key] == value
    assert cfg.DATASET.SUBSAMPLE_CLASSES == "all"
    assert cfg.MODEL.BACKBONE.PATH == ""


def test_extend_cfg_leaves_the_hosts_keys_alone():
    cfg = get_cfg_default()
    # what KgCoOp's own train.py declares before ours
    cfg.TRAINER.COOP = CN()
    cfg.TRAINER.COOP.N_CTX = 2
    cfg.TRAINER.COOP.CTX_INIT = True
    cfg.TRAINER.COOP.W = 1.0
    cfg.DATASET.SUBSAMPLE_CLASSES = "base"
    sar_prompt.extend_cfg(cfg)
    sar_prompt.extend_cfg(cfg)  # idempotent
    assert cfg.TRAINER.COOP.N_CTX == 2 and cfg.TRAINER.COOP.CTX_INIT is True
    assert cfg.TRAINER.COOP.W == 1.0 and cfg.DATASET.SUBSAMPLE_CLASSES == "base"
    assert cfg.TRAINER.COOP.CLASS_TOKEN_POSITION == "end"  # missing ones are added
    assert cfg.TRAINER.SAR.LOSS == "kl"


def test_require_keys_names_extend_cfg():
    cfg = get_cfg_default()
    with pytest.raises(ConfigError) as err:
        require_keys(cfg, ["TRAINER.SAR.WEIGHT", "DATASET.NAME"], "CoOpSAR")
    assert "TRAINER.SAR.WEIGHT" in str(err.value) and "extend_cfg" in str(err.value)
    assert "DATASET.NAME" not in str(err.value)
