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
    prompts, eot = pl()
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
    prompts, eot = pl(novel, index)
    full, full_eot = pl(novel)
    assert prompts.shape[0] == 1 and eot.tolist() == full_eot[1:].tolist()
    torch.testing.assert_close(prompts[0], full[1])


def test_class_specific_context_cannot_prompt_other_names(parts):
    pl = learner(parts, n_ctx=4, csc=True)
    with pytest.raises(ConfigError, match="CSC"):
        pl(pl.class_tokens(["tiger"]))


def test_kgcoop_style_boolean_ctx_init(parts):
    assert learner(parts, ctx_init=True).prompt_prefix == "a photo of a"
