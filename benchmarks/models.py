"""The CLIP architectures the harness builds, with random weights: timings and memory
depend on the shapes, not on the values. Each is written once per run to a state-dict file
that the trainers load through sar_prompt's own loader (MODEL.BACKBONE.PATH)."""
from pathlib import Path

# clip.model.CLIP arguments on top of sar_prompt.orchestration.demo.TINY_CLIP (OpenAI's published shapes).
VIT_B16 = dict(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768,
               vision_patch_size=16, context_length=77, vocab_size=49408,
               transformer_width=512, transformer_heads=8, transformer_layers=12)
ARCHS = {
    "ViT-B/16": VIT_B16,
    "ViT-B/32": {**VIT_B16, "vision_patch_size": 32},
    "tiny": {},  # sar_prompt.orchestration.demo.TINY_CLIP itself, for tests
}


def architecture(name):
    """The full clip.model.CLIP arguments of `name`."""
    from sar_prompt.orchestration.demo import TINY_CLIP

    return {**TINY_CLIP, **ARCHS[name]}


def resolution(name):
    return architecture(name)["image_resolution"]


def weights_file(name, folder, seed=0):
    """A state-dict file of a randomly initialised CLIP of architecture `name` in `folder`
    (written once; about 600 MB for ViT-B/16)."""
    from sar_prompt.orchestration.demo import write_tiny_clip

    path = Path(folder) / f"clip-{name.replace('/', '-')}-seed{seed}.pt"
    if not path.is_file():
        write_tiny_clip(path, seed=seed, **ARCHS[name])
    return path
