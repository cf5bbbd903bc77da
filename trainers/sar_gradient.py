"""SAR's gradient scale, made visible.

On a run's first training steps (1 to 5, then 10, 20, 40, 80, ...) a SAR variant measures
the norm of the SAR term's gradient (weight included) on the prompt learner's learnable
parameters and the norm of the method's own terms' gradient on the same parameters, prints
their ratio and writes it to TensorBoard (`train/sar_grad_ratio`, Dassl's `write_scalar`).
When SAR's is more than WARN_RATIO times the method's, it warns once, naming
TRAINER.SAR.WEIGHT: SAR then drives the context more than the task does.

The gradients come from `torch.autograd.grad` on the step's graph, kept for the step's own
backward pass: nothing is added to any `.grad` and no random number is drawn, so training
is exactly what it is without the log. Under AMP both terms are scaled by the loss scale, as
the backward pass scales them, so fp16 gradients do not underflow (the ratio is the same at
any scale); where the scaled gradient overflows, a smaller scale is tried. A measured step
reads its two norms from the device (the other steps read it once, as before).
"""
import math

import torch

FIRST_STEPS = 5
WARN_RATIO = 10.0
TAG = "train/sar_grad_ratio"


def logged_step(n):
    """Whether the 1-based training step `n` is measured: 1 to FIRST_STEPS, then 10 * 2**k."""
    if n <= FIRST_STEPS:
        return True
    tens, rest = divmod(n, 10)
    return rest == 0 and tens & (tens - 1) == 0


def gradient_norm(value, params, scale):
    """The norm of d(value)/d(params), computed at `scale` times the value and divided
    back (fp16 gradients too small to hold unscaled are kept); where that overflows, at a
    256th of the scale, then unscaled. 0 when `value` does not depend on `params`."""
    if not isinstance(value, torch.Tensor) or not value.requires_grad:
        return 0.0
    norm = math.inf
    for factor in dict.fromkeys((scale, scale / 256, 1.0)):
        grads = torch.autograd.grad(value * factor, params, retain_graph=True,
                                    allow_unused=True)
        squares = [g.detach().float().pow(2).sum() for g in grads if g is not None]
        if not squares:
            return 0.0
        norm = math.sqrt(float(torch.stack(squares).sum())) / factor
        if math.isfinite(norm):
            return norm
    return norm


def ratio_line(step, sar_norm, method_norm, method_terms):
    ratio = sar_norm / method_norm if method_norm > 0 else math.inf
    line = (f"[sar_prompt] SAR gradient scale, step {step}: |grad SAR| {sar_norm:.3g}, "
            f"|grad {'+'.join(method_terms)}| {method_norm:.3g}, ratio {ratio:.3g}")
    return ratio, line


def warning(step, ratio, weight):
    suggestion = ""
    if math.isfinite(ratio) and ratio > 0:
        suggestion = (f"; a WEIGHT of {weight / ratio:.2g} would make them equal at this "
                      "step")
    return (f"[sar_prompt] warning: SAR's gradient on the learnable prompt is {ratio:.3g}x "
            f"the method's (step {step}): SAR, not the task, drives the context. "
            f"TRAINER.SAR.WEIGHT is {weight:g}{suggestion} (docs/world.md shows what this "
            "did in the synthetic world).")


class GradientScaleLog:
    """What a SARMixin trainer calls each training step with the step's output."""

    def __init__(self):
        self.warned = False

    def __call__(self, trainer, out, weight):
        batches = getattr(trainer, "num_batches", None)
        if batches is None or not torch.is_grad_enabled():
            return None  # not inside Dassl's training loop
        n_iter = trainer.epoch * batches + trainer.batch_idx  # Dassl's x-axis
        if not logged_step(n_iter + 1):
            return None
        params = [p for p in trainer.model.prompt_learner.parameters() if p.requires_grad]
        scaler = getattr(trainer, "scaler", None)
        scale = float(scaler.get_scale()) if scaler is not None else 1.0
        _, sar_value = out.terms["sar"]
        method = [(name, w, v) for name, (w, v) in out.terms.items() if name != "sar" and w != 0]
        sar_norm = gradient_norm(weight * sar_value, params, scale)
        method_norm = gradient_norm(sum(w * v for _, w, v in method), params, scale)
        ratio, line = ratio_line(n_iter + 1, sar_norm, method_norm, [n for n, _, _ in method])
        print(line, flush=True)
        trainer.write_scalar(TAG, ratio if math.isfinite(ratio) else float("nan"), n_iter)
        if ratio > WARN_RATIO and math.isfinite(sar_norm) and not self.warned:
            self.warned = True
            print(warning(n_iter + 1, ratio, weight), flush=True)
        return ratio
