"""SAR's gradient scale: on the first training steps the ratio of SAR's gradient norm to the
method's, on the learnable prompt, is printed and written to TensorBoard; a SAR term that
dominates warns once, naming TRAINER.SAR.WEIGHT; and measuring it changes no number."""
import math

import pytest
import torch

from sar_prompt.trainers import sar_gradient

RANDOM_CONTEXT = ("TRAINER.COOP.CTX_INIT", "", "TRAINER.COOP.N_CTX", "4")


def steps(trainer, count):
    """`count` training steps of Dassl's loop (epoch 0, batches 0 .. count - 1)."""
    trainer.set_model_mode("train")
    trainer.num_batches = len(trainer.train_loader_x)
    batches = iter(trainer.train_loader_x)
    out = []
    for trainer.batch_idx in range(count):
        out.append(trainer.forward_backward(next(batches)))
    return out


def capture_scalars(trainer):
    written = []
    trainer.write_scalar = lambda tag, value, step=None: written.append((tag, value, step))
    return written


def test_the_measured_steps_are_the_first_five_then_ten_doubling():
    measured = [n for n in range(1, 700) if sar_gradient.logged_step(n)]
    assert measured == [1, 2, 3, 4, 5, 10, 20, 40, 80, 160, 320, 640]


def test_the_ratio_is_printed_and_written_and_a_dominating_sar_warns_once(build_trainer,
                                                                          tmp_path, capsys):
    trainer = build_trainer("CoOpSAR", *RANDOM_CONTEXT, "TRAINER.SAR.WEIGHT", "1000",
                            output=tmp_path)
    written = capture_scalars(trainer)
    steps(trainer, 3)
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "SAR gradient scale" in line]
    assert [line.split(":")[0] for line in lines] == [
        f"[sar_prompt] SAR gradient scale, step {n}" for n in (1, 2, 3)]
    assert "|grad ce|" in lines[0]
    assert [(tag, step) for tag, _, step in written] == [(sar_gradient.TAG, n) for n in range(3)]
    ratios = [float(line.rsplit("ratio ", 1)[1]) for line in lines]
    assert ratios == pytest.approx([value for _, value, _ in written], rel=1e-2)
    assert ratios[0] > sar_gradient.WARN_RATIO
    warnings = [line for line in out.splitlines() if "warning: SAR's gradient" in line]
    assert len(warnings) == 1 and "TRAINER.SAR.WEIGHT is 1000" in warnings[0]
    assert "step 1" in warnings[0]


def test_a_small_sar_term_is_measured_without_a_warning(build_trainer, tmp_path, capsys):
    trainer = build_trainer("CoOpSAR", *RANDOM_CONTEXT, "TRAINER.SAR.WEIGHT", "1e-6",
                            output=tmp_path)
    capture_scalars(trainer)
    steps(trainer, 1)
    out = capsys.readouterr().out
    assert "SAR gradient scale, step 1" in out and "warning: SAR's gradient" not in out


def test_weight_zero_measures_nothing(build_trainer, tmp_path, capsys):
    trainer = build_trainer("CoOpSAR", *RANDOM_CONTEXT, "TRAINER.SAR.WEIGHT", "0",
                            output=tmp_path)
    written = capture_scalars(trainer)
    steps(trainer, 1)
    assert "SAR gradient scale" not in capsys.readouterr().out and not written


def test_measuring_changes_no_number(build_trainer, tmp_path, monkeypatch):
    """The same seed with and without the measurement: the same losses and the same
    learned prompt, bit for bit, after several steps (each of them measured)."""
    results = {}
    for measured in (True, False):
        if not measured:
            monkeypatch.setattr(sar_gradient, "logged_step", lambda n: False)
        trainer = build_trainer("CoOpSAR", *RANDOM_CONTEXT, "TRAINER.SAR.WEIGHT", "5",
                                output=tmp_path / str(measured))
        capture_scalars(trainer)
        summaries = steps(trainer, 3)
        results[measured] = (summaries, [p.detach().clone() for p in
                                         trainer.model.prompt_learner.parameters()])
    assert results[True][0] == results[False][0]
    assert all(torch.equal(a, b) for a, b in zip(results[True][1], results[False][1]))


def test_the_norm_is_taken_at_the_loss_scale_so_fp16_gradients_do_not_underflow():
    weight = torch.ones(4, dtype=torch.float16, requires_grad=True)
    value = (weight * 1e-4).sum() * 1e-4  # d/dweight = 1e-8: below fp16's smallest number
    assert sar_gradient.gradient_norm(value, [weight]) == 0.0
    # 65536 (GradScaler's first scale) overflows fp16 here: a 256th of it is used instead
    for scale in (1024.0, 65536.0):
        norm = sar_gradient.gradient_norm(value, [weight], scale=scale)
        assert norm == pytest.approx(2e-8, rel=0.05)  # |(1e-8, 1e-8, 1e-8, 1e-8)|
    assert weight.grad is None  # nothing accumulated


def test_a_term_without_gradient_has_norm_zero_and_an_infinite_ratio_is_said():
    weight = torch.ones(2, requires_grad=True)
    assert sar_gradient.gradient_norm(torch.tensor(3.0), [weight]) == 0.0
    ratio, line = sar_gradient.ratio_line(1, 2.0, 0.0, ["ce"])
    assert math.isinf(ratio) and "ratio inf" in line
