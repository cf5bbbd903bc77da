"""The training step: SAR's novel classes in the method's own text pass, the WEIGHT 0
diagnostic only when printed and without a graph, CoCoOpSAR's CONDITION in a training step,
one read from the device per step, the low-memory text-pass options, and the rest of
`forward_backward` (which steps Dassl prints, the non-finite loss check, the schedule)."""
import pytest
import torch

from sar_prompt.errors import ConfigError

SAR_TRAINERS = ["CoOpSAR", "KgCoOpSAR", "CoCoOpSAR"]
DEEP_OPTS = ("TRAINER.MAPLE.PREC", "fp32", "TRAINER.MAPLE.PROMPT_DEPTH", "2",
             "TRAINER.PROMPTSRC.PREC", "fp32", "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", "2",
             "TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", "1", "TRAINER.PROMPTSRC.N_CTX_TEXT", "2",
             "TRAINER.PROMPTSRC.N_CTX_VISION", "2", "TRAINER.MAPLE.N_CTX", "2")


def first_step(trainer, batch_idx=0):
    trainer.set_model_mode("train")
    trainer.num_batches, trainer.batch_idx = len(trainer.train_loader_x), batch_idx
    return trainer.forward_backward(next(iter(trainer.train_loader_x)))


@pytest.mark.parametrize("name", SAR_TRAINERS + ["MaPLeSAR"])
def test_novel_classes_in_the_methods_text_pass_give_the_same_step(build_trainer, tmp_path,
                                                                   monkeypatch, name):
    """The sampled novel classes join the classes' text pass: the same step as separate
    passes, one pass fewer, and each prompt encoded once (SAR reads the novel features
    from that pass and does not encode them again)."""
    from sar_prompt.modeling import prompted_clip

    passes = []
    steps = {}
    for mode in ("joined", "separate"):
        if mode == "separate":
            monkeypatch.setattr(prompted_clip, "JOIN_SLACK", 0.0)
        trainer = build_trainer(name, *DEEP_OPTS, output=tmp_path / mode)
        original = trainer.text_encoder.encode
        trainer.text_encoder.encode = lambda p, original=original: (
            passes.append((mode, p.eot.shape[0])), original(p))[1]
        steps[mode] = first_step(trainer)
        grads = [p.grad for p in trainer.model.prompt_learner.parameters() if p.grad is not None]
        assert grads
    assert steps["joined"].keys() == steps["separate"].keys()
    for key, value in steps["joined"].items():
        assert value == pytest.approx(steps["separate"][key], rel=1e-5, abs=1e-6), key
    joined = [rows for mode, rows in passes if mode == "joined"]
    separate = [rows for mode, rows in passes if mode == "separate"]
    assert len(joined) == len(separate) - 1  # one pass fewer, as many rows
    assert sum(joined) == sum(separate)
    images = len(next(iter(trainer.train_loader_x))["img"]) if trainer.model.conditioned else 1
    novel = min(trainer.cfg.TRAINER.SAR.NUM_NOVEL, trainer.sar.num_novel_total)
    assert sum(joined) == images * (len(trainer.dm.dataset.classnames) + novel)


def test_weight_zero_computes_the_diagnostic_only_on_printed_steps(build_trainer, tmp_path):
    trainer = build_trainer("CoOpSAR", "TRAINER.SAR.WEIGHT", "0", "TRAIN.PRINT_FREQ", "4",
                            output=tmp_path)
    state = trainer.sar.generator.get_state()
    assert "sar" not in first_step(trainer, batch_idx=0)  # batch 1 of 9: not printed
    assert torch.equal(trainer.sar.generator.get_state(), state)  # nothing sampled
    assert first_step(trainer, batch_idx=3)["sar"] >= 0  # batch 4: printed


def test_the_weight_zero_diagnostic_holds_no_graph(build_trainer, tmp_path):
    """Guards "without gradients" of the WEIGHT 0 diagnostic: in a training step (autograd
    on) SAR's term is computed with autograd off, so it keeps no graph in memory."""
    trainer = build_trainer("CoOpSAR", "TRAINER.SAR.WEIGHT", "0", output=tmp_path)
    batch = next(iter(trainer.train_loader_x))
    trainer.set_model_mode("train")
    trainer.num_batches, trainer.batch_idx = 1, 0  # printed
    out = trainer.step(batch["img"], batch["label"])
    assert out.terms["ce"][1].requires_grad
    weight, sar = out.terms["sar"]
    assert weight == 0 and not sar.requires_grad


@pytest.mark.parametrize("condition", ["batch_mean", "none"])
def test_cocoopsars_condition_reaches_the_training_step(build_trainer, tmp_path, condition):
    """Guards TRAINER.SAR.CONDITION in a training step of CoCoOpSAR: with `batch_mean` or
    `none`, SAR's term is that of the class text features the mode names (written out
    here), not of the per-image ones of the method's own text pass (`each_image`)."""
    import torch.nn.functional as F

    trainer = build_trainer("CoCoOpSAR", "TRAINER.SAR.CONDITION", condition, output=tmp_path)
    model = trainer.model
    batch = next(iter(trainer.train_loader_x))
    trainer.set_model_mode("train")
    trainer.num_batches, trainer.batch_idx = len(trainer.train_loader_x), 0
    before = trainer.sar.generator.get_state()
    out = trainer.step(batch["img"], batch["label"])
    trainer.sar.generator.set_state(before)
    index = trainer.sar.sample_novel()  # the step's draw
    prompts = ((None, None), (trainer.novel_tokens, index))
    with torch.no_grad():
        images = out.image_features
        mean_image = F.normalize(images.mean(0, keepdim=True), dim=-1)
        read = {"batch_mean": mean_image, "none": None}[condition]
        expected = trainer.sar(*[model.class_text_features(t, i, read) for t, i in prompts],
                               index)
        each_image = trainer.sar(*[model.class_text_features(t, i, images) for t, i in prompts],
                                 index)
    tolerance = 1e-5 * abs(float(expected)) + 1e-7
    assert abs(float(expected) - float(each_image)) > 10 * tolerance  # the test can tell
    assert abs(float(out.terms["sar"][1].detach()) - float(expected)) <= tolerance


@pytest.mark.parametrize("name", SAR_TRAINERS + ["MaPLeSAR", "PromptSRCSAR"])
def test_a_step_reads_the_device_once(build_trainer, tmp_path, monkeypatch, name):
    """`item`, `int`, `float`, `bool` and `tolist` of a tensor on the device make the host wait;
    the step does one batched `tolist`, of the logged values. (CPU tensors stand in for
    device ones here; on CUDA the test below checks with torch's sync debug mode.)"""
    trainer = build_trainer(name, *DEEP_OPTS, output=tmp_path)
    batch = next(iter(trainer.train_loader_x))
    reads = []
    real_tolist = torch.Tensor.tolist

    def refuse(what):
        def method(self, *args, **kwargs):
            raise AssertionError(f"{what} of a tensor during the step")
        return method

    def tolist(self):
        reads.append(tuple(self.shape))
        return real_tolist(self)

    for what in ("item", "__int__", "__float__", "__bool__", "__index__"):
        monkeypatch.setattr(torch.Tensor, what, refuse(what))
    monkeypatch.setattr(torch.Tensor, "tolist", tolist)
    index = trainer.sar.sample_novel
    monkeypatch.setattr(trainer.sar, "sample_novel", lambda: index().clone())
    trainer.set_model_mode("train")
    # step 6: not a step whose SAR gradient scale is measured (those read two norms more)
    trainer.num_batches, trainer.batch_idx = 10, 5
    summary = trainer.forward_backward(batch)
    monkeypatch.undo()
    device_reads = [shape for shape in reads if shape != (trainer.cfg.TRAINER.SAR.NUM_NOVEL,)]
    assert device_reads == [(len(summary),)]  # the logged values, at once


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["CoOpSAR", "CoCoOpSAR", "MaPLeSAR", "PromptSRCSAR"])
def test_a_cuda_step_synchronises_once(build_trainer, tmp_path, name):
    import warnings

    trainer = build_trainer(name, *DEEP_OPTS, "USE_CUDA", "True", output=tmp_path)
    batch = {k: v.cuda() if torch.is_tensor(v) else v
             for k, v in next(iter(trainer.train_loader_x)).items()}
    trainer.set_model_mode("train")
    # step 6: not a step whose SAR gradient scale is measured (those read two norms more)
    trainer.num_batches, trainer.batch_idx = 10, 5
    trainer.forward_backward(batch)  # warm-up: lazy CUDA initialisation may synchronise
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            trainer.forward_backward(batch)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) == 1, [str(w.message) for w in syncs]


def test_low_memory_text_pass_gives_the_same_step(build_trainer, tmp_path):
    plain = first_step(build_trainer("CoOpSAR", "MODEL.TEXT_ENCODER.CHUNK_SIZE", "8",
                                     output=tmp_path / "chunks"))
    low = first_step(build_trainer("CoOpSAR", "MODEL.TEXT_ENCODER.CHUNK_SIZE", "8",
                                   "MODEL.TEXT_ENCODER.CHECKPOINT", "True",
                                   output=tmp_path / "checkpointed"))
    assert low == plain  # recomputed in the backward pass, bit for bit


@pytest.mark.parametrize("key,value", [("MODEL.TEXT_ENCODER.CHUNK_SIZE", "-1"),
                                       ("MODEL.TEXT_ENCODER.CHECKPOINT", "'yes'")])
def test_bad_text_encoder_options_are_named(build_trainer, key, value):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_trainer("CoOpSAR", key, value)


def test_the_steps_dassl_prints_are_the_steps_logged():
    """Guards `logged_this_step` (the WEIGHT 0 diagnostic runs only on the steps it names)
    against Dassl's printing rule written out here: batch i of n is printed when
    (i + 1) % PRINT_FREQ == 0, or on every batch when n < PRINT_FREQ. Outside Dassl's epoch
    loop (no `num_batches`) every step counts as printed; no `batch_idx` counts as batch 0."""
    from types import SimpleNamespace

    from sar_prompt.trainers.base import PromptTuningTrainer

    def logged(freq, **position):
        trainer = SimpleNamespace(cfg=SimpleNamespace(TRAIN=SimpleNamespace(PRINT_FREQ=freq)),
                                  **position)
        return PromptTuningTrainer.logged_this_step(trainer)

    for freq in (1, 2, 4, 5):
        for num_batches in (1, 3, 4, 5, 9):
            for batch_idx in range(num_batches):
                expected = (batch_idx + 1) % freq == 0 or num_batches < freq
                assert logged(freq, num_batches=num_batches, batch_idx=batch_idx) == expected
    assert logged(4)  # a step outside the epoch loop
    assert not logged(2, num_batches=9)  # batch 1 of 9, printed every 2
    assert logged(1, num_batches=9)


def test_a_non_finite_loss_stops_the_run_before_the_update(build_trainer, tmp_path):
    """Guards the anomaly check of `forward_backward` without AMP: a NaN loss raises Dassl's
    error, with Dassl's words, and the prompts are not updated with its gradient."""
    trainer = build_trainer("CoOp", output=tmp_path)
    step = trainer.step

    def nan_step(image, label, extra_text=()):
        out = step(image, label, extra_text)
        weight, ce = out.terms["ce"]
        out.terms["ce"] = (weight, ce * float("nan"))
        return out

    trainer.step = nan_step
    before = [p.detach().clone() for p in trainer.model.prompt_learner.parameters()]
    with pytest.raises(FloatingPointError, match=r"^Loss is infinite or NaN!$"):
        first_step(trainer)
    after = list(trainer.model.prompt_learner.parameters())
    assert all(torch.equal(b, a) for b, a in zip(before, after))


def test_the_learning_rate_steps_after_an_epochs_last_batch(build_trainer, tmp_path):
    """Guards when `forward_backward` steps the schedule: once an epoch, after its last
    batch (as Dassl's own forward_backward does), not after any other."""
    trainer = build_trainer("CoOp", output=tmp_path)
    batch = next(iter(trainer.train_loader_x))
    stepped = []
    trainer.update_lr = lambda names=None: stepped.append(trainer.batch_idx)
    trainer.set_model_mode("train")
    trainer.num_batches = 3
    for trainer.batch_idx in range(3):
        trainer.forward_backward(batch)
    assert stepped == [2]
