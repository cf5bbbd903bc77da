"""MaPLe, PromptSRC and their SAR variants as trainers: the step written out from CLIP's own
modules, only learnable tensors change, SAR at weight 0 is the method bit for bit,
Gaussian prompt aggregation in the final checkpoint, reference checkpoints and configs."""
import json

import pytest
import torch
import torch.nn.functional as F

from conftest import REPO, TINY_TRAINER_OPTS, build_in_suite
from test_deep_prompts import clip_image_pass, clip_text_pass, deep_clip_path  # noqa: F401
from test_trainers import record_steps

# the demo dataset (5 base classes; few prompts for PromptSRC's 60 templates), 4 shots,
# batch 4, 1 epoch; prompts in blocks 0 and 1 of the 3-block CLIP
DEEP = ("OPTIM.MAX_EPOCH", "1", "DATALOADER.TRAIN_X.BATCH_SIZE", "4",
        "TRAINER.MAPLE.PREC", "fp32", "TRAINER.MAPLE.PROMPT_DEPTH", "2",
        "TRAINER.PROMPTSRC.PREC", "fp32", "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", "2",
        "TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", "2")


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    from sar_prompt.orchestration.demo import prepare

    root = tmp_path_factory.mktemp("demo_data")
    prepare(root)
    return root


@pytest.fixture
def build_deep(demo_root, deep_clip_path, tmp_path):
    """A trainer on the demo dataset and the 3-block CLIP, seeded like train.py."""
    import sar_prompt  # noqa: F401
    from dassl.engine import build_trainer
    from dassl.utils import set_random_seed
    from sar_prompt.train import build_parser, setup_cfg

    def build(name, *opts, output=None, subsample="base", shots=4):
        argv = ["--root", str(demo_root), "--seed", "1", "--trainer", name,
                "--dataset-config-file", str(REPO / "configs/datasets/demo.yaml"),
                "--output-dir", str(output or tmp_path / "out"), *TINY_TRAINER_OPTS,
                "MODEL.BACKBONE.PATH", str(deep_clip_path), "DATASET.NUM_SHOTS", str(shots),
                "DATASET.SUBSAMPLE_CLASSES", subsample, *DEEP, *opts]
        cfg = setup_cfg(build_parser().parse_args(argv))
        set_random_seed(cfg.SEED)
        return build_trainer(cfg)
    return build


def first_batch(trainer, n=4):
    batch = next(iter(trainer.train_loader_x))
    return batch["img"][:n], batch["label"][:n]


def handwritten_logits(trainer, images, shallow, deep_image, deep_text):
    """The prompted model's logits computed on CLIP's own modules."""
    clip, learner = trainer.clip_model, trainer.model.prompt_learner
    from sar_prompt.modeling.tokens import tokenize

    ids = tokenize(learner.prompt_texts(trainer.dm.dataset.classnames))
    embedding = clip.token_embedding(ids)
    prompts = torch.cat([embedding[:, :1], learner.ctx.expand(len(ids), -1, -1),
                         embedding[:, 1 + learner.n_ctx:]], dim=1)
    text = F.normalize(clip_text_pass(clip, prompts, ids, deep_text), dim=-1)
    image = F.normalize(clip_image_pass(clip, images, shallow, deep_image), dim=-1)
    return clip.logit_scale.exp() * image @ text.t(), image, text


def assert_same_loss_and_grads(trainer, loss, images, labels, terms=None):
    params = [p for p in trainer.model.prompt_learner.parameters() if p.requires_grad]
    expected_grads = torch.autograd.grad(loss, params, allow_unused=True)
    out = trainer.step(images, labels)
    total = out.total()
    assert total.item() == pytest.approx(loss.item(), abs=1e-5)
    for name, value in (terms or {}).items():
        assert out.terms[name][1].item() == pytest.approx(value.item(), abs=1e-6), name
    for ours, theirs in zip(torch.autograd.grad(total, params, allow_unused=True), expected_grads):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


def test_maple_step_is_its_algorithm_on_clips_own_modules(build_deep, tmp_path):
    trainer = build_deep("MaPLe", output=tmp_path)
    learner = trainer.model.prompt_learner
    images, labels = first_batch(trainer)
    deep_text = [learner.compound_prompts_text[0]]
    deep_image = [learner.compound_prompt_projections[0](deep_text[0])]
    logits, _, _ = handwritten_logits(trainer, images, learner.proj(learner.ctx), deep_image,
                                      deep_text)
    assert_same_loss_and_grads(trainer, F.cross_entropy(logits, labels), images, labels)


def test_promptsrc_step_is_its_algorithm_on_clips_own_modules(build_deep, tmp_path):
    trainer = build_deep("PromptSRC", output=tmp_path)
    learner, clip = trainer.model.prompt_learner, trainer.clip_model
    images, labels = first_batch(trainer)
    logits, image, text = handwritten_logits(trainer, images, learner.vision_ctx,
                                             list(learner.vision_prompts),
                                             list(learner.text_prompts))
    from sar_prompt.modeling.tokens import tokenize
    from sar_prompt.templates import PROMPTSRC_TEMPLATES

    names = [n.replace("_", " ") for n in trainer.dm.dataset.classnames]
    with torch.no_grad():  # the frozen model: the 60 templates' features averaged, then normalised
        frozen_text = F.normalize(torch.stack([clip.encode_text(tokenize([t.format(n) for n in names]))
                                               for t in PROMPTSRC_TEMPLATES]).mean(0), dim=-1)
        frozen_image = F.normalize(clip.encode_image(images), dim=-1)
        frozen_logits = clip.logit_scale.exp() * frozen_image @ frozen_text.t()
    terms = {"ce": F.cross_entropy(logits, labels),
             "scl_text": F.l1_loss(text, frozen_text),
             "scl_image": F.l1_loss(image, frozen_image),
             "scl_logits": F.kl_div(F.log_softmax(logits, 1), F.log_softmax(frozen_logits, 1),
                                    reduction="sum", log_target=True) / logits.numel()}
    loss = terms["ce"] + terms["scl_logits"] + 25 * terms["scl_text"] + 10 * terms["scl_image"]
    assert_same_loss_and_grads(trainer, loss, images, labels, terms)


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict(keep_vars=True).items()}


@pytest.mark.parametrize("name", ["MaPLeSAR", "PromptSRCSAR"])
def test_a_step_changes_only_the_learnable_tensors(build_deep, tmp_path, name):
    trainer = build_deep(name, output=tmp_path)
    learnable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert learnable == {"prompt_learner." + k for k in trainer.model.prompt_learner.state_dict()}
    # one CLIP: no second (frozen) copy for PromptSRC's zero-shot image features
    clip_params = {id(p) for p in trainer.clip_model.parameters()}
    assert all(id(p) in clip_params for n, p in trainer.model.named_parameters()
               if n not in learnable)
    before = snapshot(trainer.model)
    trainer.set_model_mode("train")
    trainer.num_batches, trainer.batch_idx = len(trainer.train_loader_x), 0
    summary = trainer.forward_backward(next(iter(trainer.train_loader_x)))
    changed = {k for k, v in snapshot(trainer.model).items() if not torch.equal(before[k], v)}
    assert changed == learnable
    assert "sar" in summary


def per_epoch_prompts(trainer):
    """Record the learner's state at the end of each epoch, before aggregation."""
    states = []
    original = trainer.gpa.add

    def add(epoch, state):
        states.append({k: v.detach().clone() for k, v in state.items()})
        return original(epoch, state)

    trainer.gpa.add = add
    return states


@pytest.mark.parametrize("method", ["MaPLe", "PromptSRC"])
def test_sar_variant_with_weight_zero_is_the_method_bit_for_bit(build_deep, tmp_path, method):
    opts = ("TEST.NO_TEST", "True")
    plain = build_deep(method, *opts, output=tmp_path / "plain")
    plain_steps = record_steps(plain)  # (built and trained in turn: they share the global RNG)
    sar = build_deep(method + "SAR", *opts, "TRAINER.SAR.WEIGHT", "0.0", output=tmp_path / "sar")
    sar_steps = record_steps(sar)
    assert len(plain_steps) == len(sar_steps) == 5
    for a, b in zip(plain_steps, sar_steps):
        assert all(b[k] == a[k] for k in a)
    assert all(s["sar"] > 0 for s in sar_steps)  # computed and logged, not trained on
    for key, value in plain.model.prompt_learner.state_dict().items():
        assert torch.equal(sar.model.prompt_learner.state_dict()[key], value)


def test_promptsrc_final_checkpoint_holds_the_gaussian_aggregate_also_when_resumed(
        build_deep, tmp_path, capsys):
    from sar_prompt.modeling.gpa import gaussian_epoch_weights

    opts = ("OPTIM.MAX_EPOCH", "3", "TRAINER.PROMPTSRC.GPA_MEAN", "2",
            "TRAINER.PROMPTSRC.GPA_STD", "1", "TEST.NO_TEST", "True", "TRAIN.CHECKPOINT_FREQ", "1")
    trainer = build_deep("PromptSRC", *opts, output=tmp_path / "whole")
    states = per_epoch_prompts(trainer)
    capsys.readouterr()
    trainer.train()
    assert ("[sar_prompt] GPA: the final prompts aggregate epochs 1-3 with Gaussian weights "
            "(mean 2, std 1)\n") in capsys.readouterr().out
    weights = gaussian_epoch_weights(3, 2, 1)
    final = torch.load(tmp_path / "whole/prompt_learner/model.pth.tar-3", weights_only=True)
    assert list(final["state_dict"]) == list(states[0])  # learnable tensors only
    for key in states[0]:
        expected = states[0][key] * weights[0] + states[1][key] * weights[1] + \
            states[2][key] * weights[2]
        assert torch.equal(final["state_dict"][key], expected)
        assert torch.equal(trainer.model.prompt_learner.state_dict()[key], expected)
        assert not torch.equal(expected, states[2][key])
    # an earlier checkpoint holds that epoch's prompts, and the aggregate so far
    second = torch.load(tmp_path / "whole/prompt_learner/model.pth.tar-2", weights_only=True)
    assert all(torch.equal(second["state_dict"][k], states[1][k]) for k in states[1])
    assert second["training_state"]["gpa"]["epochs"] == [0, 1]

    # stopped after epoch 2, then resumed: the same aggregate, bit for bit
    class Stop(Exception):
        pass

    stopped = build_deep("PromptSRC", *opts, output=tmp_path / "resumed")
    after_epoch = stopped.after_epoch

    def stop_after_second():
        after_epoch()
        if stopped.epoch == 1:
            raise Stop
    stopped.after_epoch = stop_after_second
    with pytest.raises(Stop):
        stopped.train()
    resumed = build_deep("PromptSRC", *opts, output=tmp_path / "resumed")
    resumed.train()
    assert resumed.start_epoch == 2
    again = torch.load(tmp_path / "resumed/prompt_learner/model.pth.tar-3", weights_only=True)
    for key, value in final["state_dict"].items():
        assert torch.equal(again["state_dict"][key], value)


# -- checkpoints written by the reference implementations: the whole model -----------------
def whole_model_checkpoint(folder, learner_state, reference_keys, epoch=5):
    """A checkpoint as MaPLe's / PromptSRC's code saves it: every tensor of its model
    (fp16, as they train), under the reference's own names."""
    gen = torch.Generator().manual_seed(3)
    state = {}
    for key, value in learner_state.items():
        state[reference_keys[key][0]] = (value + torch.randn(value.shape, generator=gen)).half()
    state["prompt_learner.token_prefix"] = torch.zeros(5, 1, 64).half()
    state["prompt_learner.token_suffix"] = torch.zeros(5, 72, 64).half()
    for k in range(3):
        state[f"image_encoder.transformer.resblocks.{k}.attn.in_proj_weight"] = torch.zeros(192, 64)
        state[f"text_encoder.transformer.resblocks.{k}.mlp.c_fc.weight"] = torch.zeros(256, 64)
    state["prompt_learner.ZS_image_encoder.conv1.weight"] = torch.zeros(64, 3, 16, 16)
    state["logit_scale"] = torch.tensor(4.6)
    path = folder / f"model.pth.tar-{epoch}"
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": state, "epoch": epoch, "optimizer": None, "scheduler": None}, path)
    return state


@pytest.mark.parametrize("method,folder", [("MaPLe", "MultiModalPromptLearner"),
                                           ("PromptSRC", "VLPromptLearner")])
def test_evaluates_a_reference_checkpoint(build_deep, tmp_path, capsys, method, folder):
    trainer = build_deep(method, subsample="new", output=tmp_path / "new")
    learner = trainer.model.prompt_learner
    saved = whole_model_checkpoint(tmp_path / "ref" / folder, learner.state_dict(),
                                   learner.reference_keys)
    capsys.readouterr()
    trainer.load_model(str(tmp_path / "ref"), epoch=5)
    for key, value in learner.state_dict().items():
        assert value.dtype == torch.float32
        assert torch.equal(value, saved[learner.reference_keys[key][0]].float())
    log = capsys.readouterr().out
    assert "prompt_learner.token_prefix, prompt_learner.token_suffix (token embeddings" in log
    assert "image_encoder.* (3 keys), text_encoder.* (3 keys)" in log
    assert "logit_scale (frozen CLIP weights" in log
    assert 0 <= trainer.test() <= 100
    assert json.loads((tmp_path / "new/results.json").read_text())["checkpoint"]["epoch"] == 5
    if method == "PromptSRC":  # evaluating needs no frozen text features (60 templates)
        assert trainer._frozen_text is None


def reference_suite_cfg():
    """The config a MaPLe/PromptSRC-repository train.py builds (its own extend_cfg: the
    nodes and defaults it declares), then sar_prompt's."""
    import sar_prompt
    from dassl.config import get_cfg_default
    from yacs.config import CfgNode as CN

    cfg = get_cfg_default()
    cfg.TRAINER.COOP = CN(dict(N_CTX=16, CSC=False, CTX_INIT="", PREC="fp16",
                               CLASS_TOKEN_POSITION="end"))
    cfg.TRAINER.COCOOP = CN(dict(N_CTX=16, CTX_INIT="", PREC="fp16"))
    cfg.TRAINER.MAPLE = CN(dict(N_CTX=2, CTX_INIT="a photo of a", PREC="fp16", PROMPT_DEPTH=9))
    cfg.TRAINER.PROMPTSRC = CN(dict(
        N_CTX_VISION=4, N_CTX_TEXT=4, CTX_INIT="a photo of a", PREC="fp16",
        PROMPT_DEPTH_VISION=9, PROMPT_DEPTH_TEXT=9, TEXT_LOSS_WEIGHT=25, IMAGE_LOSS_WEIGHT=10,
        GPA_MEAN=15, GPA_STD=1))
    cfg.TRAINER.IVLP = CN(dict(N_CTX_VISION=2, N_CTX_TEXT=2, CTX_INIT="a photo of a",
                               PREC="fp16", PROMPT_DEPTH_VISION=9, PROMPT_DEPTH_TEXT=9))
    cfg.DATASET.SUBSAMPLE_CLASSES = "all"
    sar_prompt.extend_cfg(cfg)
    return cfg


@pytest.mark.parametrize("trainer_name,config", [
    ("MaPLeSAR", "MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml"),
    ("PromptSRCSAR", "PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx.yaml")])
def test_reference_config_file_in_a_reference_suite(tmp_path, tmp_path_factory, trainer_name,
                                                    config):
    """The reference config file unchanged (depth 9, batch 4, ...) on a tiny CLIP with nine
    blocks per encoder; only the image size, weights, data and length are overridden."""
    from sar_prompt.orchestration.demo import write_tiny_clip

    clip_path = tmp_path_factory.getbasetemp() / "tiny_clip_9.pt"
    if not clip_path.exists():
        write_tiny_clip(clip_path, seed=0, vision_layers=9, transformer_layers=9)
    trainer = build_in_suite(reference_suite_cfg(), config, trainer_name, clip_path, tmp_path,
                             shots=2)
    learner = trainer.model.prompt_learner
    if trainer_name == "MaPLeSAR":
        assert learner.n_ctx == 2 and len(learner.compound_prompts_text) == 8
    else:
        assert learner.n_ctx == 4 and len(learner.text_prompts) == len(learner.vision_prompts) == 8
        assert learner.vision_ctx.shape == (4, 64) and trainer.gpa.weights[-1] == 1.0
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    steps = record_steps(trainer)
    assert len(steps) == 2 and all(torch.isfinite(torch.tensor(s["loss"])) for s in steps)
    assert all(not torch.equal(before[k], v) for k, v in learner.state_dict().items())
    assert json.loads((tmp_path / "out/results.json").read_text())["trainer"] == trainer_name


def test_maple_base_checkpoint_evaluates_new_classes(build_deep, tmp_path):
    base = build_deep("MaPLeSAR", "TEST.NO_TEST", "True", output=tmp_path / "base")
    base.train()
    trained = {k: v.clone() for k, v in base.model.prompt_learner.state_dict().items()}
    saved = torch.load(tmp_path / "base/prompt_learner/model.pth.tar-1", weights_only=True)
    assert list(saved["state_dict"]) == list(trained)  # learnable tensors only
    new = build_deep("MaPLeSAR", subsample="new", output=tmp_path / "new")
    new.load_model(str(tmp_path / "base"), epoch=1)
    for key, value in trained.items():
        assert torch.equal(new.model.prompt_learner.state_dict()[key], value)
    accuracy = new.test()
    result = json.loads((tmp_path / "new/results.json").read_text())
    assert result["subsample_classes"] == "new" and result["accuracy"] == pytest.approx(accuracy)


@pytest.mark.slow  # the script itself: test_base2new_script.py; PromptSRC's GPA: above
def test_base2new_script(tmp_path, deep_clip_path):
    """scripts/base2new.sh with PromptSRCSAR: train on the base classes, evaluate the final
    (aggregated) checkpoint on the new ones, print the table (demo dataset, 2 shots, 1 epoch)."""
    from test_base2new_script import accuracy, run_script, table_rows

    trainer = "PromptSRCSAR"

    out = tmp_path / "out"
    proc = run_script("demo", trainer, "MODEL.BACKBONE.PATH", str(deep_clip_path), *DEEP,
                      cwd=tmp_path, DATA=str(tmp_path / "data"), OUTPUT=str(out), SEEDS="1",
                      SHOTS="2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the trailing options name the config folder: demo__<their tag>
    folder, = (out / "base2new/train_base/demo/shots_2" / trainer).iterdir()
    assert folder.name.startswith("demo__")
    common = f"demo/shots_2/{trainer}/{folder.name}/seed1"
    (base, new, _), = table_rows(proc.stdout).values()
    assert base == pytest.approx(accuracy(out / "base2new/train_base" / common), abs=0.01)
    assert new == pytest.approx(accuracy(out / "base2new/test_new" / common), abs=0.01)
    result = json.loads((out / "base2new/test_new" / common / "results.json").read_text())
    assert result["subsample_classes"] == "new" and result["checkpoint"]["epoch"] == 1
    train_log = (out / "base2new/train_base" / common / "log.txt").read_text()  # quiet terminal
    assert "GPA: the final prompts aggregate epochs 1" in train_log


def test_every_maple_and_promptsrc_config_loads_in_a_reference_suite():
    files = sorted((REPO / "configs/trainers").glob("MaPLe/*.yaml")) + \
        sorted((REPO / "configs/trainers").glob("PromptSRC/*.yaml"))
    assert len(files) == 5
    for file in files:
        cfg = reference_suite_cfg()
        cfg.merge_from_file(str(file))
        if "MaPLe" in file.parts:
            assert cfg.TRAINER.MAPLE.N_CTX == 2 and cfg.TRAINER.MAPLE.PROMPT_DEPTH in (3, 9)
        else:
            assert cfg.TRAINER.PROMPTSRC.TEXT_LOSS_WEIGHT == 25
            assert cfg.OPTIM.MAX_EPOCH in (20, 50) and cfg.DATALOADER.TRAIN_X.BATCH_SIZE == 4


@pytest.mark.parametrize("trainer, key, minimum", [
    ("MaPLe", "TRAINER.MAPLE.PROMPT_DEPTH", 1),
    ("PromptSRC", "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", 1),
    ("PromptSRC", "TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", 0)])
def test_each_methods_prompt_depths_are_checked_under_their_own_keys(build_deep, capsys,
                                                                    trainer, key, minimum):
    from sar_prompt.errors import ConfigError

    if minimum:
        with pytest.raises(ConfigError) as err:
            build_deep(trainer, key, "0")
        assert str(err.value) == f"{key} is 0; it must be at least 1."
    build_deep(trainer, key, "5")  # the 3-block CLIP: prompts for blocks 4 and 5 go unused
    out = capsys.readouterr().out
    for encoder in (["text", "vision"] if trainer == "MaPLe" else
                    ["text"] if key.endswith("TEXT") else ["vision"]):
        assert (f"[sar_prompt] {key} is 5, but this CLIP's {encoder} encoder has 3 layers: "
                f"no {encoder} prompts for layers 4..5.") in out
    assert out.count(f"{key} is 5") == (2 if trainer == "MaPLe" else 1)


def test_zero_shot_clip_says_which_prompts_and_that_it_only_evaluates(build_deep, capsys,
                                                                     monkeypatch):
    from sar_prompt.modeling import precision

    requested = []
    effective = precision.effective_precision
    monkeypatch.setattr(precision, "effective_precision",
                        lambda prec, device: requested.append(prec) or effective(prec, device))
    trainer = build_deep("ZeroshotCLIP")
    assert requested == ["fp16"]  # no PREC key: fp16, as the references' zero-shot CLIP
    assert "[sar_prompt] zero-shot prompts: a photo of a {}.\n" in capsys.readouterr().out
    trainer.test = lambda: print("tested")
    trainer.train()
    assert capsys.readouterr().out == ("[sar_prompt] ZeroshotCLIP has nothing to train; "
                                       "evaluating.\ntested\n")


def test_promptsrc_resumed_from_a_checkpoint_without_its_aggregate(build_deep, capsys):
    trainer = build_deep("PromptSRC")
    state = trainer.training_state(0)
    assert trainer.restore_training_state(state, "ckpt") is True  # the aggregate restored
    del state["gpa"]
    capsys.readouterr()
    assert trainer.restore_training_state(state, "ckpt") is False
    assert capsys.readouterr().out == (
        "[sar_prompt] ckpt holds no prompt aggregate (GPA): the final prompts will aggregate "
        "only the epochs still to run, their weights renormalised.\n")


def test_only_sar_variants_require_the_sar_keys(build_deep):
    """A host suite's config without TRAINER.SAR runs the plain methods."""
    from sar_prompt.errors import ConfigError

    for name in ("ZeroshotCLIP", "MaPLe", "MaPLeSAR"):
        trainer = build_deep(name)
        cfg = trainer.cfg.clone()
        cfg.defrost()
        del cfg.TRAINER["SAR"]
        if name.endswith("SAR"):
            with pytest.raises(ConfigError, match="TRAINER.SAR"):
                trainer.check_cfg(cfg)
        else:
            trainer.check_cfg(cfg)


def test_the_epochs_the_gaussian_aggregate_covers_as_ranges():
    from sar_prompt.trainers.promptsrc import _ranges

    assert _ranges([0, 1, 2]) == "1-3"
    assert _ranges([4]) == "5"
    assert _ranges([3, 0, 1]) == "1, 2, 4"
    assert _ranges([1, 2, 5, 6]) == "2, 3, 6, 7"


def test_the_hand_crafted_prompt_a_method_uses(build_deep):
    """The node's TEMPLATE where the node has one (CoOp's, CoCoOp's), else the dataset's."""
    assert build_deep("MaPLeSAR").handcrafted_templates() == ("a photo of a {}.",)
    assert build_deep("KgCoOp").handcrafted_templates() == ("a photo of a {}.",)
    kgcoop = build_deep("KgCoOp", "TRAINER.COOP.TEMPLATE", "a {} in the wild.")
    assert kgcoop.handcrafted_templates() == ("a {} in the wild.",)


def test_clip_is_loaded_at_the_image_size_it_takes_and_with_the_checkpoint_trust(
        build_deep, deep_clip_path, tmp_path, monkeypatch, capsys):
    from sar_prompt.errors import ConfigError, WeightsError
    from sar_prompt.modeling.torch_load import TRUST_ENV
    from test_input_guards import RunsCode

    trainer = build_deep("CoOp")
    name, size = trainer.cfg.MODEL.BACKBONE.NAME, trainer.clip_model.visual.input_resolution
    assert f"[sar_prompt] loading CLIP {name} (fp32)\n" in capsys.readouterr().out
    with pytest.raises(ConfigError) as err:
        build_deep("CoOp", "INPUT.SIZE", "(8, 8)")
    assert str(err.value) == (f"INPUT.SIZE is (8, 8), but this CLIP takes {size}x{size} "
                              f"images; set INPUT.SIZE ({size}, {size}).")
    holding_code = tmp_path / "clip_with_code.pt"
    torch.save({"state_dict": torch.load(deep_clip_path, weights_only=True),
                "extra": RunsCode()}, holding_code)
    monkeypatch.delenv(TRUST_ENV, raising=False)
    with pytest.raises(WeightsError, match="holds Python code"):
        build_deep("CoOp", "MODEL.BACKBONE.PATH", str(holding_code))
    with pytest.warns(UserWarning, match="full unpickle"):
        build_deep("CoOp", "MODEL.BACKBONE.PATH", str(holding_code),
                   "MODEL.TRUST_CHECKPOINT_CODE", "True")


def test_hand_crafted_features_in_another_dtype_come_from_a_copy_of_the_encoder(
        build_deep, monkeypatch):
    """PromptSRC's fp32 frozen features in an fp16 run (SAR_PROMPT_CPU_HALF: fp16 on a CPU)."""
    monkeypatch.setenv("SAR_PROMPT_CPU_HALF", "1")
    trainer = build_deep("PromptSRC", "TRAINER.PROMPTSRC.PREC", "fp16")
    names = trainer.dm.dataset.classnames
    assert trainer.text_encoder.dtype == torch.float16
    half = trainer.handcrafted_features(names, "names")
    full = trainer.handcrafted_features(names, "names", dtype=torch.float32)
    assert half.dtype == torch.float16 and full.dtype == torch.float32
    torch.testing.assert_close(full.half(), half, atol=2e-2, rtol=0)
    assert trainer.text_encoder.dtype == torch.float16  # the run's encoder is left as it was
