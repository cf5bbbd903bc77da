import torch

from sar_prompt.modeling.backbone import import_clip, load_clip
from sar_prompt.modeling.text_encoder import TextEncoder
from sar_prompt.modeling.tokens import eot_positions, tokenize


def test_truncated_pass_equals_full_77_token_pass(tiny_clip_path):
    clip_model = load_clip("tiny", str(tiny_clip_path), "fp32")
    encoder = TextEncoder(clip_model)
    texts = ["a photo of a dog.", "a photo of a very long named class with many words in it.",
             "x", "a centered satellite photo of annual crop land."]
    ids = tokenize(texts)
    with torch.no_grad():
        full = clip_model.encode_text(ids)  # CLIP's own pass over all 77 positions
        ours = encoder(encoder.embed(ids), eot_positions(ids))
        # and on a batch whose longest prompt is short: fewer positions are computed
        short = encoder(encoder.embed(ids[2:3]), eot_positions(ids[2:3]))
    assert int(eot_positions(ids).max()) + 1 < 77
    torch.testing.assert_close(ours, full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(short, full[2:3], rtol=1e-5, atol=1e-5)


def test_encode_token_ids_is_normalised_and_batched(tiny_clip_path):
    clip_model = load_clip("tiny", str(tiny_clip_path), "fp32")
    encoder = TextEncoder(clip_model)
    ids = tokenize([f"a photo of a class {i}." for i in range(7)])
    feats = encoder.encode_token_ids(ids, batch_size=3)
    with torch.no_grad():
        ref = clip_model.encode_text(ids)
    ref = ref / ref.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(feats, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(feats.norm(dim=-1), torch.ones(7))


def test_tokenize_reports_every_overlong_prompt():
    import pytest

    from sar_prompt.errors import NovelClassesError

    long = " ".join(["word"] * 80)
    with pytest.raises(NovelClassesError) as err:
        tokenize(["ok", long, long + " more"], source="novel_classes/x.json")
    msg = str(err.value)
    assert "novel_classes/x.json" in msg and "2 prompt(s)" in msg and "77" in msg
    assert import_clip().tokenize(["ok"]).shape == (1, 77)


def test_text_prompts_with_only_embeddings_and_eot_encode_as_clip_does(tiny_clip_path):
    # A new method's learner may fill in just the two required fields: the defaults must
    # mean "no sharing, one group, every row up to the longest EOT" (CLIP's own pass).
    from sar_prompt.modeling.learner_interface import TextPrompts

    clip_model = load_clip("tiny", str(tiny_clip_path), "fp32")
    encoder = TextEncoder(clip_model)
    ids = tokenize(["a photo of a dog.", "x", "a photo of a small red fox in the snow.",
                    "two words"])
    prompts = TextPrompts(encoder.embed(ids), eot_positions(ids))
    assert (prompts.deep, prompts.length, prompts.shared_prefix, prompts.groups,
            prompts.eot_list) == ((), None, 0, 1, None)
    with torch.no_grad():
        torch.testing.assert_close(encoder.encode(prompts), clip_model.encode_text(ids),
                                   rtol=1e-5, atol=1e-5)
