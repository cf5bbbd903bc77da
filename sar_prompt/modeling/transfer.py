"""Moving small host tensors (sampled indices) to the device without waiting for it."""
import torch


def to_device(tensor: torch.Tensor, device) -> torch.Tensor:
    """`tensor` on `device`. A CPU tensor goes to CUDA from pinned memory, asynchronously:
    a plain copy from pageable memory would make the host wait for the device."""
    device = torch.device(device)
    if tensor.device == device:
        return tensor
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
