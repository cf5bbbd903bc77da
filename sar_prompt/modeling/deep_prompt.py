"""Deep prompts for both CLIP encoders (MaPLe, PromptSRC), as prompt learners of the interface
in `learner_interface.py`. They add tensors, not code, to CLIP: `TextEncoder` and `ImageEncoder`
place them around CLIP's own blocks.

Both keep CoOp's text context at the input (`ContextPromptLearner`, the words of CTX_INIT
initialising its first N tokens) and add, for a depth J, one prompt per block 1..J-1 of
the text encoder (replacing the context tokens' hidden states there) and vision prompts:
N_v tokens appended to the image tokens before the first block, replaced at blocks 1..J-1.

- MaPLe couples the two: each vision prompt is a learned linear projection of the text
  prompt of the same layer (the input one of the text context itself).
- PromptSRC's vision and text prompts are independent, each with its own length and depth.
"""
import copy

import torch
from torch import nn

from sar_prompt.errors import ConfigError
from sar_prompt.modeling.context_prompt import ContextPromptLearner
from sar_prompt.modeling.learner_interface import ImagePrompts, TextPrompts

PROMPT_STD = 0.02  # both references draw their prompts from N(0, 0.02^2)
MAX_INIT_CTX = 4  # both references initialise the context from CTX_INIT only up to 4 tokens


def context_init(ctx_init, n_ctx):
    """CTX_INIT as MaPLe and PromptSRC read it: the words initialise the first N_CTX context
    tokens when N_CTX <= 4; a longer context is drawn at random, CTX_INIT unused."""
    return ctx_init if n_ctx <= MAX_INIT_CTX else ""


def encoder_layers(clip_model):
    """Blocks of CLIP's text and vision transformers (vision: 0 for a ResNet)."""
    visual = clip_model.visual
    vision = len(visual.transformer.resblocks) if hasattr(visual, "class_embedding") else 0
    return len(clip_model.transformer.resblocks), vision


def check_prompt_depth(clip_model, depth, key, minimum=0, text=False, vision=False):
    """ConfigError naming `key` unless depth >= minimum (and, for vision prompts, the backbone
    is a ViT). A depth beyond an encoder's layers is accepted as the references accept it:
    the prompts for the missing layers go unused (MaPLe) or are not made (PromptSRC)."""
    if depth < minimum:
        raise ConfigError(f"{key} is {depth}; it must be at least {minimum}.")
    text_layers, vision_layers = encoder_layers(clip_model)
    if vision and depth and not vision_layers:
        raise ConfigError(f"{key} is {depth}: vision prompts need a ViT backbone, and "
                          "MODEL.BACKBONE.NAME is a ResNet. Use ViT-B/16.")
    for name, prompted, layers in (("text", text, text_layers), ("vision", vision, vision_layers)):
        if prompted and depth > layers:
            print(f"[sar_prompt] {key} is {depth}, but this CLIP's {name} encoder has {layers} "
                  f"layers: no {name} prompts for layers {layers + 1}..{depth}.")


def vision_width(clip_model):
    """Width of CLIP's vision transformer; deep vision prompts need a ViT backbone."""
    visual = clip_model.visual
    if not hasattr(visual, "class_embedding"):
        raise ValueError("vision prompts need a ViT backbone; this CLIP's image encoder is a ResNet")
    return visual.conv1.weight.shape[0]


def normal_prompts(count, n_tokens, width):
    """`count` prompts (n_tokens, width), drawn in order, in fp32 (as both references keep them,
    whatever CLIP's precision; the encoders cast them to the activations' dtype)."""
    prompts = nn.ParameterList([nn.Parameter(torch.empty(n_tokens, width)) for _ in range(count)])
    for prompt in prompts:
        nn.init.normal_(prompt, std=PROMPT_STD)
    return prompts


class DeepPromptLearner(ContextPromptLearner):
    """The text side both methods share: CoOp's context (shared by all classes, class name at
    the end) plus `text_deep_prompts()` for blocks 1.. of the text encoder."""

    def __init__(self, clip_model, text_encoder, classnames, n_ctx, ctx_init):
        super().__init__(clip_model, text_encoder, classnames, n_ctx=n_ctx, ctx_init=ctx_init,
                         init_tokens=n_ctx)

    # The reference code saves the whole model: the prompt learner under `prompt_learner.`
    # and, besides, CLIP's frozen weights.
    reference_frozen_prefixes = ("image_encoder.", "text_encoder.", "logit_scale",
                                 "prompt_learner.ZS_image_encoder.")

    @property
    def reference_keys(self):
        return {key: ("prompt_learner." + key,) for key in self.state_dict()}

    def text_deep_prompts(self):
        raise NotImplementedError

    def forward(self, tokens=None, index=None, condition=None) -> TextPrompts:
        prompts = super().forward(tokens, index, condition)
        prompts.deep = tuple(self.text_deep_prompts())
        return prompts


class MaPLePromptLearner(DeepPromptLearner):
    """MaPLe (Khattak et al., CVPR 2023): `depth` >= 1 layers of multi-modal prompts.

    Parameters, created in the reference's order: `ctx` (n_ctx, D_text); `proj`, the linear
    map of `ctx` to the vision input prompt; `compound_prompts_text` (depth-1 of (n_ctx,
    D_text)); `compound_prompt_projections`, one linear map per deep text prompt to its vision
    prompt, all initialised as copies of one layer, as in the reference."""

    def __init__(self, clip_model, text_encoder, classnames, n_ctx=2, ctx_init="a photo of a",
                 depth=9):
        if depth < 1:
            raise ValueError(f"MaPLe's prompt depth must be >= 1, got {depth}")
        super().__init__(clip_model, text_encoder, classnames, n_ctx, ctx_init)
        text_width, image_width = self.ctx.shape[-1], vision_width(clip_model)
        # fp16 in fp16 runs, like the context it maps (the reference makes it fp16 always)
        self.proj = nn.Linear(text_width, image_width).to(self.ctx.dtype)
        self.compound_prompts_text = normal_prompts(depth - 1, self.n_ctx, text_width)
        layer = nn.Linear(text_width, image_width)
        self.compound_prompt_projections = nn.ModuleList(
            copy.deepcopy(layer) for _ in range(depth - 1))

    def text_deep_prompts(self):
        return list(self.compound_prompts_text)

    def image_prompts(self):
        deep = [project(prompt) for project, prompt in
                zip(self.compound_prompt_projections, self.compound_prompts_text)]
        return ImagePrompts(self.proj(self.ctx), tuple(deep))


class IndependentPromptLearner(DeepPromptLearner):
    """PromptSRC's independent vision-language prompts (its reference calls the design IVLP).

    Text: `ctx` (n_ctx_text, D_text) at the input and `text_prompts` for blocks
    1..depth_text-1. Vision (if depth_vision >= 1): `vision_ctx` (n_ctx_vision, D_vision)
    appended to the image tokens and `vision_prompts` for blocks 1..depth_vision-1. Depths
    beyond an encoder's layers are capped to them."""

    def __init__(self, clip_model, text_encoder, classnames, n_ctx_text=4, n_ctx_vision=4,
                 ctx_init="a photo of a", depth_text=9, depth_vision=9):
        if depth_text < 1 or depth_vision < 0:
            raise ValueError("PromptSRC's text prompt depth must be >= 1 and its vision prompt "
                             f"depth >= 0, got {depth_text} and {depth_vision}")
        super().__init__(clip_model, text_encoder, classnames, n_ctx_text, ctx_init)
        # prompts only for layers the encoders have (the reference keeps them in CLIP's blocks)
        text_layers, vision_layers = encoder_layers(clip_model)
        depth_text, depth_vision = min(depth_text, text_layers), min(depth_vision, vision_layers)
        # The reference draws the vision prompts first, then the text ones (CLIP builds its
        # image tower first); its draws are interleaved with CLIP's own initialisation, so
        # only the order, not the values, can be the same here.
        self.depth_text, self.depth_vision = depth_text, depth_vision
        image_width = vision_width(clip_model) if depth_vision else 0
        self.vision_ctx = None
        if depth_vision:
            self.vision_ctx = nn.Parameter(normal_prompts(1, n_ctx_vision, image_width)[0].data)
        self.vision_prompts = normal_prompts(max(depth_vision - 1, 0), n_ctx_vision, image_width)
        self.text_prompts = normal_prompts(depth_text - 1, self.n_ctx, self.ctx.shape[-1])

    @property
    def reference_keys(self):
        """PromptSRC's reference keeps the deep prompts inside its modified CLIP blocks."""
        keys = {"ctx": ("prompt_learner.ctx",), "vision_ctx": ("image_encoder.VPT",)}
        for k in range(len(self.vision_prompts)):
            keys[f"vision_prompts.{k}"] = (f"image_encoder.transformer.resblocks.{k + 1}.VPT_shallow",)
        for k in range(len(self.text_prompts)):
            keys[f"text_prompts.{k}"] = (f"text_encoder.transformer.resblocks.{k + 1}.VPT_shallow",)
        return keys

    def text_deep_prompts(self):
        return list(self.text_prompts)

    def image_prompts(self):
        if self.vision_ctx is None:
            return None
        return ImagePrompts(self.vision_ctx, tuple(self.vision_prompts))
