"""CLIP's image tower, run block by block (as the text encoder runs its transformer), so a
method can add prompt tokens at the input and at any block without a fork of CLIP.

With no prompts it performs exactly the operations of `clip.model.VisionTransformer`, so
its output equals CLIP's own. ResNet backbones have no token sequence: they run as CLIP
runs them and take no prompts.
"""
import torch
from torch import nn

from sar_prompt.errors import ConfigError


def per_image(prompt, batch):
    """(n, D) -> (B, n, D); (B, n, D) passes through."""
    return prompt.unsqueeze(0).expand(batch, -1, -1) if prompt.dim() == 2 else prompt


class ImageEncoder(nn.Module):
    def __init__(self, visual):
        super().__init__()
        self.visual = visual
        self.is_vit = hasattr(visual, "transformer") and hasattr(visual, "class_embedding")

    @property
    def dtype(self):
        return self.visual.conv1.weight.dtype

    def has_learnable_parameters(self):
        return any(p.requires_grad for p in self.visual.parameters())

    def forward(self, images, prompts=None):
        """Image features (B, E), not normalised. `prompts`: an `ImagePrompts` or None.
        Autograd records the pass only when something learnable is on it."""
        learnable = self.has_learnable_parameters() or (prompts is not None and any(
            p is not None and p.requires_grad for p in (prompts.shallow, *prompts.deep)))
        with torch.set_grad_enabled(torch.is_grad_enabled() and learnable):
            images = images.type(self.dtype)
            if not self.is_vit:
                if prompts is not None:
                    raise ConfigError("Image prompts need a ViT backbone; MODEL.BACKBONE.NAME "
                                      "is a ResNet. Use ViT-B/16 (or another ViT).")
                return self.visual(images)
            return self._vit(images, prompts)

    def _vit(self, images, prompts):
        v = self.visual
        x = v.conv1(images)  # (B, width, grid, grid)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # (B, grid^2, width)
        batch = x.shape[0]
        cls = v.class_embedding.to(x.dtype) + torch.zeros(batch, 1, x.shape[-1], dtype=x.dtype,
                                                          device=x.device)
        x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)
        n_prompt = 0
        deep = ()
        if prompts is not None:
            deep = prompts.deep
            if prompts.shallow is not None:
                shallow = per_image(prompts.shallow, batch).to(x.dtype)
                x = torch.cat([x, shallow], dim=1)
                n_prompt = shallow.shape[1]
        x = v.ln_pre(x).permute(1, 0, 2)  # NLD -> LND
        for i, block in enumerate(v.transformer.resblocks):
            if 1 <= i <= len(deep) and deep[i - 1] is not None:
                layer = per_image(deep[i - 1], batch).to(x.dtype).permute(1, 0, 2)
                x = torch.cat([x[:x.shape[0] - n_prompt], layer], dim=0)
                n_prompt = layer.shape[0]
            x = block(x)
        x = v.ln_post(x.permute(1, 0, 2)[:, 0, :])
        if v.proj is not None:
            x = x @ v.proj
        return x
