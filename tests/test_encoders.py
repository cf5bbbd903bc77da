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
        with torch.no_grad():  # evaluation: none, learnable or not
            assert not encoder(images).requires_grad
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


def test_deep_image_prompts_without_a_shallow_one_are_added_then_replaced(deeper_clip, images):
    """No prompt at the input: block 1's prompt is appended to the image tokens (nothing to
    replace yet) and block 2's replaces it; with no prompts at all, every block is CLIP's."""
    visual = deeper_clip.visual
    gen = torch.Generator().manual_seed(3)
    deep = [torch.randn(2, 64, generator=gen), torch.randn(3, 2, 64, generator=gen)]

    def append(layer):
        def hook(module, args):
            x = args[0]
            return (torch.cat([x, layer.unsqueeze(1).expand(-1, x.shape[1], -1)], dim=0),)
        return hook

    def replace_last(layer):
        def hook(module, args):
            return (torch.cat([args[0][:-2], layer.permute(1, 0, 2)], dim=0),)
        return hook

    with torch.no_grad():
        expected = with_hooks([(visual.transformer.resblocks[1], append(deep[0])),
                               (visual.transformer.resblocks[2], replace_last(deep[1]))],
                              lambda: visual(images))
        ours = ImageEncoder(visual)(images, ImagePrompts(None, deep))
        torch.testing.assert_close(ours, expected, rtol=1e-6, atol=1e-6)
        assert torch.equal(ImageEncoder(visual)(images), visual(images))


def test_a_resnet_image_tower_runs_as_clip_runs_it_and_refuses_prompts(tiny_resnet_clip,
                                                                        images):
    from sar_prompt.errors import ConfigError

    resnet = tiny_resnet_clip
    encoder = ImageEncoder(resnet.visual)
    assert not encoder.is_vit
    with torch.no_grad():
        assert torch.equal(encoder(images), resnet.encode_image(images))
        with pytest.raises(ConfigError) as error:
            encoder(images, ImagePrompts(torch.zeros(2, 64), []))
    assert str(error.value) == ("Image prompts need a ViT backbone; MODEL.BACKBONE.NAME is a "
                                "ResNet. Use ViT-B/16 (or another ViT).")


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
