"""Gaussian prompt aggregation: PromptSRC's weights, the weighted sum, and its state across a
resume."""
import math

import pytest
import torch

from sar_prompt.errors import ConfigError
from sar_prompt.modeling.gpa import PromptAggregation, gaussian_epoch_weights


def test_weights_are_normalised_gaussian_densities_over_the_epochs():
    w = gaussian_epoch_weights(20, 15, 1)
    assert len(w) == 20 and math.isclose(sum(w), 1.0, rel_tol=1e-12)
    assert max(range(20), key=w.__getitem__) == 14  # epoch 15, 1-based
    assert w[13] == pytest.approx(w[15], rel=1e-12)  # symmetric about the mean
    assert w[14] / w[13] == pytest.approx(math.exp(0.5), rel=1e-12)  # density ratio at 1 std
    # a mean beyond the run: the last epoch dominates, still normalised
    short = gaussian_epoch_weights(2, 15, 1)
    assert short[1] > 0.999 and math.isclose(sum(short), 1.0)


def test_degenerate_settings_fail_clearly():
    with pytest.raises(ConfigError) as error:
        gaussian_epoch_weights(5, 15, 0.05)
    assert str(error.value) == (
        "GPA_MEAN 15 is too far from the run's epochs 1..5 for GPA_STD 0.05: every epoch's "
        "weight is 0. Choose GPA_MEAN within the epochs (PromptSRC: 15 of 20) or a larger "
        "GPA_STD.")
    with pytest.raises(RuntimeError, match="^no epoch has been aggregated$"):
        PromptAggregation([1.0]).result({"ctx": torch.zeros(1)})


def states(n, dtype=torch.float32):
    gen = torch.Generator().manual_seed(0)
    return [{"ctx": torch.randn(2, 3, generator=gen).to(dtype),
             "deep.0": torch.randn(4, generator=gen).to(dtype)} for _ in range(n)]


def test_result_is_the_weighted_sum_in_the_prompts_dtype():
    weights = gaussian_epoch_weights(3, 2, 1)
    gpa = PromptAggregation(weights)
    seq = states(3)
    for epoch, state in enumerate(seq):
        gpa.add(epoch, state)
    out = gpa.result(seq[-1])
    expected = sum(s["ctx"] * w for s, w in zip(seq, weights))
    torch.testing.assert_close(out["ctx"], expected, rtol=0, atol=1e-7)
    half = states(3, torch.float16)
    gpa16 = PromptAggregation(weights)
    for epoch, state in enumerate(half):
        gpa16.add(epoch, state)
    assert gpa16.total["ctx"].dtype == torch.float32  # summed in fp32
    assert gpa16.result(half[-1])["ctx"].dtype == torch.float16


def test_resumed_aggregation_equals_uninterrupted_bit_for_bit():
    weights = gaussian_epoch_weights(4, 3, 1)
    seq = states(4)
    whole = PromptAggregation(weights)
    for epoch, state in enumerate(seq):
        whole.add(epoch, state)
    first = PromptAggregation(weights)
    first.add(0, seq[0])
    first.add(1, seq[1])
    saved = first.state_dict()
    resumed = PromptAggregation(weights)
    resumed.load_state_dict(saved)
    resumed.add(1, seq[1])  # an epoch already in the sum is not added twice
    resumed.add(2, seq[2])
    resumed.add(3, seq[3])
    for key in seq[0]:
        assert torch.equal(resumed.result(seq[0])[key], whole.result(seq[0])[key])


def test_missing_epochs_are_renormalised():
    weights = gaussian_epoch_weights(3, 2, 1)
    seq = [{"x": torch.ones(2)}] * 3
    gpa = PromptAggregation(weights)
    gpa.add(1, seq[1])
    gpa.add(2, seq[2])  # epoch 0 missing (e.g. a checkpoint without GPA state)
    assert not gpa.complete()
    torch.testing.assert_close(gpa.result(seq[0])["x"], torch.ones(2))


def test_the_sum_is_in_at_least_fp32_and_never_lower_than_the_prompts():
    for dtype, summed in ((torch.float16, torch.float32), (torch.bfloat16, torch.float32),
                          (torch.float32, torch.float32), (torch.float64, torch.float64)):
        gpa = PromptAggregation([1.0])
        gpa.add(0, {"ctx": torch.ones(2, dtype=dtype)})
        assert gpa.total["ctx"].dtype == summed
        assert gpa.result({"ctx": torch.ones(2, dtype=dtype)})["ctx"].dtype == dtype
