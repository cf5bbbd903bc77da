"""CoCoOp, CoCoOpSAR and zero-shot CLIP; evaluating checkpoints of the reference code."""
import json

import pytest
import torch
import torch.nn.functional as F

from conftest import REPO, build_in_suite
from test_trainers import record_steps


# CoCoOp encodes every class once per image: its tests use 1 shot (50 base images), batch 8.
SMALL = ("OPTIM.MAX_EPOCH", "1", "DATALOADER.TRAIN_X.BATCH_SIZE", "8")


def one_step(trainer):
    """Run one training step on the first batch; return its loss summary."""
    trainer.set_model_mode("train")
    trainer.num_batches, trainer.batch_idx = len(trainer.train_loader_x), 0
    return trainer.forward_backward(next(iter(trainer.train_loader_x)))


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict(keep_vars=True).items()}


@pytest.mark.parametrize("name", ["CoCoOp", "CoCoOpSAR"])
def test_a_step_changes_only_the_learnable_tensors(build_trainer, tmp_path, name):
    trainer = build_trainer(name, *SMALL, output=tmp_path, shots=1)
    learnable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    saved = ["ctx", "meta_net.linear1.weight", "meta_net.linear1.bias",
             "meta_net.linear2.weight", "meta_net.linear2.bias"]
    assert learnable == {f"prompt_learner.{k}" for k in saved}
    assert list(trainer.model.prompt_learner.state_dict()) == saved  # what a checkpoint holds
    before = snapshot(trainer.model)
    summary = one_step(trainer)
    after = snapshot(trainer.model)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == learnable
    assert ("sar" in summary) == (name == "CoCoOpSAR")


def test_cocoopsar_with_weight_zero_is_cocoop_bit_for_bit(build_trainer, tmp_path):
    opts = (*SMALL, "TEST.NO_TEST", "True")
    plain = build_trainer("CoCoOp", *opts, output=tmp_path / "plain", shots=1)
    plain_steps = record_steps(plain)
    sar = build_trainer("CoCoOpSAR", *opts, "TRAINER.SAR.WEIGHT", "0.0",
                        output=tmp_path / "sar", shots=1)
    steps = record_steps(sar)
    assert len(steps) == len(plain_steps) == 6
    for a, b in zip(plain_steps, steps):
        assert b["loss"] == a["loss"] and b["acc"] == a["acc"]
    for key, value in plain.model.prompt_learner.state_dict().items():
        assert torch.equal(sar.model.prompt_learner.state_dict()[key], value)
    assert min(s["sar"] for s in steps) > 0  # still computed and logged


def test_sar_conditions_for_cocoop(build_trainer, tmp_path):
    trainer = build_trainer("CoCoOpSAR", *SMALL, output=tmp_path, shots=1)
    model, learner = trainer.model, trainer.model.prompt_learner
    batch = next(iter(trainer.train_loader_x))
    index = torch.tensor([0, 3, 5])
    with torch.no_grad():
        out = trainer.step(batch["img"], batch["label"])
        images = out.image_features
        mean_image = F.normalize(images.mean(0, keepdim=True), dim=-1)
        expected = {
            "each_image": [F.normalize(model.text_features(tokens, rows, images).mean(0), dim=-1)
                           for tokens, rows in ((None, None), (trainer.novel_tokens, index))],
            "batch_mean": [model.text_features(tokens, rows, mean_image)[0]
                           for tokens, rows in ((None, None), (trainer.novel_tokens, index))],
            "none": [model.text_features(tokens, rows)
                     for tokens, rows in ((None, None), (trainer.novel_tokens, index))],
        }
        for condition, (base, novel) in expected.items():
            trainer.cfg.defrost()
            trainer.cfg.TRAINER.SAR.CONDITION = condition
            got_base, got_novel = trainer.sar_class_features(out, index)
            torch.testing.assert_close(got_base, base)
            torch.testing.assert_close(got_novel, novel)
    # the context starts as "a photo of a" = Caltech101's template: without the meta-net's
    # bias the structure is the hand-crafted one (SAR ~0); conditioned on images it is not
    sar = {}
    with torch.no_grad():
        for condition in ("none", "each_image"):
            trainer.cfg.TRAINER.SAR.CONDITION = condition
            sar[condition] = trainer.sar(*trainer.sar_class_features(out, index), index).item()
    assert sar["none"] < 1e-4 < sar["each_image"]
    assert learner.meta_net.linear2.bias.abs().sum() > 0


def test_cocoop_base_checkpoint_evaluates_new_classes_per_image(build_trainer, tmp_path):
    base = build_trainer("CoCoOpSAR", *SMALL, output=tmp_path / "base", shots=1)
    base.train()
    trained = snapshot(base.model.prompt_learner)
    assert list(torch.load(tmp_path / "base/prompt_learner/model.pth.tar-1",
                           weights_only=True)["state_dict"]) == list(trained)
    new = build_trainer("CoCoOpSAR", subsample="new", output=tmp_path / "new", shots=1)
    new.load_model(str(tmp_path / "base"), epoch=1)
    for key, value in trained.items():
        assert torch.equal(new.model.prompt_learner.state_dict()[key], value)
    accuracy = new.test()
    result = json.loads((tmp_path / "new" / "results.json").read_text())
    assert result["subsample_classes"] == "new" and result["accuracy"] == pytest.approx(accuracy)
    # the batched per-image text pass gives what one image at a time gives
    model = new.model
    images = next(iter(new.test_loader))["img"][:8]
    with torch.no_grad():
        model.rows_per_text_pass = 3 * len(new.dm.dataset.classnames)  # 3 images per pass
        batched = model(images)
        for image, row in zip(images, batched):
            feature = model.encode_images(image.unsqueeze(0))
            text = model.text_features(condition=feature)[0]
            torch.testing.assert_close(row, model.logit_scale.exp() * feature[0] @ text.t())


def test_reference_config_file_in_a_coop_repository_suite(tiny_clip_path, tmp_path):
    """A CoOp-repository train.py (its own extend_cfg first) + sar_prompt.extend_cfg, CoCoOp's
    reference config file unchanged, CoCoOpSAR trains at batch size 1 (on the demo dataset:
    five base classes)."""
    import sar_prompt
    from dassl.config import get_cfg_default
    from yacs.config import CfgNode as CN

    cfg = get_cfg_default()
    cfg.TRAINER.COOP = CN()  # what CoOp's train.py declares
    cfg.TRAINER.COOP.N_CTX, cfg.TRAINER.COOP.CSC, cfg.TRAINER.COOP.CTX_INIT = 16, False, ""
    cfg.TRAINER.COOP.PREC, cfg.TRAINER.COOP.CLASS_TOKEN_POSITION = "fp16", "end"
    cfg.TRAINER.COCOOP = CN()
    cfg.TRAINER.COCOOP.N_CTX, cfg.TRAINER.COCOOP.CTX_INIT, cfg.TRAINER.COCOOP.PREC = 16, "", "fp16"
    cfg.DATASET.SUBSAMPLE_CLASSES = "all"
    sar_prompt.extend_cfg(cfg)
    trainer = build_in_suite(cfg, "CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml", "CoCoOpSAR",
                             tiny_clip_path, tmp_path, shots=1)
    assert trainer.model.prompt_learner.n_ctx == 4 and trainer.precision == "fp32"
    ctx = trainer.model.prompt_learner.ctx.detach().clone()
    steps = record_steps(trainer)
    assert len(steps) == 5 and all(torch.isfinite(torch.tensor(s["loss"])) for s in steps)
    assert not torch.equal(trainer.model.prompt_learner.ctx, ctx)
    assert json.loads((tmp_path / "out/results.json").read_text())["trainer"] == "CoCoOpSAR"


def test_zeroshot_clip_learns_nothing_and_is_clips_own_prediction(build_trainer, tmp_path):
    trainer = build_trainer("ZeroshotCLIP", output=tmp_path, subsample="new")
    assert trainer.get_model_names() == [] and not hasattr(trainer, "optim")
    assert not any(p.requires_grad for p in trainer.model.parameters())
    clip = trainer.clip_model
    from sar_prompt.modeling.tokens import tokenize

    names = trainer.dm.dataset.classnames
    batch = next(iter(trainer.test_loader))
    with torch.no_grad():
        text = clip.encode_text(tokenize([f"a photo of a {n.replace('_', ' ')}." for n in names]))
        image = clip.encode_image(batch["img"])
        expected = clip.logit_scale.exp() * F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).t()
    torch.testing.assert_close(trainer.model_inference(batch["img"]), expected)
    trainer.train()  # nothing to train: it evaluates
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["epoch"] == 0 and result["checkpoint"] is None


# -- checkpoints written by the reference implementations -------------------------------
def reference_checkpoint(folder, state, epoch=10):
    """A Dassl checkpoint of `prompt_learner` as the reference code saves it."""
    path = folder / "prompt_learner" / f"model.pth.tar-{epoch}"
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": state, "epoch": epoch, "optimizer": None, "scheduler": None,
                "val_result": None}, path)
    return path


def reference_state(method, n_cls=50, width=64, vis=32, n_ctx=4):
    gen = torch.Generator().manual_seed(3)

    def rand(*shape):
        return torch.randn(*shape, generator=gen).half()  # the references train in fp16

    state = {"ctx": rand(n_ctx, width)}
    if method == "KgCoOp":  # saved, never used by KgCoOp
        state["bias_vectors"] = rand(1, 512)
        state["meta_net.linear1.weight"], state["meta_net.linear1.bias"] = rand(512, 512), rand(512)
    if method == "CoCoOp":
        state["meta_net.linear1.weight"] = rand(vis // 16, vis)
        state["meta_net.linear1.bias"] = rand(vis // 16)
        state["meta_net.linear2.weight"] = rand(width, vis // 16)
        state["meta_net.linear2.bias"] = rand(width)
    state["token_prefix"] = rand(n_cls, 1, width)
    state["token_suffix"] = rand(n_cls, 72, width)
    return state


@pytest.mark.parametrize("method", ["CoOp", "KgCoOp", "CoCoOp"])
def test_evaluates_a_reference_checkpoint(build_trainer, tmp_path, capsys, method):
    state = reference_state(method)
    reference_checkpoint(tmp_path / "ref", state)
    trainer = build_trainer(method, subsample="new", output=tmp_path / "new", shots=1)
    capsys.readouterr()
    trainer.load_model(str(tmp_path / "ref"), epoch=10)
    loaded = trainer.model.prompt_learner.state_dict()
    assert set(loaded) == {k for k in state if not k.startswith(("token_", "bias_vectors"))
                           and not (method == "KgCoOp" and k.startswith("meta_net"))}
    for key, value in loaded.items():
        assert value.dtype == torch.float32 and torch.equal(value, state[key].float())
    log = capsys.readouterr().out
    assert "token_prefix, token_suffix (token embeddings of the classes" in log
    if method == "KgCoOp":
        assert "bias_vectors, meta_net.linear1.weight, meta_net.linear1.bias (not used by KgCoOp)" in log
    assert 0 <= trainer.test() <= 100
    result = json.loads((tmp_path / "new/results.json").read_text())
    assert result["checkpoint"]["epoch"] == 10 and result["epoch"] == 10  # the epoch evaluated


def test_reference_checkpoint_lacking_or_misfitting_a_tensor(build_trainer, make_cfg, tmp_path, capsys):
    from sar_prompt.errors import CheckpointError
    from sar_prompt.train import main

    path = reference_checkpoint(tmp_path / "coop", reference_state("CoOp", n_ctx=16))
    cocoop = build_trainer("CoCoOp", subsample="new", output=tmp_path / "a", shots=1)
    with pytest.raises(CheckpointError) as err:
        cocoop.load_model(str(tmp_path / "coop"), epoch=10)
    assert str(path) in str(err.value) and "meta_net.linear1.weight" in str(err.value)
    coop = build_trainer("CoOp", subsample="new", output=tmp_path / "b", shots=1)
    with pytest.raises(CheckpointError, match=r"ctx: \(16, 64\) in the checkpoint, \(4, 64\) here"):
        coop.load_model(str(tmp_path / "coop"), epoch=10)
    # on the command line: a message and exit code 2
    argv = ["--root", str(make_cfg().DATASET.ROOT), "--seed", "1", "--trainer", "CoCoOp",
            "--dataset-config-file", str(REPO / "configs/datasets/caltech101.yaml"),
            "--output-dir", str(tmp_path / "cli"), "--eval-only", "--model-dir",
            str(tmp_path / "coop"), "--load-epoch", "10", "INPUT.SIZE", "(32, 32)",
            "MODEL.BACKBONE.PATH", str(make_cfg().MODEL.BACKBONE.PATH), "USE_CUDA", "False",
            "DATALOADER.NUM_WORKERS", "0", "DATASET.NUM_SHOTS", "1",
            "DATASET.SUBSAMPLE_CLASSES", "new"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "lacks meta_net.linear1.weight" in err and "which CoCoOp needs" in err
