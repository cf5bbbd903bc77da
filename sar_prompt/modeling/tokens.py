"""Tokenising prompts with CLIP's BPE, with errors that name the offending text."""
import torch

from ..errors import NovelClassesError
from .backbone import import_clip

CONTEXT_LENGTH = 77  # CLIP's text context, start and end tokens included

_tokenizer = None


def bpe():
    global _tokenizer
    if _tokenizer is None:
        _tokenizer = import_clip().simple_tokenizer.SimpleTokenizer()
    return _tokenizer


def token_count(text: str) -> int:
    """BPE tokens of `text`, without the start/end tokens."""
    return len(bpe().encode(text))


def too_long(texts):
    """(text, total tokens) for each text that does not fit CLIP's context with start/end tokens."""
    out = []
    for text in texts:
        n = token_count(text) + 2
        if n > CONTEXT_LENGTH:
            out.append((text, n))
    return out


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
