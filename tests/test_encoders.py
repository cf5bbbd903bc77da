"""The block-by-block encoders: with no prompts they equal CLIP's own passes; prompts go
where MaPLe and PromptSRC put them (checked against hooks on CLIP's own modules); the
image path records a graph only when something learnable is on it."""
import pytest
import torch

from sar_prompt.modeling.backbone import load_clip
from sar_prompt.modeling.image_encoder import ImageEncoder
from sar_prompt.modeling.learner_interface import ImagePrompts
from sar_prompt.modeling.text_encoder import TextEncoder
from sar_prompt.modeling.tokens import eot_positions, tokenize


@pytest.fixture(scope="module")
def clip_model(tiny_clip_path):
    return load_clip("tiny", str(tiny_clip_path), "fp32").requires_grad_(False)


@pytest.fixture(scope="module")
def images():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def deeper_clip(tiny_clip_path):
    """A tiny CLIP with three vision blocks, so a deep prompt has a block to skip."""
    from sar_prompt.orchestration.demo import write_tiny_clip

    path = tiny_clip_path.parent / "tiny_clip_3_blocks.pt"
    if not path.exists():
        write_tiny_clip(path, seed=1, vision_layers=3)
    return load_clip("tiny", str(path), "fp32")


def test_image_encoder_without_prompts_is_clips_own_pass(clip_model, images):
    with torch.no_grad():
        expected = clip_model.encode_image(images)
    encoder = ImageEncoder(clip_model.visual)
    ours = encoder(images)
    assert torch.equal(ours, expected)
    assert not ours.requires_grad  # nothing learnable: no graph, even with grad enabled
    clip_model.visual.ln_post.weight.requires_grad_(True)
    try:
        assert encoder(images).requires_grad  # a learnable parameter: a graph
    finally:
        clip_model.visual.ln_post.weight.requires_grad_(False)


def with_hooks(module_hooks, fn):
    handles = [m.register_forward_pre_hook(h) for m, h in module_hooks]
    try:
        return fn()
    finally:
        for h in handles:
            h.remove()


def test_image_prompts_where_maple_and_promptsrc_put_them(deeper_clip, images):
    visual = deeper_clip.visual
    gen = torch.Generator().manual_seed(1)
    shallow = torch.randn(2, 64, generator=gen, requires_grad=True)
    deep = [torch.randn(3, 2, 64, generator=gen), None]  # per image at block 1, none at block 2

    def append_shallow(module, args):  # on ln_pre: after the positional embedding
        x = args[0]
        return (torch.cat([x, shallow.expand(x.shape[0], -1, -1)], dim=1),)

    def replace_last(layer):
        def hook(module, args):  # blocks see (L, B, D)
            x = args[0]
            return (torch.cat([x[:-2], layer.permute(1, 0, 2)], dim=0),)
        return hook

    expected = with_hooks([(visual.ln_pre, append_shallow),
                           (visual.transformer.resblocks[1], replace_last(deep[0]))],
                          lambda: visual(images))
    ours = ImageEncoder(visual)(images, ImagePrompts(shallow, deep))
    torch.testing.assert_close(ours, expected, rtol=1e-6, atol=1e-6)
    assert ours.requires_grad  # a learnable prompt is on the path
    ours.sum().backward()
    assert shallow.grad is not None and shallow.grad.abs().sum() > 0


def test_text_encoder_deep_prompts_match_a_full_pass_with_hooks(clip_model):
    encoder = TextEncoder(clip_model)
    ids = tokenize(["X X a dog.", "X X a very long named thing of many words."])
    gen = torch.Generator().manual_seed(2)
    layer = torch.randn(2, 64, generator=gen)  # shared by all rows, at block 1

    def replace_context(module, args):  # CLIP's full 77-position pass, (L, N, D)
        x = args[0]
        return (torch.cat([x[:1], layer.unsqueeze(1).expand(-1, x.shape[1], -1), x[3:]]),)

    with torch.no_grad():
        expected = with_hooks([(clip_model.transformer.resblocks[1], replace_context)],
                              lambda: clip_model.encode_text(ids))
        ours = encoder(encoder.embed(ids), eot_positions(ids), [layer])
        per_row = encoder(encoder.embed(ids), eot_positions(ids), [layer.expand(2, -1, -1)])
        plain = encoder(encoder.embed(ids), eot_positions(ids))
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(per_row, ours)
    assert not torch.allclose(plain, ours)
