"""CLIP with a learnable text prompt: frozen image and text encoders, a prompt learner."""
from contextlib import contextmanager

import torch
from torch import nn


def normalize(x):
    return x / x.norm(dim=-1, keepdim=True)


class PromptedCLIP(nn.Module):
    def __init__(self, clip_model, text_encoder, prompt_learner):
        super().__init__()
        self.image_encoder = clip_model.visual
        self.text_encoder = text_encoder
        self.prompt_learner = prompt_learner
        self.logit_scale = clip_model.logit_scale
        self.dtype = clip_model.dtype
        self._cached_text = None

    def encode_images(self, images):
        # The image path holds no learnable parameter here, so it needs no graph.
        with torch.no_grad():
            return normalize(self.image_encoder(images.type(self.dtype)))

    def text_features(self, tokens=None, index=None):
        """Normalised features of the learnable prompts for `tokens` (default: the dataset's
        classes), optionally only the rows in `index`."""
        if tokens is None and index is None and self._cached_text is not None:
            return self._cached_text
        embeddings, eot = self.prompt_learner(tokens, index)
        return normalize(self.text_encoder(embeddings, eot))

    def logits(self, image_features, text_features):
        return self.logit_scale.exp() * image_features @ text_features.t()

    def forward(self, images):
        return self.logits(self.encode_images(images), self.text_features())

    @contextmanager
    def frozen_text_features(self):
        """Compute the class text features once for a whole evaluation, not once per batch."""
        with torch.no_grad():
            self._cached_text = self.text_features()
        try:
            yield
        finally:
            self._cached_text = None
