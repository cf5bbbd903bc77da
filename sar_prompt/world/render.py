"""The world's images: a coloured shape on a dark background, 32x32, drawn from a seed.

Each image is drawn at 4x and downsampled (anti-aliased edges), with its own random
position, size, rotation, shape colour jitter, background and pixel noise, all taken from a
numpy generator seeded by (world seed, purpose, class, image index): the same seed gives
the same pixels and the same PNG bytes, whatever else was drawn before.
"""
import io
import math
from dataclasses import dataclass

import numpy as np

SIZE = 32
_SCALE = 4  # drawn at 4x, then downsampled

# name -> RGB; hues a 32-pixel image keeps apart on a dark background
COLOURS = {
    "red": (215, 35, 35), "orange": (245, 135, 20), "yellow": (235, 220, 40),
    "green": (40, 175, 55), "cyan": (40, 205, 215), "blue": (45, 75, 230),
    "purple": (145, 55, 200), "pink": (250, 135, 195), "brown": (140, 85, 45),
    "white": (238, 238, 238),
}
SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross", "ring", "crescent",
          "heart", "arrow")
# what an image is drawn for: a purpose never shares a seed with another
PURPOSES = {"pretrain": 0, "train": 1, "val": 2, "test": 3}


def _polygon(shape):
    """The shape's outline as points around (0, 0), radius about 1 (None: not a polygon)."""
    if shape == "square":
        return [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)]
    if shape == "triangle":
        return [(math.cos(a), math.sin(a)) for a in
                (math.radians(-90), math.radians(30), math.radians(150))]
    if shape == "diamond":
        return [(0, -1), (0.6, 0), (0, 1), (-0.6, 0)]
    if shape == "star":
        return [((1.0 if i % 2 == 0 else 0.42) * math.cos(math.radians(-90 + 36 * i)),
                 (1.0 if i % 2 == 0 else 0.42) * math.sin(math.radians(-90 + 36 * i)))
                for i in range(10)]
    if shape == "cross":
        a, b = 0.3, 0.95
        return [(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b),
                (-a, a), (-b, a), (-b, -a), (-a, -a)]
    if shape == "heart":
        points = []
        for i in range(32):
            t = 2 * math.pi * i / 32
            x = 16 * math.sin(t) ** 3
            y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
            points.append((x / 17, -y / 17 - 0.1))
        return points
    if shape == "arrow":
        return [(-1, -0.22), (0.15, -0.22), (0.15, -0.6), (1, 0), (0.15, 0.6), (0.15, 0.22),
                (-1, 0.22)]
    return None


def _place(points, cx, cy, radius, angle):
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + radius * (x * c - y * s), cy + radius * (x * s + y * c)) for x, y in points]


def _mask(shape, cx, cy, radius, angle, size):
    """The shape's silhouette (mode "L", 255 inside) on a size x size canvas."""
    from PIL import Image, ImageDraw

    mask = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(mask)
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    if shape in ("circle", "ring", "crescent"):
        d.ellipse(box, fill=255)
        if shape == "ring":
            inner = radius * 0.55
            d.ellipse((cx - inner, cy - inner, cx + inner, cy + inner), fill=0)
        elif shape == "crescent":
            dx, dy = _place([(0.45, -0.2)], 0, 0, radius, angle)[0]
            r2 = radius * 0.85
            d.ellipse((cx + dx - r2, cy + dy - r2, cx + dx + r2, cy + dy + r2), fill=0)
    else:
        d.polygon(_place(_polygon(shape), cx, cy, radius, angle), fill=255)
    return mask


def _outline(mask, width):
    """The pixels of `mask` (uint8, 0 or 255) within `width` pixels of its edge."""
    inside = mask > 0
    eroded = inside.copy()
    for axis in (0, 1):
        padded = np.pad(eroded, [(width, width) if a == axis else (0, 0) for a in (0, 1)])
        n = eroded.shape[axis]
        eroded = np.logical_and.reduce([padded.take(range(k, k + n), axis=axis)
                                        for k in range(2 * width + 1)])
    return np.where(inside & ~eroded, 255, 0).astype(np.uint8)


@dataclass(frozen=True)
class Look:
    """How an image was drawn, beyond its class: what a caption may say about it."""
    style: str  # "photo": a filled shape on a dark, noisy background; "drawing": its outline
    size: float  # the shape's radius, as a fraction of the image's side


def draw(colour, shape, rng, style="photo"):
    """(PIL image SIZE x SIZE RGB, Look) of a `colour` `shape`, every variation from `rng`."""
    from PIL import Image

    big = SIZE * _SCALE
    fill = tuple(int(np.clip(v * rng.uniform(0.85, 1.1) + rng.uniform(-18, 18), 0, 255))
                 for v in COLOURS[colour])
    size = rng.uniform(0.24, 0.40)
    radius = size * big
    margin = radius * 1.05
    cx, cy = (rng.uniform(margin, big - margin) for _ in range(2))
    angle = math.radians(rng.uniform(-25, 25))
    mask = _mask(shape, cx, cy, radius, angle, big)
    if style == "photo":
        level = rng.uniform(0, 70)
        noise = 6.0
    else:  # a drawing: the outline, on a light background
        level = rng.uniform(185, 240)
        noise = 2.0
        mask = Image.fromarray(_outline(np.asarray(mask), _SCALE))
    background = tuple(int(np.clip(level + rng.uniform(-15, 15), 0, 255)) for _ in range(3))
    img = Image.composite(Image.new("RGB", (big, big), fill),
                          Image.new("RGB", (big, big), background), mask)
    small = np.asarray(img.resize((SIZE, SIZE), Image.BOX), dtype=np.float32)
    small = small + rng.normal(0.0, noise, small.shape)
    return Image.fromarray(np.clip(np.rint(small), 0, 255).astype(np.uint8)), Look(style, size)


def generator(world_seed, purpose, label, index):
    """The generator of one image: seeded by what the image is, not by when it is drawn."""
    return np.random.default_rng([int(world_seed), PURPOSES[purpose], int(label), int(index)])


def render(classname, world_seed, purpose, label, index, style="photo"):
    """(PIL image, Look): image `index` of class `classname` ("red circle") for `purpose`."""
    colour, shape = classname.split(" ")
    return draw(colour, shape, generator(world_seed, purpose, label, index), style)


def png_bytes(image):
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False, compress_level=6)
    return out.getvalue()


def render_array(classnames, world_seed, purpose, count, drawings=0.0):
    """(uint8 array (N, 3, SIZE, SIZE), labels (N,), looks [Look]): `count` images of each
    class, the class's index in `classnames` as its label, the first `drawings` of them
    drawings (what pretraining draws from)."""
    images, labels, looks = [], [], []
    for label, name in enumerate(classnames):
        for i in range(count):
            style = "drawing" if i < round(drawings * count) else "photo"
            image, look = render(name, world_seed, purpose, label, i, style)
            images.append(np.asarray(image))
            labels.append(label)
            looks.append(look)
    return (np.stack(images).transpose(0, 3, 1, 2).copy(), np.asarray(labels, dtype=np.int64),
            looks)
