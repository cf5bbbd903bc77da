"""Tokenising prompts with CLIP's BPE, with errors that name the offending text. Counting
tokens needs no torch: see bpe.py."""
import torch

from sar_prompt.errors import NovelClassesError
from sar_prompt.modeling.backbone import import_clip
from sar_prompt.modeling.bpe import CONTEXT_LENGTH, bpe, token_count, too_long  # noqa: F401  (torch-free)


def tokenize(texts, source="prompt", error=NovelClassesError):
    """Token ids (N, 77) of `texts`; texts that do not fit are all reported at once."""
    texts = list(texts)
    bad = too_long(texts)
    if bad:
        shown = "; ".join(f"{t!r} ({n} tokens)" for t, n in bad[:5])
        raise error(f"{source}: {len(bad)} prompt(s) exceed CLIP's {CONTEXT_LENGTH}-token limit: "
                    f"{shown}. Shorten those names.")
    return import_clip().tokenize(texts, context_length=CONTEXT_LENGTH)


def eot_positions(token_ids: torch.Tensor) -> torch.Tensor:
    """Index of the end-of-text token in each row (it has the largest id in CLIP's vocabulary)."""
    return token_ids.argmax(dim=-1)


def shared_prefix_length(token_ids: torch.Tensor, eot: torch.Tensor) -> int:
    """How many leading positions are the same token in every row (the start token and any
    words before the class name), at most up to the first end-of-text token: those positions
    have the same hidden states in every row, since CLIP's text attention is causal."""
    same = (token_ids == token_ids[:1]).all(dim=0)
    differing = (~same).nonzero()
    length = int(differing[0]) if len(differing) else token_ids.shape[1]
    return min(length, int(eot.min()))
