"""Gaussian prompt aggregation (GPA, PromptSRC): the final prompts are a weighted sum of the
prompts at the end of each epoch, epoch e (1-based) weighted by a Gaussian density
N(e; mean, std), normalised over the run's epochs. Early, noisy epochs and late, overfitted
ones get little weight.

The running sum is part of a checkpoint's training state, so a resumed run aggregates
exactly as an uninterrupted one. Framework-agnostic: it sees state dicts only.
"""
import math

import torch

from sar_prompt.errors import ConfigError


def gaussian_epoch_weights(num_epochs, mean, std):
    """Weights of epochs 1..num_epochs: Gaussian densities at e, divided by their sum."""
    density = [math.exp(-0.5 * ((e - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))
               for e in range(1, num_epochs + 1)]
    total = sum(density)
    if not total > 0:
        raise ConfigError(
            f"GPA_MEAN {mean} is too far from the run's epochs 1..{num_epochs} for GPA_STD "
            f"{std}: every epoch's weight is 0. Choose GPA_MEAN within the epochs (PromptSRC: 15 "
            "of 20) or a larger GPA_STD.")
    return [d / total for d in density]


class PromptAggregation:
    """Running sum over epochs of `weight(epoch) * prompts`. Tensors are summed in at least
    fp32 (fp16 prompts of CUDA runs too) and cast back by `result`."""

    def __init__(self, weights):
        self.weights = list(weights)
        self.total = None  # name -> tensor
        self.epochs = []  # 0-based epochs added so far

    def add(self, epoch, state):
        """Add the prompts `state` (a state dict) as they are at the end of `epoch` (0-based)."""
        if epoch in self.epochs:
            return  # already in the sum (a checkpoint written after adding it was resumed)
        weight = self.weights[epoch]
        weighted = {k: _summable(v) * weight for k, v in state.items()}
        if self.total is None:
            self.total = weighted
        else:
            self.total = {k: self.total[k] + weighted[k] for k in self.total}
        self.epochs.append(epoch)

    def complete(self):
        return sorted(self.epochs) == list(range(len(self.weights)))

    def result(self, like):
        """The aggregated prompts, with the dtypes and devices of `like` (a state dict). If
        some epochs are missing from the sum, the weights of those present are renormalised."""
        if self.total is None:
            raise RuntimeError("no epoch has been aggregated")
        scale = 1.0
        if not self.complete():
            scale = 1.0 / sum(self.weights[e] for e in self.epochs)
        return {k: (self.total[k] * scale if scale != 1.0 else self.total[k]).to(
            dtype=v.dtype, device=v.device) for k, v in like.items()}

    def state_dict(self):
        return {"weights": list(self.weights), "epochs": list(self.epochs),
                "total": None if self.total is None else {k: v.detach().cpu().clone()
                                                          for k, v in self.total.items()}}

    def load_state_dict(self, state, device=None):
        self.epochs = list(state["epochs"])
        total = state["total"]
        self.total = None if total is None else {k: v.to(device) for k, v in total.items()}


def _summable(tensor):
    tensor = tensor.detach()
    if tensor.is_floating_point() and torch.finfo(tensor.dtype).bits < 32:
        tensor = tensor.float()
    return tensor
