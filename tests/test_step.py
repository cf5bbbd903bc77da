"""The training step's cost-related behaviour: SAR's novel classes in the method's own text
pass, the WEIGHT 0 diagnostic only when printed, one read from the device per step, and the
low-memory text-pass options."""
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


def test_weight_zero_computes_the_diagnostic_only_on_printed_steps(build_trainer, tmp_path):
    trainer = build_trainer("CoOpSAR", "TRAINER.SAR.WEIGHT", "0", "TRAIN.PRINT_FREQ", "4",
                            output=tmp_path)
    state = trainer.sar.generator.get_state()
    assert "sar" not in first_step(trainer, batch_idx=0)  # batch 1 of 9: not printed
    assert torch.equal(trainer.sar.generator.get_state(), state)  # nothing sampled
    assert first_step(trainer, batch_idx=3)["sar"] >= 0  # batch 4: printed


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
    trainer.num_batches, trainer.batch_idx = 10, 0
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
    trainer.num_batches, trainer.batch_idx = 10, 0
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
