import pytest
from yacs.config import CfgNode as CN

import sar_prompt
from dassl.config import get_cfg_default
from sar_prompt.config import COOP_DEFAULTS, SAR_DEFAULTS, require_keys
from sar_prompt.errors import ConfigError

from conftest import REPO


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


# The method nodes exactly as the reference repositories' train.py declare them.
REFERENCE_NODES = {
    "COCOOP": {"N_CTX": 16, "CTX_INIT": "", "PREC": "fp16"},  # CoOp's repository
    "MAPLE": {"N_CTX": 2, "CTX_INIT": "a photo of a", "PREC": "fp16", "PROMPT_DEPTH": 9},
    "PROMPTSRC": {"N_CTX_VISION": 4, "N_CTX_TEXT": 4, "CTX_INIT": "a photo of a", "PREC": "fp16",
                  "PROMPT_DEPTH_VISION": 9, "PROMPT_DEPTH_TEXT": 9, "TEXT_LOSS_WEIGHT": 25,
                  "IMAGE_LOSS_WEIGHT": 10, "GPA_MEAN": 15, "GPA_STD": 1},
}


def test_method_nodes_as_their_repositories_declare_them():
    cfg = sar_prompt.extend_cfg(get_cfg_default())
    for node, keys in REFERENCE_NODES.items():
        for key, value in keys.items():
            assert cfg.TRAINER[node][key] == value and type(cfg.TRAINER[node][key]) is type(value)
    assert cfg.TRAINER.COCOOP.TEMPLATE == "" and cfg.TRAINER.SAR.CONDITION == "each_image"


def test_a_coop_repository_suite_keeps_its_cocoop_node():
    cfg = get_cfg_default()
    cfg.TRAINER.COCOOP = CN()  # as KgCoOp's train.py declares it
    cfg.TRAINER.COCOOP.N_CTX = 16
    cfg.TRAINER.COCOOP.CTX_INIT = False
    cfg.TRAINER.COCOOP.PREC = "fp16"
    sar_prompt.extend_cfg(cfg)
    assert cfg.TRAINER.COCOOP.CTX_INIT is False and cfg.TRAINER.COCOOP.TEMPLATE == ""


def test_cocoop_config_files_load_with_their_keys():
    for path in sorted((REPO / "configs/trainers/CoCoOp").glob("*.yaml")):
        cfg = sar_prompt.extend_cfg(get_cfg_default())
        cfg.merge_from_file(str(path))
        assert cfg.DATALOADER.TRAIN_X.BATCH_SIZE == 1 and cfg.OPTIM.MAX_EPOCH == 10
    assert cfg.TRAINER.COCOOP.N_CTX == 8  # the last one, vit_b16_c8_ep10_batch1
    cfg = sar_prompt.extend_cfg(get_cfg_default())
    cfg.merge_from_file(str(REPO / "configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml"))
    assert cfg.TRAINER.COCOOP.N_CTX == 4 and cfg.TRAINER.COCOOP.CTX_INIT == "a photo of a"
    assert cfg.OPTIM.LR == 0.002 and cfg.MODEL.BACKBONE.NAME == "ViT-B/16"


@pytest.mark.parametrize("trainer,key,value,message", [
    ("CoCoOp", "TRAINER.COCOOP.N_CTX", "0", "a positive integer"),
    ("CoCoOp", "TRAINER.COCOOP.PREC", "fp8", "'fp16', 'fp32', 'amp'"),
    ("CoOp", "TRAINER.COOP.CLASS_TOKEN_POSITION", "side", "'end', 'middle', 'front'"),
    ("CoOpSAR", "TRAINER.SAR.TEMPERATURE", "0.0", "a number > 0"),
    ("CoCoOpSAR", "TRAINER.SAR.CONDITION", "mean", "'each_image', 'batch_mean', 'none'"),
])
def test_values_are_checked_when_the_trainer_starts(build_trainer, trainer, key, value, message):
    with pytest.raises(ConfigError) as err:
        build_trainer(trainer, key, value)  # Dassl calls check_cfg first, before any data
    assert key in str(err.value) and message in str(err.value)


def test_each_method_checks_only_its_own_node(make_cfg):
    import sar_prompt.trainers as trainers

    def check(trainer, *opts):
        cls = getattr(trainers, trainer)
        cls.__new__(cls).check_cfg(make_cfg(trainer, *opts))

    check("CoCoOp", "TRAINER.COOP.PREC", "fp8", "TRAINER.COOP.N_CTX", "0")  # CoOp's business
    check("CoOp", "TRAINER.COCOOP.PREC", "fp8")
    with pytest.raises(ConfigError, match="TRAINER.COCOOP.PREC"):
        check("CoCoOp", "TRAINER.COCOOP.PREC", "fp8")
