"""What the world is: its 100 classes (10 colours x 10 shapes), their split into base, new
and novel names, the prompts CLIP is pretrained with, and the CLIP's architecture."""
import numpy as np

from sar_prompt.world.render import COLOURS, SHAPES

WORLD_SEED = 0
ALL_CLASSES = tuple(f"{colour} {shape}" for colour in COLOURS for shape in SHAPES)
NUM_BASE, NUM_NEW = 35, 35  # the rest (30) are novel names: never images of the dataset
TEMPLATE = "a photo of a {}."  # the dataset's hand-crafted prompt
# Captions of pretraining: (template, the style of image it describes; "" for any). Their
# words say something about the image (a photo or a drawing), as real captions do, so the
# text encoder reads the words around a class name, not the name alone.
CAPTIONS = (("a photo of a {}.", "photo"), ("a drawing of a {}.", "drawing"),
            ("a sketch of a {}.", "drawing"), ("a {}.", ""), ("{}.", ""),
            ("a picture of a {}.", ""), ("an image of a {}.", ""), ("this is a {}.", ""))
# clip.model.CLIP's arguments. Widths of 64 because clip.model.build_model infers the heads
# as width // 64; 8-pixel patches: a 4x4 grid of 32-pixel images.
ARCHITECTURE = dict(embed_dim=64, image_resolution=32, vision_layers=2, vision_width=64,
                    vision_patch_size=8, context_length=77, vocab_size=49408,
                    transformer_width=64, transformer_heads=1, transformer_layers=2)


def split(world_seed=WORLD_SEED):
    """(base, new, novel) class names: a seeded permutation of ALL_CLASSES, cut 35/35/30."""
    order = np.random.default_rng([int(world_seed), 99]).permutation(len(ALL_CLASSES))
    names = [ALL_CLASSES[i] for i in order]
    return (tuple(names[:NUM_BASE]), tuple(names[NUM_BASE:NUM_BASE + NUM_NEW]),
            tuple(names[NUM_BASE + NUM_NEW:]))


def novel_list(world_seed=WORLD_SEED):
    """The world's novel-class list for SAR (novel_classes/world.json): its names that are
    neither base nor new classes, with their provenance."""
    _, _, novel = split(world_seed)
    return {"schema": "sar-prompt/novel-classes", "version": 1, "dataset": "SARWorld",
            "novel_classes": list(novel),
            "provenance": {"source": "world-generator", "world_seed": world_seed,
                           "description": (
                               f"The {len(novel)} colour-shape names of the synthetic world "
                               "that are neither base nor new classes of its dataset "
                               f"(sar_prompt.world.spec.split(world_seed={world_seed})): "
                               "written by the world's generator, NOT produced by GPT-4o or "
                               "any language model. The world's CLIP was pretrained on "
                               "images of these classes too; the dataset has none.")}}
