"""The run's precision, decided in one place (sar_prompt/modeling/precision.py): which PREC a
device runs, amp's autocast and gradient scaler, loss terms outside autocast, and the fp32
pieces of a half-precision run (SAR's loss, PromptSRC's frozen text features)."""
import pytest
import torch

from sar_prompt.modeling import precision
from sar_prompt.modeling.backbone import load_clip
from sar_prompt.modeling.text_encoder import TextEncoder
from sar_prompt.modeling.tokens import tokenize
from sar_prompt.sar import SimilarityAlignment


@pytest.fixture
def no_cpu_half(monkeypatch):
    monkeypatch.delenv(precision.CPU_HALF_ENV, raising=False)


@pytest.mark.parametrize("requested", ["fp16", "amp"])
def test_a_cpu_runs_fp32_unless_asked_to_run_half(no_cpu_half, monkeypatch, capsys, requested):
    assert precision.effective_precision(requested, torch.device("cpu")) == "fp32"
    assert f"PREC {requested} needs CUDA (or SAR_PROMPT_CPU_HALF=1 on a CPU)" in \
        capsys.readouterr().out
    monkeypatch.setenv(precision.CPU_HALF_ENV, "0")
    assert precision.effective_precision(requested, "cpu") == "fp32"
    monkeypatch.setenv(precision.CPU_HALF_ENV, "1")
    assert precision.effective_precision(requested, "cpu") == requested
    assert precision.effective_precision("fp32", "cpu") == "fp32"


def test_cuda_honours_every_prec(no_cpu_half):
    for requested in ("fp16", "fp32", "amp"):
        assert precision.effective_precision(requested, torch.device("cuda", 0)) == requested


def test_amp_autocasts_the_step_to_float16_on_the_runs_device():
    a = torch.randn(4, 4)
    with precision.autocast("amp", torch.device("cpu")):
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.float16
        assert (a @ a).dtype == torch.float16
        with precision.outside_autocast("cpu"):
            assert (a @ a).dtype == torch.float32
    for other in ("fp16", "fp32"):
        with precision.autocast(other, "cpu"):
            assert not torch.is_autocast_enabled("cpu")


def test_only_amp_scales_gradients():
    scaler = precision.grad_scaler("amp", torch.device("cpu"))
    assert isinstance(scaler, torch.amp.GradScaler) and scaler.is_enabled()
    assert scaler._device == "cpu"
    assert precision.grad_scaler("fp16", "cpu") is None
    assert precision.grad_scaler("fp32", "cpu") is None


def test_a_loss_term_reads_its_inputs_in_the_precisions_dtype():
    half, single = torch.ones(2, dtype=torch.float16), torch.ones(2)
    assert [t.dtype for t in precision.loss_inputs("amp", half, half)] == [torch.float32] * 2
    # fp16: in fp16 where every input is, in fp32 where one is (PromptSRC's text term)
    assert [t.dtype for t in precision.loss_inputs("fp16", half, half)] == [torch.float16] * 2
    assert [t.dtype for t in precision.loss_inputs("fp16", half, single)] == [torch.float32] * 2
    assert [t.dtype for t in precision.loss_inputs("fp32", single, single)] == [torch.float32] * 2


@pytest.mark.parametrize("loss", ["kl", "l1", "mse"])
def test_sars_loss_is_fp32_under_autocast(loss):
    """Under amp, autocast would run SAR's similarity products in half precision whatever
    the features' dtype: SAR computes them outside it, exactly as without autocast."""
    gen = torch.Generator().manual_seed(0)
    unit = lambda *shape: torch.nn.functional.normalize(  # noqa: E731
        torch.randn(*shape, generator=gen), dim=-1)
    target = unit(7, 16)
    sar = SimilarityAlignment(target, num_base=4, num_novel=2, loss=loss, seed=0)
    base = (target[:4] + 0.01 * unit(4, 16)).half()  # a small drift: rounding matters most
    novel = (target[4:] + 0.01 * unit(3, 16)).half()
    index = torch.tensor([0, 2])
    expected = sar(base, novel[index], index)
    with torch.autocast("cpu", dtype=torch.float16):
        under_amp = sar(base, novel[index], index)
    assert expected.dtype == under_amp.dtype == torch.float32
    assert torch.equal(under_amp, expected)


def test_a_text_encoder_copy_in_fp32_equals_an_fp32_clips(tiny_clip_path):
    """PromptSRC's frozen text features in an fp16 run: from an fp32 copy of the fp16
    CLIP's text side, which is the fp32 CLIP (its weights pass through fp16 either way)."""
    half = TextEncoder(load_clip("tiny", str(tiny_clip_path), "fp16"))
    single = TextEncoder(load_clip("tiny", str(tiny_clip_path), "fp32"))
    copy = half.copy_in(torch.float32)
    assert copy.dtype == torch.float32 and half.dtype == torch.float16
    assert copy.token_embedding.weight.data_ptr() != half.token_embedding.weight.data_ptr()
    ids = tokenize(["a photo of a dog.", "a photo of a cat."], source="test")
    assert torch.equal(copy.encode_token_ids(ids), single.encode_token_ids(ids))
    assert half.encode_token_ids(ids).dtype == torch.float16  # the original is untouched
