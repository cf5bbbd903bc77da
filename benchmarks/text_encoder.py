"""How much the truncated text pass saves: CLIP's full 77-position text transformer vs ours,
which stops after the batch's longest end-of-text token, timed side by side in one run.

    python benchmarks/text_encoder.py [--classes 50] [--repeats 5]

The model is a randomly initialised CLIP with ViT-B/16's text tower (width 512, 12 layers,
8 heads), in fp32 on CPU: speed does not depend on the weights' values. The prompts are
CoOp's "a photo of a <class>." for Caltech101's base classes.
"""
import argparse
import time

import torch


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--classes", type=int, default=50)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()

    from sar_prompt.classnames import class_names
    from sar_prompt.modeling.backbone import import_clip
    from sar_prompt.modeling.text_encoder import TextEncoder
    from sar_prompt.modeling.tokens import eot_positions, tokenize

    clip = import_clip()
    torch.manual_seed(0)
    model = clip.model.CLIP(embed_dim=512, image_resolution=32, vision_layers=1, vision_width=64,
                            vision_patch_size=16, context_length=77, vocab_size=49408,
                            transformer_width=512, transformer_heads=8, transformer_layers=12).eval()
    encoder = TextEncoder(model)
    names = (class_names("caltech101") * 10)[: args.classes]
    ids = tokenize([f"a photo of a {n.replace('_', ' ')}." for n in names])
    eot = eot_positions(ids)

    def full():
        return model.encode_text(ids)

    def truncated():
        return encoder(encoder.embed(ids), eot)

    with torch.no_grad():
        assert torch.allclose(full(), truncated(), atol=1e-4)
        times = {"full 77 positions": [], f"truncated ({int(eot.max()) + 1} positions)": []}
        for _ in range(args.repeats):  # interleaved, so both see the same machine load
            for (label, fn) in zip(times, (full, truncated)):
                start = time.perf_counter()
                fn()
                times[label].append(time.perf_counter() - start)
    best = {k: min(v) for k, v in times.items()}
    for label, t in best.items():
        print(f"{label:>28}: {t * 1000:8.1f} ms (best of {args.repeats}, {args.classes} prompts)")
    a, b = best.values()
    print(f"{'speed-up':>28}: {a / b:8.1f}x")


if __name__ == "__main__":
    main()
