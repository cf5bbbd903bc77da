import json

import pytest
import torch

from sar_prompt.errors import ConfigError, NovelClassesError


def record_steps(trainer):
    """Run trainer.train() and return each step's loss summary."""
    steps = []
    original = trainer.forward_backward

    def forward_backward(batch):
        summary = original(batch)
        steps.append(summary)
        return summary

    trainer.forward_backward = forward_backward
    trainer.train()
    return steps


@pytest.mark.parametrize("name", ["CoOp", "KgCoOp", "CoOpSAR", "KgCoOpSAR"])
def test_trains_tests_and_writes_result(build_trainer, tmp_path, name):
    trainer = build_trainer(name, "OPTIM.MAX_EPOCH", "1", output=tmp_path / name)
    steps = record_steps(trainer)
    assert len(steps) == 9  # 150 base images, batch 16, last partial batch dropped
    terms = {"CoOp": [], "KgCoOp": ["ce", "kg"], "CoOpSAR": ["ce", "sar"],
             "KgCoOpSAR": ["ce", "kg", "sar"]}[name]
    assert [k for k in steps[0] if k not in ("loss", "acc")] == terms
    result = json.loads((tmp_path / name / "results.json").read_text())
    assert result["trainer"] == name and result["subsample_classes"] == "base"
    assert 0.0 <= result["accuracy"] <= 100.0 and result["epoch"] == 1
    # the checkpoint holds the learnable context only
    ckpt = torch.load(tmp_path / name / "prompt_learner" / "model.pth.tar-1", weights_only=True)
    assert list(ckpt["state_dict"]) == ["ctx"]


@pytest.mark.parametrize("method", ["CoOp", "KgCoOp"])
def test_sar_variant_with_weight_zero_is_the_method_step_for_step(build_trainer, tmp_path, method):
    plain = record_steps(build_trainer(method, output=tmp_path / "plain"))
    sar = record_steps(build_trainer(method + "SAR", "TRAINER.SAR.WEIGHT", "0.0",
                                     output=tmp_path / "sar"))
    assert len(plain) == len(sar) == 18
    for a, b in zip(plain, sar):
        assert b["loss"] == a["loss"] and b["acc"] == a["acc"]
    assert all(s["sar"] >= 0 for s in sar)  # still computed and logged as a diagnostic
    assert max(s["sar"] for s in sar) > 0


def test_sar_weight_changes_training_and_starts_at_zero(build_trainer, tmp_path):
    plain = record_steps(build_trainer("CoOp", output=tmp_path / "plain"))
    sar = record_steps(build_trainer("CoOpSAR", "TRAINER.SAR.WEIGHT", "50.0",
                                     output=tmp_path / "sar"))
    # the context starts as "a photo of a" = Caltech101's template, so SAR starts at ~0
    assert sar[0]["sar"] < 1e-4
    assert plain[0]["loss"] == pytest.approx(sar[0]["ce"], abs=1e-6)
    assert any(abs(a["ce"] - b["ce"]) > 1e-6 if "ce" in a else abs(a["loss"] - b["ce"]) > 1e-6
               for a, b in zip(plain[1:], sar[1:]))


def test_kgcoop_term_starts_at_zero_with_the_template_context(build_trainer, tmp_path):
    steps = record_steps(build_trainer("KgCoOp", "OPTIM.MAX_EPOCH", "1", output=tmp_path))
    assert steps[0]["kg"] == pytest.approx(0.0, abs=1e-5)
    assert steps[0]["loss"] == pytest.approx(steps[0]["ce"] + 8.0 * steps[0]["kg"], abs=1e-5)


def test_base_checkpoint_evaluates_on_new_classes(build_trainer, tmp_path):
    base = build_trainer("CoOpSAR", "OPTIM.MAX_EPOCH", "1", output=tmp_path / "base")
    base.train()
    trained_ctx = base.model.prompt_learner.ctx.detach().clone()
    new = build_trainer("CoOpSAR", subsample="new", output=tmp_path / "new")
    assert new.dm.dataset.classnames[0] == "ibis"
    new.load_model(str(tmp_path / "base"), epoch=1)
    torch.testing.assert_close(new.model.prompt_learner.ctx, trained_ctx)
    acc = new.test()
    result = json.loads((tmp_path / "new" / "results.json").read_text())
    assert result["subsample_classes"] == "new" and result["accuracy"] == pytest.approx(acc)
    assert result["checkpoint"]["epoch"] == 1


def test_legacy_checkpoint_with_class_buffers_loads(build_trainer, tmp_path):
    trainer = build_trainer("CoOp", output=tmp_path / "run")
    folder = tmp_path / "legacy" / "prompt_learner"
    folder.mkdir(parents=True)
    ctx = torch.randn_like(trainer.model.prompt_learner.ctx)
    state = {"ctx": ctx, "token_prefix": torch.zeros(7, 1, 64), "token_suffix": torch.zeros(7, 3, 64)}
    torch.save({"state_dict": state, "epoch": 5, "optimizer": None, "scheduler": None,
                "val_result": None}, folder / "model.pth.tar-5")
    trainer.load_model(str(tmp_path / "legacy"), epoch=5)
    torch.testing.assert_close(trainer.model.prompt_learner.ctx, ctx)
    with pytest.raises(FileNotFoundError, match="epochs saved there are 5"):
        trainer.load_model(str(tmp_path / "legacy"), epoch=7)


def test_resume_continues_the_schedule(build_trainer, tmp_path):
    out = tmp_path / "run"
    first = build_trainer("CoOpSAR", "OPTIM.MAX_EPOCH", "3", "TRAIN.CHECKPOINT_FREQ", "1",
                          "TEST.NO_TEST", "True", output=out)
    first.max_epoch = 2  # stop early, as an interrupted run would
    first.train()
    lr_before = first.get_current_lr()
    second = build_trainer("CoOpSAR", "OPTIM.MAX_EPOCH", "3", "TRAIN.CHECKPOINT_FREQ", "1",
                           output=out)
    steps = record_steps(second)
    assert second.start_epoch == 2 and len(steps) == 9  # only the last epoch ran
    assert second.get_current_lr() < lr_before  # the cosine schedule moved on after resume
    torch.testing.assert_close(
        torch.load(out / "prompt_learner" / "model.pth.tar-3", weights_only=True)["state_dict"]["ctx"],
        second.model.prompt_learner.ctx.detach())
    assert json.loads((out / "results.json").read_text())["epoch"] == 3


def test_undeclared_keys_fail_naming_extend_cfg(caltech_root, tiny_clip_path):
    import sar_prompt  # noqa: F401
    from dassl.config import get_cfg_default
    from dassl.engine import build_trainer

    cfg = get_cfg_default()  # no extend_cfg
    cfg.DATASET.NAME = "Caltech101"
    cfg.DATASET.ROOT = str(caltech_root)
    cfg.TRAINER.NAME = "CoOpSAR"
    with pytest.raises(ConfigError, match="extend_cfg"):
        build_trainer(cfg)


def test_novel_file_errors_at_build(build_trainer, tmp_path):
    missing = tmp_path / "missing.json"
    with pytest.raises(NovelClassesError) as err:
        build_trainer("CoOpSAR", "TRAINER.SAR.NOVEL_FILE", str(missing))
    assert str(missing) in str(err.value) and "sar-prompt novel" in str(err.value)

    from sar_prompt.modeling.tokens import token_count

    long_name = " ".join(["xqzv"] * 38)  # under the 200-character limit, over 77 tokens
    assert len(long_name) < 200 and token_count(long_name) > 75
    bad = tmp_path / "long.json"
    bad.write_text(json.dumps({"schema": "sar-prompt/novel-classes", "version": 1,
                               "dataset": "Caltech101", "novel_classes": ["tiger", long_name],
                               "provenance": {"source": "manual", "description": "test"}}))
    with pytest.raises(NovelClassesError) as err:
        build_trainer("CoOpSAR", "TRAINER.SAR.NOVEL_FILE", str(bad))
    assert str(bad) in str(err.value) and "77" in str(err.value)


def test_invalid_sar_loss_name(build_trainer):
    with pytest.raises(ConfigError, match="TRAINER.SAR.LOSS"):
        build_trainer("CoOpSAR", "TRAINER.SAR.LOSS", "cosine")


def test_image_size_must_match_clip(build_trainer):
    with pytest.raises(ConfigError, match="INPUT.SIZE"):
        build_trainer("CoOp", "INPUT.SIZE", "(64, 64)")


@pytest.mark.parametrize("key", ["oxford_pets", "eurosat"])
def test_sar_uses_each_datasets_template_and_novel_list(key, tiny_clip_path, tmp_path):
    """Per dataset: its hand-crafted template (so SAR starts at 0 only when the context matches
    it), its shipped novel list, its base classes."""
    import sar_prompt  # noqa: F401
    from dassl.engine import build_trainer
    from dassl.utils import set_random_seed

    from conftest import REPO, TINY_TRAINER_OPTS
    from fixtures import write_dataset
    from sar_prompt import novel
    from sar_prompt.catalog import by_key
    from sar_prompt.classnames import base_and_new
    from sar_prompt.train import build_parser, setup_cfg

    root = tmp_path / "data"
    write_dataset(key, root)
    template = by_key(key).template
    prefix = template.split("{}")[0].strip()  # e.g. "a photo of a", "a centered satellite photo of"
    argv = ["--root", str(root), "--seed", "1", "--trainer", "CoOpSAR",
            "--dataset-config-file", str(REPO / f"configs/datasets/{key}.yaml"),
            "--output-dir", str(tmp_path / "out"), *TINY_TRAINER_OPTS,
            "MODEL.BACKBONE.PATH", str(tiny_clip_path), "DATASET.NUM_SHOTS", "16",
            "DATASET.SUBSAMPLE_CLASSES", "base", "TRAINER.COOP.CTX_INIT", prefix,
            "OPTIM.MAX_EPOCH", "1"]
    cfg = setup_cfg(build_parser().parse_args(argv))
    set_random_seed(1)
    trainer = build_trainer(cfg)
    assert trainer.dm.dataset.classnames == base_and_new(key)[0]
    steps = record_steps(trainer)
    # the learnable prompt starts as the template only where the template ends in "{}."
    if template.endswith("{}."):
        assert steps[0]["sar"] < 1e-4
    else:
        assert steps[0]["sar"] > 1e-4
    shipped = novel.load(novel.default_path(key), key, by_key(key).name)
    assert trainer.sar.num_novel_total == len(shipped.names)
