"""CoCoOp's prompt (Zhou et al., CVPR 2022): CoOp's shared context plus a bias computed from
each image by a small meta-net, so every image gets its own prompts for all classes:

    ctx_b = ctx + meta_net(image feature b)    meta_net: linear, ReLU, linear; hidden = E / 16
"""
from collections import OrderedDict

import torch
from torch import nn

from sar_prompt.modeling.context_prompt import ContextPromptLearner
from sar_prompt.modeling.learner_interface import TextPrompts


class ConditionalPromptLearner(ContextPromptLearner):
    conditioned = True

    def __init__(self, clip_model, text_encoder, classnames, n_ctx=16, ctx_init=""):
        # The context first, then the meta-net: CoCoOp draws its random numbers in this order.
        super().__init__(clip_model, text_encoder, classnames, n_ctx=n_ctx, ctx_init=ctx_init)
        vis_dim = clip_model.visual.output_dim
        width = clip_model.ln_final.weight.shape[0]
        self.meta_net = nn.Sequential(OrderedDict([
            ("linear1", nn.Linear(vis_dim, vis_dim // 16)),
            ("relu", nn.ReLU(inplace=True)),
            ("linear2", nn.Linear(vis_dim // 16, width)),
        ])).to(clip_model.dtype)

    def forward(self, tokens=None, index=None, condition=None) -> TextPrompts:
        """Without `condition`, the shared context alone (the meta-net's bias off). With
        `condition` (B, E), the normalised image features, B * rows prompts, image-major."""
        if condition is None:
            return super().forward(tokens, index)
        prefix, suffix, eot, _, ctx = self.rows(tokens, index)
        ctx = ctx.unsqueeze(0) + self.meta_net(condition).unsqueeze(1)  # (B, n_ctx, D)
        batch, n = ctx.shape[0], prefix.shape[0]
        embeddings = torch.cat([prefix.unsqueeze(0).expand(batch, -1, -1, -1),
                                ctx.unsqueeze(1).expand(-1, n, -1, -1),
                                suffix.unsqueeze(0).expand(batch, -1, -1, -1)], dim=2)
        return self.as_text_prompts(embeddings.flatten(0, 1), eot.repeat(batch), tokens, index,
                                 groups=batch)
