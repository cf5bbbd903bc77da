"""What a prompt learner offers the prompted CLIP model, and through it SAR.

A prompt learner is an `nn.Module` that owns the learnable prompt tensors and turns a set
of class names into text-encoder input. `PromptedCLIP` composes one with CLIP's frozen
encoders; SAR and KgCoOp never see the learner's internals, only two calls:

    tokens = learner.class_tokens(names)         # once, for any names (SAR's novel classes)
    feats = model.text_features(tokens, index)   # each step: the rows `index` of `tokens`

`model.text_features` calls `learner(tokens, index, condition)` and encodes the result.
A new method (CoCoOp's image-conditioned context, MaPLe's and PromptSRC's deep prompts)
implements this protocol and is then trained, evaluated, checkpointed and given a SAR
variant by the shared trainer code without further changes.
"""
from dataclasses import dataclass
from typing import Optional, Protocol, Sequence, runtime_checkable

import torch


@dataclass
class TextPrompts:
    """Text-encoder input for `rows` prompts.

    embeddings: (rows, L, D) token embeddings, the learnable context included.
    eot: (rows,) position of each row's end-of-text token (the encoder reads features there
        and runs only up to the longest one).
    deep: per-layer prompts; `deep[k]` replaces the hidden states of the context tokens
        (positions 1 .. 1+n) at the input of transformer block k+1. Each is (n, D), shared
        by all rows, or (rows, n, D). Empty for methods with input-level prompts only.
    length: positions the encoder runs, max(eot) + 1 or more; a Python int known when the
        prompts are built, so the encoder never reads `eot` back from the device (None:
        it does, from `eot`).
    shared_prefix: the first `shared_prefix` positions are the same in every row of a group
        (start token, context, any fixed words before the class name), and so are the
        deep prompts there; the encoder then runs them once per group (0: no sharing).
    groups: rows form this many consecutive groups of equal size (an image-conditioned
        learner: one per image), each with its own shared prefix.
    eot_list: `eot` as Python ints, known when the prompts are built: the encoder then
        runs each row only up to its own EOT (None: every row up to `length`).
    """
    embeddings: torch.Tensor
    eot: torch.Tensor
    deep: Sequence[torch.Tensor] = ()
    length: Optional[int] = None
    shared_prefix: int = 0
    groups: int = 1
    eot_list: Optional[Sequence[int]] = None


@dataclass
class ImagePrompts:
    """Prompts of the image encoder (ViT backbones).

    shallow: (n, D) or (B, n, D) tokens appended after the patch tokens, once the
        positional embedding is added (before `ln_pre`).
    deep: `deep[k]` replaces the prompt tokens' hidden states at the input of transformer
        block k+1; (n, D) or (B, n, D).
    """
    shallow: Optional[torch.Tensor] = None
    deep: Sequence[torch.Tensor] = ()


@runtime_checkable
class PromptLearner(Protocol):
    """The protocol (structural: no base class needed).

    conditioned: True when the text prompts depend on the image (CoCoOp). Then
        `forward` takes `condition`, the batch's normalised image features, and text
        features cannot be computed once for a whole evaluation.
    classes: the dataset's classes as `class_tokens`, built at construction.

    class_tokens(names, source) -> tokens: frozen token embeddings of `names` in this
        prompt, as a module of non-persistent buffers (rebuilt for each class set, never
        saved, so a checkpoint trained on base classes loads for new ones). `len(tokens)`
        is the number of names. `source` names where the names come from, for errors
        (e.g. a name too long for CLIP's 77 tokens).
    forward(tokens=None, index=None, condition=None) -> TextPrompts: prompts for `tokens`
        (default: `classes`), only the rows `index` if given. With `condition` (B, E), one
        set of prompts per image, image-major: B * len(rows) rows.
    image_prompts() -> ImagePrompts or None: prompts for the image encoder, or None when
        the image path has nothing learnable (then it runs without a graph).

    `state_dict()` must hold exactly the learnable tensors a checkpoint needs; keys that a
    reference implementation names differently can be listed in a `reference_keys`
    attribute ({our key: (reference key, ...)}), see `sar_prompt.dassl_glue.reference_state`.
    """

    conditioned: bool
    classes: torch.nn.Module

    def class_tokens(self, names, source="class names") -> torch.nn.Module:
        ...

    def forward(self, tokens=None, index=None, condition=None) -> TextPrompts:
        ...

    def image_prompts(self) -> Optional[ImagePrompts]:
        ...
