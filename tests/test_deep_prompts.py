"""MaPLe's and PromptSRC's prompt learners on CLIP's own modules: the encoders with empty
prompts are plain CLIP; the learners draw their random numbers in the references' order;
their prompts go where the references put them; fp16 CLIP keeps fp32 deep prompts."""
import pytest
import torch
from torch import nn

from sar_prompt.errors import ConfigError
from sar_prompt.modeling.backbone import load_clip
from sar_prompt.modeling.deep_prompt import (IndependentPromptLearner, MaPLePromptLearner,
                                             check_prompt_depth, context_init)
from sar_prompt.modeling.image_encoder import ImageEncoder
from sar_prompt.modeling.prompted_clip import PromptedCLIP
from sar_prompt.modeling.learner_interface import ImagePrompts
from sar_prompt.modeling.text_encoder import TextEncoder
from sar_prompt.modeling.tokens import eot_positions, tokenize
from test_encoders import with_hooks

NAMES = ["car_side", "grand piano", "ant"]


@pytest.fixture(scope="session")
def deep_clip_path(tmp_path_factory):
    """A tiny CLIP with three blocks in each encoder, so deep prompts have blocks to go to."""
    from sar_prompt.orchestration.demo import write_tiny_clip

    return write_tiny_clip(tmp_path_factory.mktemp("deep_clip") / "tiny_clip_3.pt", seed=0,
                           vision_layers=3, transformer_layers=3)


@pytest.fixture(scope="module")
def clip_model(deep_clip_path):
    return load_clip("tiny", str(deep_clip_path), "fp32").requires_grad_(False)


def test_encoders_with_empty_prompts_are_plain_clip(clip_model):
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    ids = tokenize(["a photo of a dog.", "a photo of a grand piano."])
    text_encoder = TextEncoder(clip_model)
    with torch.no_grad():
        assert torch.equal(ImageEncoder(clip_model.visual)(images, ImagePrompts()),
                           clip_model.encode_image(images))
        torch.testing.assert_close(text_encoder(text_encoder.embed(ids), eot_positions(ids), ()),
                                   clip_model.encode_text(ids), rtol=1e-5, atol=1e-6)


def test_maple_draws_in_the_references_order(clip_model):
    text_encoder = TextEncoder(clip_model)
    torch.manual_seed(5)
    learner = MaPLePromptLearner(clip_model, text_encoder, NAMES, n_ctx=2,
                                 ctx_init="a photo of a", depth=3)
    torch.manual_seed(5)  # the context comes from words: no draw; then proj, prompts, one layer
    proj = nn.Linear(64, 64)
    prompts = [torch.empty(2, 64) for _ in range(2)]
    for p in prompts:
        nn.init.normal_(p, std=0.02)
    layer = nn.Linear(64, 64)
    assert torch.equal(learner.proj.weight, proj.weight) and torch.equal(learner.proj.bias, proj.bias)
    for ours, theirs in zip(learner.compound_prompts_text, prompts):
        assert torch.equal(ours, theirs)
    for projection in learner.compound_prompt_projections:  # copies of one layer
        assert torch.equal(projection.weight, layer.weight)
    # "a photo" becomes the context; "of a" stays fixed text before the name
    assert learner.prompt_texts(["ant"]) == ["a photo of a ant."]
    ids = tokenize(["a photo of a"])
    assert torch.equal(learner.ctx, text_encoder.embed(ids)[0, 1:3])
    assert list(learner.state_dict()) == [
        "ctx", "proj.weight", "proj.bias", "compound_prompts_text.0", "compound_prompts_text.1",
        "compound_prompt_projections.0.weight", "compound_prompt_projections.0.bias",
        "compound_prompt_projections.1.weight", "compound_prompt_projections.1.bias"]


def test_promptsrc_draws_vision_prompts_then_text_prompts(clip_model):
    torch.manual_seed(6)
    learner = IndependentPromptLearner(clip_model, TextEncoder(clip_model), NAMES, n_ctx_text=4,
                                       n_ctx_vision=3, ctx_init="a photo of a", depth_text=3,
                                       depth_vision=2)
    torch.manual_seed(6)
    expected = [torch.empty(n, 64) for n in (3, 3, 4, 4)]
    for p in expected:
        nn.init.normal_(p, std=0.02)
    ours = [learner.vision_ctx, *learner.vision_prompts, *learner.text_prompts]
    assert all(torch.equal(a, b) for a, b in zip(ours, expected)) and len(ours) == 4
    assert learner.image_prompts().shallow is learner.vision_ctx
    none = IndependentPromptLearner(clip_model, TextEncoder(clip_model), NAMES, depth_text=1,
                                    depth_vision=0)
    assert none.image_prompts() is None and list(none.state_dict()) == ["ctx"]


def clip_text_pass(clip_model, embeddings, ids, deep):
    """CLIP's own full 77-position text pass over prompt embeddings, `deep[k]` replacing the
    context tokens' hidden states before block k+1."""
    x = (embeddings + clip_model.positional_embedding).permute(1, 0, 2)
    for i, block in enumerate(clip_model.transformer.resblocks):
        if 1 <= i <= len(deep):
            n = deep[i - 1].shape[0]
            x = torch.cat([x[:1], deep[i - 1].unsqueeze(1).expand(-1, x.shape[1], -1), x[1 + n:]])
        x = block(x)
    x = clip_model.ln_final(x.permute(1, 0, 2))
    return x[torch.arange(len(ids)), ids.argmax(-1)] @ clip_model.text_projection


def clip_image_pass(clip_model, images, shallow, deep):
    """CLIP's own image pass, hooked: `shallow` appended before ln_pre, `deep[k]` replacing the
    prompt tokens before block k+1."""
    visual = clip_model.visual

    def append(module, args):
        x = args[0]
        return (torch.cat([x, shallow.expand(x.shape[0], -1, -1)], dim=1),)

    def replace(prompt):
        def hook(module, args):
            x = args[0]
            layer = prompt.unsqueeze(1).expand(-1, x.shape[1], -1)
            return (torch.cat([x[:-prompt.shape[0]], layer]),)
        return hook

    hooks = [(visual.ln_pre, append)]
    hooks += [(visual.transformer.resblocks[k + 1], replace(p)) for k, p in enumerate(deep)]
    return with_hooks(hooks, lambda: visual(images))


@pytest.mark.parametrize("method", ["MaPLe", "PromptSRC"])
def test_prompts_go_where_the_references_put_them(clip_model, method):
    """Depth 2 of 3 blocks: prompts at the input and block 1, none at block 2."""
    text_encoder = TextEncoder(clip_model)
    torch.manual_seed(0)
    if method == "MaPLe":
        learner = MaPLePromptLearner(clip_model, text_encoder, NAMES, depth=2)
        shallow = learner.proj(learner.ctx)
        deep_image = [learner.compound_prompt_projections[0](learner.compound_prompts_text[0])]
        deep_text = [learner.compound_prompts_text[0]]
    else:
        learner = IndependentPromptLearner(clip_model, text_encoder, NAMES, depth_text=2,
                                           depth_vision=2)
        shallow, deep_image, deep_text = (learner.vision_ctx, [learner.vision_prompts[0]],
                                          [learner.text_prompts[0]])
    model = PromptedCLIP(clip_model, text_encoder, learner)
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    ids = tokenize(learner.prompt_texts(NAMES))
    embedding = clip_model.token_embedding(ids)
    prompts = torch.cat([embedding[:, :1], learner.ctx.expand(len(NAMES), -1, -1),
                         embedding[:, 1 + learner.n_ctx:]], dim=1)
    expected_text = clip_text_pass(clip_model, prompts, ids, deep_text)
    expected_image = clip_image_pass(clip_model, images, shallow, deep_image)
    torch.testing.assert_close(model.text_features(), expected_text / expected_text.norm(
        dim=-1, keepdim=True), rtol=1e-5, atol=1e-6)
    ours_image = model.encode_images(images)
    torch.testing.assert_close(ours_image, expected_image / expected_image.norm(
        dim=-1, keepdim=True), rtol=1e-5, atol=1e-6)
    assert ours_image.requires_grad  # the image path carries learnable prompts


def test_fp16_clip_keeps_deep_prompts_in_fp32(deep_clip_path):
    """CLIP in fp16 (as on CUDA): the context and MaPLe's input projection follow CLIP's dtype,
    the deep prompts and their projections stay fp32 as in the references; a forward and
    backward pass runs (on CPU here) with the encoders casting the prompts."""
    clip16 = load_clip("tiny", str(deep_clip_path), "fp16").requires_grad_(False)
    text_encoder = TextEncoder(clip16)
    maple = MaPLePromptLearner(clip16, text_encoder, NAMES, depth=2)
    assert maple.ctx.dtype == maple.proj.weight.dtype == torch.float16
    assert maple.compound_prompts_text[0].dtype == torch.float32
    assert maple.compound_prompt_projections[0].weight.dtype == torch.float32
    src = IndependentPromptLearner(clip16, text_encoder, NAMES, depth_text=2, depth_vision=2)
    assert src.ctx.dtype == torch.float16 and src.vision_ctx.dtype == torch.float32
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    for learner in (maple, src):
        model = PromptedCLIP(clip16, text_encoder, learner)
        try:
            logits = model(images)
        except RuntimeError as exc:  # some CPU builds lack fp16 kernels
            pytest.skip(f"fp16 on CPU: {exc}")
        assert logits.dtype == torch.float16 and torch.isfinite(logits).all()
        logits.float().sum().backward()
        assert all(p.grad is not None for p in learner.parameters())


def test_depth_and_context_checks(clip_model, capsys):
    check_prompt_depth(clip_model, 3, "KEY", minimum=1, text=True, vision=True)
    assert capsys.readouterr().out == ""
    with pytest.raises(ConfigError, match="TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT is 0; it must be at least 1"):
        check_prompt_depth(clip_model, 0, "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", minimum=1,
                           text=True)
    # beyond the encoders' layers, as the references accept it: said, and capped (PromptSRC)
    check_prompt_depth(clip_model, 5, "TRAINER.MAPLE.PROMPT_DEPTH", minimum=1, text=True,
                       vision=True)
    assert "vision encoder has 3 layers: no vision prompts for layers 4..5" in capsys.readouterr().out
    capped = IndependentPromptLearner(clip_model, TextEncoder(clip_model), NAMES, depth_text=9,
                                      depth_vision=9)
    assert len(capped.text_prompts) == len(capped.vision_prompts) == 2
    maple = MaPLePromptLearner(clip_model, TextEncoder(clip_model), NAMES, depth=5)
    assert len(maple.compound_prompts_text) == 4  # as MaPLe's reference: made, unused
    assert context_init("a photo of a", 4) == "a photo of a" and context_init("a photo", 16) == ""
    with pytest.raises(ConfigError, match="too few to initialise 4"):
        MaPLePromptLearner(clip_model, TextEncoder(clip_model), NAMES, n_ctx=4,
                           ctx_init="a photo", depth=1)


def test_depth_checks_say_exactly_what_is_wrong(clip_model, tiny_resnet_clip, capsys):
    from sar_prompt.modeling.deep_prompt import encoder_layers, vision_width

    check_prompt_depth(clip_model, 0, "KEY")  # the defaults: depth 0 allowed, no encoder named
    check_prompt_depth(clip_model, 7, "KEY")
    check_prompt_depth(clip_model, 2, "KEY", minimum=2, text=True, vision=True)  # at the minimum
    assert capsys.readouterr().out == ""
    with pytest.raises(ConfigError) as error:
        check_prompt_depth(clip_model, 1, "TRAINER.X.DEPTH", minimum=2)
    assert str(error.value) == "TRAINER.X.DEPTH is 1; it must be at least 2."
    check_prompt_depth(clip_model, 5, "TRAINER.X.DEPTH", text=True)
    assert capsys.readouterr().out == (
        "[sar_prompt] TRAINER.X.DEPTH is 5, but this CLIP's text encoder has 3 layers: no text "
        "prompts for layers 4..5.\n")
    # a ResNet image tower: no vision prompts at all
    assert encoder_layers(tiny_resnet_clip) == (2, 0)
    check_prompt_depth(tiny_resnet_clip, 0, "TRAINER.X.DEPTH_VISION", vision=True)
    with pytest.raises(ConfigError) as error:
        check_prompt_depth(tiny_resnet_clip, 1, "TRAINER.X.DEPTH_VISION", vision=True)
    assert str(error.value) == ("TRAINER.X.DEPTH_VISION is 1: vision prompts need a ViT "
                                "backbone, and MODEL.BACKBONE.NAME is a ResNet. Use ViT-B/16.")
    with pytest.raises(ValueError) as error:
        vision_width(tiny_resnet_clip)
    assert str(error.value) == ("vision prompts need a ViT backbone; this CLIP's image encoder "
                                "is a ResNet")
    assert context_init("a photo of a big", 5) == "" and context_init("a photo of a", 4)


def test_the_learners_refuse_depths_the_references_refuse(clip_model):
    text_encoder = TextEncoder(clip_model)
    with pytest.raises(ValueError) as error:
        MaPLePromptLearner(clip_model, text_encoder, NAMES, depth=0)
    assert str(error.value) == "MaPLe's prompt depth must be >= 1, got 0"
    for text, vision in ((0, 3), (3, -1)):
        with pytest.raises(ValueError) as error:
            IndependentPromptLearner(clip_model, text_encoder, NAMES, depth_text=text,
                                     depth_vision=vision)
        assert str(error.value) == ("PromptSRC's text prompt depth must be >= 1 and its vision "
                                    f"prompt depth >= 0, got {text} and {vision}")


def test_the_learners_defaults_are_their_methods_config_defaults():
    import inspect

    from sar_prompt.config.keys import MAPLE_DEFAULTS, PROMPTSRC_DEFAULTS

    def defaults(cls, *names):
        parameters = inspect.signature(cls).parameters
        return tuple(parameters[n].default for n in names)

    assert defaults(MaPLePromptLearner, "n_ctx", "ctx_init", "depth") == tuple(
        MAPLE_DEFAULTS[k] for k in ("N_CTX", "CTX_INIT", "PROMPT_DEPTH"))
    assert defaults(IndependentPromptLearner, "n_ctx_text", "n_ctx_vision", "ctx_init",
                    "depth_text", "depth_vision") == tuple(
        PROMPTSRC_DEFAULTS[k] for k in ("N_CTX_TEXT", "N_CTX_VISION", "CTX_INIT",
                                        "PROMPT_DEPTH_TEXT", "PROMPT_DEPTH_VISION"))


def test_maples_vision_projections_are_separate_layers(clip_model):
    """Copies of one layer at the start (as the reference), each then trained on its own."""
    learner = MaPLePromptLearner(clip_model, TextEncoder(clip_model), NAMES, depth=3)
    first, second = learner.compound_prompt_projections
    assert first.weight is not second.weight and first.bias is not second.bias
    with torch.no_grad():
        first.weight.add_(1.0)
    assert not torch.equal(first.weight, second.weight)


# The names the references save their prompts under, written out as they are in the
# checkpoints MaPLe's and PromptSRC's code writes (the whole model's state dict).
MAPLE_CHECKPOINT_NAMES = {
    "ctx": "prompt_learner.ctx", "proj.weight": "prompt_learner.proj.weight",
    "proj.bias": "prompt_learner.proj.bias",
    "compound_prompts_text.0": "prompt_learner.compound_prompts_text.0",
    "compound_prompts_text.1": "prompt_learner.compound_prompts_text.1",
    "compound_prompt_projections.0.weight": "prompt_learner.compound_prompt_projections.0.weight",
    "compound_prompt_projections.0.bias": "prompt_learner.compound_prompt_projections.0.bias",
    "compound_prompt_projections.1.weight": "prompt_learner.compound_prompt_projections.1.weight",
    "compound_prompt_projections.1.bias": "prompt_learner.compound_prompt_projections.1.bias"}
PROMPTSRC_CHECKPOINT_NAMES = {
    "ctx": "prompt_learner.ctx", "vision_ctx": "image_encoder.VPT",
    "vision_prompts.0": "image_encoder.transformer.resblocks.1.VPT_shallow",
    "vision_prompts.1": "image_encoder.transformer.resblocks.2.VPT_shallow",
    "text_prompts.0": "text_encoder.transformer.resblocks.1.VPT_shallow",
    "text_prompts.1": "text_encoder.transformer.resblocks.2.VPT_shallow"}
FROZEN = ("image_encoder.conv1.weight", "text_encoder.positional_embedding", "logit_scale",
          "prompt_learner.ZS_image_encoder.conv1.weight")


@pytest.mark.parametrize("method", ["MaPLe", "PromptSRC"])
def test_a_references_checkpoint_loads_under_its_own_names(clip_model, method):
    from sar_prompt.dassl_glue.reference_state import match_state_dict

    text_encoder = TextEncoder(clip_model)
    if method == "MaPLe":
        learner, names = MaPLePromptLearner(clip_model, text_encoder, NAMES, depth=3), \
            MAPLE_CHECKPOINT_NAMES
    else:
        learner, names = IndependentPromptLearner(clip_model, text_encoder, NAMES, depth_text=3,
                                                  depth_vision=3), PROMPTSRC_CHECKPOINT_NAMES
    assert set(learner.state_dict()) == set(names)
    saved = {names[k]: torch.full_like(v, float(i)) for i, (k, v) in
             enumerate(learner.state_dict().items())}
    saved.update({key: torch.zeros(1) for key in FROZEN})
    matched = match_state_dict(saved, learner, "model.pth.tar-5", method)
    assert {k: v.unique().tolist() for k, v in matched.state.items()} == {
        k: [float(i)] for i, k in enumerate(learner.state_dict())}
    assert sorted(matched.ignored) == sorted(
        (key, "frozen CLIP weights (saved with the whole model); CLIP comes from "
              "MODEL.BACKBONE") for key in FROZEN)
