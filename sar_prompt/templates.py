"""The frozen hand-crafted prompts of each method, as its reference implementation uses them.

- `coop` (CoOp, CoCoOp, zero-shot CLIP; SAR's target for them): one template per dataset,
  `catalog.DatasetInfo.template`, the per-dataset prompts the CoOp family's zero-shot CLIP
  uses (DTD: "{} texture.").
- `kgcoop` (KgCoOp): the same table, except DTD, where KgCoOp's release uses
  "a photo of a {}, a type of texture.".
- `promptsrc` (PromptSRC): one set of 60 ImageNet templates (from CLIP's prompt-engineering
  notebook, in PromptSRC's order) for every dataset. The text features of all templates are
  averaged unnormalised, then normalised, as PromptSRC computes its frozen features
  (`text_encoder.handcrafted_features`).

A trainer's TEMPLATE key (e.g. TRAINER.COOP.TEMPLATE), when set, replaces them with one
template of the user's.
"""
from sar_prompt.catalog import template_for

STYLES = ("coop", "kgcoop", "promptsrc")

KGCOOP_TEMPLATES = {"DescribableTextures": "a photo of a {}, a type of texture."}

PROMPTSRC_TEMPLATES = (
    'a photo of a {}.',
    'a bad photo of a {}.',
    'a photo of many {}.',
    'a sculpture of a {}.',
    'a photo of the hard to see {}.',
    'a low resolution photo of the {}.',
    'a rendering of a {}.',
    'graffiti of a {}.',
    'a bad photo of the {}.',
    'a cropped photo of the {}.',
    'a tattoo of a {}.',
    'the embroidered {}.',
    'a photo of a hard to see {}.',
    'a bright photo of a {}.',
    'a photo of a clean {}.',
    'a photo of a dirty {}.',
    'a dark photo of the {}.',
    'a drawing of a {}.',
    'a photo of my {}.',
    'the plastic {}.',
    'a photo of the cool {}.',
    'a close-up photo of a {}.',
    'a black and white photo of the {}.',
    'a painting of the {}.',
    'a painting of a {}.',
    'a pixelated photo of the {}.',
    'a sculpture of the {}.',
    'a bright photo of the {}.',
    'a cropped photo of a {}.',
    'a plastic {}.',
    'a photo of the dirty {}.',
    'a jpeg corrupted photo of a {}.',
    'a blurry photo of the {}.',
    'a photo of the {}.',
    'a good photo of the {}.',
    'a rendering of the {}.',
    'a {} in a video game.',
    'a photo of one {}.',
    'a doodle of a {}.',
    'a close-up photo of the {}.',
    'the origami {}.',
    'the {} in a video game.',
    'a sketch of a {}.',
    'a doodle of the {}.',
    'a origami {}.',
    'a low resolution photo of a {}.',
    'the toy {}.',
    'a rendition of the {}.',
    'a photo of the clean {}.',
    'a photo of a large {}.',
    'a rendition of a {}.',
    'a photo of a nice {}.',
    'a photo of a weird {}.',
    'a blurry photo of a {}.',
    'a cartoon {}.',
    'art of a {}.',
    'a sketch of the {}.',
    'a embroidered {}.',
    'a pixelated photo of a {}.',
    'itap of the {}.',
)


def templates_for(style, dataset_name, override=""):
    """The hand-crafted templates (a tuple of "... {} ..." strings) of method style `style`
    for the Dassl dataset `dataset_name`; `override`, when given, instead."""
    if override:
        return (override,)
    if style == "coop":
        return (template_for(dataset_name),)
    if style == "kgcoop":
        return (KGCOOP_TEMPLATES.get(dataset_name) or template_for(dataset_name),)
    if style == "promptsrc":
        return PROMPTSRC_TEMPLATES
    raise ValueError(f"unknown template style {style!r}; use one of {', '.join(STYLES)}")
