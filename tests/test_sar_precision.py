"""The SAR variants in fp16 and amp, on a CPU (SAR_PROMPT_CPU_HALF=1). No reference
implementation exists, so each is held to its method and to its own fp32 run: WEIGHT 0
trains exactly as the method (losses and final tensors bit for bit, the same dtypes), SAR's
similarity matrices and loss are fp32 and finite whatever the precision (under amp they
run outside autocast), and each step's loss is within fp16 rounding of the same step in
fp32.

One epoch each. The comparison with fp32 runs at learning rate 0: every step then sees the
same parameters in both runs, so it measures each step's precision, not how far two
trajectories drift apart (SAR's temperature of 0.01 amplifies fp16 rounding along a
trajectory, and an amp run's gradient scaler skips the first steps, whose half-precision
gradients overflow at its initial scale, as it does on a GPU).
"""
import math

import pytest
import torch

import sar_prompt.sar
from test_fidelity_fp16 import ULPS, assert_within_ulps, method_opts
from test_fidelity_deep import vision2_clip_path  # noqa: F401 (a fixture)
from test_trainers import record_steps

VARIANTS = ("CoOp", "KgCoOp", "CoCoOp", "MaPLe", "PromptSRC")
ONE_EPOCH = ("OPTIM.MAX_EPOCH", "1", "TEST.NO_TEST", "True")
STILL = ("OPTIM.LR", "0.0", "OPTIM.WARMUP_CONS_LR", "0.0")  # the parameters never move
_fp32_runs = {}


@pytest.fixture
def run(build_trainer, tmp_path, one_thread, monkeypatch, vision2_clip_path):  # noqa: F811
    """Train `trainer` (a method or its SAR variant) for one epoch in `precision`; return
    its per-step summaries, final learnable tensors, and the dtypes of SAR's similarity
    matrices and loss."""
    monkeypatch.setenv("SAR_PROMPT_CPU_HALF", "1")
    counter = iter(range(100))

    def train(method, trainer_name, precision, *extra):
        _, opts = method_opts(method, precision, {"vision2": vision2_clip_path})
        trainer = build_trainer(trainer_name, *opts, *ONE_EPOCH, *extra,
                                output=tmp_path / str(next(counter)))
        assert trainer.precision == precision
        seen = set()
        alignment = sar_prompt.sar.similarity_alignment_loss

        def recording(learned, target, *args, **kwargs):
            loss = alignment(learned, target, *args, **kwargs)
            seen.add((learned.dtype, target.dtype, loss.dtype))
            return loss

        monkeypatch.setattr(sar_prompt.sar, "similarity_alignment_loss", recording)
        steps = record_steps(trainer)
        final = {k: v.clone() for k, v in trainer.model.prompt_learner.state_dict().items()}
        return steps, final, seen

    return train


@pytest.mark.parametrize("precision", ["fp16", "amp"])
@pytest.mark.parametrize("method", VARIANTS)
def test_weight_zero_trains_exactly_as_the_method(run, method, precision):
    method_steps, method_final, _ = run(method, method, precision)
    steps, final, sar_dtypes = run(method, method + "SAR", precision, "TRAINER.SAR.WEIGHT", "0")
    assert [s["loss"] for s in steps] == [s["loss"] for s in method_steps]
    assert final.keys() == method_final.keys()
    for key, value in final.items():
        assert value.dtype == method_final[key].dtype and torch.equal(value, method_final[key])
    # the diagnostic is still computed, in fp32, on every printed step (all of them here)
    assert all(math.isfinite(s["sar"]) for s in steps)
    assert sar_dtypes == {(torch.float32,) * 3}


@pytest.mark.parametrize("precision", ["fp16", "amp"])
@pytest.mark.parametrize("method", VARIANTS)
def test_sar_is_fp32_and_each_step_is_within_fp16_rounding_of_fp32(run, method, precision):
    if method not in _fp32_runs:
        _fp32_runs[method] = run(method, method + "SAR", "fp32", *STILL)
    fp32_steps, fp32_final, _ = _fp32_runs[method]
    steps, final, sar_dtypes = run(method, method + "SAR", precision, *STILL)
    assert sar_dtypes == {(torch.float32,) * 3}  # under amp too: outside autocast
    assert all(math.isfinite(s["sar"]) and s["sar"] >= 0 for s in steps)
    assert_within_ulps([s["loss"] for s in steps], [s["loss"] for s in fp32_steps], ULPS)
    method_dtypes = {k: v.dtype for k, v in run(method, method, precision)[1].items()}
    assert {k: v.dtype for k, v in final.items()} == method_dtypes
    if precision == "amp":  # amp trains fp32 tensors
        assert set(method_dtypes.values()) == {torch.float32} == {
            v.dtype for v in fp32_final.values()}
