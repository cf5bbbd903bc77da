"""CLIP with a prompt learner (see `protocol.PromptLearner`): CLIP's frozen encoders, run by
`ImageEncoder` and `TextEncoder`, and the learner's prompts, optionally conditioned on the
image."""
from contextlib import contextmanager

import torch
from torch import nn

from .image_encoder import ImageEncoder
from .text_encoder import normalize

# Prompts per text-encoder pass when each image has its own prompts for every class:
# bounds memory (rows x positions x width activations) at evaluation on many classes.
ROWS_PER_TEXT_PASS = 4096


def mean_over_images(features):
    """(B, N, E) per-image normalised features -> (N, E): their mean, normalised again."""
    return normalize(features.mean(dim=0))


class PromptedCLIP(nn.Module):
    def __init__(self, clip_model, text_encoder, prompt_learner, image_encoder=None):
        super().__init__()
        self.image_encoder = image_encoder or ImageEncoder(clip_model.visual)
        self.text_encoder = text_encoder
        self.prompt_learner = prompt_learner
        self.logit_scale = clip_model.logit_scale
        self.dtype = clip_model.dtype
        self.rows_per_text_pass = ROWS_PER_TEXT_PASS
        self._cached_text = None

    @property
    def conditioned(self):
        return self.prompt_learner.conditioned

    def encode_images(self, images):
        """Normalised image features (B, E), with the learner's image prompts if it has any."""
        return normalize(self.image_encoder(images, self.prompt_learner.image_prompts()))

    def text_features(self, tokens=None, index=None, condition=None):
        """Normalised features of the learnable prompts for `tokens` (default: the dataset's
        classes), only the rows `index` if given: (N, E); with `condition` (B, E), the
        image features an image-conditioned learner reads, one set per image: (B, N, E)."""
        if condition is None:
            if tokens is None and index is None and self._cached_text is not None:
                return self._cached_text
            prompts = self.prompt_learner(tokens, index)
            return normalize(self.text_encoder(prompts.embeddings, prompts.eot, prompts.deep))
        if index is not None:
            rows = len(index)
        else:
            rows = len(tokens if tokens is not None else self.prompt_learner.classes)
        images_per_pass = max(1, self.rows_per_text_pass // max(rows, 1))
        out = []
        for chunk in condition.split(images_per_pass):
            prompts = self.prompt_learner(tokens, index, chunk)
            feats = self.text_encoder(prompts.embeddings, prompts.eot, prompts.deep)
            out.append(normalize(feats).view(chunk.shape[0], rows, -1))
        return torch.cat(out)

    def class_text_features(self, tokens=None, index=None, condition=None):
        """(N, E) class text features: `text_features`, averaged over the images (and
        normalised) when conditioned on several."""
        feats = self.text_features(tokens, index, condition)
        return feats if feats.dim() == 2 else mean_over_images(feats)

    def logits(self, image_features, text_features):
        """(B, C) from image features (B, E) and class text features (C, E), shared by the
        batch, or (B, C, E), one set per image."""
        scale = self.logit_scale.exp()
        if text_features.dim() == 2:
            return scale * image_features @ text_features.t()
        return scale * torch.einsum("be,bce->bc", image_features, text_features)

    def forward(self, images):
        image_features = self.encode_images(images)
        condition = image_features if self.conditioned else None
        return self.logits(image_features, self.text_features(condition=condition))

    @contextmanager
    def frozen_text_features(self):
        """Compute the class text features once for a whole evaluation, not once per batch
        (not possible when they depend on the image: each batch then runs its text pass)."""
        if not self.conditioned:
            with torch.no_grad():
                self._cached_text = self.text_features()
        try:
            yield
        finally:
            self._cached_text = None


class HandcraftedCLIP(nn.Module):
    """CLIP classifying with fixed class text features (zero-shot CLIP)."""

    def __init__(self, image_encoder, logit_scale, text_features):
        super().__init__()
        self.image_encoder = image_encoder
        self.logit_scale = logit_scale
        self.register_buffer("text_features", text_features, persistent=False)

    def forward(self, images):
        image_features = normalize(self.image_encoder(images))
        return self.logit_scale.exp() * image_features @ self.text_features.t()
