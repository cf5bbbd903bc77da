"""Tokenising prompts (sar_prompt/modeling/tokens.py): the error for prompts longer than
CLIP's 77 tokens names them (the first five), and the end-of-text positions."""
import pytest
import torch

from sar_prompt.errors import ConfigError, NovelClassesError
from sar_prompt.modeling.tokens import eot_positions, tokenize


def test_prompts_over_the_limit_are_named_five_at_most():
    long = [" ".join(["cat"] * (76 + i)) for i in range(6)]  # 76 + i words + start + end
    with pytest.raises(NovelClassesError) as error:
        tokenize(["a photo of a cat."] + long)
    shown = "; ".join(f"{text!r} ({78 + i} tokens)" for i, text in enumerate(long[:5]))
    assert str(error.value) == (f"prompt: 6 prompt(s) exceed CLIP's 77-token limit: {shown}. "
                                "Shorten those names.")
    with pytest.raises(ConfigError, match=r"^CTX_INIT: 1 prompt\(s\) exceed"):
        tokenize(long[:1], source="CTX_INIT", error=ConfigError)


def test_the_end_of_text_position_of_each_prompt():
    ids = tokenize(["a cat.", "a photo of a cat."])
    assert ids.shape == (2, 77)
    assert torch.equal(eot_positions(ids), torch.tensor([4, 7]))  # start, words, ".", end
