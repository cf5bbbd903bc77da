"""CLIP with a prompt learner (see `learner_interface.PromptLearner`): CLIP's frozen encoders, run by
`ImageEncoder` and `TextEncoder`, and the learner's prompts, optionally conditioned on the
image."""
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from sar_prompt.modeling.image_encoder import ImageEncoder
from sar_prompt.modeling.learner_interface import TextPrompts
from sar_prompt.modeling.text_encoder import normalize

# Prompts per text-encoder pass when each image has its own prompts for every class:
# bounds memory (rows x positions x width activations) at evaluation on many classes.
ROWS_PER_TEXT_PASS = 4096


def _count(learner, tokens, index):
    if index is not None:
        return len(index)
    return len(tokens if tokens is not None else learner.classes)


def _length(prompts):
    return prompts.length or prompts.embeddings.shape[1]


def _row_positions(prompts, shared, length, own_ends):
    """Positions the rows of `prompts` run after a shared prefix of `shared` positions: each
    to its own EOT (`own_ends`), or all to `length`."""
    if own_ends:
        return sum(prompts.eot_list) + len(prompts.eot_list) * (1 - shared)
    return prompts.eot.shape[0] * (length - shared)


def pass_cost(prompts):
    """Token positions a text pass runs for `prompts` (`TextPrompts`)."""
    p = prompts.shared_prefix
    return (_row_positions(prompts, p, _length(prompts), prompts.eot_list is not None)
            + prompts.groups * p)


# A joined pass may run this much more than separate passes and still be the faster: its
# matrix products are larger, and each pass has a fixed cost (12 blocks of kernel launches).
JOIN_SLACK = 1.25


def plan_passes(prompts):
    """Which of `prompts` to encode together: [[0, 1]] (one pass) when the joined pass runs
    at most JOIN_SLACK times the positions of separate ones, else [[0], [1], ...]. Rows
    whose EOTs are known on the host run to their own EOT and join at no extra cost; others
    run to the longest EOT of the pass, so a set of long names would pad a set of short
    ones."""
    single = [[i] for i in range(len(prompts))]
    if len(prompts) < 2 or any(p.groups != prompts[0].groups for p in prompts) or any(
            d is not None and d.dim() != 2 for p in prompts for d in p.deep):
        return single
    # what the joined pass would run (as `join_prompts` builds it), without building it
    shared, length = min(p.shared_prefix for p in prompts), max(map(_length, prompts))
    own_ends = all(p.eot_list is not None for p in prompts)
    joined = (sum(_row_positions(p, shared, length, own_ends) for p in prompts)
              + prompts[0].groups * shared)
    return [list(range(len(prompts)))] if joined <= JOIN_SLACK * sum(map(pass_cost, prompts)) \
        else single


def join_prompts(prompts):
    """One `TextPrompts` holding the rows of all `prompts` (same learner, same groups),
    image-major per group: each group's rows of the first set, then of the second... The
    shorter embeddings are padded with zeros, which never reach a feature (they come after
    every row's EOT)."""
    if len(prompts) == 1:
        return prompts[0]
    groups = prompts[0].groups
    width = max(p.embeddings.shape[1] for p in prompts)
    lengths = [p.length for p in prompts]
    length = None if None in lengths else max(lengths)
    eot = torch.cat([p.eot.view(groups, -1) for p in prompts], dim=1).flatten()
    shared = min(p.shared_prefix for p in prompts)
    eot_list = None
    if all(p.eot_list is not None for p in prompts):
        eot_list = [e for g in range(groups) for p in prompts
                    for e in _group_rows(p.eot_list, groups, g)]
    embeddings = torch.cat([
        F.pad(p.embeddings, (0, 0, 0, width - p.embeddings.shape[1]))
        .view(groups, -1, width, p.embeddings.shape[-1]) for p in prompts], dim=1)
    return TextPrompts(embeddings.flatten(0, 1), eot, prompts[0].deep, length, shared, groups,
                       eot_list)


def _group_rows(values, groups, g):
    size = len(values) // groups
    return values[g * size:(g + 1) * size]


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
        if condition is None and tokens is None and index is None \
                and self._cached_text is not None:
            return self._cached_text
        return self.text_features_of([(tokens, index)], condition)[0]

    def text_features_of(self, requests, condition=None):
        """`text_features` of several prompt sets, `requests` = [(tokens, index), ...], with
        one text-encoder pass for all of them where that costs no more than one per set
        (`plan_passes`): a list of (N_i, E), or (B, N_i, E) with `condition`."""
        learner = self.prompt_learner
        if condition is None:
            prompts = [learner(tokens, index) for tokens, index in requests]
            return self._encode_sets(prompts)
        rows = sum(_count(learner, tokens, index) for tokens, index in requests)
        images_per_pass = max(1, self.rows_per_text_pass // max(rows, 1))
        parts = []
        for chunk in condition.split(images_per_pass):
            prompts = [learner(tokens, index, chunk) for tokens, index in requests]
            feats = self._encode_sets(prompts)
            parts.append([f.view(chunk.shape[0], -1, f.shape[-1]) for f in feats])
        return [torch.cat(per_set) for per_set in zip(*parts)]

    def _encode_sets(self, prompts):
        out = [None] * len(prompts)
        for group in plan_passes(prompts):
            joined = join_prompts([prompts[i] for i in group])
            feats = normalize(self.text_encoder.encode(joined))
            g = joined.groups  # back to one tensor per set (rows image-major per set)
            sizes = [prompts[i].eot.shape[0] // g for i in group]
            for i, f in zip(group, feats.view(g, -1, feats.shape[-1]).split(sizes, 1)):
                out[i] = f.flatten(0, 1)
        return out

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
