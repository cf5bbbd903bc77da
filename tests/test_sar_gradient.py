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
    assert sar_gradient.gradient_norm(value, [weight], 1.0) == 0.0
    # 65536 (GradScaler's first scale) overflows fp16 here: a 256th of it is used instead
    for scale in (1024.0, 65536.0):
        norm = sar_gradient.gradient_norm(value, [weight], scale=scale)
        assert norm == pytest.approx(2e-8, rel=0.05)  # |(1e-8, 1e-8, 1e-8, 1e-8)|
    assert weight.grad is None  # nothing accumulated


def test_a_gradient_that_overflows_at_every_scale_but_none_is_taken_unscaled():
    weight = torch.ones(1, dtype=torch.float16, requires_grad=True)
    value = (weight * 40000.0).sum()  # d/dweight = 40000: fp16 holds it, not twice it
    assert sar_gradient.gradient_norm(value, [weight], 1024.0) == 40000.0


def test_a_term_without_gradient_has_norm_zero_and_an_infinite_ratio_is_said():
    weight = torch.ones(2, requires_grad=True)
    assert sar_gradient.gradient_norm(torch.tensor(3.0), [weight], 1.0) == 0.0
    other = torch.ones(2, requires_grad=True)  # a value with a graph, but not on `weight`
    assert sar_gradient.gradient_norm(other.sum(), [weight], 1.0) == 0.0
    ratio, line = sar_gradient.ratio_line(1, 2.0, 0.0, ["ce"])
    assert math.isinf(ratio) and "ratio inf" in line
    assert sar_gradient.ratio_line(1, 0.2, 0.5, ["ce"])[0] == pytest.approx(0.4)  # norms < 1


# -- the log's arithmetic on a hand-built step (no CLIP): norms, step numbers, the warning --
class _Learner(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ctx = torch.nn.Parameter(torch.zeros(2))
        self.frozen = torch.nn.Parameter(torch.zeros(2), requires_grad=False)


class _Step:
    def __init__(self, terms):
        self.terms = terms


def fake_trainer(epoch, batch_idx, num_batches=5, scale=None):
    from types import SimpleNamespace

    learner = _Learner()
    trainer = SimpleNamespace(epoch=epoch, batch_idx=batch_idx, num_batches=num_batches,
                              model=SimpleNamespace(prompt_learner=learner))
    trainer.written = capture_scalars(trainer)
    if scale is not None:
        trainer.scaler = SimpleNamespace(get_scale=lambda: scale)
    return trainer, learner.ctx


def hand_terms(ctx):
    """ce's gradient on ctx is (3, 4) (norm 5), sar's is (0, 2) (norm 2 before its weight);
    a zero-weight term with a gradient of its own is no part of the method's norm."""
    return {"ce": (1.0, ctx @ torch.tensor([3.0, 4.0])),
            "kg": (0.0, ctx @ torch.tensor([100.0, 0.0])),
            "sar": (2.0, ctx @ torch.tensor([0.0, 2.0]))}


def test_gradient_norm_is_the_euclidean_norm_over_all_parameters():
    a = torch.zeros(2, requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    unused = torch.zeros(3, requires_grad=True)
    value = a @ torch.tensor([1.0, 2.0]) + 2.0 * b.sum()
    # the gradient is (1, 2) on a and (2,) on b: norm 3
    assert sar_gradient.gradient_norm(value, [a, b, unused], 1.0) == pytest.approx(3.0)
    assert sar_gradient.gradient_norm(value, [a, b], scale=1024.0) == pytest.approx(3.0)


@pytest.mark.parametrize("scale", [None, 1024.0])
def test_the_log_on_a_hand_built_step(scale, capsys):
    # epoch 3 of 5 batches, batch 4: Dassl's n_iter is 19, the 20th step (a measured one)
    trainer, ctx = fake_trainer(epoch=3, batch_idx=4, scale=scale)
    log = sar_gradient.GradientScaleLog()
    ratio = log(trainer, _Step(hand_terms(ctx)), weight=30.0)
    # SAR: 30 * 2 = 60; the method: |(3, 4)| = 5 -> ratio 12, over WARN_RATIO
    assert ratio == pytest.approx(12.0)
    # the tag docs/world.md names
    assert trainer.written == [("train/sar_grad_ratio", pytest.approx(12.0), 19)]
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("[sar_prompt] SAR gradient scale, step 20: |grad SAR| 60, |grad ce| 5, "
                      "ratio 12")
    assert out[1].startswith("[sar_prompt] warning: SAR's gradient on the learnable prompt is "
                             "12x the method's (step 20)")
    assert "TRAINER.SAR.WEIGHT is 30; a WEIGHT of 2.5 would make them equal" in out[1]
    # warned once: the next measured step prints its ratio only
    trainer.epoch, trainer.batch_idx = 7, 9  # n_iter 44, step 45: not measured
    assert log(trainer, _Step(hand_terms(ctx)), weight=30.0) is None
    trainer.epoch, trainer.batch_idx = 7, 4  # n_iter 39, step 40
    assert log(trainer, _Step(hand_terms(ctx)), weight=30.0) == pytest.approx(12.0)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and "step 40" in out[0]
    assert [step for _, _, step in trainer.written] == [19, 39]


def test_the_log_names_every_weighted_method_term_and_stays_quiet_below_the_threshold(capsys):
    trainer, ctx = fake_trainer(epoch=0, batch_idx=0)
    terms = hand_terms(ctx)
    terms["kg"] = (0.5, ctx @ torch.tensor([0.0, -8.0]))  # method: (3, 4) + 0.5 (0, -8) = (3, 0)
    ratio = sar_gradient.GradientScaleLog()(trainer, _Step(terms), weight=1.0)
    assert ratio == pytest.approx(2.0 / 3.0)
    out = capsys.readouterr().out
    assert "|grad ce+kg| 3, ratio 0.667" in out and "warning" not in out


def test_the_log_measures_nothing_outside_the_training_loop(capsys):
    trainer, ctx = fake_trainer(epoch=0, batch_idx=0)
    del trainer.num_batches  # not inside Dassl's loop
    assert sar_gradient.GradientScaleLog()(trainer, _Step(hand_terms(ctx)), 1.0) is None
    trainer, ctx = fake_trainer(epoch=0, batch_idx=0)
    with torch.no_grad():
        assert sar_gradient.GradientScaleLog()(trainer, _Step(hand_terms(ctx)), 1.0) is None
    assert capsys.readouterr().out == "" and trainer.written == []


@pytest.mark.parametrize("weight, warns", [(25.0, False), (26.0, True)])
def test_the_warning_is_for_a_ratio_over_ten(weight, warns, capsys):
    """docs/config.md and docs/world.md promise a warning when SAR's gradient is over 10
    times the method's: ratio 50 / 5 = 10 is quiet, 52 / 5 = 10.4 warns."""
    trainer, ctx = fake_trainer(epoch=0, batch_idx=1)
    sar_gradient.GradientScaleLog()(trainer, _Step(hand_terms(ctx)), weight=weight)
    assert ("warning: SAR's gradient" in capsys.readouterr().out) == warns


def test_under_amp_the_norms_are_taken_at_the_gradient_scalers_scale(capsys):
    """fp16 gradients of 3e-9 to 6e-8 vanish (or round to fp16's smallest number) unscaled;
    at the GradScaler's scale they are measured: SAR 30 * |(0, 2e-9)| over |(3e-9, 4e-9)|."""
    ratios = {}
    for scale in (None, 1024.0):
        trainer, _ = fake_trainer(epoch=0, batch_idx=0, scale=scale)
        ctx = trainer.model.prompt_learner.ctx
        ctx.data = ctx.data.half()
        tiny = 1e-5  # times the fp16 weights below: gradients of a few 1e-9
        terms = {"ce": (1.0, (ctx * torch.tensor([3e-4, 4e-4]).half()).sum() * tiny),
                 "sar": (30.0, (ctx * torch.tensor([0.0, 2e-4]).half()).sum() * tiny)}
        ratios[scale] = sar_gradient.GradientScaleLog()(trainer, _Step(terms), weight=30.0)
    assert math.isinf(ratios[None])  # the method's gradient underflowed to 0
    assert ratios[1024.0] == pytest.approx(12.0, rel=0.05)


def test_the_warning_text():
    assert sar_gradient.warning(3, 40.0, 10.0) == (
        "[sar_prompt] warning: SAR's gradient on the learnable prompt is 40x the method's "
        "(step 3): SAR, not the task, drives the context. TRAINER.SAR.WEIGHT is 10; a WEIGHT "
        "of 0.25 would make them equal at this step (docs/world.md shows what this did in the "
        "synthetic world).")


def test_the_warning_suggests_a_weight_only_for_a_finite_positive_ratio():
    assert "a WEIGHT of 0.25 would make them equal" in sar_gradient.warning(3, 40.0, 10.0)
    assert "a WEIGHT of 20 would make them equal" in sar_gradient.warning(3, 0.5, 10.0)
    for ratio in (math.inf, 0.0):
        text = sar_gradient.warning(3, ratio, 10.0)
        assert "would make them equal" not in text and "TRAINER.SAR.WEIGHT is 10 (" in text
