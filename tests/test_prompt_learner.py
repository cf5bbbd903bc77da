import pytest
import torch

from sar_prompt.errors import ConfigError
from sar_prompt.modeling.backbone import load_clip
from sar_prompt.modeling.context_prompt import ContextPromptLearner
from sar_prompt.modeling.prompted_clip import PromptedCLIP
from sar_prompt.modeling.text_encoder import TextEncoder, handcrafted_features
from sar_prompt.modeling.tokens import tokenize

NAMES = ["car_side", "grand piano", "ant", "stop_sign", "crocodile head"]


@pytest.fixture
def parts(tiny_clip_path):
    clip_model = load_clip("tiny", str(tiny_clip_path), "fp32")
    return clip_model, TextEncoder(clip_model)


def learner(parts, names=NAMES, **kw):
    clip_model, encoder = parts
    return ContextPromptLearner(clip_model, encoder, names, **kw)


def test_initialised_context_reproduces_the_handcrafted_prompt(parts):
    clip_model, encoder = parts
    pl = learner(parts, ctx_init="a photo of a")
    model = PromptedCLIP(clip_model, encoder, pl)
    with torch.no_grad():
        learned = model.text_features()
    handcrafted = handcrafted_features(encoder, NAMES, "a photo of a {}.", "test")
    torch.testing.assert_close(learned, handcrafted, rtol=1e-5, atol=1e-5)
    assert pl.n_ctx == 4 and pl.ctx.shape == (4, 64)
    assert list(pl.state_dict()) == ["ctx"]  # class-dependent tensors are never saved


def reference_prompts(pl, names, position):
    """Build each class's prompt embedding one by one, the way CoOp's loop does."""
    encoder = pl.text_encoder[0]
    ids = tokenize(pl.prompt_texts(names))
    full = encoder.embed(ids)
    out = []
    for i, name in enumerate(names):
        n_name = pl.classes.name_lens[i]
        prefix, suffix = full[i, :1], full[i, 1 + pl.n_ctx:]
        name_tok, rest = suffix[:n_name], suffix[n_name:]
        ctx = pl.ctx if pl.ctx.dim() == 2 else pl.ctx[i]
        half = pl.n_ctx // 2
        if position == "front":
            parts = [prefix, name_tok, ctx, rest]
        elif position == "middle":
            parts = [prefix, ctx[:half], name_tok, ctx[half:], rest]
        else:
            parts = [prefix, ctx, suffix]
        out.append(torch.cat(parts))
    return torch.stack(out)


@pytest.mark.parametrize("position", ["end", "front", "middle"])
@pytest.mark.parametrize("csc", [False, True])
def test_class_token_positions_match_per_class_construction(parts, position, csc):
    torch.manual_seed(0)
    pl = learner(parts, n_ctx=6, csc=csc, class_token_position=position)
    out = pl()
    prompts, eot = out.embeddings, out.eot
    ref = reference_prompts(pl, NAMES, position)
    length = prompts.shape[1]
    torch.testing.assert_close(prompts, ref[:, :length])
    assert eot.tolist() == tokenize(pl.prompt_texts(NAMES)).argmax(-1).tolist()
    # gradients reach the context through the grouped construction
    prompts.sum().backward()
    assert pl.ctx.grad is not None and pl.ctx.grad.abs().sum() > 0


def test_other_names_and_row_selection(parts):
    pl = learner(parts, ctx_init="a photo of a", class_token_position="middle")
    novel = pl.class_tokens(["hot air balloon", "tiger"])
    index = torch.tensor([1])
    prompts, eot = pl(novel, index).embeddings, pl(novel, index).eot
    full, full_eot = pl(novel).embeddings, pl(novel).eot
    assert prompts.shape[0] == 1 and eot.tolist() == full_eot[1:].tolist()
    torch.testing.assert_close(prompts[0], full[1])


def test_class_specific_context_cannot_prompt_other_names(parts):
    pl = learner(parts, n_ctx=4, csc=True)
    with pytest.raises(ConfigError, match="CSC"):
        pl(pl.class_tokens(["tiger"]))


def test_kgcoop_style_boolean_ctx_init(parts):
    assert learner(parts, ctx_init=True).prompt_prefix == "a photo of a"


def test_learners_implement_the_protocol(parts):
    from sar_prompt.modeling.conditional_prompt import ConditionalPromptLearner
    from sar_prompt.modeling.learner_interface import PromptLearner

    clip_model, encoder = parts
    coop = learner(parts, ctx_init="a photo of a")
    cocoop = ConditionalPromptLearner(clip_model, encoder, NAMES, ctx_init="a photo of a")
    assert isinstance(coop, PromptLearner) and isinstance(cocoop, PromptLearner)
    assert not coop.conditioned and cocoop.conditioned
    assert coop.image_prompts() is None and cocoop.image_prompts() is None


def test_conditional_prompts_are_cocoops_per_image_construction(parts):
    """ctx_b = ctx + meta_net(image b), the same context for every class of image b."""
    from sar_prompt.modeling.conditional_prompt import ConditionalPromptLearner

    clip_model, encoder = parts
    torch.manual_seed(0)
    pl = ConditionalPromptLearner(clip_model, encoder, NAMES, n_ctx=3)
    assert pl.meta_net.linear1.out_features == clip_model.visual.output_dim // 16
    images = torch.nn.functional.normalize(torch.randn(2, clip_model.visual.output_dim), dim=-1)
    out = pl(condition=images)
    plain = pl()
    assert out.embeddings.shape[0] == 2 * len(NAMES)
    assert out.eot.tolist() == plain.eot.tolist() * 2
    for b in range(2):
        ctx_b = pl.ctx + pl.meta_net(images[b:b + 1])
        rows = out.embeddings[b * len(NAMES):(b + 1) * len(NAMES)]
        torch.testing.assert_close(rows[:, 1:4], ctx_b.expand(len(NAMES), -1, -1))
        torch.testing.assert_close(rows[:, :1], plain.embeddings[:, :1])
        torch.testing.assert_close(rows[:, 4:], plain.embeddings[:, 4:])
    # without a condition: the shared context alone (the meta-net's bias off)
    torch.testing.assert_close(plain.embeddings[:, 1:4], pl.ctx.expand(len(NAMES), -1, -1))
    # gradients reach the context and the meta-net
    out.embeddings.sum().backward()
    assert pl.ctx.grad.abs().sum() > 0 and pl.meta_net.linear2.weight.grad.abs().sum() > 0


def test_per_image_text_features_in_chunks_and_their_mean(parts):
    from sar_prompt.modeling.conditional_prompt import ConditionalPromptLearner

    clip_model, encoder = parts
    torch.manual_seed(0)
    model = PromptedCLIP(clip_model, encoder,
                         ConditionalPromptLearner(clip_model, encoder, NAMES, ctx_init="a photo of a"))
    images = torch.nn.functional.normalize(torch.randn(5, 32), dim=-1)
    with torch.no_grad():
        whole = model.text_features(condition=images)
        model.rows_per_text_pass = 2 * len(NAMES)  # two images per text pass
        chunked = model.text_features(condition=images)
        one = model.text_features(condition=images[3:4])
        mean = model.class_text_features(condition=images)
    assert whole.shape == (5, len(NAMES), 32)
    torch.testing.assert_close(chunked, whole)
    torch.testing.assert_close(one[0], whole[3])
    torch.testing.assert_close(mean, torch.nn.functional.normalize(whole.mean(0), dim=-1))
    logits = model.logits(images, whole)
    torch.testing.assert_close(logits[2], model.logit_scale.exp() * whole[2] @ images[2])


def test_handcrafted_templates_per_method_and_promptsrcs_average(parts):
    from sar_prompt.templates import PROMPTSRC_TEMPLATES, templates_for

    assert templates_for("coop", "DescribableTextures") == ("{} texture.",)
    assert templates_for("kgcoop", "DescribableTextures") == ("a photo of a {}, a type of texture.",)
    assert templates_for("kgcoop", "OxfordPets") == templates_for("coop", "OxfordPets")
    assert templates_for("kgcoop", "DescribableTextures", "my {}.") == ("my {}.",)
    assert len(PROMPTSRC_TEMPLATES) == 60 and len(set(PROMPTSRC_TEMPLATES)) == 60
    assert templates_for("promptsrc", "EuroSAT") == PROMPTSRC_TEMPLATES
    _, encoder = parts
    templates = PROMPTSRC_TEMPLATES[:3]
    with torch.no_grad():
        raw = [encoder.encode_token_ids(tokenize([t.format(n.replace("_", " ")) for n in NAMES]),
                                        normalized=False) for t in templates]
    expected = torch.stack(raw).mean(0)  # PromptSRC: mean of unnormalised features
    expected = expected / expected.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(handcrafted_features(encoder, NAMES, templates, "test"), expected)
