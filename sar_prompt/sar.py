"""Similarity Alignment Regularization (SAR), framework-agnostic.

SAR keeps the class-to-class similarity structure that the learnable prompts give the
base classes and related *novel* classes (names never seen in training) close to the
structure the frozen hand-crafted prompt gives them. Each step it samples novel classes,
builds the cosine-similarity matrix of base + sampled novel text features under both
prompts, and returns a loss between the two matrices.

The SAR paper's abstract fixes the idea, not the formula. Our reading, each part a
config option (TRAINER.SAR.*):
- `kl` (default): for each class, a softmax over its similarities to the other classes
  (temperature TEMPERATURE), and KL(hand-crafted || learned), averaged over classes.
  `l1` / `mse`: mean absolute / squared difference of the similarities.
- EXCLUDE_SELF: a class's similarity to itself is 1 under both prompts and carries no
  structure, so it is left out of every row.
- NUM_NOVEL: novel classes sampled per step (0 = all), from a generator of SAR's own so
  that sampling never shifts the host method's random stream.
The loss is computed in fp32 in every precision (fp16 features are upcast, and autocast is
off for it).
"""
import torch
import torch.nn.functional as F
from torch import nn

from sar_prompt.modeling.precision import outside_autocast
from sar_prompt.modeling.transfer import to_device

LOSSES = ("kl", "l1", "mse")


def off_diagonal(matrix):
    """(N, N) -> (N, N-1): each row without its diagonal entry."""
    n = matrix.shape[0]
    keep = ~torch.eye(n, dtype=torch.bool, device=matrix.device)
    return matrix[keep].view(n, n - 1)


def similarity_alignment_loss(learned, target, loss="kl", temperature=0.01, exclude_self=True):
    """Loss between two cosine-similarity matrices (N, N) of the same classes."""
    if exclude_self and learned.shape[0] > 1:
        learned, target = off_diagonal(learned), off_diagonal(target)
    if loss == "kl":
        log_p_learned = F.log_softmax(learned / temperature, dim=-1)
        log_p_target = F.log_softmax(target / temperature, dim=-1)
        return F.kl_div(log_p_learned, log_p_target, log_target=True, reduction="batchmean")
    if loss == "l1":
        return (learned - target).abs().mean()
    if loss == "mse":
        return (learned - target).pow(2).mean()
    raise ValueError(f"unknown SAR loss {loss!r}; use one of {LOSSES}")


class SimilarityAlignment(nn.Module):
    """SAR for one set of base classes and one list of novel classes.

    Args:
        target_features: normalised hand-crafted text features (B + K, E), the B base
            classes first, then the K novel classes; computed once, without gradients.
        num_base: B.
        num_novel: novel classes per step; 0 or >= K means all of them.
        seed: seeds SAR's own sampling generator (None: nondeterministic).
    """

    def __init__(self, target_features, num_base, num_novel=0, loss="kl", temperature=0.01,
                 exclude_self=True, seed=None):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"unknown SAR loss {loss!r}; use one of {LOSSES}")
        if temperature <= 0:
            raise ValueError(f"SAR temperature must be > 0, got {temperature}")
        self.register_buffer("target_features", target_features.detach().float(),
                             persistent=False)
        self.num_base = num_base
        self.num_novel_total = target_features.shape[0] - num_base
        self.num_novel = num_novel
        self.loss = loss
        self.temperature = temperature
        self.exclude_self = exclude_self
        self.generator = torch.Generator()
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)

    def sample_novel(self):
        """Indices (into the novel list) of the novel classes used this step, on the CPU
        (SAR's generator is a CPU one, so runs sample the same classes on any device)."""
        k = self.num_novel_total
        if self.num_novel <= 0 or self.num_novel >= k:
            return torch.arange(k)
        return torch.randperm(k, generator=self.generator)[: self.num_novel]

    def forward(self, base_features, novel_features, novel_index):
        """SAR loss given the learnable prompts' normalised features of the base classes
        (B, E) and of the novel classes `novel_index` (k, E)."""
        # in fp32 whatever the run's precision: outside autocast, which would run the
        # similarity products in half precision under amp
        with outside_autocast(base_features.device):
            learned = torch.cat([base_features, novel_features]).float()
            target = torch.cat([self.target_features[:self.num_base],
                                self.target_features[self.num_base:][
                                    to_device(novel_index, self.target_features.device)]])
            return similarity_alignment_loss(learned @ learned.t(), target @ target.t(),
                                             self.loss, self.temperature, self.exclude_self)
