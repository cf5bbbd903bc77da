"""An offline demo: a tiny generated dataset and a tiny random CLIP, so the whole base-to-new
pipeline runs on a CPU (its time: README) before any data or weights are downloaded. Its accuracies only show that the pipeline works: the CLIP
is random.

    python -m sar_prompt.orchestration.demo prepare --data DATA    # writes DATA/sar_demo/
"""
import argparse
import io
import json
import sys
from pathlib import Path

import torch

from sar_prompt.errors import run_command
from sar_prompt.io import atomic_write_bytes, atomic_write_json
from sar_prompt.vocabulary import OneSpelling

DEMO_DIR = "sar_demo"
SPLIT_FILE = "split_zhou_SARDemo.json"
CLIP_FILE = "tiny_clip.pt"
# Ten classes, each drawn as a coloured shape; the first five are the base classes.
CLASSES = [("red circle", (220, 40, 40), "circle"), ("blue square", (40, 60, 220), "square"),
           ("green triangle", (40, 170, 60), "triangle"), ("yellow circle", (230, 210, 40), "circle"),
           ("purple square", (140, 50, 170), "square"), ("orange triangle", (240, 140, 30), "triangle"),
           ("cyan circle", (40, 200, 210), "circle"), ("pink square", (240, 120, 180), "square"),
           ("brown triangle", (130, 80, 40), "triangle"), ("gray circle", (128, 128, 128), "circle")]
# Enough images for the benchmark's own few-shot sampling (16 shots; 4 validation images per
# class, as the CoOp family samples), so the demo uses the same shots as a real run and
# triggers no shortfall warning.
PER_SPLIT = {"train": 16, "val": 4, "test": 4}
TINY_CLIP = dict(embed_dim=32, image_resolution=32, vision_layers=1, vision_width=64,
                 vision_patch_size=16, context_length=77, vocab_size=49408,
                 transformer_width=64, transformer_heads=1, transformer_layers=2)


def tiny_clip_state_dict(seed=0, **overrides):
    """State dict of a randomly initialised, tiny `clip.model.CLIP` (ViT, 32 px), seeded.
    Widths are 64 because clip.model.build_model infers heads as width // 64."""
    from sar_prompt.modeling.backbone import import_clip

    clip = import_clip()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = clip.model.CLIP(**{**TINY_CLIP, **overrides})
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def write_tiny_clip(path, seed=0, **overrides):
    buf = io.BytesIO()
    torch.save(tiny_clip_state_dict(seed, **overrides), buf)
    return atomic_write_bytes(path, buf.getvalue())


def _draw(color, shape, variant, size=48):
    from PIL import Image, ImageDraw

    rng = torch.Generator().manual_seed(variant)
    bg = tuple(int(x) for x in torch.randint(0, 60, (3,), generator=rng))
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    o = int(torch.randint(4, 12, (1,), generator=rng))
    box = (o, o, size - o, size - o)
    if shape == "circle":
        d.ellipse(box, fill=color)
    elif shape == "square":
        d.rectangle(box, fill=color)
    else:
        d.polygon([(size // 2, o), (size - o, size - o), (o, size - o)], fill=color)
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def _complete(split_path):
    """Whether an existing demo split has PER_SPLIT images of every class in every part
    (a demo written by an older version, with fewer, is written again)."""
    try:
        split = json.loads(split_path.read_text(encoding="utf-8"))
        return all(len(split[part]) == count * len(CLASSES) for part, count in PER_SPLIT.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def prepare(root):
    """Write the demo dataset and tiny CLIP under root/sar_demo (skipped if already there)."""
    base = Path(root).expanduser().resolve() / DEMO_DIR
    split_path, clip_path = base / SPLIT_FILE, base / CLIP_FILE
    if clip_path.is_file() and _complete(split_path):
        return base
    split = {"train": [], "val": [], "test": []}
    variant = 0
    for label, (name, color, shape) in enumerate(CLASSES):
        folder = name.replace(" ", "_")
        for part, count in PER_SPLIT.items():
            for i in range(count):
                rel = f"{folder}/{part}_{i:02d}.png"
                atomic_write_bytes(base / "images" / rel, _draw(color, shape, variant))
                variant += 1
                split[part].append([rel, label, name])
    write_tiny_clip(clip_path, seed=0)
    atomic_write_json(split_path, split)  # written last: its presence means "complete"
    return base


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m sar_prompt.orchestration.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="write the demo dataset and tiny CLIP")
    prep.add_argument("--data", "--root", dest="root", metavar="DATA", required=True,
                      action=OneSpelling,
                      help="data folder; the demo goes in DATA/sar_demo")
    args = p.parse_args(argv)

    def command():
        base = prepare(args.root)
        print(json.dumps({"dataset": str(base), "clip_weights": str(base / CLIP_FILE)}))

    return run_command(command)


if __name__ == "__main__":
    sys.exit(main())
