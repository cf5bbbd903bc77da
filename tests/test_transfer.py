"""to_device: a CPU tensor goes to CUDA through pinned memory without blocking; anything
else is an ordinary copy, and a tensor already there is returned as it is. The CUDA path is
followed with a stand-in tensor that records its calls (this runs without a GPU)."""
import torch

from sar_prompt.modeling.transfer import to_device


class RecordingTensor:
    def __init__(self, device, calls=None):
        self.device = torch.device(device)
        self.calls = [] if calls is None else calls

    def pin_memory(self):
        self.calls.append("pin_memory")
        return self

    def to(self, device, non_blocking=False):
        self.calls.append(("to", str(device), non_blocking))
        return RecordingTensor(device, self.calls)


def test_a_cpu_tensor_goes_to_cuda_pinned_and_asynchronously():
    tensor = RecordingTensor("cpu")
    moved = to_device(tensor, "cuda:0")
    assert tensor.calls == ["pin_memory", ("to", "cuda:0", True)]
    assert moved.device == torch.device("cuda:0")


def test_other_moves_are_plain_copies():
    for source, target in (("cuda:0", "cpu"), ("cuda:0", "cuda:1"), ("cpu", "meta")):
        tensor = RecordingTensor(source)
        assert to_device(tensor, torch.device(target)).device == torch.device(target)
        assert tensor.calls == [("to", target, False)]


def test_a_tensor_already_on_the_device_is_returned_as_it_is():
    tensor = RecordingTensor("cuda:0")
    assert to_device(tensor, "cuda:0") is tensor and tensor.calls == []
    real = torch.arange(3)
    assert to_device(real, "cpu") is real
